/* test_close_rows.c: one test per row of §2 (close() on the last
 * reference of a TCP socket) over loopback, plus the close() basics of §1/§6.
 * Built twice: tests/integration/test_close_rows closes with close(), and
 * tests/integration/test_close_rows_syscall (CLOSE_WITH_SYSCALL) with
 * syscall(SYS_close, fd), the way libuv closes, which gets every row the
 * same, W1's EWOULDBLOCK included (libwspclose(7) §8.1). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loopback.h"
#include "wspclose.h"

/* "Returns at once" on a noisy shared 2-core VM. */
#define QUICK_MS 500
/* How long a peer may take to see all data and the end of the stream. */
#define DRAIN_TIMEOUT_MS 5000
/* Any value a successful call must leave in errno untouched. */
#define ERRNO_SENTINEL EDOM

struct close_outcome {
	int rc;
	int err;        /* errno after the call; ERRNO_SENTINEL if untouched */
	int64_t ms;     /* how long close() took */
};

/* The close every row is checked with. */
static int close_under_test(int fd)
{
#ifdef CLOSE_WITH_SYSCALL
	return (int)syscall(SYS_close, fd);
#else
	return close(fd);
#endif
}

static struct close_outcome timed_close(int fd)
{
	struct close_outcome o;
	int64_t start = lb_now_ms();

	errno = ERRNO_SENTINEL;
	o.rc = close_under_test(fd);
	o.err = errno;
	o.ms = lb_now_ms() - start;
	return o;
}

static const char *family_name(int family)
{
	return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* A connected pair whose client send queue is full (the peer is not
 * reading): SIOCOUTQ > 0 on the client. Returns the bytes queued. */
static uint64_t open_pending_pair(struct lb_pair *pair, int family)
{
	uint64_t offset = 0;

	ck_assert_msg(lb_pair_open_small(pair, family) == 0,
		      "cannot connect a %s loopback pair: %s",
		      family_name(family), strerror(errno));
	ssize_t n = lb_fill_send_queue(pair->client, &offset);

	ck_assert_msg(n > 0, "could not queue data: %s", strerror(errno));
	ck_assert_msg(lb_outq(pair->client) > 0,
		      "send queue is not pending after filling it");
	return offset;
}

static void open_pair(struct lb_pair *pair, int family)
{
	ck_assert_msg(lb_pair_open(pair, family, 0, 0) == 0,
		      "cannot connect a %s loopback pair: %s",
		      family_name(family), strerror(errno));
}

static void assert_closed_at_once(struct close_outcome o, const char *row)
{
	ck_assert_msg(o.rc == 0, "%s: close() returned %d (errno %d, %s), expected 0",
		      row, o.rc, o.err, strerror(o.err));
	ck_assert_msg(o.err == ERRNO_SENTINEL,
		      "%s: a successful close() changed errno to %d (%s)",
		      row, o.err, strerror(o.err));
	ck_assert_msg(o.ms < QUICK_MS,
		      "%s: close() took %lld ms, expected it to return at once (< %d ms)",
		      row, (long long)o.ms, QUICK_MS);
}

static void assert_fd_released(int fd, const char *row)
{
	errno = 0;
	ck_assert_msg(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
		      "%s: fd %d is still open after close() returned 0", row, fd);
}

/* Graceful rows: the peer receives every byte, intact, then EOF. */
static void assert_all_then_eof(const struct lb_drain_result *r, uint64_t sent,
				const char *row)
{
	ck_assert_msg(r->pattern_ok, "%s: the peer received corrupted data", row);
	ck_assert_msg(r->end == LB_END_EOF,
		      "%s: the peer's stream ended with %s (errno %d) after %llu of %llu bytes; expected every byte then EOF",
		      row, lb_end_name(r->end), r->err,
		      (unsigned long long)r->bytes, (unsigned long long)sent);
	ck_assert_msg(r->bytes == sent,
		      "%s: the peer received %llu bytes, %llu were sent",
		      row, (unsigned long long)r->bytes, (unsigned long long)sent);
}

/* Abortive rows: the peer gets ECONNRESET; the unsent part is lost. */
static void assert_reset(const struct lb_drain_result *r, uint64_t sent,
			 const char *row)
{
	ck_assert_msg(r->end == LB_END_RESET,
		      "%s: the peer's stream ended with %s (errno %d) after %llu of %llu bytes; expected ECONNRESET",
		      row, lb_end_name(r->end), r->err,
		      (unsigned long long)r->bytes, (unsigned long long)sent);
	ck_assert_msg(r->pattern_ok, "%s: the peer received corrupted data", row);
	ck_assert_msg(r->bytes < sent,
		      "%s: the peer received all %llu bytes although the connection was reset with data pending",
		      row, (unsigned long long)sent);
}

/* The peer has not seen a FIN or a reset within 200 ms. */
static void assert_peer_sees_no_end(int peer, const char *row)
{
	int rev = lb_poll(peer, POLLRDHUP, 200);

	ck_assert_msg(rev >= 0, "%s: poll on the peer failed: %s", row, strerror(errno));
	ck_assert_msg((rev & (POLLRDHUP | POLLHUP | POLLERR)) == 0,
		      "%s: the peer saw the end of the connection (revents 0x%x)", row, rev);
}

/* ------------------------------------------------------------------ G1 */

static void check_g1(int family)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, family);
	int fd = pair.client;

	assert_closed_at_once(timed_close(fd), "G1");
	pair.client = -1;
	assert_fd_released(fd, "G1");

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "G1");
	lb_pair_close(&pair);
}

START_TEST(row_G1_linger_off_pending_graceful_ipv4)
{
	check_g1(AF_INET);
}
END_TEST

START_TEST(row_G1_linger_off_pending_graceful_ipv6)
{
	check_g1(AF_INET6);
}
END_TEST

/* G1 holds for "O_NONBLOCK any" and for linger off with a kept timeout. */
START_TEST(row_G1_nonblocking_linger_off_with_timeout_kept)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, AF_INET);

	/* Linux keeps l_linger only when it is set with l_onoff = 1. */
	ck_assert(lb_set_linger(pair.client, 1, 3) == 0);
	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	assert_closed_at_once(timed_close(pair.client), "G1 (O_NONBLOCK, {0,3})");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "G1 (O_NONBLOCK, {0,3})");
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------------------ G2 */

/* shutdown(how) before close(): graceful whatever the linger setting. */
static void check_g2(int how, int onoff, int seconds, bool linger_after_shutdown,
		     const char *row)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, AF_INET);

	if (!linger_after_shutdown)
		ck_assert(lb_set_linger(pair.client, onoff, seconds) == 0);
	ck_assert_msg(shutdown(pair.client, how) == 0, "shutdown: %s", strerror(errno));
	if (linger_after_shutdown)
		ck_assert(lb_set_linger(pair.client, onoff, seconds) == 0);

	assert_closed_at_once(timed_close(pair.client), row);
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, row);
	lb_pair_close(&pair);
}

START_TEST(row_G2_shutdown_wr_linger_off)
{
	check_g2(SHUT_WR, 0, 0, false, "G2 (SHUT_WR, linger off)");
}
END_TEST

/* Linux resets here; Windows (and §2) ignore linger after shutdown. */
START_TEST(row_G2_linger_abort_then_shutdown_wr_no_reset)
{
	check_g2(SHUT_WR, 1, 0, false, "G2 ({1,0} then SHUT_WR)");
}
END_TEST

START_TEST(row_G2_linger_abort_then_shutdown_rdwr_no_reset)
{
	check_g2(SHUT_RDWR, 1, 0, false, "G2 ({1,0} then SHUT_RDWR)");
}
END_TEST

START_TEST(row_G2_shutdown_wr_then_linger_abort_no_reset)
{
	check_g2(SHUT_WR, 1, 0, true, "G2 (SHUT_WR then {1,0})");
}
END_TEST

/* Linux would block for the linger time here (blocking socket, data
 * pending); after shutdown §2 says close() returns at once. */
START_TEST(row_G2_linger_timeout_blocking_does_not_wait)
{
	check_g2(SHUT_WR, 1, 3, false, "G2 ({1,3}, blocking, SHUT_WR)");
}
END_TEST

/* ------------------------------------------------------------------ A1 */

static void check_a1(int family, bool nonblocking)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, family);

	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	if (nonblocking)
		ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	assert_closed_at_once(timed_close(pair.client), "A1");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_reset(&r, sent, "A1");
	lb_pair_close(&pair);
}

START_TEST(row_A1_linger_zero_resets_ipv4)
{
	check_a1(AF_INET, false);
}
END_TEST

START_TEST(row_A1_linger_zero_resets_ipv6)
{
	check_a1(AF_INET6, false);
}
END_TEST

START_TEST(row_A1_linger_zero_nonblocking_resets)
{
	check_a1(AF_INET, true);
}
END_TEST

/* ------------------------------------------------------------------ W1 */

#define W1_LINGER_S 3

/* Puts the client in W1 (linger {1,3}, O_NONBLOCK, data pending), checks
 * that close() fails with EWOULDBLOCK twice and changes nothing. */
static uint64_t enter_w1(struct lb_pair *pair, int family)
{
	uint64_t sent = open_pending_pair(pair, family);
	int fd = pair->client;

	ck_assert(lb_set_linger(fd, 1, W1_LINGER_S) == 0);
	ck_assert(lb_set_nonblocking(fd, true) == 0);

	for (int attempt = 1; attempt <= 2; attempt++) {
		struct close_outcome o = timed_close(fd);

		ck_assert_msg(o.rc == -1 && o.err == EWOULDBLOCK,
			      "W1: close() #%d returned %d (errno %d, %s) after %lld ms; expected -1/EWOULDBLOCK",
			      attempt, o.rc, o.err, strerror(o.err), (long long)o.ms);
		ck_assert_msg(o.ms < QUICK_MS, "W1: failing close() #%d took %lld ms",
			      attempt, (long long)o.ms);

		/* Nothing happened: same fd, same options, same connection. */
		ck_assert_msg(fcntl(fd, F_GETFD) != -1,
			      "W1: fd is no longer valid after the failed close(): %s",
			      strerror(errno));
		ck_assert_msg(fcntl(fd, F_GETFL) & O_NONBLOCK, "W1: O_NONBLOCK was cleared");
		struct linger l;
		socklen_t len = sizeof(l);

		ck_assert(getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0);
		ck_assert_msg(l.l_onoff == 1 && l.l_linger == W1_LINGER_S,
			      "W1: SO_LINGER changed to {%d,%d}", l.l_onoff, l.l_linger);
		ck_assert_msg(lb_tcp_state(fd) == TCP_ESTABLISHED,
			      "W1: TCP state changed to %d", lb_tcp_state(fd));
		ck_assert_msg(lb_outq(fd) > 0, "W1: send queue is no longer pending");
		assert_peer_sees_no_end(pair->peer, "W1");
	}
	return sent;
}

/* W1, then linger off (→ G1): close() succeeds, every byte then EOF. */
static void check_w1_then_linger_off(int family)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = enter_w1(&pair, family);

	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	assert_closed_at_once(timed_close(pair.client), "W1 then linger off");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "W1 then linger off");
	lb_pair_close(&pair);
}

START_TEST(row_W1_wouldblock_then_linger_off_ipv4)
{
	check_w1_then_linger_off(AF_INET);
}
END_TEST

START_TEST(row_W1_wouldblock_then_linger_off_ipv6)
{
	check_w1_then_linger_off(AF_INET6);
}
END_TEST

START_TEST(row_W1_wouldblock_then_so_dontlinger)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = enter_w1(&pair, AF_INET);
	int one = 1;

	ck_assert_msg(setsockopt(pair.client, SOL_SOCKET, SO_DONTLINGER, &one,
				 sizeof(one)) == 0,
		      "setsockopt(SO_DONTLINGER, 1): %s", strerror(errno));
	assert_closed_at_once(timed_close(pair.client), "W1 then SO_DONTLINGER");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "W1 then SO_DONTLINGER");
	lb_pair_close(&pair);
}
END_TEST

START_TEST(row_W1_wouldblock_then_linger_zero_resets)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = enter_w1(&pair, AF_INET);

	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	assert_closed_at_once(timed_close(pair.client), "W1 then {1,0}");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_reset(&r, sent, "W1 then {1,0}");
	lb_pair_close(&pair);
}
END_TEST

START_TEST(row_W1_wouldblock_then_shutdown_graceful)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = enter_w1(&pair, AF_INET);

	ck_assert(shutdown(pair.client, SHUT_WR) == 0);
	assert_closed_at_once(timed_close(pair.client), "W1 then shutdown");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "W1 then shutdown");
	lb_pair_close(&pair);
}
END_TEST

/* W1 ends by itself once the data is acknowledged (then it is W2). */
START_TEST(row_W1_wouldblock_until_acknowledged)
{
	struct lb_pair pair;
	struct lb_drainer d;
	struct lb_drain_result r;
	uint64_t sent = enter_w1(&pair, AF_INET);

	ck_assert(lb_drainer_start(&d, pair.peer, 65536, 0, DRAIN_TIMEOUT_MS) == 0);
	ck_assert_msg(lb_wait_outq_empty(pair.client, 3000),
		      "the peer is reading but the data was not acknowledged");
	assert_closed_at_once(timed_close(pair.client), "W1 after the data was acknowledged");
	pair.client = -1;

	lb_drainer_join(&d, &r);
	assert_all_then_eof(&r, sent, "W1 after the data was acknowledged");
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------------------ W2 */

static void check_w2(size_t bytes)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	open_pair(&pair, AF_INET);
	ck_assert(lb_send_pattern(pair.client, &sent, bytes) == 0);
	/* The data fits in the peer's receive queue, so it is acknowledged
	 * although the peer does not read. */
	ck_assert_msg(lb_wait_outq_empty(pair.client, 3000),
		      "the data was not acknowledged");
	ck_assert(lb_set_linger(pair.client, 1, W1_LINGER_S) == 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	assert_closed_at_once(timed_close(pair.client), "W2");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "W2");
	lb_pair_close(&pair);
}

START_TEST(row_W2_nonblocking_linger_nothing_pending)
{
	check_w2(10000);
}
END_TEST

START_TEST(row_W2_nonblocking_linger_nothing_ever_sent)
{
	check_w2(0);
}
END_TEST

/* ------------------------------------------------------------------ L1 */

#define L1_LINGER_S 5

/* The peer reads slowly (about 1 s in all) but completely within the
 * linger time: close() blocks until every byte is acknowledged. */
START_TEST(row_L1_blocks_until_acknowledged)
{
	struct lb_pair pair;
	struct lb_drainer d;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, AF_INET);
	size_t chunk = (size_t)(sent / 20) + 1;

	ck_assert(lb_set_linger(pair.client, 1, L1_LINGER_S) == 0);
	ck_assert(lb_drainer_start(&d, pair.peer, chunk, 50, 8000) == 0);

	struct close_outcome o = timed_close(pair.client);
	/* Sampled before the drainer can read more: what had reached the
	 * peer when close() returned (at most a little more). */
	uint64_t arrived = lb_drainer_arrived(&d);

	pair.client = -1;
	ck_assert_msg(o.rc == 0, "L1: close() returned %d (errno %d, %s), expected 0",
		      o.rc, o.err, strerror(o.err));
	ck_assert_msg(o.err == ERRNO_SENTINEL, "L1: a successful close() changed errno to %d", o.err);
	ck_assert_msg(arrived == sent,
		      "L1: close() returned after %lld ms when only %llu of %llu bytes had reached the peer",
		      (long long)o.ms, (unsigned long long)arrived, (unsigned long long)sent);
	ck_assert_msg(o.ms >= 300 && o.ms < (L1_LINGER_S + 1) * 1000,
		      "L1: close() took %lld ms; the slow reader needs about 1 s (expected 300 ms .. %d s)",
		      (long long)o.ms, L1_LINGER_S + 1);

	lb_drainer_join(&d, &r);
	assert_all_then_eof(&r, sent, "L1");
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------------------ L2 */

static void check_l2(int family)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, family);

	ck_assert(lb_set_linger(pair.client, 1, 1) == 0);
	struct close_outcome o = timed_close(pair.client);

	pair.client = -1;
	ck_assert_msg(o.rc == 0, "L2: close() returned %d (errno %d, %s), expected 0",
		      o.rc, o.err, strerror(o.err));
	ck_assert_msg(o.err == ERRNO_SENTINEL, "L2: a successful close() changed errno to %d", o.err);
	ck_assert_msg(o.ms >= 800 && o.ms <= 3000,
		      "L2: close() with linger 1 s took %lld ms (expected 0.8 .. 3 s)",
		      (long long)o.ms);

	/* The reset happened before close() returned; allow for delivery. */
	int rev = lb_poll(pair.peer, 0, 500);

	ck_assert_msg(rev > 0 && (rev & (POLLERR | POLLHUP)),
		      "L2: the peer saw no reset when close() returned (revents 0x%x)", rev);

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_reset(&r, sent, "L2");
	lb_pair_close(&pair);
}

START_TEST(row_L2_linger_timeout_resets_ipv4)
{
	check_l2(AF_INET);
}
END_TEST

START_TEST(row_L2_linger_timeout_resets_ipv6)
{
	check_l2(AF_INET6);
}
END_TEST

/* ------------------------------------------------- other close() facts */

/* Unread received data at close: RST in every row (here G1). */
START_TEST(unread_data_at_close_resets)
{
	struct lb_pair pair;
	uint64_t sent = 0;

	open_pair(&pair, AF_INET);
	ck_assert(lb_send_pattern(pair.peer, &sent, 100) == 0);
	ck_assert_msg(lb_poll(pair.client, POLLIN, 2000) & POLLIN,
		      "the data never reached the closer");
	assert_closed_at_once(timed_close(pair.client), "unread data");
	pair.client = -1;

	ck_assert_msg(lb_poll(pair.peer, POLLIN, 2000) != 0, "the peer saw nothing");
	char c;

	errno = 0;
	ssize_t n = recv(pair.peer, &c, 1, MSG_DONTWAIT);

	ck_assert_msg(n == -1 && errno == ECONNRESET,
		      "unread data at close: the peer's recv() returned %zd (errno %d, %s), expected ECONNRESET",
		      n, errno, strerror(errno));
	lb_pair_close(&pair);
}
END_TEST

/* Data arriving after the application closed: RST. */
START_TEST(data_after_close_resets)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	open_pair(&pair, AF_INET);
	assert_closed_at_once(timed_close(pair.client), "data after close");
	pair.client = -1;
	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, 0, "data after close");

	ck_assert(lb_send_pattern(pair.peer, &sent, 100) == 0);
	int rev = lb_poll(pair.peer, 0, 2000);

	ck_assert_msg(rev > 0 && (rev & (POLLERR | POLLHUP)),
		      "data sent after the close was not answered by a reset (revents 0x%x)", rev);
	int err = 0;
	socklen_t len = sizeof(err);

	/* The peer is in CLOSE_WAIT (it got our FIN): Linux reports a reset
	 * there as EPIPE, elsewhere as ECONNRESET. */
	ck_assert(getsockopt(pair.peer, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
	ck_assert_msg(err == ECONNRESET || err == EPIPE,
		      "the peer's SO_ERROR is %d (%s), expected the reset's ECONNRESET or EPIPE",
		      err, strerror(err));
	ck_assert_msg(lb_tcp_state(pair.peer) == TCP_CLOSE,
		      "the peer's connection is in state %d, not CLOSE", lb_tcp_state(pair.peer));
	lb_pair_close(&pair);
}
END_TEST

/* Not the last reference: the real close(), nothing sent, nothing
 * changed, even with linger on and data pending; the last close then
 * follows §2 (here W1). */
START_TEST(not_last_reference_is_plain_close)
{
	struct lb_pair pair;
	uint64_t sent = open_pending_pair(&pair, AF_INET);
	int copy = dup(pair.client);

	ck_assert(copy >= 0);
	ck_assert(lb_set_linger(pair.client, 1, W1_LINGER_S) == 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);

	assert_closed_at_once(timed_close(pair.client), "not the last reference");
	pair.client = copy;
	assert_peer_sees_no_end(pair.peer, "not the last reference");
	ck_assert_msg(lb_tcp_state(copy) == TCP_ESTABLISHED, "the connection changed state");

	struct close_outcome o = timed_close(copy);

	ck_assert_msg(o.rc == -1 && o.err == EWOULDBLOCK,
		      "last reference in W1: close() returned %d (errno %d, %s), expected -1/EWOULDBLOCK",
		      o.rc, o.err, strerror(o.err));
	ck_assert(lb_set_linger(copy, 0, 0) == 0);
	assert_closed_at_once(timed_close(copy), "last reference, linger off");
	pair.client = -1;

	struct lb_drain_result r;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "not the last reference");
	lb_pair_close(&pair);
}
END_TEST

/* errno is left alone by every successful close(). */
START_TEST(successful_close_keeps_errno)
{
	struct lb_pair pair;
	int fds[2];

	open_pair(&pair, AF_INET);
	assert_closed_at_once(timed_close(pair.client), "idle connected TCP");
	pair.client = -1;
	assert_closed_at_once(timed_close(pair.peer), "TCP with EOF received");
	pair.peer = -1;
	assert_closed_at_once(timed_close(pair.listener), "TCP listener");
	pair.listener = -1;

	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(fd >= 0);
	assert_closed_at_once(timed_close(fd), "unconnected TCP");
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert(fd >= 0);
	assert_closed_at_once(timed_close(fd), "UDP");
	ck_assert(pipe(fds) == 0);
	assert_closed_at_once(timed_close(fds[0]), "pipe");
	assert_closed_at_once(timed_close(fds[1]), "pipe");
}
END_TEST

/* ------------------------------------------------------------ bad input */

static void assert_ebadf(int fd, const char *what)
{
	errno = 0;
	int rc = close(fd);

	ck_assert_msg(rc == -1 && errno == EBADF,
		      "close(%d) (%s) returned %d (errno %d, %s), expected -1/EBADF",
		      fd, what, rc, errno, strerror(errno));
}

START_TEST(close_minus_one_is_ebadf)
{
	assert_ebadf(-1, "negative");
}
END_TEST

START_TEST(close_twice_is_ebadf)
{
	struct lb_pair pair;

	open_pair(&pair, AF_INET);
	int fd = pair.client;

	assert_closed_at_once(timed_close(fd), "first close");
	pair.client = -1;
	assert_ebadf(fd, "TCP socket already closed");

	int efd = eventfd(0, 0);

	ck_assert(efd >= 0);
	ck_assert(close(efd) == 0);
	assert_ebadf(efd, "eventfd already closed");
	lb_pair_close(&pair);
}
END_TEST

START_TEST(close_beyond_rlimit_is_ebadf)
{
	struct rlimit rl;
	int fd = 100000;

	ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= (rlim_t)fd &&
	    rl.rlim_cur < (rlim_t)0x7fff0000)
		fd = (int)rl.rlim_cur + 1000;
	assert_ebadf(fd, "beyond RLIMIT_NOFILE");
}
END_TEST

/* ---------------------------------------------------------- non-sockets */

/* The real close(): 0, errno kept, the fd gone, nothing held. */
static void check_plain_close(int fd, int baseline, const char *what)
{
	assert_closed_at_once(timed_close(fd), what);
	assert_fd_released(fd, what);
	ck_assert_msg(lb_count_fds() == baseline,
		      "%s: %d descriptors open after close(), expected %d",
		      what, lb_count_fds(), baseline);
}

START_TEST(close_regular_file)
{
	char path[] = "/tmp/wspclose-test-XXXXXX";
	int baseline = lb_count_fds();
	int fd = mkstemp(path);

	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	ck_assert(write(fd, "x", 1) == 1);
	check_plain_close(fd, baseline, "regular file");
}
END_TEST

START_TEST(close_pipe)
{
	int baseline = lb_count_fds();
	int fds[2];
	char c;

	ck_assert(pipe(fds) == 0);
	check_plain_close(fds[1], baseline + 1, "pipe write end");
	/* The reader sees EOF at once: the real close happened. */
	ck_assert_int_eq(read(fds[0], &c, 1), 0);
	check_plain_close(fds[0], baseline, "pipe read end");
}
END_TEST

START_TEST(close_eventfd)
{
	int baseline = lb_count_fds();
	int fd = eventfd(0, EFD_CLOEXEC);

	ck_assert(fd >= 0);
	check_plain_close(fd, baseline, "eventfd");
}
END_TEST

/* Non-TCP sockets: the real close(); the other end sees it at once. */
START_TEST(close_unix_and_udp_sockets)
{
	int baseline = lb_count_fds();
	int sv[2];
	char c;

	ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	ck_assert(write(sv[0], "x", 1) == 1);
	check_plain_close(sv[0], baseline + 1, "AF_UNIX stream");
	ck_assert_int_eq(read(sv[1], &c, 1), 1);
	ck_assert_int_eq(read(sv[1], &c, 1), 0);
	check_plain_close(sv[1], baseline, "AF_UNIX stream");

	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert(fd >= 0);
	check_plain_close(fd, baseline, "UDP");
}
END_TEST

/* -------------------------------------------------------- implicit close */

/* Implicit closes never fail and never block; linger N > 0 is enforced in
 * the background: a peer that never reads is reset after about N s. */
static void check_implicit_linger_close(bool use_dup2)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, AF_INET);
	int fd = pair.client;

	ck_assert(lb_set_linger(fd, 1, 1) == 0);
	int other = eventfd(0, 0);

	ck_assert(other >= 0);
	const char *what = use_dup2 ? "dup2 onto a lingering socket"
				    : "close_range of a lingering socket";
	int64_t start = lb_now_ms();
	int rc;

	errno = ERRNO_SENTINEL;
	if (use_dup2)
		rc = dup2(other, fd) == fd ? 0 : -1;
	else
		rc = close_range((unsigned)fd, (unsigned)fd, 0);
	int err = errno;
	int64_t took = lb_now_ms() - start;

	ck_assert_msg(rc == 0 && err == ERRNO_SENTINEL, "%s: returned %d, errno %d (%s)",
		      what, rc, err, strerror(err));
	ck_assert_msg(took < QUICK_MS, "%s blocked for %lld ms", what, (long long)took);
	close(other);
	if (use_dup2)
		close(fd);  /* the eventfd copy */
	pair.client = -1;

	int rev = lb_poll(pair.peer, 0, 4000);
	int64_t reset_at = lb_now_ms() - start;

	ck_assert_msg(rev > 0 && (rev & (POLLERR | POLLHUP)),
		      "%s: the peer was not reset within 4 s (linger 1 s)", what);
	ck_assert_msg(reset_at >= 800,
		      "%s: the peer was reset after %lld ms, before the 1 s linger time",
		      what, (long long)reset_at);
	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_reset(&r, sent, what);
	lb_pair_close(&pair);
}

START_TEST(implicit_dup2_onto_lingering_socket)
{
	check_implicit_linger_close(true);
}
END_TEST

START_TEST(implicit_close_range_lingering_socket)
{
	check_implicit_linger_close(false);
}
END_TEST

START_TEST(implicit_close_range_graceful)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = open_pending_pair(&pair, AF_INET);
	int64_t start = lb_now_ms();

	errno = ERRNO_SENTINEL;
	ck_assert_int_eq(close_range((unsigned)pair.client, (unsigned)pair.client, 0), 0);
	ck_assert_int_eq(errno, ERRNO_SENTINEL);
	ck_assert_msg(lb_now_ms() - start < QUICK_MS, "close_range blocked");
	pair.client = -1;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	assert_all_then_eof(&r, sent, "close_range (G1)");
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *close_rows_suite(bool with_ipv6)
{
	Suite *s = suite_create("close_rows");
	TCase *rows = tcase_create("rows_ipv4");
	TCase *v6 = tcase_create("rows_ipv6");
	TCase *other = tcase_create("close_basics");
	TCase *implicit = tcase_create("implicit_close");

	tcase_add_test(rows, row_G1_linger_off_pending_graceful_ipv4);
	tcase_add_test(rows, row_G1_nonblocking_linger_off_with_timeout_kept);
	tcase_add_test(rows, row_G2_shutdown_wr_linger_off);
	tcase_add_test(rows, row_G2_linger_abort_then_shutdown_wr_no_reset);
	tcase_add_test(rows, row_G2_linger_abort_then_shutdown_rdwr_no_reset);
	tcase_add_test(rows, row_G2_shutdown_wr_then_linger_abort_no_reset);
	tcase_add_test(rows, row_G2_linger_timeout_blocking_does_not_wait);
	tcase_add_test(rows, row_A1_linger_zero_resets_ipv4);
	tcase_add_test(rows, row_A1_linger_zero_nonblocking_resets);
	tcase_add_test(rows, row_W1_wouldblock_then_linger_off_ipv4);
	tcase_add_test(rows, row_W1_wouldblock_then_so_dontlinger);
	tcase_add_test(rows, row_W1_wouldblock_then_linger_zero_resets);
	tcase_add_test(rows, row_W1_wouldblock_then_shutdown_graceful);
	tcase_add_test(rows, row_W1_wouldblock_until_acknowledged);
	tcase_add_test(rows, row_W2_nonblocking_linger_nothing_pending);
	tcase_add_test(rows, row_W2_nonblocking_linger_nothing_ever_sent);
	tcase_add_test(rows, row_L1_blocks_until_acknowledged);
	tcase_add_test(rows, row_L2_linger_timeout_resets_ipv4);
	tcase_set_timeout(rows, 20);
	suite_add_tcase(s, rows);

	if (with_ipv6) {
		tcase_add_test(v6, row_G1_linger_off_pending_graceful_ipv6);
		tcase_add_test(v6, row_A1_linger_zero_resets_ipv6);
		tcase_add_test(v6, row_W1_wouldblock_then_linger_off_ipv6);
		tcase_add_test(v6, row_L2_linger_timeout_resets_ipv6);
		tcase_set_timeout(v6, 20);
		suite_add_tcase(s, v6);
	}

	tcase_add_test(other, unread_data_at_close_resets);
	tcase_add_test(other, data_after_close_resets);
	tcase_add_test(other, not_last_reference_is_plain_close);
	tcase_add_test(other, successful_close_keeps_errno);
	tcase_add_test(other, close_minus_one_is_ebadf);
	tcase_add_test(other, close_twice_is_ebadf);
	tcase_add_test(other, close_beyond_rlimit_is_ebadf);
	tcase_add_test(other, close_regular_file);
	tcase_add_test(other, close_pipe);
	tcase_add_test(other, close_eventfd);
	tcase_add_test(other, close_unix_and_udp_sockets);
	tcase_set_timeout(other, 20);
	suite_add_tcase(s, other);

	tcase_add_test(implicit, implicit_dup2_onto_lingering_socket);
	tcase_add_test(implicit, implicit_close_range_lingering_socket);
	tcase_add_test(implicit, implicit_close_range_graceful);
	tcase_set_timeout(implicit, 20);
	suite_add_tcase(s, implicit);
	return s;
}

int main(void)
{
	char why[256];
	bool with_ipv6 = lb_ipv6_available(why, sizeof(why));

	if (!with_ipv6)
		fprintf(stderr, "SKIP: IPv6 variants not run: %s\n", why);

	SRunner *sr = srunner_create(close_rows_suite(with_ipv6));

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
