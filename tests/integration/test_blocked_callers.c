/* test_blocked_callers.c: §4: threads blocked in recv, send, accept,
 * connect, poll or select on a socket return once another thread closes it. */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

/* §4: blocked callers are woken within 500 ms. */
#define WAKE_MS 500
/* How long a thread that was not woken is given before the test unblocks
 * it by other means (and fails). */
#define STUCK_MS 3000

enum block_kind {
	BLOCK_RECV, BLOCK_SEND, BLOCK_ACCEPT, BLOCK_POLL, BLOCK_SELECT, BLOCK_CONNECT,
	BLOCK_UDP_RECV,
};

static const char *const kind_names[] = {
	"recv()", "send()", "accept()", "poll(POLLIN)", "select(readfds)", "connect()",
	"recv() on UDP",
};

struct blocker {
	pthread_t thread;
	enum block_kind kind;
	int fd;
	struct sockaddr_storage addr;   /* BLOCK_CONNECT: where to */
	socklen_t addr_len;
	_Atomic int tid;
	_Atomic bool entered;
	long rc;
	int err;
	int64_t returned_ms;
};

static void *blocker_main(void *arg)
{
	struct blocker *b = arg;
	static char buf[1 << 20];

	atomic_store(&b->tid, gettid());
	atomic_store(&b->entered, true);
	errno = 0;
	switch (b->kind) {
	case BLOCK_RECV:
	case BLOCK_UDP_RECV:
		b->rc = recv(b->fd, buf, sizeof(buf), 0);
		break;
	case BLOCK_SEND:
		b->rc = send(b->fd, buf, sizeof(buf), MSG_NOSIGNAL);
		break;
	case BLOCK_ACCEPT:
		b->rc = accept(b->fd, NULL, NULL);
		break;
	case BLOCK_POLL: {
		struct pollfd pfd = { .fd = b->fd, .events = POLLIN };

		b->rc = poll(&pfd, 1, -1);
		break;
	}
	case BLOCK_SELECT: {
		fd_set set;

		FD_ZERO(&set);
		FD_SET(b->fd, &set);
		b->rc = select(b->fd + 1, &set, NULL, NULL, NULL);
		break;
	}
	case BLOCK_CONNECT:
		b->rc = connect(b->fd, (struct sockaddr *)&b->addr, b->addr_len);
		break;
	}
	b->err = errno;
	b->returned_ms = lb_now_ms();
	return NULL;
}

static void start_blocker(struct blocker *b, enum block_kind kind, int fd)
{
	b->kind = kind;
	b->fd = fd;
	atomic_store(&b->entered, false);
	atomic_store(&b->tid, 0);
	ck_assert(pthread_create(&b->thread, NULL, blocker_main, b) == 0);
	int64_t deadline = lb_now_ms() + 2000;

	while (!atomic_load(&b->entered) && lb_now_ms() < deadline)
		sched_yield();
	ck_assert_msg(sh_wait_thread_blocked(atomic_load(&b->tid), 2000),
		      "%s: the thread never blocked", kind_names[kind]);
}

static bool join_within(struct blocker *b, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(b->thread, NULL, &ts) == 0;
}

/* Closes b->fd from this thread and checks that the blocked call returns
 * within WAKE_MS. If it does not, `unblock(ctx)` ends the call by other
 * means (the test process must not hang) and the test fails. Returns the
 * close time. */
static int64_t close_and_expect_wakeup(struct blocker *b, void (*unblock)(void *), void *ctx)
{
	int64_t closed_at = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	int rc = close(b->fd);
	int err = errno;

	ck_assert_msg(rc == 0 && err == SH_ERRNO_SENTINEL,
		      "close() of a socket another thread is blocked in %s on returned %d, errno %d (%s)",
		      kind_names[b->kind], rc, err, strerror(err));
	if (!join_within(b, STUCK_MS)) {
		unblock(ctx);
		bool ended = join_within(b, 8000);

		ck_abort_msg("a thread blocked in %s on the socket was still blocked %d ms after another thread closed it (§4: woken within %d ms)%s",
			     kind_names[b->kind], STUCK_MS, WAKE_MS,
			     ended ? "" : "; it could not even be unblocked");
	}
	int64_t woke_after = b->returned_ms - closed_at;

	ck_assert_msg(woke_after <= WAKE_MS,
		      "the thread blocked in %s returned %lld ms after close(); §4: within %d ms",
		      kind_names[b->kind], (long long)woke_after, WAKE_MS);
	fprintf(stderr, "%s returned %ld (errno %d, %s) %lld ms after close()\n",
		kind_names[b->kind], b->rc, b->err, strerror(b->err), (long long)woke_after);
	return closed_at;
}

/* ------------------------------------------------------ unblockers */

static void unblock_by_closing(void *ctx)
{
	int *fd = ctx;

	/* The peer's FIN (or RST with data unread) ends recv/send/poll. */
	close(*fd);
	*fd = -1;
}

static void unblock_by_sending(void *ctx)
{
	int *fd = ctx;

	(void)!send(*fd, "x", 1, MSG_NOSIGNAL);
}

struct connect_ctx {
	struct sockaddr_storage addr;
	socklen_t len;
};

static void unblock_by_connecting(void *ctx)
{
	struct connect_ctx *c = ctx;
	int fd = sh_connect(&c->addr, c->len, 0);

	/* Linux: the "closed" listener still accepts, and the accept returns. */
	if (fd >= 0)
		close(fd);
}

struct udp_ctx {
	struct sockaddr_in addr;
};

static void unblock_by_datagram(void *ctx)
{
	struct udp_ctx *u = ctx;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd >= 0) {
		(void)!sendto(fd, "x", 1, 0, (struct sockaddr *)&u->addr, sizeof(u->addr));
		close(fd);
	}
}

/* ------------------------------------------------------ tests */

/* A thread blocks on the client of a loopback pair (send: with its queue
 * full first); close() of the client must wake it (`unblock` is the
 * fallback that would wake it without the library). */
static void close_blocked_client(enum block_kind kind, void (*unblock)(void *))
{
	struct lb_pair pair;
	struct blocker b;

	if (kind == BLOCK_SEND) {
		uint64_t sent = 0;

		ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
		ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	} else {
		ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	}
	if (kind == BLOCK_SELECT)
		ck_assert(pair.client < FD_SETSIZE);
	start_blocker(&b, kind, pair.client);
	close_and_expect_wakeup(&b, unblock, &pair.peer);
	pair.client = -1;
	lb_pair_close(&pair);
}

START_TEST(recv_returns_after_close)
{
	close_blocked_client(BLOCK_RECV, unblock_by_closing);
}
END_TEST

START_TEST(send_returns_after_close)
{
	close_blocked_client(BLOCK_SEND, unblock_by_closing);
}
END_TEST

START_TEST(poll_returns_after_close)
{
	close_blocked_client(BLOCK_POLL, unblock_by_sending);
}
END_TEST

START_TEST(select_returns_after_close)
{
	close_blocked_client(BLOCK_SELECT, unblock_by_sending);
}
END_TEST

/* A closed listener: the blocked accept() returns, and a new connection to
 * its port is refused (Linux keeps accepting on it). */
START_TEST(accept_returns_after_close_and_port_refuses)
{
	struct connect_ctx c;
	struct blocker b;
	int listener = sh_listener_open(AF_INET, 0, 8, &c.addr, &c.len);

	ck_assert(listener >= 0);
	start_blocker(&b, BLOCK_ACCEPT, listener);
	close_and_expect_wakeup(&b, unblock_by_connecting, &c);
	ck_assert_msg(b.rc < 0, "accept() on the closed listener returned a connection (%ld)", b.rc);

	int fd = sh_connect(&c.addr, c.len, 0);
	int err = errno;

	if (fd >= 0)
		close(fd);
	ck_assert_msg(fd < 0 && err == ECONNREFUSED,
		      "a connect() to the closed listener's port %s (errno %d, %s); expected ECONNREFUSED",
		      fd >= 0 ? "succeeded" : "failed", err, strerror(err));
}
END_TEST

/* A deterministic blocked connect() on loopback: the listener's accept
 * queue (backlog 0) is full, so the kernel drops the SYN and the connect
 * waits in SYN_SENT for its retransmission. */
START_TEST(connect_returns_after_close)
{
	struct connect_ctx c;
	struct blocker b;
	int listener = sh_listener_open(AF_INET, 0, 0, &c.addr, &c.len);

	ck_assert(listener >= 0);
	int queued = sh_connect(&c.addr, c.len, 0);

	ck_assert_msg(queued >= 0, "first connect: %s", strerror(errno));
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(fd >= 0);
	b.addr = c.addr;
	b.addr_len = c.len;
	start_blocker(&b, BLOCK_CONNECT, fd);
	int state = lb_tcp_state(fd);

	if (state != TCP_SYN_SENT) {
		/* The SYN was not dropped: nothing blocks here. */
		join_within(&b, STUCK_MS);
		close(fd);
		close(queued);
		close(listener);
		ck_abort_msg("setup: the second connect is in TCP state %d, not SYN_SENT; the accept queue did not drop its SYN",
			     state);
	}
	/* If close() does not wake it: accept the queued connection, so that
	 * the retransmitted SYN (after 1 s, 3 s) gets through. */
	int accepted = -1;
	int64_t closed_at = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	int rc = close(fd);

	ck_assert_msg(rc == 0, "close() during connect(): %d (%s)", rc, strerror(errno));
	if (!join_within(&b, STUCK_MS)) {
		accepted = accept(listener, NULL, NULL);
		bool ended = join_within(&b, 8000);

		ck_abort_msg("a thread blocked in connect() was still blocked %d ms after another thread closed the socket (§4: woken within %d ms)%s",
			     STUCK_MS, WAKE_MS, ended ? "" : "; it could not be unblocked");
	}
	int64_t woke_after = b.returned_ms - closed_at;

	ck_assert_msg(woke_after <= WAKE_MS, "connect() returned %lld ms after close(); §4: within %d ms",
		      (long long)woke_after, WAKE_MS);
	ck_assert_msg(b.rc == -1, "the interrupted connect() returned %ld, expected a failure", b.rc);
	if (accepted >= 0)
		close(accepted);
	close(queued);
	close(listener);
}
END_TEST

START_TEST(udp_recv_returns_after_close)
{
	struct udp_ctx u;
	struct blocker b;
	socklen_t len = sizeof(u.addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert(fd >= 0);
	memset(&u.addr, 0, sizeof(u.addr));
	u.addr.sin_family = AF_INET;
	u.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)&u.addr, sizeof(u.addr)) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)&u.addr, &len) == 0);
	start_blocker(&b, BLOCK_UDP_RECV, fd);
	close_and_expect_wakeup(&b, unblock_by_datagram, &u);
}
END_TEST

/* Not the last reference: a dup still holds the socket, so the close must
 * not wake (and break) the thread that uses it; the thread's recv gets the
 * data the peer sends afterwards. */
START_TEST(recv_through_a_dup_is_not_disturbed_by_closing_another_copy)
{
	struct lb_pair pair;
	struct blocker b;

	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int copy = dup(pair.client);

	ck_assert(copy >= 0);
	start_blocker(&b, BLOCK_RECV, copy);
	ck_assert(close(pair.client) == 0);
	pair.client = -1;
	bool returned_early = join_within(&b, 300);

	if (!returned_early) {
		ck_assert(send(pair.peer, "hello", 5, MSG_NOSIGNAL) == 5);
		ck_assert_msg(join_within(&b, STUCK_MS), "the recv() on the dup never got the data");
	}
	ck_assert_msg(!returned_early && b.rc == 5,
		      "closing one of two descriptors woke the thread blocked on the other (recv returned %ld, errno %d): expected the peer's 5 bytes",
		      b.rc, b.err);
	close(copy);
	lb_pair_close(&pair);
}
END_TEST

static Suite *blocked_callers_suite(void)
{
	Suite *s = suite_create("blocked_callers");
	TCase *tcp = tcase_create("tcp");
	TCase *other = tcase_create("other");

	tcase_add_test(tcp, recv_returns_after_close);
	tcase_add_test(tcp, send_returns_after_close);
	tcase_add_test(tcp, poll_returns_after_close);
	tcase_add_test(tcp, select_returns_after_close);
	tcase_add_test(tcp, accept_returns_after_close_and_port_refuses);
	tcase_add_test(tcp, connect_returns_after_close);
	tcase_add_test(tcp, recv_through_a_dup_is_not_disturbed_by_closing_another_copy);
	tcase_set_timeout(tcp, 30);
	suite_add_tcase(s, tcp);

	tcase_add_test(other, udp_recv_returns_after_close);
	tcase_set_timeout(other, 30);
	suite_add_tcase(s, other);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(blocked_callers_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
