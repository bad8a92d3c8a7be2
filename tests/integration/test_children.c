/* test_children.c: §3/§4 for children: a vfork() child runs on the parent's
 * memory and must find the library inert (its close_range() before exec is
 * the kernel's, the parent's sockets and reaper untouched); a socket a
 * vfork()+exec child inherits is shared from then on; a fork() child's
 * close never edits the parent's epoll set. Each case passes on plain
 * Linux too. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

extern char **environ;

#define CHILD_MS 10000

static void open_pair(struct lb_pair *pair)
{
	ck_assert_msg(lb_pair_open(pair, AF_INET, 0, 0) == 0, "cannot connect a loopback pair: %s",
		      strerror(errno));
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static void wait_child(pid_t pid, const char *what)
{
	int status = 0;
	bool ended = sh_wait_pid(pid, CHILD_MS, &status);
	if (!ended) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ck_assert_msg(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "%s: child status 0x%x", what, status);
}

/* ------------------------------------------------------ vfork, no exec */

/* The parent's AF_UNIX pair, TCP pair and reaper after a vfork() child
 * closed every descriptor with close_range() and exited: what CPython's
 * subprocess child does before exec. */
START_TEST(vfork_child_close_range_leaves_the_parent_alone)
{
	int unix_pair[2];
	struct lb_pair tcp;
	ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, unix_pair) == 0);
	open_pair(&tcp);
	/* A G1 close before the vfork: the reaper and its channel exist. */
	struct lb_pair warm;
	open_pair(&warm);
	ino_t warm_inode = lb_socket_inode(warm.client);
	ck_assert(close(warm.client) == 0);
	warm.client = -1;
	/* Counted once its held copy is released (the FIN is acknowledged). */
	ck_assert(lb_wait_socket_gone(warm_inode, SH_HELD_MIN_FD, SH_DRAIN_MS));
	int fds_before = lb_count_app_fds();

	pid_t pid = vfork();
	if (pid == 0) {
		close_range(3, ~0U, 0);
		_exit(0);
	}
	ck_assert_msg(pid > 0, "vfork: %s", strerror(errno));
	wait_child(pid, "vfork child with close_range(3, ~0U)");

	ck_assert_msg(send(unix_pair[0], "x", 1, MSG_NOSIGNAL) == 1,
		      "the parent's AF_UNIX socket after the vfork child: send: %s (shut down by the child's close_range)",
		      strerror(errno));
	ck_assert_int_eq(lb_count_app_fds(), fds_before);
	/* The reaper still works: a graceful close reaches the peer. */
	uint64_t offset = 0;
	ck_assert(lb_send_pattern(tcp.client, &offset, 1000) == 0);
	ck_assert(close(tcp.client) == 0);
	tcp.client = -1;
	struct lb_drain_result r;
	lb_drain_now(tcp.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == offset,
		      "graceful close after the vfork child: the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)offset, lb_end_name(r.end));
	/* And it sleeps: no spinning on a channel the child disturbed. */
	double cpu = cpu_seconds();
	sh_sleep_ms(1000);
	cpu = cpu_seconds() - cpu;
	ck_assert_msg(cpu < 0.3, "the process used %.2f s of CPU during 1 s of sleep", cpu);
	close(unix_pair[0]);
	close(unix_pair[1]);
	lb_pair_close(&warm);
	lb_pair_close(&tcp);
}
END_TEST

/* ------------------------------------------------------ vfork + exec */

/* The exec'd image ("--inherited-writer FD GO"): waits until the parent
 * closed its copy, then writes "hello" on the inherited socket. */
static int inherited_writer(int fd, int go)
{
	char c;
	if (read(go, &c, 1) != 1)
		return 10;
	if (send(fd, "hello", 5, MSG_NOSIGNAL) != 5)
		return 11;
	return close(fd) == 0 ? 0 : 12;
}

/* Loop 0..1: the socket has no FD_CLOEXEC at the vfork (i = 0), or has it
 * and the child clears it before exec with fcntl(F_SETFD, 0) (i = 1: how
 * CPython's subprocess passes pass_fds). Either way the child keeps it, so
 * the parent's close of its own copy must be the kernel's: not a shutdown. */
START_TEST(socket_inherited_by_vfork_exec_child_is_shared)
{
	bool cleared_in_child = _i == 1;
	struct lb_pair pair;
	int go[2];
	open_pair(&pair);
	ck_assert(pipe2(go, O_CLOEXEC) == 0);
	if (cleared_in_child)
		ck_assert(fcntl(pair.client, F_SETFD, FD_CLOEXEC) == 0);
	char fd_arg[16], go_arg[16];
	snprintf(fd_arg, sizeof fd_arg, "%d", pair.client);
	snprintf(go_arg, sizeof go_arg, "%d", go[0]);
	char *argv[] = { "test_children", "--inherited-writer", fd_arg, go_arg, NULL };

	pid_t pid = vfork();
	if (pid == 0) {
		fcntl(go[0], F_SETFD, 0);
		if (cleared_in_child)
			fcntl(atoi(fd_arg), F_SETFD, 0);
		execve("/proc/self/exe", argv, environ);
		_exit(127);
	}
	ck_assert_msg(pid > 0, "vfork: %s", strerror(errno));
	ck_assert(close(pair.client) == 0);
	pair.client = -1;
	ck_assert(write(go[1], "g", 1) == 1);
	wait_child(pid, "the exec'd writer");
	char buf[16];
	ssize_t n = lb_poll(pair.peer, POLLIN, SH_DRAIN_MS) > 0 ? recv(pair.peer, buf, sizeof buf, 0) : -1;
	ck_assert_msg(n == 5 && memcmp(buf, "hello", 5) == 0,
		      "the peer read %zd bytes from the child (%s): the parent's close cut the child off",
		      n, n < 0 ? strerror(errno) : "");
	close(go[0]);
	close(go[1]);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ fork and epoll */

/* A fork() child closes its inherited copy of the parent's listener: the
 * parent's epoll set (the same kernel object) keeps the registration. */
START_TEST(fork_child_close_leaves_the_parents_epoll_set)
{
	struct lb_pair pair;
	open_pair(&pair);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert(ep >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = pair.listener };
	ck_assert(epoll_ctl(ep, EPOLL_CTL_ADD, pair.listener, &ev) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pair.listener);
		_exit(0);
	}
	ck_assert(pid > 0);
	wait_child(pid, "fork child closing the listener");
	ck_assert_msg(sh_epoll_lists_fd(ep, pair.listener),
		      "the child's close removed the listener from the parent's epoll set");
	struct sockaddr_storage addr;
	socklen_t len = sizeof addr;
	ck_assert(getsockname(pair.listener, (struct sockaddr *)&addr, &len) == 0);
	int client = sh_connect(&addr, len, 0);
	ck_assert(client >= 0);
	struct epoll_event got;
	int n = epoll_wait(ep, &got, 1, 2000);
	ck_assert_msg(n == 1 && got.data.fd == pair.listener,
		      "the parent's epoll_wait for its listener: %d event(s)", n);
	close(client);
	close(ep);
	lb_pair_close(&pair);
}
END_TEST

static Suite *children_suite(void)
{
	Suite *s = suite_create("children");
	TCase *vforked = tcase_create("vfork");
	tcase_set_timeout(vforked, 60);
	tcase_add_test(vforked, vfork_child_close_range_leaves_the_parent_alone);
	tcase_add_loop_test(vforked, socket_inherited_by_vfork_exec_child_is_shared, 0, 2);
	suite_add_tcase(s, vforked);
	TCase *forked = tcase_create("fork");
	tcase_add_test(forked, fork_child_close_leaves_the_parents_epoll_set);
	suite_add_tcase(s, forked);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--inherited-writer") == 0)
		return inherited_writer(atoi(argv[2]), atoi(argv[3]));
	SRunner *sr = srunner_create(children_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
