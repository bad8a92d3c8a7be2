/* test_sharing.c: §1, the last-reference rule: sockets duplicated in the
 * process, shared with a forked child, passed with SCM_RIGHTS or spawned. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"
#include "wspclose.h"

extern char **environ;

/* How long "the close sent nothing" is watched on the peer. */
#define QUIET_MS 300
#define CHILD_MS 10000

struct close_outcome {
	int rc;
	int err;      /* errno after the call; SH_ERRNO_SENTINEL if untouched */
	int64_t ms;
};

static struct close_outcome timed_close(int fd)
{
	struct close_outcome o;
	int64_t start = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	o.rc = close(fd);
	o.err = errno;
	o.ms = lb_now_ms() - start;
	return o;
}

static void assert_closed_at_once(struct close_outcome o, const char *what)
{
	ck_assert_msg(o.rc == 0 && o.err == SH_ERRNO_SENTINEL,
		      "%s: close() returned %d, errno %d (%s); expected 0 with errno untouched",
		      what, o.rc, o.err, strerror(o.err));
	ck_assert_msg(o.ms < SH_QUICK_MS, "%s: close() took %lld ms, expected < %d ms",
		      what, (long long)o.ms, SH_QUICK_MS);
}

static void open_pair(struct lb_pair *pair)
{
	ck_assert_msg(lb_pair_open(pair, AF_INET, 0, 0) == 0,
		      "cannot connect a loopback pair: %s", strerror(errno));
}

/* Sends `len` more pattern bytes through `fd` and checks that the peer
 * receives exactly them: the connection is intact. */
static void assert_connection_works(int fd, int peer, uint64_t *offset, size_t len,
				    const char *what)
{
	char why[256];
	uint64_t expect_from = *offset;

	ck_assert_msg(lb_send_pattern(fd, offset, len) == 0,
		      "%s: sending through fd %d failed: %s", what, fd, strerror(errno));
	ck_assert_msg(sh_expect_pattern(peer, &expect_from, len, SH_DRAIN_MS, why, sizeof(why)) == 0,
		      "%s: the peer did not receive the data sent afterwards: %s", what, why);
}

/* ------------------------------------------------------ in-process copies */

enum dup_method { BY_DUP, BY_DUP2, BY_DUP3, BY_F_DUPFD, BY_F_DUPFD_CLOEXEC, DUP_METHODS };

static const char *const method_names[DUP_METHODS] = {
	"dup()", "dup2() onto an open /dev/null", "dup3(O_CLOEXEC) onto a free number",
	"fcntl(F_DUPFD)", "fcntl(F_DUPFD_CLOEXEC)",
};

static int free_number_from(int lowest)
{
	while (sh_fd_is_open(lowest))
		lowest++;
	return lowest;
}

/* A second descriptor for fd's socket, made the given way. */
static int copy_socket(int fd, enum dup_method method)
{
	int copy = -1;

	switch (method) {
	case BY_DUP:
		copy = dup(fd);
		break;
	case BY_DUP2: {
		int null_fd = open("/dev/null", O_RDONLY);

		ck_assert(null_fd >= 0);
		copy = dup2(fd, null_fd);
		ck_assert_msg(copy == null_fd, "dup2(%d, %d) returned %d (%s)", fd, null_fd,
			      copy, strerror(errno));
		break;
	}
	case BY_DUP3: {
		int target = free_number_from(200);

		copy = dup3(fd, target, O_CLOEXEC);
		ck_assert_msg(copy == target, "dup3(%d, %d) returned %d (%s)", fd, target,
			      copy, strerror(errno));
		break;
	}
	case BY_F_DUPFD:
		copy = fcntl(fd, F_DUPFD, 100);
		break;
	case BY_F_DUPFD_CLOEXEC:
		copy = fcntl(fd, F_DUPFD_CLOEXEC, 100);
		break;
	case DUP_METHODS:
		break;
	}
	ck_assert_msg(copy >= 0 && copy != fd, "%s of fd %d failed: %s",
		      method_names[method], fd, strerror(errno));
	ck_assert(lb_socket_inode(copy) == lb_socket_inode(fd));
	return copy;
}

/* Loop 0..9: the copy method (i % 5); the copy closed first (i < 5) or the
 * original closed first (i >= 5). A naive library applies A1 to the first
 * close and resets a connection the other copy still uses. */
START_TEST(closing_one_copy_sends_nothing_closing_the_last_resets)
{
	enum dup_method method = (enum dup_method)(_i % DUP_METHODS);
	bool original_first = _i >= DUP_METHODS;
	struct lb_pair pair;
	struct lb_drain_result r;
	char what[160];
	uint64_t offset = 0;

	snprintf(what, sizeof(what), "%s, linger {1,0}, %s closed first",
		 method_names[method], original_first ? "original" : "copy");
	open_pair(&pair);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	int copy = copy_socket(pair.client, method);
	int first = original_first ? pair.client : copy;
	int last = original_first ? copy : pair.client;

	assert_closed_at_once(timed_close(first), what);
	ck_assert_msg(sh_peer_quiet(pair.peer, QUIET_MS),
		      "%s: closing one of two descriptors of the socket sent something to the peer (revents 0x%x): expected nothing (not the last reference)",
		      what, lb_poll(pair.peer, POLLIN | POLLRDHUP, 0));
	ck_assert_msg(lb_tcp_state(last) == 1 /* TCP_ESTABLISHED */,
		      "%s: the remaining descriptor is in TCP state %d, not ESTABLISHED",
		      what, lb_tcp_state(last));
	assert_connection_works(last, pair.peer, &offset, 5000, what);

	assert_closed_at_once(timed_close(last), what);
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET,
		      "%s: closing the last descriptor (linger {1,0}) ended the peer's stream with %s; expected ECONNRESET (A1)",
		      what, lb_end_name(r.end));
	pair.client = -1;
	lb_pair_close(&pair);
}
END_TEST

/* Loop 0..4 (copy method). W1 conditions (O_NONBLOCK, linger {1,2}, data
 * pending): the first close is not the last reference, so it returns 0 at
 * once; the last close is W1 (-1/EWOULDBLOCK). Linux returns 0 for both
 * (the last one after lingering 2 s). */
START_TEST(closing_one_copy_never_wouldblock_the_last_copy_is_w1)
{
	enum dup_method method = (enum dup_method)_i;
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;
	char what[160];

	snprintf(what, sizeof(what), "%s, O_NONBLOCK, linger {1,2}, data pending",
		 method_names[method]);
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 2) == 0);
	int copy = copy_socket(pair.client, method);

	assert_closed_at_once(timed_close(copy), what);
	ck_assert_msg(lb_outq(pair.client) > 0 && lb_tcp_state(pair.client) == 1,
		      "%s: closing the copy changed the connection (outq %d, state %d)",
		      what, lb_outq(pair.client), lb_tcp_state(pair.client));

	struct close_outcome o = timed_close(pair.client);

	ck_assert_msg(o.rc == -1 && o.err == EWOULDBLOCK,
		      "%s: close() of the last descriptor returned %d, errno %d (%s) after %lld ms; expected -1/EWOULDBLOCK (W1)",
		      what, o.rc, o.err, strerror(o.err), (long long)o.ms);
	ck_assert_msg(o.ms < SH_QUICK_MS, "%s: the W1 close took %lld ms", what, (long long)o.ms);
	ck_assert(sh_fd_is_open(pair.client));

	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	assert_closed_at_once(timed_close(pair.client), what);
	pair.client = -1;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent && r.pattern_ok,
		      "%s: the peer got %llu of %llu bytes (pattern %s), then %s; expected all then EOF",
		      what, (unsigned long long)r.bytes, (unsigned long long)sent,
		      r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
	lb_pair_close(&pair);
}
END_TEST

/* Loop 0..3: shutdown(SHUT_WR) through the original (i = 0, 2) or through
 * the copy (i = 1, 3), with the peer resetting the connection afterwards
 * (i >= 2). The shutdown is the socket's, not the descriptor's: closing the
 * last descriptor is G2 (linger ignored, 0 at once), whichever descriptor
 * the shutdown went through, even once a reset left SIOCOUTQ stale. */
START_TEST(shutdown_through_one_copy_makes_the_last_close_g2)
{
	bool through_copy = _i % 2 == 1;
	bool peer_resets = _i >= 2;
	struct lb_pair pair;
	uint64_t sent = 0;
	char what[160];

	snprintf(what, sizeof(what), "shutdown(SHUT_WR) through the %s%s, then close of the copy (O_NONBLOCK, {1,1}, data pending)",
		 through_copy ? "copy" : "original", peer_resets ? ", peer reset" : "");
	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	int copy = dup(pair.client);

	ck_assert(copy >= 0);
	ck_assert(shutdown(through_copy ? copy : pair.client, SHUT_WR) == 0);
	if (peer_resets) {
		/* Unread data at the peer's close: it resets us. */
		ck_assert(close(pair.peer) == 0);
		pair.peer = -1;
		ck_assert(lb_poll(copy, 0, 2000) & (POLLERR | POLLHUP));
	}
	assert_closed_at_once(timed_close(pair.client), what);
	pair.client = -1;
	ck_assert(lb_set_nonblocking(copy, true) == 0);
	ck_assert(lb_set_linger(copy, 1, 1) == 0);
	int state = lb_tcp_state(copy), outq = lb_outq(copy);
	struct close_outcome o = timed_close(copy);

	if (o.rc != 0) {
		lb_set_linger(copy, 0, 0);
		close(copy);
	}
	ck_assert_msg(o.rc == 0 && o.err == SH_ERRNO_SENTINEL && o.ms < SH_QUICK_MS,
		      "%s: close() returned %d, errno %d (%s) after %lld ms (TCP state %d, SIOCOUTQ %d); expected 0 at once (G2: linger is ignored after shutdown)",
		      what, o.rc, o.err, strerror(o.err), (long long)o.ms, state, outq);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ fork() */

struct fork_close_arg {
	struct lb_pair pair;
};

/* The child: abortive close of its inherited copy, and of the rest. */
static void child_closes_abortively(void *p)
{
	struct fork_close_arg *a = p;

	SH_REQUIRE(lb_set_linger(a->pair.client, 1, 0) == 0, "child: SO_LINGER: %s",
		   strerror(errno));
	errno = SH_ERRNO_SENTINEL;
	int rc = close(a->pair.client);

	SH_REQUIRE(rc == 0 && errno == SH_ERRNO_SENTINEL,
		   "child: close() of the inherited socket returned %d, errno %d (%s)",
		   rc, errno, strerror(errno));
	SH_REQUIRE(close(a->pair.peer) == 0 && close(a->pair.listener) == 0,
		   "child: closing the other inherited sockets failed: %s", strerror(errno));
}

/* Two processes share a socket: the child's {1,0} close is not the last
 * reference (kernel semantics), the parent's connection is intact; the
 * parent's later close with default linger is graceful. */
START_TEST(forked_child_abortive_close_leaves_parent_connection_intact)
{
	struct fork_close_arg a;
	struct lb_drain_result r;
	char why[512];
	uint64_t offset = 0, read_to = 0;

	open_pair(&a.pair);
	ck_assert(lb_send_pattern(a.pair.client, &offset, 10000) == 0);
	ck_assert_msg(sh_expect_pattern(a.pair.peer, &read_to, 10000, SH_DRAIN_MS, why, sizeof(why)) == 0,
		      "before fork: %s", why);

	ck_assert_msg(sh_run_in_child(child_closes_abortively, &a, CHILD_MS, why, sizeof(why)), "%s", why);
	ck_assert_msg(sh_peer_quiet(a.pair.peer, QUIET_MS),
		      "the child's close() of its copy with linger {1,0} reached the peer (revents 0x%x): the socket is shared with the parent, nothing may be sent",
		      lb_poll(a.pair.peer, POLLIN | POLLRDHUP, 0));
	ck_assert_msg(lb_tcp_state(a.pair.client) == 1,
		      "the parent's socket is in TCP state %d after the child's close, not ESTABLISHED",
		      lb_tcp_state(a.pair.client));
	assert_connection_works(a.pair.client, a.pair.peer, &offset, 20000,
				"after the child's abortive close");
	read_to = offset;

	/* Another 50000 bytes, then the parent's default-linger close. */
	ck_assert(lb_send_pattern(a.pair.client, &offset, 50000) == 0);
	ck_assert(lb_set_linger(a.pair.client, 0, 0) == 0);
	assert_closed_at_once(timed_close(a.pair.client), "parent's close, linger off");
	a.pair.client = -1;
	sh_drain_inline(a.pair.peer, read_to, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == offset - read_to && r.pattern_ok,
		      "parent's graceful close: the peer got %llu of %llu bytes (pattern %s), then %s; expected all then EOF",
		      (unsigned long long)r.bytes, (unsigned long long)(offset - read_to),
		      r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
	lb_pair_close(&a.pair);
}
END_TEST

/* ------------------------------------------------------ SCM_RIGHTS */

#define CHILD_BYTES 30000

static void child_uses_received_socket(void *p)
{
	int unix_end = *(int *)p;
	uint64_t offset = 0;
	int fd;

	ssize_t n = sh_recv_fd(unix_end, &offset, sizeof(offset), &fd);

	SH_REQUIRE(n == (ssize_t)sizeof(offset) && fd >= 0,
		   "child: recvmsg(SCM_RIGHTS) returned %zd, fd %d: %s", n, fd, strerror(errno));
	char ack = 'k';

	SH_REQUIRE(write(unix_end, &ack, 1) == 1, "child: ack: %s", strerror(errno));
	SH_REQUIRE(sh_child_await_parent(CHILD_MS), "child: the parent never said go");
	SH_REQUIRE(lb_set_nonblocking(fd, false) == 0, "child: F_SETFL: %s", strerror(errno));
	SH_REQUIRE(lb_send_pattern(fd, &offset, CHILD_BYTES) == 0,
		   "child: sending through the received socket failed after the parent closed its copy: %s",
		   strerror(errno));
	SH_REQUIRE(lb_set_linger(fd, 0, 0) == 0, "child: SO_LINGER: %s", strerror(errno));
	errno = SH_ERRNO_SENTINEL;
	int rc = close(fd);

	SH_REQUIRE(rc == 0, "child: close() of the received socket returned %d (%s)", rc,
		   strerror(errno));
}

/* The socket went to another process: the sender's close with {1,1} on a
 * nonblocking socket with data pending is the kernel's (0 at once, nothing
 * sent), not W1; the child keeps using the connection. */
START_TEST(socket_sent_with_scm_rights_closes_with_kernel_semantics)
{
	struct sh_child child;
	struct lb_pair pair;
	struct lb_drainer drainer;
	struct lb_drain_result r;
	uint64_t sent = 0;
	char why[512];
	int sv[2];

	ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	/* Fork first: the TCP connection is created after it, in this process
	 * only, and crosses the boundary through SCM_RIGHTS alone. */
	ck_assert(sh_child_start(&child, child_uses_received_socket, &sv[1]) == 0);
	close(sv[1]);

	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_outq(pair.client) > 0);
	ck_assert(lb_set_nonblocking(pair.client, true) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 1) == 0);
	ck_assert_msg(sh_send_fd(sv[0], pair.client, &sent, sizeof(sent)) == 0,
		      "sendmsg(SCM_RIGHTS): %s", strerror(errno));
	char ack = 0;

	ck_assert_msg(lb_poll(sv[0], POLLIN, CHILD_MS) > 0 && read(sv[0], &ack, 1) == 1 && ack == 'k',
		      "the child did not acknowledge the socket");

	struct close_outcome o = timed_close(pair.client);

	ck_assert_msg(o.rc == 0 && o.err == SH_ERRNO_SENTINEL && o.ms < SH_QUICK_MS,
		      "close() of a socket sent with SCM_RIGHTS (O_NONBLOCK, {1,1}, pending) returned %d, errno %d (%s) after %lld ms; expected 0 at once (shared: kernel semantics)",
		      o.rc, o.err, strerror(o.err), (long long)o.ms);
	pair.client = -1;

	ck_assert(lb_drainer_start(&drainer, pair.peer, 65536, 0, CHILD_MS) == 0);
	sh_parent_signal_child(&child);
	bool child_ok = sh_child_finish(&child, CHILD_MS, why, sizeof(why));

	lb_drainer_join(&drainer, &r);
	ck_assert_msg(child_ok, "%s", why);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent + CHILD_BYTES && r.pattern_ok,
		      "the peer got %llu of %llu bytes (pattern %s), then %s; expected the parent's data, the child's, then EOF",
		      (unsigned long long)r.bytes, (unsigned long long)(sent + CHILD_BYTES),
		      r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
	close(sv[0]);
	lb_pair_close(&pair);
}
END_TEST

/* Passes client through an AF_UNIX pair in this process; returns the
 * received descriptor. */
static int pass_through_unix_socket(int fd)
{
	int sv[2], received = -1;
	char c = 'x';

	ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	ck_assert_msg(sh_send_fd(sv[0], fd, &c, 1) == 0, "sendmsg: %s", strerror(errno));
	ck_assert_msg(sh_recv_fd(sv[1], &c, 1, &received) == 1 && received >= 0,
		      "recvmsg: %s", strerror(errno));
	close(sv[0]);
	close(sv[1]);
	return received;
}

/* A socket received with SCM_RIGHTS is known as a socket (SO_DONTLINGER is
 * answered for it), and closing it with linger {1,0} leaves the sender's
 * copy working. */
START_TEST(socket_received_with_scm_rights_is_recognised)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t offset = 0;

	open_pair(&pair);
	int received = pass_through_unix_socket(pair.client);
	int dont_linger = -1;
	socklen_t len = sizeof(dont_linger);

	errno = 0;
	ck_assert_msg(getsockopt(received, SOL_SOCKET, SO_DONTLINGER, &dont_linger, &len) == 0,
		      "getsockopt(SO_DONTLINGER) on a socket received with SCM_RIGHTS failed: %s",
		      strerror(errno));
	ck_assert_msg(dont_linger == 1 && len == sizeof(int),
		      "SO_DONTLINGER of the received socket is %d (len %u), expected 1", dont_linger,
		      (unsigned)len);
	ck_assert(lb_set_linger(received, 1, 0) == 0);
	assert_closed_at_once(timed_close(received), "received socket, linger {1,0}");
	ck_assert_msg(sh_peer_quiet(pair.peer, QUIET_MS),
		      "closing the received copy with linger {1,0} reached the peer: the sender still holds the socket");
	assert_connection_works(pair.client, pair.peer, &offset, 5000,
				"the sender's copy after the receiver's close");

	ck_assert(lb_set_linger(pair.client, 0, 0) == 0);
	assert_closed_at_once(timed_close(pair.client), "sender's copy, linger off");
	pair.client = -1;
	sh_drain_inline(pair.peer, offset, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == 0,
		      "the sender's graceful close ended the peer's stream with %s after %llu more bytes; expected EOF",
		      lb_end_name(r.end), (unsigned long long)r.bytes);
	lb_pair_close(&pair);
}
END_TEST

/* A received socket may still be the sender's: its close has kernel
 * semantics and changes nothing but the descriptor (§4), so the epoll set
 * keeps the closed number's registration, as on Linux. */
START_TEST(socket_received_with_scm_rights_close_leaves_epoll_alone)
{
	struct lb_pair pair;
	struct epoll_event ev, events[8];

	open_pair(&pair);
	int received = pass_through_unix_socket(pair.client);
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert(ep >= 0);
	ev.events = EPOLLIN;
	ev.data.fd = received;
	ck_assert(epoll_ctl(ep, EPOLL_CTL_ADD, received, &ev) == 0);
	int other = dup(received);

	ck_assert(other >= 0);
	ev.data.fd = other;
	ck_assert(epoll_ctl(ep, EPOLL_CTL_ADD, other, &ev) == 0);
	assert_closed_at_once(timed_close(received), "received socket with a dup, in epoll");

	ck_assert(send(pair.peer, "data", 4, MSG_NOSIGNAL) == 4);
	int n = epoll_wait(ep, events, 8, 2000);
	bool saw_other = false;

	ck_assert_msg(n > 0, "no epoll event at all for the open dup: the test cannot tell");
	for (int i = 0; i < n; i++)
		saw_other |= events[i].data.fd == other;
	ck_assert(saw_other);
	ck_assert_msg(sh_epoll_lists_fd(ep, received),
		      "/proc/self/fdinfo/%d no longer lists tfd %d after close(): the library edited an epoll set for a close with kernel semantics",
		      ep, received);
	close(other);
	close(ep);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ posix_spawn */

/* posix_spawn() runs no fork handlers: the library cannot see this child
 * inherit the socket, but it has (§1 "shared with another process").
 * Closing the parent's copy must not shut the connection down under the
 * child: the spawned shell still writes through it. */
START_TEST(socket_inherited_by_posix_spawn_child_survives_parent_close)
{
	struct lb_pair pair;
	posix_spawn_file_actions_t actions;
	char *argv[] = { "sh", "-c", "read line && printf 'child:%s\\n' \"$line\"", NULL };
	char buf[64], why[256];
	int go[2], status = 0;
	pid_t pid;

	open_pair(&pair);
	ck_assert(pipe2(go, O_CLOEXEC) == 0);
	ck_assert(posix_spawn_file_actions_init(&actions) == 0);
	ck_assert(posix_spawn_file_actions_adddup2(&actions, go[0], STDIN_FILENO) == 0);
	ck_assert(posix_spawn_file_actions_adddup2(&actions, pair.client, STDOUT_FILENO) == 0);
	ck_assert_msg(posix_spawn(&pid, "/bin/sh", &actions, NULL, argv, environ) == 0,
		      "posix_spawn /bin/sh failed");
	posix_spawn_file_actions_destroy(&actions);
	close(go[0]);

	assert_closed_at_once(timed_close(pair.client), "parent's copy of a spawned child's stdout");
	pair.client = -1;
	bool quiet = sh_peer_quiet(pair.peer, QUIET_MS);

	ck_assert(write(go[1], "go\n", 3) == 3);
	close(go[1]);
	ssize_t got = 0;
	int64_t deadline = lb_now_ms() + SH_DRAIN_MS;

	while (got < (ssize_t)sizeof(buf) - 1 && lb_now_ms() < deadline) {
		if (lb_poll(pair.peer, POLLIN, 200) <= 0)
			continue;
		ssize_t r = recv(pair.peer, buf + got, sizeof(buf) - 1 - (size_t)got, 0);

		if (r <= 0)
			break;
		got += r;
	}
	buf[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	snprintf(why, sizeof(why), "child exit status 0x%x", status);
	ck_assert_msg(quiet,
		      "the parent's close() of a socket a posix_spawn()ed child still holds reached the peer (a FIN/RST from a shutdown on the child's socket)");
	ck_assert_msg(strcmp(buf, "child:go\n") == 0,
		      "the peer received \"%s\" from the spawned child, expected \"child:go\\n\" (%s)",
		      buf, why);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the spawned child failed to write to its inherited socket: %s", why);
	lb_pair_close(&pair);
}
END_TEST

static Suite *sharing_suite(void)
{
	Suite *s = suite_create("sharing");
	TCase *dups = tcase_create("in_process_copies");
	TCase *processes = tcase_create("other_processes");

	tcase_add_loop_test(dups, closing_one_copy_sends_nothing_closing_the_last_resets,
			    0, 2 * DUP_METHODS);
	tcase_add_loop_test(dups, closing_one_copy_never_wouldblock_the_last_copy_is_w1,
			    0, DUP_METHODS);
	tcase_add_loop_test(dups, shutdown_through_one_copy_makes_the_last_close_g2, 0, 4);
	tcase_set_timeout(dups, 30);
	suite_add_tcase(s, dups);

	tcase_add_test(processes, forked_child_abortive_close_leaves_parent_connection_intact);
	tcase_add_test(processes, socket_sent_with_scm_rights_closes_with_kernel_semantics);
	tcase_add_test(processes, socket_received_with_scm_rights_is_recognised);
	tcase_add_test(processes, socket_received_with_scm_rights_close_leaves_epoll_alone);
	tcase_add_test(processes, socket_inherited_by_posix_spawn_child_survives_parent_close);
	tcase_set_timeout(processes, 30);
	suite_add_tcase(s, processes);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sharing_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
