/* test_epoll.c: §4: no epoll event is ever delivered for a closed last
 * reference (whose held copy keeps the socket alive); a close with kernel
 * semantics edits no epoll set; epoll_ctl keeps the kernel's errors; epoll
 * fds closed and reused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

/* How long epoll_wait is watched for events of a closed number. */
#define WATCH_MS 300

static void open_pair(struct lb_pair *pair)
{
	ck_assert_msg(lb_pair_open(pair, AF_INET, 0, 0) == 0,
		      "cannot connect a loopback pair: %s", strerror(errno));
}

static int new_epoll(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_msg(ep >= 0, "epoll_create1: %s", strerror(errno));
	return ep;
}

static void add_to_epoll(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	ck_assert_msg(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0,
		      "epoll_ctl(%d, ADD, %d): %s", ep, fd, strerror(errno));
}

static void assert_closed_ok(int fd, const char *what)
{
	errno = SH_ERRNO_SENTINEL;
	int rc = close(fd);

	ck_assert_msg(rc == 0 && errno == SH_ERRNO_SENTINEL, "%s: close(%d) returned %d, errno %d (%s)",
		      what, fd, rc, errno, strerror(errno));
}

/* Collects the events of `ep` for WATCH_MS (or until `want_fd` reported)
 * and fails if any carries data.fd == closed_fd. Returns true when want_fd
 * (the live descriptor, proof that there were events) was reported. */
static bool watch_for_closed_number(int ep, int closed_fd, int want_fd, const char *what)
{
	struct epoll_event events[16];
	int64_t deadline = lb_now_ms() + WATCH_MS;
	bool saw_wanted = false;

	for (;;) {
		int left = (int)(deadline - lb_now_ms());

		if (left < 0)
			break;
		int n = epoll_wait(ep, events, 16, left);

		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n >= 0, "epoll_wait: %s", strerror(errno));
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			ck_assert_msg(events[i].data.fd != closed_fd,
				      "%s: epoll set %d reported data.fd=%d (events 0x%x) after close(%d) returned 0",
				      what, ep, closed_fd, events[i].events, closed_fd);
			saw_wanted |= events[i].data.fd == want_fd;
		}
		if (saw_wanted && want_fd >= 0)
			break;
		/* Level-triggered: an already reported live fd repeats; keep
		 * looking only for the closed number until the window ends. */
	}
	ck_assert_msg(!sh_epoll_lists_fd(ep, closed_fd),
		      "%s: /proc/self/fdinfo/%d still has a \"tfd: %d\" line after close(%d)", what,
		      ep, closed_fd, closed_fd);
	return saw_wanted;
}

/* Loop 0..1: the socket is in 2 sets (i = 0) or 3 sets (i = 1: more than the
 * library remembers per descriptor). Its held copy keeps it open, so Linux
 * would keep the closed number registered and report it. */
START_TEST(closed_number_never_reported_by_any_epoll_set)
{
	int n_sets = _i == 0 ? 2 : 3;
	struct lb_pair pair, live;
	int sets[3];
	char what[96];

	snprintf(what, sizeof(what), "socket in %d epoll sets", n_sets);
	open_pair(&pair);
	open_pair(&live);
	for (int i = 0; i < n_sets; i++) {
		sets[i] = new_epoll();
		add_to_epoll(sets[i], pair.client, EPOLLIN | EPOLLRDHUP);
	}
	add_to_epoll(sets[0], live.client, EPOLLIN);
	int closed = pair.client;

	assert_closed_ok(closed, what);
	pair.client = -1;
	/* Events there would be: data (answered with RST), or the FIN. */
	ck_assert(send(pair.peer, "ping", 4, MSG_NOSIGNAL) == 4);
	ck_assert(send(live.peer, "ping", 4, MSG_NOSIGNAL) == 4);
	ck_assert_msg(watch_for_closed_number(sets[0], closed, live.client, what),
		      "%s: no event for the live socket either: the test cannot tell", what);
	for (int i = 1; i < n_sets; i++)
		watch_for_closed_number(sets[i], closed, -1, what);
	for (int i = 0; i < n_sets; i++)
		close(sets[i]);
	lb_pair_close(&live);
	lb_pair_close(&pair);
}
END_TEST

/* A close that is not the last reference has kernel semantics and changes
 * nothing but the descriptor (§4): the epoll registration of the closed
 * number stays, as on Linux (a program may go on using it through the dup). */
START_TEST(not_last_reference_close_edits_no_epoll_set)
{
	struct lb_pair pair;

	open_pair(&pair);
	int ep = new_epoll();

	add_to_epoll(ep, pair.client, EPOLLIN);
	int other = dup(pair.client);

	ck_assert(other >= 0);
	int closed = pair.client;

	assert_closed_ok(closed, "socket with a dup open, in epoll");
	pair.client = -1;
	ck_assert_msg(sh_epoll_lists_fd(ep, closed),
		      "/proc/self/fdinfo/%d no longer lists tfd %d after close() of one of two dups: the library edited the epoll set",
		      ep, closed);
	ck_assert(send(pair.peer, "ping", 4, MSG_NOSIGNAL) == 4);
	char buf[8];

	ck_assert_msg(lb_poll(other, POLLIN, 2000) > 0 && recv(other, buf, sizeof(buf), 0) == 4,
		      "the dup lost the data");
	close(other);
	close(ep);
	lb_pair_close(&pair);
}
END_TEST

/* The held copy of a G1 close keeps the socket alive: if the fd were not
 * taken out of its sets first, Linux would report the closed number. */
START_TEST(g1_close_with_held_copy_leaves_epoll_sets_first)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	int ep = new_epoll();

	add_to_epoll(ep, pair.client, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
	int closed = pair.client;

	assert_closed_ok(closed, "G1, data pending, in epoll");
	pair.client = -1;
	/* The held copy's shutdown alone makes events (EPOLLIN|EPOLLHUP); data
	 * from the peer would reset and release it at once, so none is sent. */
	watch_for_closed_number(ep, closed, -1, "G1 with a held copy");
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert(r.end == LB_END_RESET || r.end == LB_END_EOF);
	watch_for_closed_number(ep, closed, -1, "G1 with a held copy, after the peer drained");
	close(ep);
	lb_pair_close(&pair);
}
END_TEST

/* A dup of the epoll fd keeps the set alive after the original epoll fd is
 * closed: the socket is still in the set, so its close must still take it
 * out (here the held copy of a G1 close would keep it reported). */
START_TEST(closing_one_dup_of_an_epoll_fd_keeps_the_membership)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	int ep = new_epoll();

	add_to_epoll(ep, pair.client, EPOLLIN | EPOLLRDHUP);
	int ep_dup = dup(ep);

	ck_assert(ep_dup >= 0);
	assert_closed_ok(ep, "the original epoll fd");
	int closed = pair.client;

	assert_closed_ok(closed, "G1, data pending, in a set reached through a dup");
	pair.client = -1;
	/* No data from the peer: it would reset and release the held copy. */
	watch_for_closed_number(ep_dup, closed, -1, "set kept by a dup of the epoll fd");
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	close(ep_dup);
	lb_pair_close(&pair);
}
END_TEST

static int udp_bound(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert(fd >= 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(bind(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0);
	ck_assert(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
	return fd;
}

/* Loop 0..1: a UDP socket in epoll, closed without (i = 0) or with (i = 1)
 * a dup open. Datagrams keep arriving; without a dup none is reported for
 * the number; with one, the close is not the last reference and leaves the
 * registration alone (§4), as Linux does. */
START_TEST(closed_udp_socket_gets_no_more_events)
{
	bool with_dup = _i == 1;
	struct sockaddr_in addr;
	int udp = udp_bound(&addr);
	int sender = socket(AF_INET, SOCK_DGRAM, 0);
	int ep = new_epoll();
	int other = -1;

	ck_assert(sender >= 0);
	add_to_epoll(ep, udp, EPOLLIN);
	if (with_dup) {
		other = dup(udp);
		ck_assert(other >= 0);
		add_to_epoll(ep, other, EPOLLIN);
	}
	assert_closed_ok(udp, with_dup ? "UDP socket with a dup, in epoll" : "UDP socket in epoll");
	for (int i = 0; i < 3; i++)
		ck_assert(sendto(sender, "d", 1, 0, (struct sockaddr *)&addr, sizeof(addr)) == 1);
	if (with_dup) {
		ck_assert_msg(sh_epoll_lists_fd(ep, udp),
			      "UDP socket with a dup: /proc/self/fdinfo/%d no longer lists tfd %d after close()",
			      ep, udp);
	} else {
		watch_for_closed_number(ep, udp, -1, "closed UDP socket");
	}
	if (other >= 0)
		close(other);
	close(sender);
	close(ep);
}
END_TEST

/* epoll_ctl with wrong descriptors: the kernel's errors, and the table is
 * unchanged (the socket passed as an epoll fd still gets its row, W1). */
START_TEST(epoll_ctl_errors_are_the_kernels_and_change_nothing)
{
	struct lb_pair pair, other;
	struct lb_drain_result r;
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t sent = 0;
	int p[2];

	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	open_pair(&other);
	ck_assert(pipe(p) == 0);
	int ep = new_epoll();
	int file = open("/dev/null", O_RDONLY);

	ck_assert(file >= 0);
	struct {
		int epfd, op, fd, err;
		const char *what;
	} cases[] = {
		{ p[0], EPOLL_CTL_ADD, other.client, EINVAL, "a pipe as the epoll fd" },
		{ pair.client, EPOLL_CTL_ADD, other.client, EINVAL, "a TCP socket as the epoll fd" },
		{ ep, EPOLL_CTL_ADD, ep, EINVAL, "the epoll fd into itself" },
		{ ep, EPOLL_CTL_ADD, file, EPERM, "a regular file" },
		{ ep, EPOLL_CTL_ADD, -1, EBADF, "fd -1" },
		{ -1, EPOLL_CTL_ADD, other.client, EBADF, "epoll fd -1" },
		{ ep, EPOLL_CTL_DEL, other.client, ENOENT, "DEL of a fd never added" },
		{ ep, EPOLL_CTL_MOD, other.client, ENOENT, "MOD of a fd never added" },
		{ ep, 99, other.client, EINVAL, "an unknown op" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errno = 0;
		int rc = epoll_ctl(cases[i].epfd, cases[i].op, cases[i].fd, &ev);

		ck_assert_msg(rc == -1 && errno == cases[i].err,
			      "epoll_ctl with %s returned %d, errno %d (%s); expected -1/%s", cases[i].what,
			      rc, errno, strerror(errno), strerror(cases[i].err));
	}
	/* The next operations work. */
	add_to_epoll(ep, other.client, EPOLLIN);
	int closed = other.client;

	assert_closed_ok(closed, "socket after failed epoll_ctl calls");
	other.client = -1;
	ck_assert(send(other.peer, "x", 1, MSG_NOSIGNAL) == 1);
	watch_for_closed_number(ep, closed, -1, "after failed epoll_ctl calls");
	assert_closed_ok(p[0], "the pipe passed as an epoll fd");
	assert_closed_ok(p[1], "pipe");
	assert_closed_ok(file, "the regular file");

	/* The socket passed as an epoll fd is still a TCP socket to the
	 * library: W1 (O_NONBLOCK, {1,2}, pending) fails with EWOULDBLOCK. */
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 2) == 0);
	int64_t start = lb_now_ms();

	errno = 0;
	int rc = close(pair.client);
	int err = errno;

	ck_assert_msg(rc == -1 && err == EWOULDBLOCK,
		      "W1 close of the socket once passed to epoll_ctl as an epoll fd: %d, errno %d (%s) after %lld ms; expected -1/EWOULDBLOCK",
		      rc, err, strerror(err), (long long)(lb_now_ms() - start));
	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	assert_closed_ok(pair.client, "G1 after W1");
	pair.client = -1;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent, "G1 after W1: the peer got %llu of %llu, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	close(ep);
	lb_pair_close(&pair);
	lb_pair_close(&other);
}
END_TEST

/* Loop 0..1: an epoll fd is closed and its number reused by a new epoll
 * set (i = 0) or by a TCP socket (i = 1). The old set's members must not
 * be "removed" from the newcomer, and the newcomer works normally. */
START_TEST(closed_epoll_fd_number_reused)
{
	struct lb_pair a, b;
	struct lb_drain_result r;
	char why[512];

	open_pair(&a);
	int old_ep = new_epoll();

	add_to_epoll(old_ep, a.client, EPOLLIN);
	assert_closed_ok(old_ep, "an epoll fd with a member");

	if (_i == 0) {
		int ep = new_epoll();

		ck_assert_msg(ep == old_ep, "the new epoll fd got %d, not the freed %d", ep, old_ep);
		add_to_epoll(ep, a.client, EPOLLIN);
		int closed = a.client;

		assert_closed_ok(closed, "socket in the reused epoll set");
		a.client = -1;
		ck_assert(send(a.peer, "x", 1, MSG_NOSIGNAL) == 1);
		watch_for_closed_number(ep, closed, -1, "epoll fd number reused by a new set");
		assert_closed_ok(ep, "the new epoll fd");
	} else {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		ck_assert_msg(s == old_ep, "the new socket got %d, not the freed %d", s, old_ep);
		ck_assert(close(s) == 0);
		/* The TCP pair that takes the old epoll number (client side). */
		ck_assert(lb_pair_open(&b, AF_INET, 0, 0) == 0);
		/* a.client's close must not touch whatever now has old_ep's
		 * number: b keeps working and gets its own A1 row. */
		assert_closed_ok(a.client, "socket of a closed epoll set");
		a.client = -1;
		lb_drain_now(a.peer, SH_DRAIN_MS, &r);
		ck_assert(r.end == LB_END_EOF);
		uint64_t off = 0, exp = 0;

		ck_assert(lb_send_pattern(b.client, &off, 1000) == 0);
		ck_assert_msg(sh_expect_pattern(b.peer, &exp, 1000, SH_DRAIN_MS, why, sizeof(why)) == 0,
			      "%s", why);
		ck_assert(lb_set_linger(b.client, 1, 0) == 0);
		assert_closed_ok(b.client, "A1 on the socket that reused numbers");
		b.client = -1;
		sh_drain_inline(b.peer, exp, SH_DRAIN_MS, &r);
		ck_assert_msg(r.end == LB_END_RESET, "A1 after reuse: the peer saw %s", lb_end_name(r.end));
		lb_pair_close(&b);
	}
	lb_pair_close(&a);
	ck_assert_msg(sh_check_rows(why, sizeof(why)), "after the reuse: %s", why);
}
END_TEST

static Suite *epoll_suite(void)
{
	Suite *s = suite_create("epoll");
	TCase *closed = tcase_create("closed_numbers");
	TCase *errors = tcase_create("errors_and_reuse");

	tcase_add_loop_test(closed, closed_number_never_reported_by_any_epoll_set, 0, 2);
	tcase_add_test(closed, g1_close_with_held_copy_leaves_epoll_sets_first);
	tcase_add_test(closed, not_last_reference_close_edits_no_epoll_set);
	tcase_add_test(closed, closing_one_dup_of_an_epoll_fd_keeps_the_membership);
	tcase_add_loop_test(closed, closed_udp_socket_gets_no_more_events, 0, 2);
	tcase_set_timeout(closed, 30);
	suite_add_tcase(s, closed);

	tcase_add_test(errors, epoll_ctl_errors_are_the_kernels_and_change_nothing);
	tcase_add_loop_test(errors, closed_epoll_fd_number_reused, 0, 2);
	tcase_set_timeout(errors, 30);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(epoll_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
