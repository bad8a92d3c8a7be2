/* test_linger_known.c: close() asks the kernel for SO_LINGER only when the
 * descriptor table cannot know it (a socket made here and never given a
 * SO_LINGER is known to be {0,0}, §2). Each case sets linger {1,0} in a way
 * that must make the table stop trusting what it knows, closes, and checks
 * what the peer sees: a reset (row A1) and not a graceful EOF. Every case
 * passes on plain Linux too (the kernel applies {1,0} itself). */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loopback.h"

#define PEER_WAIT_MS 5000

/* What a reader of the other end sees within PEER_WAIT_MS: 0 for EOF,
 * else the errno of the failed read (ECONNRESET for a reset). */
static int peer_sees(int fd)
{
	char byte;
	ck_assert_msg(lb_poll(fd, POLLIN, PEER_WAIT_MS) > 0, "the peer saw nothing within %d ms",
		      PEER_WAIT_MS);
	ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
	ck_assert_msg(n <= 0, "the peer read data nobody sent");
	return n == 0 ? 0 : errno;
}

static void assert_reset(int fd, const char *how)
{
	int seen = peer_sees(fd);
	ck_assert_msg(seen == ECONNRESET, "%s: the peer saw %s, not a reset", how,
		      seen == 0 ? "EOF (a graceful close)" : strerror(seen));
}

/* Closes the pair's client end; its peer must see a reset. */
static void close_client_expecting_reset(struct lb_pair *pair, const char *how)
{
	ck_assert_int_eq(close(pair->client), 0);
	pair->client = -1;
	assert_reset(pair->peer, how);
	lb_pair_close(pair);
}

/* The kernel copies a listener's linger to the sockets it accepts. */
START_TEST(accepted_from_a_lingering_listener_resets)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int listener = pair.listener;
	struct sockaddr_in addr;
	socklen_t len = sizeof addr;
	ck_assert(getsockname(listener, (struct sockaddr *)&addr, &len) == 0);
	ck_assert(lb_set_linger(listener, 1, 0) == 0);
	int client = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(client >= 0);
	ck_assert(connect(client, (struct sockaddr *)&addr, len) == 0);
	int accepted = accept(listener, NULL, NULL);
	ck_assert(accepted >= 0);

	ck_assert_int_eq(close(accepted), 0);
	assert_reset(client, "close() of a socket accepted from a listener with linger {1,0}");
	close(client);
	lb_pair_close(&pair);
}
END_TEST

/* Linger belongs to the socket: set through one number, it holds for all. */
START_TEST(linger_set_through_a_dup_resets)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int dup_fd = dup(pair.client);
	ck_assert(dup_fd >= 0);
	ck_assert(lb_set_linger(dup_fd, 1, 0) == 0);
	ck_assert_int_eq(close(dup_fd), 0);
	close_client_expecting_reset(&pair, "close() after linger {1,0} was set through a dup");
}
END_TEST

/* syscall(SYS_setsockopt) is seen like setsockopt(). */
START_TEST(linger_set_through_syscall_resets)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	struct linger abort_on_close = { 1, 0 };
	ck_assert(syscall(SYS_setsockopt, pair.client, SOL_SOCKET, SO_LINGER, &abort_on_close,
			  sizeof abort_on_close) == 0);
	close_client_expecting_reset(&pair,
				     "close() after syscall(SYS_setsockopt, SO_LINGER {1,0})");
}
END_TEST

/* Set, then set back to the default: still right (the table asks again). */
START_TEST(linger_set_back_to_off_closes_gracefully)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	ck_assert(send(pair.client, "x", 1, 0) == 1);

	ck_assert_int_eq(close(pair.client), 0);
	pair.client = -1;
	char byte;
	ck_assert(lb_poll(pair.peer, POLLIN, PEER_WAIT_MS) > 0);
	ck_assert(recv(pair.peer, &byte, 1, 0) == 1 && byte == 'x');
	ck_assert_int_eq(peer_sees(pair.peer), 0);
	lb_pair_close(&pair);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("linger_known");
	TCase *tc = tcase_create("linger_the_table_cannot_know");
	tcase_add_test(tc, accepted_from_a_lingering_listener_resets);
	tcase_add_test(tc, linger_set_through_a_dup_resets);
	tcase_add_test(tc, linger_set_through_syscall_resets);
	tcase_add_test(tc, linger_set_back_to_off_closes_gracefully);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
