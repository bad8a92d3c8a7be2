/* test_dup2_race.c: the application owns every descriptor number
 * (libwspclose(7) §1.1, the library's own descriptors). A dup2() onto a number
 * where the library puts its held copies gets that number and keeps it,
 * whatever the closing threads are doing at that moment: making a copy
 * there, or handing one off that is not yet in the reaper's or the
 * nursery's hands. The library's copy is moved out of the way, and the
 * descriptor the application put there is never closed or taken by the
 * library. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

/* Where held copies go (at or above 1024 when RLIMIT_NOFILE allows). */
#define FIRST_TARGET 1024
#define TARGETS 8
/* Longer than a copy waits in the nursery before the reaper sweeps it
 * (2 ms): a copy mistaken for the application's descriptor is closed by
 * then. */
#define KEEP_US 4000
/* At least RUN_MS, and with the library until enough dup2() calls landed
 * on one of its copies for the test to say anything (slow builds take
 * longer), at most MAX_RUN_MS. */
#define RUN_MS 3000
#define MAX_RUN_MS 30000
#define MIN_ONTO_COPIES 20
#define RELEASE_WAIT_MS 3000

static atomic_bool stop;
static atomic_long connections;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool library_loaded(void)
{
	const char *preload = getenv("LD_PRELOAD");
	return preload != NULL && strstr(preload, "libwspclose") != NULL;
}

/* Connection churn: each close() of the client (its peer still open) makes
 * a held copy high up, which waits for the ACK of its FIN. */
static void *churn(void *unused)
{
	(void)unused;
	while (!atomic_load(&stop)) {
		struct lb_pair pair;
		if (lb_pair_open(&pair, AF_INET, 0, 0) != 0)
			continue;
		close(pair.client);
		pair.client = -1;
		lb_pair_close(&pair);
		atomic_fetch_add(&connections, 1);
	}
	return NULL;
}

/* What /proc/self/fd says fd is: 0, or -1 when it is not open. */
static int fd_link(int fd, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, len - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static bool is_socket_link(int fd)
{
	char link[128];
	return fd_link(fd, link, sizeof link) == 0 && strncmp(link, "socket:", 7) == 0;
}

struct target {
	int fd;
	int64_t since_us; /* 0: not ours right now */
};

/* Our descriptor at t->fd is still the one we put there, and closes. */
static void check_and_close(struct target *t, const char *want)
{
	char got[128] = "(not open)";
	fd_link(t->fd, got, sizeof got);
	ck_assert_msg(strcmp(got, want) == 0,
		      "fd %d, ours since a dup2() %lld us ago, is now %s (expected %s)", t->fd,
		      (long long)(now_us() - t->since_us), got, want);
	errno = 0;
	ck_assert_msg(close(t->fd) == 0, "close(%d), our own: errno %d (%s)", t->fd, errno,
		      strerror(errno));
	t->since_us = 0;
}

START_TEST(dup2_onto_the_copies_numbers_keeps_the_applications_descriptor)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(devnull, 0);
	char want[128];
	ck_assert_int_eq(fd_link(devnull, want, sizeof want), 0);
	pthread_t closer;
	ck_assert_int_eq(pthread_create(&closer, NULL, churn, NULL), 0);

	struct target targets[TARGETS];
	for (int i = 0; i < TARGETS; i++)
		targets[i] = (struct target){ .fd = FIRST_TARGET + i };
	long dups = 0, onto_copies = 0;
	long enough = library_loaded() ? MIN_ONTO_COPIES : 0;
	int64_t start = now_us();
	for (unsigned i = 0;; i++) {
		int64_t ran_us = now_us() - start;
		if (ran_us >= MAX_RUN_MS * 1000 || (ran_us >= RUN_MS * 1000 && onto_copies >= enough))
			break;
		struct target *t = &targets[i % TARGETS];
		if (t->since_us != 0 && now_us() - t->since_us >= KEEP_US)
			check_and_close(t, want);
		if (t->since_us != 0)
			continue;
		bool onto_copy = is_socket_link(t->fd);
		errno = 0;
		int rc = dup2(devnull, t->fd);
		ck_assert_msg(rc == t->fd, "dup2(/dev/null, %d) returned %d (errno %d, %s)", t->fd,
			      rc, errno, strerror(errno));
		t->since_us = now_us();
		dups++;
		onto_copies += onto_copy;
		char got[128] = "(not open)";
		fd_link(t->fd, got, sizeof got);
		ck_assert_msg(strcmp(got, want) == 0, "fd %d right after dup2(/dev/null): %s",
			      t->fd, got);
		struct timespec pause = { 0, 20 * 1000 };
		nanosleep(&pause, NULL);
	}
	atomic_store(&stop, true);
	ck_assert_int_eq(pthread_join(closer, NULL), 0);
	for (int i = 0; i < TARGETS; i++) {
		if (targets[i].since_us != 0)
			check_and_close(&targets[i], want);
	}
	close(devnull);
	printf("%ld dup2() calls, %ld onto a held copy, %ld connections closed\n", dups,
	       onto_copies, atomic_load(&connections));
	ck_assert_msg(onto_copies >= enough, "only %ld of %ld dup2() calls landed on a held copy",
		      onto_copies, dups);
	/* The copies moved out of the way are released as any other. */
	int64_t wait_end = now_us() + RELEASE_WAIT_MS * 1000;
	while (lb_count_socket_fds_from(FIRST_TARGET) > 0 && now_us() < wait_end) {
		struct timespec pause = { 0, 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	ck_assert_msg(lb_count_socket_fds_from(FIRST_TARGET) == 0,
		      "%d sockets still open at or above %d after %d ms",
		      lb_count_socket_fds_from(FIRST_TARGET), FIRST_TARGET, RELEASE_WAIT_MS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dup2_race");
	TCase *tc = tcase_create("own numbers");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, dup2_onto_the_copies_numbers_keeps_the_applications_descriptor);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
