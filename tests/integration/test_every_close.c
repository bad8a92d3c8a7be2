/* test_every_close.c: the closes and registrations made without close()
 * and epoll_ctl() (libwspclose(7) §4.1, §8.1). An epoll registration made
 * through io_uring (IORING_OP_EPOLL_CTL, as libuv >= 1.45 makes them), or
 * with syscall(SYS_epoll_ctl), is gone when close() returns, even though the
 * library holds the socket; fclose() of an fdopen()ed socket is an implicit
 * close (at once, linger enforced in the background); the sockets made and
 * closed with syscall() get their rows; syscall() stays what the C library's
 * is (no cancellation point, the kernel's result and errno for the rest).
 * The io_uring instances are set up by hand, one with syscall() (libuv's
 * way) and one with bare system calls the library cannot see (liburing's). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loopback.h"
#include "raw_syscall.h"
#include "sharing_helpers.h"

/* ------------------------------------------------------ a minimal io_uring */

struct ring {
	bool visible; /* set up and entered with syscall(), else bare calls */
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static long ring_call(const struct ring *r, long number, long a, long b, long c, long d)
{
	return r->visible ? syscall(number, a, b, c, d, 0L, 0L) : raw_syscall(number, a, b, c, d, 0L, 0L);
}

static void *ring_map(const struct ring *r, size_t len, off_t offset)
{
	void *at = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, offset);
	ck_assert_msg(at != MAP_FAILED, "mmap of the io_uring: %s", strerror(errno));
	return at;
}

static void ring_open(struct ring *r, bool visible)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	r->visible = visible;
	r->fd = (int)ring_call(r, SYS_io_uring_setup, 4, (long)&p, 0, 0);
	ck_assert_msg(r->fd >= 0, "io_uring_setup: %s (this test needs io_uring)", strerror(errno));
	char *sq = ring_map(r, p.sq_off.array + p.sq_entries * sizeof(unsigned), IORING_OFF_SQ_RING);
	char *cq = ring_map(r, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
			    IORING_OFF_CQ_RING);
	r->sqes = ring_map(r, p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

/* One IORING_OP_EPOLL_CTL, submitted and waited for: its result. */
static int ring_epoll_ctl(struct ring *r, int epfd, int op, int fd, struct epoll_event *ev)
{
	unsigned tail = *r->sq_tail, index = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[index];
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = IORING_OP_EPOLL_CTL;
	sqe->fd = epfd;
	sqe->len = (unsigned)op;
	sqe->off = (unsigned)fd;
	sqe->addr = (uint64_t)(uintptr_t)ev;
	r->sq_array[index] = index;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	ck_assert_msg(ring_call(r, SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS) == 1,
		      "io_uring_enter: %s", strerror(errno));
	unsigned head = *r->cq_head;
	ck_assert(head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE));
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* ------------------------------------------------------ unseen registrations */

enum registration { VIA_INVISIBLE_RING, VIA_SYSCALL_RING, VIA_SYSCALL_EPOLL_CTL, REGISTRATION_COUNT };
static const char *const registration_names[REGISTRATION_COUNT] = {
	"io_uring set up with bare system calls (liburing), in a set without epoll_ctl()",
	"io_uring set up with syscall() (libuv), in a set that also has epoll_ctl() registrations",
	"syscall(SYS_epoll_ctl)",
};

/* Loop over the ways: a socket whose FIN cannot go out yet (data queued,
 * the peer not reading), so the library holds it after close(), is
 * registered one way; close() returns, its number is reused; the set
 * reports nothing, and the peer still gets every byte, then EOF. */
START_TEST(registration_made_unseen_is_gone_after_close)
{
	enum registration how = (enum registration)_i;
	int baseline = lb_count_app_fds();
	int ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert(ep >= 0);
	int other = eventfd(0, EFD_CLOEXEC);
	if (how == VIA_SYSCALL_RING) {
		struct epoll_event idle = { .events = EPOLLIN, .data.fd = other };
		ck_assert(epoll_ctl(ep, EPOLL_CTL_ADD, other, &idle) == 0);
	}
	struct ring ring = { .fd = -1 };
	if (how != VIA_SYSCALL_EPOLL_CTL)
		ring_open(&ring, how == VIA_SYSCALL_RING);
	struct lb_pair pair;
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	uint64_t sent = 0;
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.fd = pair.client };
	int added = how == VIA_SYSCALL_EPOLL_CTL
			    ? (int)syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, pair.client, &ev)
			    : ring_epoll_ctl(&ring, ep, EPOLL_CTL_ADD, pair.client, &ev);
	ck_assert_msg(added == 0, "%s: EPOLL_CTL_ADD: %d", registration_names[how], added);
	int closed = pair.client;
	ck_assert(close(closed) == 0);
	pair.client = -1;
	int reused = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct epoll_event got[4];
	int n = epoll_wait(ep, got, 4, 300);
	ck_assert_msg(n == 0, "%s: after close() of fd %d (number %s), epoll_wait reported %d event(s), "
		      "the first for fd %d, events 0x%x", registration_names[how], closed,
		      reused == closed ? "reused" : "not reused", n, n > 0 ? got[0].data.fd : -1,
		      n > 0 ? got[0].events : 0);
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent,
		      "%s: the peer got %llu of %llu bytes, then %s", registration_names[how],
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	close(reused);
	if (ring.fd >= 0)
		close(ring.fd);
	close(other);
	close(ep);
	lb_pair_close(&pair);
	ck_assert_int_eq(lb_wait_app_fd_count(baseline, 2000), baseline);
}
END_TEST

/* ------------------------------------------------------ fclose */

/* Linger {1,2}, data queued, the peer not reading: fclose() of the stream
 * returns 0 at once (Linux blocks 2 s in it), and the connection is reset
 * when the linger time is over. */
START_TEST(fclose_of_a_lingering_socket_returns_at_once_and_resets_later)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	uint64_t sent = 0;
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_set_linger(pair.client, 1, 2) == 0);
	FILE *stream = fdopen(pair.client, "w");
	ck_assert(stream != NULL);
	errno = EDOM;
	int64_t start = lb_now_ms();
	int rc = fclose(stream);
	int64_t took = lb_now_ms() - start;
	ck_assert_msg(rc == 0 && errno == EDOM, "fclose() = %d, errno %d (%s)", rc, errno, strerror(errno));
	ck_assert_msg(took < SH_QUICK_MS, "fclose() of a socket with linger {1,2} took %lld ms",
		      (long long)took);
	ck_assert(!sh_fd_is_open(pair.client));
	pair.client = -1;
	while (lb_tcp_state(pair.peer) != TCP_CLOSE && lb_now_ms() - start < 6000)
		sh_sleep_ms(10);
	int64_t reset_after = lb_now_ms() - start;
	ck_assert_msg(lb_tcp_state(pair.peer) == TCP_CLOSE, "the peer saw no reset within 6 s");
	ck_assert_msg(reset_after >= 1500 && reset_after < 5000,
		      "the reset came %lld ms after fclose(), expected about 2000", (long long)reset_after);
	lb_pair_close(&pair);
}
END_TEST

/* Linger off: fclose() hands the socket over like close() (a copy is held
 * while the data drains); the peer gets every byte, then EOF. A stream on
 * a file is glibc's fclose(). */
START_TEST(fclose_of_a_socket_is_graceful_and_of_a_file_unchanged)
{
	int baseline = lb_count_app_fds();
	struct lb_pair pair;
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	uint64_t sent = 0;
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ino_t inode = lb_socket_inode(pair.client);
	FILE *stream = fdopen(pair.client, "w");
	ck_assert(stream != NULL && fputs("", stream) >= 0);
	ck_assert(fclose(stream) == 0);
	pair.client = -1;
	ck_assert_msg(lb_find_socket_fd(inode, 0) >= 1024 || lb_find_socket_fd(inode, 0) < 0,
		      "the socket is still at an application number");
	ck_assert_msg(lb_find_socket_fd(inode, 1024) >= 0,
		      "no copy of the socket is held after fclose() with data queued");
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent && r.pattern_ok,
		      "after fclose() the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	FILE *file = tmpfile();
	ck_assert(file != NULL && fputs("kept", file) >= 0);
	ck_assert(fclose(file) == 0);
	lb_pair_close(&pair);
	ck_assert_int_eq(lb_wait_app_fd_count(baseline, 2000), baseline);
}
END_TEST

/* ------------------------------------------------------ syscall() */

/* A socket made, connected and closed only with syscall(): the library
 * knows it, so the close is W1 (non-blocking, linger {1,2}, data queued). */
START_TEST(socket_made_and_closed_with_syscall_gets_its_row)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof addr;
	int listener = sh_listener_open(AF_INET, 4096, 4, &addr, &len);
	ck_assert(listener >= 0);
	int fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	ck_assert(fd >= 0);
	ck_assert(syscall(SYS_connect, fd, &addr, len) == 0);
	int peer = sh_accept(listener, 2000);
	ck_assert(peer >= 0);
	uint64_t sent = 0;
	ck_assert(lb_fill_send_queue(fd, &sent) > 0);
	struct linger two = { 1, 2 };
	ck_assert(syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_LINGER, &two, sizeof two) == 0);
	ck_assert(lb_set_nonblocking(fd, true) == 0);
	int64_t start = lb_now_ms();
	errno = 0;
	long rc = syscall(SYS_close, fd);
	int err = errno;
	ck_assert_msg(rc == -1 && err == EWOULDBLOCK,
		      "syscall(SYS_close) in W1: %ld, errno %d (%s) after %lld ms", rc, err, strerror(err),
		      (long long)(lb_now_ms() - start));
	ck_assert(sh_fd_is_open(fd));
	/* shutdown() through syscall() too: then graceful (G2). */
	ck_assert(syscall(SYS_shutdown, fd, SHUT_WR) == 0);
	ck_assert(syscall(SYS_close, fd) == 0);
	struct lb_drain_result r;
	lb_drain_now(peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent, "the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	close(peer);
	close(listener);
}
END_TEST

struct pending_cancel {
	int fd;
	long rc;
	pthread_barrier_t ready;
};

static void *syscall_close_with_cancel_pending(void *p)
{
	struct pending_cancel *c = p;
	pthread_barrier_wait(&c->ready); /* the main thread cancels us now */
	pthread_barrier_wait(&c->ready);
	c->rc = syscall(SYS_close, c->fd);
	pthread_testcancel();
	return NULL;
}

/* The C library's syscall() is no cancellation point, and neither is the
 * library's: with a cancel pending, syscall(SYS_close) of a socket closes
 * it and returns; the next cancellation point acts. */
START_TEST(syscall_close_is_not_a_cancellation_point)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	struct pending_cancel c = { .fd = pair.client, .rc = -2 };
	pthread_barrier_init(&c.ready, NULL, 2);
	pthread_t t;
	ck_assert(pthread_create(&t, NULL, syscall_close_with_cancel_pending, &c) == 0);
	pthread_barrier_wait(&c.ready);
	ck_assert(pthread_cancel(t) == 0);
	pthread_barrier_wait(&c.ready);
	void *result;
	ck_assert(pthread_join(t, &result) == 0);
	ck_assert(result == PTHREAD_CANCELED);
	ck_assert_msg(c.rc == 0, "syscall(SYS_close) with a cancel pending returned %ld", c.rc);
	ck_assert(!sh_fd_is_open(pair.client));
	pair.client = -1;
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF, "the peer saw %s", lb_end_name(r.end));
	lb_pair_close(&pair);
	pthread_barrier_destroy(&c.ready);
}
END_TEST

/* Every other number: the kernel's result and errno, errno kept on success. */
START_TEST(other_system_calls_pass_through_untouched)
{
	errno = EDOM;
	ck_assert_int_eq(syscall(SYS_getpid), getpid());
	ck_assert_int_eq(errno, EDOM);
	ck_assert(syscall(SYS_close, -1) == -1 && errno == EBADF);
	ck_assert(syscall(SYS_write, -1, "x", 1) == -1 && errno == EBADF);
	char buf[4] = { 0 };
	int p[2];
	ck_assert(syscall(SYS_pipe2, p, O_CLOEXEC) == 0);
	ck_assert(syscall(SYS_write, p[1], "abc", 3) == 3);
	ck_assert(syscall(SYS_pread64, p[0], buf, 3, 0) == -1 && errno == ESPIPE);
	ck_assert(syscall(SYS_read, p[0], buf, 3) == 3 && memcmp(buf, "abc", 3) == 0);
	errno = EDOM;
	ck_assert(syscall(SYS_close, p[0]) == 0 && syscall(SYS_close, p[1]) == 0);
	ck_assert_int_eq(errno, EDOM);
}
END_TEST

static Suite *every_close_suite(void)
{
	Suite *s = suite_create("every_close");
	TCase *unseen = tcase_create("unseen_registrations");
	tcase_set_timeout(unseen, 30);
	tcase_add_loop_test(unseen, registration_made_unseen_is_gone_after_close, 0, REGISTRATION_COUNT);
	suite_add_tcase(s, unseen);
	TCase *streams = tcase_create("fclose");
	tcase_set_timeout(streams, 30);
	tcase_add_test(streams, fclose_of_a_lingering_socket_returns_at_once_and_resets_later);
	tcase_add_test(streams, fclose_of_a_socket_is_graceful_and_of_a_file_unchanged);
	suite_add_tcase(s, streams);
	TCase *calls = tcase_create("syscall");
	tcase_set_timeout(calls, 30);
	tcase_add_test(calls, socket_made_and_closed_with_syscall_gets_its_row);
	tcase_add_test(calls, syscall_close_is_not_a_cancellation_point);
	tcase_add_test(calls, other_system_calls_pass_through_untouched);
	suite_add_tcase(s, calls);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(every_close_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
