/* test_fork_exec.c: §3 after fork() and exec: no held copy is inherited
 * or survives exec, the child's reaper starts anew, fork never deadlocks. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

extern char **environ;

#define CHILD_MS 10000

/* sh_held_case, and where its copy is held. */
struct held_case {
	struct sh_held_case held;
	int held_fd;
};

static void start_held_case(struct held_case *hc)
{
	ck_assert(sh_held_case_start(&hc->held) == 0);
	hc->held_fd = lb_find_socket_fd(hc->held.inode, SH_HELD_MIN_FD);
	ck_assert_msg(hc->held_fd >= 0,
		      "G1 close with data pending: no copy of socket:[%lu] is held at >= %d",
		      (unsigned long)hc->held.inode, SH_HELD_MIN_FD);
}

static void finish_held_case(struct held_case *hc, const char *after)
{
	char why[256];

	ck_assert_msg(lb_find_socket_fd(hc->held.inode, SH_HELD_MIN_FD) >= 0,
		      "%s: the parent's held copy is gone before its peer read anything", after);
	ck_assert_msg(sh_held_case_finish(&hc->held, why, sizeof why), "%s: the parent's %s",
		      after, why);
}

/* ------------------------------------------------------ fork */

static void child_has_no_held_copies(void *p)
{
	ino_t inode = *(ino_t *)p;
	int fds[512];
	char link[128];
	int n = sh_list_fds(fds, 512);

	SH_REQUIRE(lb_find_socket_fd(inode, 0) < 0,
		   "the forked child has fd %d on the parent's held socket:[%lu]",
		   lb_find_socket_fd(inode, 0), (unsigned long)inode);
	for (int i = 0; i < n; i++) {
		sh_fd_link(fds[i], link, sizeof(link));
		SH_REQUIRE(fds[i] < SH_HELD_MIN_FD,
			   "the forked child inherited fd %d (%s) from the library", fds[i], link);
	}
}

START_TEST(forked_child_inherits_no_held_copy)
{
	struct held_case hc;
	char why[1024];

	start_held_case(&hc);
	ck_assert_msg(sh_run_in_child(child_has_no_held_copies, &hc.held.inode, CHILD_MS, why, sizeof(why)),
		      "%s", why);
	finish_held_case(&hc, "after the child exited");
}
END_TEST

static void child_checks_rows(void *unused)
{
	char why[512];

	(void)unused;
	SH_REQUIRE(sh_check_rows(why, sizeof(why)), "in the forked child: %s", why);
}

/* The parent's reaper thread does not exist in the child: the child's own
 * connections get the rows from a reaper of its own. */
START_TEST(forked_child_gets_the_rows_from_its_own_reaper)
{
	struct held_case hc;
	char why[1024];

	start_held_case(&hc);
	ck_assert_msg(sh_run_in_child(child_checks_rows, NULL, CHILD_MS, why, sizeof(why)), "%s", why);
	finish_held_case(&hc, "after the child's own closes");
}
END_TEST

/* ------------------------------------------------------ exec */

/* Runs `ls -l /proc/self/fd` through `how` (0: posix_spawn, 1: vfork +
 * execve, 2: fork + execve) with its output in a temporary file; returns
 * the file's text in buf. */
static void list_fds_of_an_exec(int how, char *buf, size_t len)
{
	char path[] = "/tmp/wspclose-fork-exec-XXXXXX";
	char command[256];
	int out = mkstemp(path);

	ck_assert(out >= 0);
	close(out);
	snprintf(command, sizeof(command), "exec ls -l /proc/self/fd > %s", path);
	char *argv[] = { "sh", "-c", command, NULL };
	pid_t pid = -1;
	int status = 0;

	if (how == 0) {
		ck_assert(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0);
	} else {
		pid = how == 1 ? vfork() : fork();
		if (pid == 0) {
			execve("/bin/sh", argv, environ);
			_exit(127);
		}
		ck_assert(pid > 0);
	}
	bool ended = sh_wait_pid(pid, CHILD_MS, &status);

	if (!ended) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ck_assert_msg(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "ls -l /proc/self/fd failed (status 0x%x)", status);
	FILE *f = fopen(path, "re");

	ck_assert(f != NULL);
	size_t n = fread(buf, 1, len - 1, f);

	buf[n] = '\0';
	fclose(f);
	unlink(path);
}

static const char *const exec_ways[] = { "posix_spawn()", "vfork() + execve()", "fork() + execve()" };

/* Loop 0..2 (posix_spawn, vfork, fork): held copies are O_CLOEXEC, so no
 * exec'd program ever sees one, even where no fork handler runs. */
START_TEST(held_copies_are_cloexec_and_never_survive_exec)
{
	struct held_case hc;
	char listing[16384], want[64];

	start_held_case(&hc);
	int flags = lb_fdinfo_flags(hc.held_fd);

	ck_assert_msg(flags >= 0 && (flags & O_CLOEXEC),
		      "the held copy fd %d has flags 0%o: no O_CLOEXEC", hc.held_fd, flags);
	list_fds_of_an_exec(_i, listing, sizeof(listing));
	snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)hc.held.inode);
	ck_assert_msg(strstr(listing, want) == NULL,
		      "a program exec'd through %s has the held %s open:\n%s", exec_ways[_i], want, listing);
	for (char *line = strtok(listing, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char *arrow = strstr(line, " -> ");

		if (arrow == NULL)
			continue;
		char *start = arrow;

		while (start > line && start[-1] != ' ')
			start--;
		ck_assert_msg(atoi(start) < SH_HELD_MIN_FD,
			      "a program exec'd through %s has fd %d open: %s", exec_ways[_i],
			      atoi(start), line);
	}
	finish_held_case(&hc, "after the exec");
}
END_TEST

/* The exec'd image (this program again, "--inherited-epoll FD READY"):
 * the inherited socket FD is shared with the parent, so its close has
 * kernel semantics and changes nothing but the descriptor (§4): the epoll
 * set keeps the registration of the closed number, as on Linux, and the
 * dup keeps getting events. Exit 0 on success. */
static int scenario_inherited_epoll(int fd, int ready_fd)
{
	struct epoll_event ev = { .events = EPOLLIN }, events[8];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int other = dup(fd);

	if (ep < 0 || other < 0)
		return 10;
	ev.data.fd = fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		return 11;
	ev.data.fd = other;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, other, &ev) != 0)
		return 12;
	if (close(fd) != 0)
		return 13;
	if (write(ready_fd, "r", 1) != 1)
		return 14;
	bool saw_other = false;
	int64_t deadline = lb_now_ms() + 3000;

	while (!saw_other && lb_now_ms() < deadline) {
		int n = epoll_wait(ep, events, 8, 500);

		for (int i = 0; i < n; i++)
			saw_other |= events[i].data.fd == other;
	}
	if (!sh_epoll_lists_fd(ep, fd))
		return 2; /* the library edited the epoll set */
	return saw_other ? 0 : 3;
}

/* A socket inherited across exec is another process's too: its close in the
 * exec'd program leaves every epoll set alone (§4). */
START_TEST(socket_inherited_across_exec_leaves_epoll_sets_alone)
{
	struct lb_pair pair;
	char fd_arg[16], ready_arg[16];
	int ready[2], status = 0;

	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	ck_assert(pipe(ready) == 0);
	snprintf(fd_arg, sizeof(fd_arg), "%d", pair.client);
	snprintf(ready_arg, sizeof(ready_arg), "%d", ready[1]);
	pid_t pid = fork();

	ck_assert(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "test_fork_exec", "--inherited-epoll", fd_arg, ready_arg, NULL };

		close(ready[0]);
		execve("/proc/self/exe", argv, environ);
		_exit(127);
	}
	close(ready[1]);
	char c;

	ck_assert_msg(lb_poll(ready[0], POLLIN, CHILD_MS) > 0 && read(ready[0], &c, 1) == 1,
		      "the exec'd program never got ready");
	ck_assert(send(pair.peer, "data", 4, MSG_NOSIGNAL) == 4);
	bool ended = sh_wait_pid(pid, CHILD_MS, &status);

	if (!ended) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ck_assert_msg(ended && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the exec'd program with the inherited socket: status 0x%x (exit 2: /proc fdinfo no longer lists the closed number: the library edited the set; 3: no event for the dup; 1x: setup)",
		      status);
	close(ready[0]);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ fork under load */

#define CLOSER_THREADS 4
#define FORKS 50

struct closer_stats {
	_Atomic bool stop;
	_Atomic int started;
	_Atomic long closes;
	_Atomic long close_failures;
	_Atomic int last_errno;
};

static void *closer_main(void *arg)
{
	struct closer_stats *st = arg;

	atomic_fetch_add(&st->started, 1);
	while (!atomic_load(&st->stop)) {
		struct lb_pair pair;
		struct lb_drain_result r;
		uint64_t sent = 0;

		if (lb_pair_open(&pair, AF_INET, 0, 0) < 0)
			continue;
		lb_send_pattern(pair.client, &sent, 16384);
		int rc = close(pair.client);

		if (rc != 0) {
			atomic_fetch_add(&st->close_failures, 1);
			atomic_store(&st->last_errno, errno);
		}
		atomic_fetch_add(&st->closes, 1);
		pair.client = -1;
		/* The peer's outcome is not checked: a forked child may hold
		 * the last reference of this socket for a moment. */
		sh_drain_inline(pair.peer, 0, 2000, &r);
		lb_pair_close(&pair);
	}
	return NULL;
}

/* The forked child of a busy threaded parent: no copy of the parent's is
 * left open, its inherited sockets close normally, and a connection of
 * its own gets G1 from its own reaper. */
static void child_after_busy_fork(void)
{
	int fds[1024];
	char link[128];
	int n = sh_list_fds(fds, 1024);

	for (int i = 0; i < n; i++) {
		if (sh_fd_link(fds[i], link, sizeof(link)) < 0 || strncmp(link, "socket:", 7) != 0)
			continue;
		SH_REQUIRE(fds[i] < SH_HELD_MIN_FD,
			   "the child inherited the library's fd %d (%s)", fds[i], link);
		errno = 0;
		int rc = close(fds[i]);

		SH_REQUIRE(rc == 0, "close(%d) of an inherited socket in the child: %d, errno %d (%s), fd %s",
			   fds[i], rc, errno, strerror(errno),
			   sh_fd_is_open(fds[i]) ? "STILL OPEN" : "closed");
	}
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	SH_REQUIRE(lb_pair_open(&pair, AF_INET, 0, 0) == 0, "child: pair: %s", strerror(errno));
	SH_REQUIRE(lb_send_pattern(pair.client, &sent, 20000) == 0, "child: send");
	SH_REQUIRE(close(pair.client) == 0, "child: G1 close: %s", strerror(errno));
	pair.client = -1;
	sh_drain_inline(pair.peer, 0, SH_DRAIN_MS, &r);
	SH_REQUIRE(r.end == LB_END_EOF && r.bytes == sent,
		   "child: G1: the peer got %llu of %llu bytes, then %s", (unsigned long long)r.bytes,
		   (unsigned long long)sent, lb_end_name(r.end));
}

static void child_after_busy_fork_main(void *unused)
{
	(void)unused;
	child_after_busy_fork();
}

START_TEST(fork_while_threads_close_and_reaper_is_busy_never_deadlocks)
{
	struct closer_stats st = { 0 };
	pthread_t threads[CLOSER_THREADS];
	struct lb_pair warm;
	char why[1024];
	int failed_children = 0;
	char first_failure[1100] = "";

	alarm(25); /* the last resort against a deadlock: SIGALRM kills the test */
	ck_assert(lb_pair_open(&warm, AF_INET, 0, 0) == 0); /* starts the reaper */
	lb_pair_close(&warm);
	for (int i = 0; i < CLOSER_THREADS; i++)
		ck_assert(pthread_create(&threads[i], NULL, closer_main, &st) == 0);
	/* Every closer past its start-up first: a fork() while a thread is
	 * still being created can leave the child a lock of the sanitizer
	 * runtime (its allocator's, its thread registry's) that the new thread
	 * held, and then the child's own reaper can never start (GCC 12's
	 * libasan takes none of its locks around fork()). Busy closers are
	 * what this test is about, not threads being created. */
	while (atomic_load(&st.started) < CLOSER_THREADS || atomic_load(&st.closes) < 20)
		sched_yield();

	for (int i = 0; i < FORKS; i++) {
		bool ok = sh_run_in_child(child_after_busy_fork_main, NULL, 5000, why, sizeof(why));

		if (!ok && failed_children++ == 0)
			snprintf(first_failure, sizeof(first_failure), "fork %d: %s", i, why);
	}
	atomic_store(&st.stop, true);
	for (int i = 0; i < CLOSER_THREADS; i++)
		pthread_join(threads[i], NULL);
	alarm(0);
	ck_assert_msg(failed_children == 0, "%d of %d forked children failed; first: %s",
		      failed_children, FORKS, first_failure);
	ck_assert_msg(atomic_load(&st.close_failures) == 0,
		      "%ld of %ld G1 closes in the parent's threads failed (last errno %d)",
		      atomic_load(&st.close_failures), atomic_load(&st.closes),
		      atomic_load(&st.last_errno));
	fprintf(stderr, "fork under load: %d forks while %ld closes ran\n", FORKS,
		atomic_load(&st.closes));
}
END_TEST

static Suite *fork_exec_suite(void)
{
	Suite *s = suite_create("fork_exec");
	TCase *fork_case = tcase_create("fork");
	TCase *exec_case = tcase_create("exec");

	tcase_add_test(fork_case, forked_child_inherits_no_held_copy);
	tcase_add_test(fork_case, forked_child_gets_the_rows_from_its_own_reaper);
	tcase_add_test(fork_case, fork_while_threads_close_and_reaper_is_busy_never_deadlocks);
	tcase_set_timeout(fork_case, 30);
	suite_add_tcase(s, fork_case);

	tcase_add_loop_test(exec_case, held_copies_are_cloexec_and_never_survive_exec, 0, 3);
	tcase_add_test(exec_case, socket_inherited_across_exec_leaves_epoll_sets_alone);
	tcase_set_timeout(exec_case, 30);
	suite_add_tcase(s, exec_case);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--inherited-epoll") == 0)
		return scenario_inherited_epoll(atoi(argv[2]), atoi(argv[3]));

	SRunner *sr = srunner_create(fork_exec_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
