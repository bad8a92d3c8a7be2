/* test_fd_state.c: owns the descriptor state table (src/fd_state.[ch]) and
 * the transitions src/fd_table.c makes: every transition function moves an
 * entry only along the table, refuses what the table does not allow (a
 * claim on a tombstone, flags on an unknown number), and an illegal change
 * aborts in a checking build (this test is built with
 * WSPCLOSE_CHECK_STATES). */
#include <check.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fd_state.h"
#include "fd_table.h"

/* Numbers no test process has open: the table is only memory here. */
#define FD 900
#define EPFD 901
#define COPY 902

static enum fd_class class_of(int fd)
{
	return fd_state_class(atomic_load(&fd_table_entry(fd)->state));
}

/* Runs one transition and checks where it went and that the table allows
 * that move. */
static void expect_move(int fd, enum fd_class to, const char *what)
{
	static enum fd_class before[1024];
	enum fd_class now = class_of(fd);
	ck_assert_msg(now == to, "%s: entry is %s, expected %s", what, fd_class_name(now),
		      fd_class_name(to));
	ck_assert_msg(fd_transition_is_legal(before[fd], now), "%s: %s -> %s is not in the table",
		      what, fd_class_name(before[fd]), fd_class_name(now));
	before[fd] = now;
}

static void setup(void)
{
	fd_table_init();
	ck_assert(fd_table_capacity() > COPY);
	for (int fd = FD; fd <= COPY; fd++)
		fd_table_forget(fd);
}

START_TEST(a_socket_close_goes_claimed_then_tombstone_then_unknown)
{
	uint32_t state;
	struct fd_entry *e = fd_table_entry(FD);
	expect_move(FD, FD_CLASS_UNKNOWN, "start");
	fd_table_set_socket(FD, FD_KIND_TCP, fd_table_new_socket_id());
	expect_move(FD, FD_CLASS_SOCKET, "socket()");
	ck_assert(fd_table_claim_close(e, &state));
	ck_assert(state & FD_CLOSING);
	expect_move(FD, FD_CLASS_CLAIMED, "close() claims");
	ck_assert_msg(!fd_table_claim_close(e, &state), "a second claim was granted");
	fd_table_release_claim(e, FD_W1_REFUSED);
	expect_move(FD, FD_CLASS_SOCKET, "W1 releases the claim");
	ck_assert(atomic_load(&e->state) & FD_W1_REFUSED);
	ck_assert(fd_table_claim_close(e, &state));
	expect_move(FD, FD_CLASS_CLAIMED, "close() again");
	fd_table_bury(e);
	expect_move(FD, FD_CLASS_TOMBSTONE, "buried before the real close");
	ck_assert_uint_eq(atomic_load(&e->state), FD_TOMBSTONE);
	fd_table_unbury(e);
	expect_move(FD, FD_CLASS_UNKNOWN, "the number closed again");
}
END_TEST

START_TEST(nothing_is_claimed_or_flagged_that_the_table_forbids)
{
	uint32_t state;
	struct fd_entry *e = fd_table_entry(FD);
	/* Unknown: no claim, no flags (a flag without its kind). */
	ck_assert(!fd_table_claim_close(e, &state));
	ck_assert(!fd_table_add_flags(e, FD_SHARED));
	ck_assert_uint_eq(atomic_load(&e->state), 0);
	/* Tombstone: stays exactly a tombstone. */
	fd_table_set_socket(FD, FD_KIND_OTHER_SOCKET, 1);
	ck_assert(fd_table_claim_close(e, &state));
	fd_table_bury(e);
	ck_assert(!fd_table_claim_close(e, &state));
	ck_assert(!fd_table_add_flags(e, FD_WRITE_SHUT | FD_SHARED));
	ck_assert_uint_eq(atomic_load(&e->state), FD_TOMBSTONE);
	/* Library-owned: never the application's to claim or flag. */
	fd_table_set_library_owned(COPY);
	struct fd_entry *own = fd_table_entry(COPY);
	ck_assert(!fd_table_claim_close(own, &state));
	ck_assert(!fd_table_add_flags(own, FD_SHARED));
	ck_assert_uint_eq(atomic_load(&own->state), FD_LIBRARY_OWNED);
	/* Flags without a kind are unknown, whatever they say. */
	ck_assert(fd_state_is_unknown(FD_SHARED | FD_WRITE_SHUT));
	ck_assert(!fd_state_is_unknown(FD_TOMBSTONE));
	ck_assert(!fd_state_is_unknown(FD_LIBRARY_OWNED));
}
END_TEST

START_TEST(an_epoll_set_on_a_tombstone_is_recorded)
{
	uint32_t state;
	struct fd_entry *set = fd_table_entry(EPFD);
	fd_table_set_socket(EPFD, FD_KIND_TCP, 7);
	expect_move(EPFD, FD_CLASS_SOCKET, "a socket at the number");
	ck_assert(fd_table_claim_close(set, &state));
	expect_move(EPFD, FD_CLASS_CLAIMED, "its close");
	fd_table_bury(set);
	expect_move(EPFD, FD_CLASS_TOMBSTONE, "a socket closed at the epoll set's number");
	fd_table_set_socket(FD, FD_KIND_TCP, 8);
	fd_table_note_epoll_add(EPFD, FD);
	expect_move(EPFD, FD_CLASS_EPOLL, "epoll_ctl(ADD) through the reused number");
	ck_assert(atomic_load(&fd_table_entry(FD)->epoll_sets[0]) == EPFD + 1);
}
END_TEST

START_TEST(a_failed_replacement_restores_the_claimed_entry)
{
	uint32_t state;
	struct fd_entry *e = fd_table_entry(FD);
	fd_table_set_socket(FD, FD_KIND_TCP, 42);
	fd_table_set_socket(COPY, FD_KIND_TCP, 43);
	fd_table_note_epoll_add(EPFD, FD);
	ck_assert(fd_table_claim_close(e, &state));
	struct fd_snapshot saved;
	fd_table_snapshot(e, &saved);
	fd_table_note_duplicate(COPY, FD); /* published before dup2() */
	expect_move(FD, FD_CLASS_SOCKET, "the replacement's socket published");
	ck_assert_uint_eq(atomic_load(&e->socket_id), 43);
	fd_table_restore(e, &saved); /* dup2() failed */
	ck_assert_uint_eq(atomic_load(&e->socket_id), 42);
	ck_assert(atomic_load(&e->epoll_sets[0]) == EPFD + 1);
	fd_table_release_claim(e, 0);
	ck_assert_uint_eq(fd_state_class(atomic_load(&e->state)), FD_CLASS_SOCKET);
}
END_TEST

START_TEST(the_table_refuses_what_no_function_may_do)
{
	ck_assert(!fd_transition_is_legal(FD_CLASS_TOMBSTONE, FD_CLASS_CLAIMED));
	ck_assert(!fd_transition_is_legal(FD_CLASS_LIBRARY, FD_CLASS_CLAIMED));
	ck_assert(!fd_transition_is_legal(FD_CLASS_CLAIMED, FD_CLASS_LIBRARY));
	ck_assert(!fd_transition_is_legal(FD_CLASS_SOCKET, FD_CLASS_TOMBSTONE));
	ck_assert(!fd_transition_is_legal(FD_CLASS_UNKNOWN, FD_CLASS_TOMBSTONE));
	ck_assert(fd_transition_is_legal(FD_CLASS_CLAIMED, FD_CLASS_TOMBSTONE));
}
END_TEST

/* In a checking build an illegal change aborts instead of going on. */
START_TEST(an_illegal_change_aborts)
{
	fd_state_check(FD_TOMBSTONE, FD_KIND_TCP | FD_CLOSING, "a test");
}
END_TEST

static Suite *fd_state_suite(void)
{
	Suite *s = suite_create("fd_state");
	TCase *tc = tcase_create("transitions");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, a_socket_close_goes_claimed_then_tombstone_then_unknown);
	tcase_add_test(tc, nothing_is_claimed_or_flagged_that_the_table_forbids);
	tcase_add_test(tc, an_epoll_set_on_a_tombstone_is_recorded);
	tcase_add_test(tc, a_failed_replacement_restores_the_claimed_entry);
	tcase_add_test(tc, the_table_refuses_what_no_function_may_do);
	tcase_add_test_raise_signal(tc, an_illegal_change_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fd_state_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
