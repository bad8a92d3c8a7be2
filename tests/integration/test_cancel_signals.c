/* test_cancel_signals.c: §6: a thread cancelled inside close() or another
 * blocking call the library wraps leaves the library's state as if the call
 * had not started (the descriptor is still open, a later close() of it
 * behaves normally; a lingering close completes, then cancels), and a
 * signal handler that opens, dup2()s and closes files right after a
 * socket's close gets the kernel's results. All pass on plain Linux too. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

/* ------------------------------------------------------ blocked calls */

enum blocking_call { CALL_ACCEPT, CALL_ACCEPT4, CALL_RECVMSG, CALL_RECVMMSG, CALL_SENDMSG,
		     CALL_SENDMMSG, CALL_COUNT };
static const char *const call_names[CALL_COUNT] = {
	"accept", "accept4", "recvmsg", "recvmmsg", "sendmsg", "sendmmsg",
};

struct blocked {
	enum blocking_call call;
	int fd;
	_Atomic pid_t tid;
};

static char big[1 << 16];

/* Blocks in the call until cancelled (a listener with no client, a socket
 * with nothing to read, or a full send buffer). */
static void *block_in_call(void *p)
{
	struct blocked *b = p;
	atomic_store(&b->tid, (pid_t)syscall(SYS_gettid));
	struct iovec iov = { big, sizeof big };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct mmsghdr mmsg = { .msg_hdr = msg };
	for (;;) {
		switch (b->call) {
		case CALL_ACCEPT: accept(b->fd, NULL, NULL); break;
		case CALL_ACCEPT4: accept4(b->fd, NULL, NULL, SOCK_CLOEXEC); break;
		case CALL_RECVMSG: recvmsg(b->fd, &msg, 0); break;
		case CALL_RECVMMSG: recvmmsg(b->fd, &mmsg, 1, 0, NULL); break;
		case CALL_SENDMSG: sendmsg(b->fd, &msg, MSG_NOSIGNAL); break;
		case CALL_SENDMMSG: sendmmsg(b->fd, &mmsg, 1, MSG_NOSIGNAL); break;
		default: return NULL;
		}
	}
}

/* Loop over the blocking calls the library wraps: a thread blocked in one
 * is cancelled; the descriptor is still open, and a later close() of it
 * returns 0 at once (§6). */
START_TEST(cancelled_blocking_call_leaves_the_descriptor_to_close)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	struct blocked b = { .call = (enum blocking_call)_i };
	b.fd = b.call <= CALL_ACCEPT4 ? pair.listener : pair.client;
	pthread_t t;
	ck_assert(pthread_create(&t, NULL, block_in_call, &b) == 0);
	while (atomic_load(&b.tid) == 0)
		sh_sleep_ms(1);
	ck_assert_msg(sh_wait_thread_blocked(atomic_load(&b.tid), 5000), "%s never blocked",
		      call_names[b.call]);
	ck_assert(pthread_cancel(t) == 0);
	void *result;
	ck_assert(pthread_join(t, &result) == 0);
	ck_assert_msg(result == PTHREAD_CANCELED, "%s: the thread was not cancelled", call_names[b.call]);
	ck_assert_msg(sh_fd_is_open(b.fd), "%s: fd %d closed by the cancel", call_names[b.call], b.fd);
	int64_t start = lb_now_ms();
	errno = 0;
	ck_assert_msg(close(b.fd) == 0, "%s: close() after the cancel: %s", call_names[b.call],
		      strerror(errno));
	ck_assert_msg(lb_now_ms() - start < SH_QUICK_MS, "%s: close() after the cancel took %lld ms",
		      call_names[b.call], (long long)(lb_now_ms() - start));
	if (b.fd == pair.listener)
		pair.listener = -1;
	else
		pair.client = -1;
	lb_pair_close(&pair);
}
END_TEST

/* A thread blocked in a lingering close() (blocking, {1,2}, the peer not
 * reading) is cancelled: as Linux's lingering close(), the close completes
 * first (here L2: reset at the linger time), then the thread is cancelled;
 * nothing is left claimed or open. */
START_TEST(cancelled_linger_close_completes_then_cancels)
{
	int baseline = lb_count_app_fds();
	struct lb_pair pair;
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	uint64_t sent = 0;
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_set_linger(pair.client, 1, 2) == 0);
	struct timed_close tc = { .fd = pair.client };
	pthread_t t;
	ck_assert(pthread_create(&t, NULL, close_it, &tc) == 0);
	sh_sleep_ms(300);
	int64_t start = lb_now_ms();
	ck_assert(pthread_cancel(t) == 0);
	void *result;
	ck_assert(pthread_join(t, &result) == 0);
	int64_t took = lb_now_ms() - start;
	ck_assert_msg(result == PTHREAD_CANCELED, "the lingering close() was not cancelled");
	ck_assert_msg(took < 5000, "the cancelled lingering close() took %lld ms", (long long)took);
	ck_assert_msg(!sh_fd_is_open(pair.client), "fd %d still open after the cancelled close",
		      pair.client);
	pair.client = -1;
	struct lb_drain_result r;
	sh_drain_inline(pair.peer, 0, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET || r.end == LB_END_EOF,
		      "after the cancelled lingering close the peer saw %s", lb_end_name(r.end));
	lb_pair_close(&pair);
	ck_assert_int_eq(lb_wait_app_fd_count(baseline, 2000), baseline);
}
END_TEST

/* ------------------------------------------------------ signal handlers */

static atomic_int handler_failures, handler_runs, last_errno;

/* A number well above what the loop uses, for the handler's dup2(). */
#define SCRATCH_FD 700

/* Opens a file, which gets the number a close() just freed, and closes it;
 * then dup2()s it onto a scratch number and closes that. */
static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && (dup2(fd, SCRATCH_FD) != SCRATCH_FD || close(SCRATCH_FD) != 0 ||
			close(fd) != 0)) {
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
	tcase_add_loop_test(cancel, cancelled_blocking_call_leaves_the_descriptor_to_close, 0, CALL_COUNT);
	tcase_add_test(cancel, cancelled_linger_close_completes_then_cancels);
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
