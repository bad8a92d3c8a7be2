/* test_caller_close.c: closes that must end inside the call, with the
 * kernel's result: a socket with nothing to tear down is closed in the
 * caller (§3: a closed listener refuses connections, its port is free at
 * once, also after connect(AF_UNSPEC) dissolved a connection);
 * a dup2()/dup3() the kernel fails leaves the target as it was; a
 * refused close_range system call closes nothing (§6); an epoll set on a
 * reused number is known; linger {1,-1} is the longest linger, not an
 * abort (§8); errno survives a successful what-if close (§6). Each case
 * passes on plain Linux too. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

extern char **environ;

#define ROUNDS 500

/* A TCP socket bound to a fresh loopback port; *addr gets the address. */
static int bound_socket(struct sockaddr_in *addr, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(fd >= 0);
	*addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				      .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof *addr;
	if (bind(fd, (struct sockaddr *)addr, len) != 0) {
		close(fd);
		return -1;
	}
	ck_assert(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
	return fd;
}

/* Whether addr's port can be bound at once (no SO_REUSEADDR). */
static bool port_can_be_bound(const struct sockaddr_in *addr)
{
	struct sockaddr_in again_addr;
	int again = bound_socket(&again_addr, ntohs(addr->sin_port));
	if (again < 0)
		return false;
	close(again);
	return true;
}

/* ------------------------------------------------------ nothing to tear down */

START_TEST(closed_listener_refuses_connections_at_once)
{
	int accepted = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct sockaddr_in addr;
		int listener = bound_socket(&addr, 0);
		ck_assert(listen(listener, 16) == 0);
		ck_assert(close(listener) == 0);
		int c = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert(c >= 0);
		if (connect(c, (struct sockaddr *)&addr, sizeof addr) == 0)
			accepted++;
		close(c);
	}
	ck_assert_msg(accepted == 0, "connect() right after close() of the listener succeeded %d of %d times",
		      accepted, ROUNDS);
}
END_TEST

/* A socket connected once and its connection dissolved with
 * connect(AF_UNSPEC) has nothing to tear down: the library must not take it
 * for connected, and its port is free when close() returns. */
START_TEST(dissolved_connection_frees_its_port_at_once)
{
	struct sockaddr_in server_addr;
	int server = bound_socket(&server_addr, 0);
	ck_assert(listen(server, ROUNDS) == 0);
	int refused = 0;
	for (int round = 0; round < ROUNDS; round++) {
		/* Bound to a port by number: only then does the socket keep its
		 * port after the connection is dissolved. */
		struct sockaddr_in addr;
		int fd = bound_socket(&addr, 0);
		ck_assert(fd >= 0);
		close(fd);
		fd = bound_socket(&addr, ntohs(addr.sin_port));
		if (fd < 0) {
			round--; /* taken in between by someone else: another port */
			continue;
		}
		ck_assert(connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0);
		int peer = accept(server, NULL, NULL);
		ck_assert(peer >= 0);
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		ck_assert(connect(fd, &unspec, sizeof unspec) == 0);
		ck_assert(close(fd) == 0);
		if (!port_can_be_bound(&addr))
			refused++;
		close(peer);
	}
	close(server);
	ck_assert_msg(refused == 0,
		      "bind() of the port of a just-closed, once-connected socket failed %d of %d times",
		      refused, ROUNDS);
}
END_TEST

/* Loop 0..1: a bound socket (i = 0) or a listener (i = 1) is closed; its
 * port can be bound again at once ("find a free port, close, bind"). */
START_TEST(closed_socket_port_can_be_bound_at_once)
{
	bool listening = _i == 1;
	int refused = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct sockaddr_in addr;
		int fd = bound_socket(&addr, 0);
		if (listening)
			ck_assert(listen(fd, 16) == 0);
		ck_assert(close(fd) == 0);
		if (!port_can_be_bound(&addr))
			refused++;
	}
	ck_assert_msg(refused == 0, "bind() of the port of a just-closed %s socket failed %d of %d times",
		      listening ? "listening" : "bound", refused, ROUNDS);
}
END_TEST

/* ------------------------------------------------------ dup2 the kernel fails */

/* The target is above a lowered RLIMIT_NOFILE: dup2() fails with EBADF and
 * the target is as before: close() of it is 0, and a TCP target with
 * linger {1,0} and data queued was not reset (the peer gets its bytes). */
START_TEST(dup2_the_kernel_fails_leaves_the_target_alone)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	int high_udp = fcntl(udp, F_DUPFD, 200);
	int high_tcp = fcntl(pair.client, F_DUPFD, 210);
	ck_assert(udp >= 0 && high_udp >= 200 && high_tcp >= 210);
	close(udp);
	close(pair.client);
	pair.client = high_tcp;
	ck_assert(lb_set_linger(high_tcp, 1, 0) == 0);
	uint64_t sent = 0;
	ck_assert(lb_send_pattern(high_tcp, &sent, 1000) == 0);
	struct rlimit lim;
	ck_assert(getrlimit(RLIMIT_NOFILE, &lim) == 0);
	struct rlimit low = { 100, lim.rlim_max };
	ck_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);
	int src = open("/dev/null", O_RDONLY);
	ck_assert(src >= 0);
	errno = 0;
	int rc_udp = dup2(src, high_udp);
	int err_udp = errno;
	errno = 0;
	int rc_tcp = dup3(src, high_tcp, 0);
	int err_tcp = errno;
	ck_assert(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	ck_assert_msg(rc_udp == -1 && err_udp == EBADF, "dup2 onto fd %d above the limit: %d, errno %d",
		      high_udp, rc_udp, err_udp);
	ck_assert_msg(rc_tcp == -1 && err_tcp == EBADF, "dup3 onto fd %d above the limit: %d, errno %d",
		      high_tcp, rc_tcp, err_tcp);
	errno = 0;
	ck_assert_msg(close(high_udp) == 0, "close(%d) after the failed dup2: errno %d (%s)", high_udp,
		      errno, strerror(errno));
	ck_assert_msg(!sh_fd_is_open(high_udp), "fd %d still open after its close", high_udp);
	/* The TCP socket is untouched: still connected, its data arrives. */
	char why[256];
	uint64_t expected = 0;
	ck_assert_msg(sh_expect_pattern(pair.peer, &expected, sent, SH_DRAIN_MS, why, sizeof why) == 0,
		      "after a failed dup3 onto the socket: %s", why);
	ck_assert(lb_send_pattern(high_tcp, &sent, 100) == 0);
	ck_assert_msg(sh_expect_pattern(pair.peer, &expected, 100, SH_DRAIN_MS, why, sizeof why) == 0,
		      "the socket after a failed dup3 onto it: %s", why);
	close(src);
	lb_pair_close(&pair);
}
END_TEST

/* dup3() onto `target` answers EBUSY (what the kernel says when the
 * number is being opened meanwhile), in this test process only. */
static void refuse_dup3_onto(int target)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_dup3, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)target, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EBUSY),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	ck_assert(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	ck_assert(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

/* A dup3() onto a connected socket with default linger, the row whose
 * close() sends our FIN, that the kernel fails after the library chose
 * the row: it must not have sent the FIN. The socket still carries data
 * both ways, and the peer has seen no EOF. */
START_TEST(dup3_the_kernel_fails_sends_no_fin)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int src = open("/dev/null", O_RDONLY);
	ck_assert(src >= 0);
	refuse_dup3_onto(pair.client);
	errno = 0;
	int rc = dup3(src, pair.client, 0);
	int err = errno;
	ck_assert_msg(rc == -1 && err == EBUSY, "dup3 onto fd %d: %d, errno %d", pair.client, rc,
		      err);
	uint64_t sent = 0, expected = 0;
	char why[256];
	ck_assert(lb_send_pattern(pair.client, &sent, 100) == 0);
	ck_assert_msg(sh_expect_pattern(pair.peer, &expected, 100, SH_DRAIN_MS, why, sizeof why) == 0,
		      "the socket after a failed dup3 onto it: %s", why);
	char byte;
	errno = 0;
	ck_assert_msg(recv(pair.peer, &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN,
		      "the peer saw EOF or data after a failed dup3 (errno %d)", errno);
	ck_assert_int_eq(send(pair.peer, "x", 1, 0), 1);
	ck_assert_int_gt(lb_poll(pair.client, POLLIN, SH_DRAIN_MS), 0);
	ck_assert_int_eq(recv(pair.client, &byte, 1, 0), 1);
	close(src);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ close_range refused */

/* The close_range system call answers `error` (ENOSYS: a kernel before
 * 5.9; EPERM: a seccomp policy), in this test process only. */
static void refuse_close_range(int error)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close_range, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof filter / sizeof filter[0], filter };
	ck_assert(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	ck_assert(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

/* Loop 0..1: ENOSYS, EPERM. close_range() fails with the kernel's error
 * and closes nothing (a socket in the range included); closefrom() still
 * closes everything, as glibc's does. */
START_TEST(refused_close_range_closes_nothing_and_closefrom_still_closes)
{
	int error = _i == 0 ? ENOSYS : EPERM;
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	int lo = open("/dev/null", O_RDONLY);
	int mid = dup(pair.client);
	int hi = open("/dev/null", O_RDONLY);
	ck_assert(lo >= 0 && mid > lo && hi > mid);
	refuse_close_range(error);
	errno = 0;
	int rc = close_range((unsigned)lo, (unsigned)hi, 0);
	int err = errno;
	ck_assert_msg(rc == -1 && err == error, "close_range(%d, %d, 0) = %d, errno %d (%s), expected %s",
		      lo, hi, rc, err, strerror(err), strerror(error));
	ck_assert_msg(sh_fd_is_open(lo) && sh_fd_is_open(mid) && sh_fd_is_open(hi),
		      "a refused close_range() closed descriptors");
	closefrom(lo);
	ck_assert_msg(!sh_fd_is_open(lo) && !sh_fd_is_open(mid) && !sh_fd_is_open(hi),
		      "closefrom(%d) without the close_range system call left descriptors open", lo);
}
END_TEST

/* ------------------------------------------------------ epoll on a tombstone */

/* The socket's number closed before is reused by epoll_create1(): that set
 * is known like any other, so a socket in three sets (more than remembered
 * inline) is taken out of all of them at its close. */
START_TEST(epoll_set_on_a_reused_socket_number_is_known)
{
	int gone = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(gone >= 0);
	ck_assert(close(gone) == 0);
	int sets[3];
	sets[0] = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_msg(sets[0] == gone, "the epoll set got %d, not the freed %d", sets[0], gone);
	sets[1] = epoll_create1(EPOLL_CLOEXEC);
	sets[2] = epoll_create1(EPOLL_CLOEXEC);
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = pair.client };
	for (int i = 0; i < 3; i++)
		ck_assert(epoll_ctl(sets[i], EPOLL_CTL_ADD, pair.client, &ev) == 0);
	int closed = pair.client;
	ck_assert(close(closed) == 0);
	pair.client = -1;
	ck_assert(send(pair.peer, "data", 4, MSG_NOSIGNAL) == 4);
	for (int i = 0; i < 3; i++) {
		struct epoll_event got;
		int n = epoll_wait(sets[i], &got, 1, 300);
		ck_assert_msg(n == 0, "epoll set %d (fd %d) reported %d event(s) for the closed fd %d", i,
			      sets[i], n, closed);
		close(sets[i]);
	}
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ linger {1,-1} */

/* Linux reads {1,-1} back negative and lingers without limit: the longest
 * Winsock linger, so a blocking close with a reading peer is graceful. */
START_TEST(negative_linger_is_the_longest_linger_not_an_abort)
{
	struct lb_pair pair;
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	struct linger l = { 1, -1 };
	ck_assert(setsockopt(pair.client, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
	uint64_t sent = 0;
	ck_assert(lb_send_pattern(pair.client, &sent, 5000) == 0);
	ck_assert(close(pair.client) == 0);
	pair.client = -1;
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent,
		      "linger {1,-1}: the peer got %llu of %llu bytes, then %s (expected EOF)",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ errno in what-if mode */

/* The re-executed image ("--what-if-listener"), with what-if mode and a
 * trace: a successful close() of a listener leaves errno as it was. */
static int what_if_listener(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0); /* no ck_assert: not a Check test */
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4) != 0)
		return 10;
	errno = SH_ERRNO_SENTINEL;
	int rc = close(fd);
	if (rc != 0)
		return 11;
	return errno == SH_ERRNO_SENTINEL ? 0 : 1;
}

START_TEST(what_if_close_keeps_errno)
{
	char *argv[] = { "test_caller_close", "--what-if-listener", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		setenv("WSPCLOSE_PASSTHROUGH", "1", 1);
		setenv("WSPCLOSE_TRACE", "/dev/null", 1);
		execve("/proc/self/exe", argv, environ);
		_exit(127);
	}
	ck_assert(pid > 0);
	int status = 0;
	ck_assert(sh_wait_pid(pid, 10000, &status));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "what-if mode, traced: close() of a listener (exit 1: errno changed by a successful close; 1x: setup): status 0x%x",
		      status);
}
END_TEST

static Suite *caller_close_suite(void)
{
	Suite *s = suite_create("caller_close");
	TCase *now = tcase_create("nothing_to_tear_down");
	tcase_add_test(now, closed_listener_refuses_connections_at_once);
	tcase_add_test(now, dissolved_connection_frees_its_port_at_once);
	tcase_add_loop_test(now, closed_socket_port_can_be_bound_at_once, 0, 2);
	suite_add_tcase(s, now);
	TCase *kernel = tcase_create("kernel_results");
	tcase_add_test(kernel, dup2_the_kernel_fails_leaves_the_target_alone);
	tcase_add_test(kernel, dup3_the_kernel_fails_sends_no_fin);
	tcase_add_loop_test(kernel, refused_close_range_closes_nothing_and_closefrom_still_closes, 0, 2);
	tcase_add_test(kernel, epoll_set_on_a_reused_socket_number_is_known);
	tcase_add_test(kernel, negative_linger_is_the_longest_linger_not_an_abort);
	tcase_add_test(kernel, what_if_close_keeps_errno);
	suite_add_tcase(s, kernel);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--what-if-listener") == 0)
		return what_if_listener();
	SRunner *sr = srunner_create(caller_close_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
