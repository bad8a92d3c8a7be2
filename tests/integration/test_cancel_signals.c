/* test_cancel_signals.c: §6: a thread cancelled inside close() leaves the
 * library's state as if the call had not started (the descriptor is still
 * open, a later close() of it behaves normally), and a signal handler that
 * opens and closes a file right after a socket's close gets the kernel's
 * results. Both pass on plain Linux too. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

/* ------------------------------------------------------ cancellation */

struct cancel_case {
	int fd;
	pthread_barrier_t ready;
};

/* Enters close() with a cancel request already pending: close() is a
 * cancellation point, so it acts there, before anything is done. */
static void *close_with_cancel_pending(void *p)
{
	struct cancel_case *c = p;
	pthread_barrier_wait(&c->ready); /* the main thread cancels us now */
	pthread_barrier_wait(&c->ready);
	close(c->fd);
	return NULL;
}

struct timed_close {
	int fd;
	int rc;
	int err;
};

static void *close_it(void *p)
{
	struct timed_close *t = p;
	errno = 0;
	t->rc = close(t->fd);
	t->err = errno;
	return NULL;
}

/* Loop 0..2: a UDP socket, a TCP socket (linger off), a connected TCP
 * socket (linger off). */
START_TEST(cancelled_close_leaves_the_descriptor_to_a_later_close)
{
	struct lb_pair pair = { .listener = -1, .client = -1, .peer = -1 };
	struct cancel_case c;
	if (_i == 0) {
		c.fd = socket(AF_INET, SOCK_DGRAM, 0);
	} else if (_i == 1) {
		c.fd = socket(AF_INET, SOCK_STREAM, 0);
	} else {
		ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
		c.fd = pair.client;
	}
	ck_assert(c.fd >= 0);
	pthread_barrier_init(&c.ready, NULL, 2);
	pthread_t t;
	ck_assert(pthread_create(&t, NULL, close_with_cancel_pending, &c) == 0);
	pthread_barrier_wait(&c.ready);
	ck_assert(pthread_cancel(t) == 0);
	pthread_barrier_wait(&c.ready);
	void *result;
	ck_assert(pthread_join(t, &result) == 0);
	ck_assert_msg(result == PTHREAD_CANCELED, "the thread was not cancelled in close()");
	ck_assert_msg(sh_fd_is_open(c.fd), "fd %d was closed by the cancelled close()", c.fd);

	struct timed_close later = { .fd = c.fd };
	pthread_t closer;
	ck_assert(pthread_create(&closer, NULL, close_it, &later) == 0);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	int joined = pthread_timedjoin_np(closer, NULL, &deadline);
	ck_assert_msg(joined == 0, "close() of fd %d from another thread is still blocked after 2 s",
		      c.fd);
	ck_assert_msg(later.rc == 0, "the later close() of fd %d: %d, errno %d (%s)", c.fd, later.rc,
		      later.err, strerror(later.err));
	ck_assert_msg(!sh_fd_is_open(c.fd), "fd %d still open after the later close()", c.fd);
	if (_i == 2) {
		pair.client = -1;
		struct lb_drain_result r;
		lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
		ck_assert_msg(r.end == LB_END_EOF, "the peer saw %s after the later close",
			      lb_end_name(r.end));
		lb_pair_close(&pair);
	}
	pthread_barrier_destroy(&c.ready);
}
END_TEST

/* ------------------------------------------------------ signal handlers */

static atomic_int handler_failures, handler_runs, last_errno;

/* Opens a file, which gets the number a close() just freed, and closes it. */
static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && close(fd) != 0) {
		atomic_fetch_add(&handler_failures, 1);
		atomic_store(&last_errno, errno);
	}
	atomic_fetch_add(&handler_runs, 1);
	errno = saved;
}

START_TEST(signal_handler_close_right_after_a_socket_close)
{
	int baseline = lb_count_app_fds();
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	ck_assert(sigaction(SIGALRM, &sa, NULL) == 0);
	struct itimerval every = { { 0, 20 }, { 0, 20 } };
	ck_assert(setitimer(ITIMER_REAL, &every, NULL) == 0);
	int64_t end = lb_now_ms() + 3000;
	long closes = 0;
	while (lb_now_ms() < end && atomic_load(&handler_failures) == 0) {
		int s = socket(AF_INET, closes % 2 ? SOCK_STREAM : SOCK_DGRAM, 0);
		ck_assert(s >= 0);
		ck_assert(close(s) == 0);
		closes++;
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	ck_assert_msg(atomic_load(&handler_failures) == 0,
		      "%d of %d handler closes failed (last errno %d) during %ld socket closes",
		      atomic_load(&handler_failures), atomic_load(&handler_runs),
		      atomic_load(&last_errno), closes);
	ck_assert_msg(atomic_load(&handler_runs) > 100, "the handler ran %d times: too few to tell",
		      atomic_load(&handler_runs));
	ck_assert_int_eq(lb_wait_app_fd_count(baseline, 2000), baseline);
}
END_TEST

static Suite *cancel_signals_suite(void)
{
	Suite *s = suite_create("cancel_signals");
	TCase *cancel = tcase_create("cancellation");
	tcase_add_loop_test(cancel, cancelled_close_leaves_the_descriptor_to_a_later_close, 0, 3);
	suite_add_tcase(s, cancel);
	TCase *signals = tcase_create("signal_handlers");
	tcase_set_timeout(signals, 60);
	tcase_add_test(signals, signal_handler_close_right_after_a_socket_close);
	suite_add_tcase(s, signals);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cancel_signals_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
