/* test_held_copies.c: §3: the held copy the library keeps on a closed
 * TCP socket, its release, and its limits (WSPCLOSE_GRACE_MS, _MAX_HELD). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

/* Where §3 puts held copies (RLIMIT_NOFILE is far above it here). */
#define HELD_MIN_FD 1024
/* Generous bound for "released within max(10 ms, 1 RTT)". */
#define RELEASE_MS 2000
#define QUICK_MS 500
#define DRAIN_TIMEOUT_MS 5000
#define ERRNO_SENTINEL EDOM

extern char **environ;

/* ------------------------------------------------------ a held G1 close */

struct held_case {
	struct lb_pair pair;
	uint64_t sent;      /* bytes queued on the closed socket */
	ino_t inode;        /* its socket inode */
	int closed_fd;      /* the number the application closed */
	int held_fd;        /* the library's copy */
	int baseline;       /* lb_count_app_fds() before the case started */
};

/* A G1 close with the send queue full (peer not reading): the library must
 * keep a copy to finish the teardown. */
static void start_held_case(struct held_case *hc)
{
	char fds[2048];
	uint64_t offset = 0;

	hc->baseline = lb_count_app_fds();
	ck_assert_msg(lb_pair_open_small(&hc->pair, AF_INET) == 0,
		      "cannot connect a loopback pair: %s", strerror(errno));
	ck_assert(lb_fill_send_queue(hc->pair.client, &offset) > 0);
	ck_assert(lb_outq(hc->pair.client) > 0);
	hc->sent = offset;
	hc->inode = lb_socket_inode(hc->pair.client);
	ck_assert(hc->inode != 0);
	hc->closed_fd = hc->pair.client;

	int64_t start = lb_now_ms();

	errno = ERRNO_SENTINEL;
	int rc = close(hc->closed_fd);
	int err = errno;
	int64_t took = lb_now_ms() - start;

	hc->pair.client = -1;
	ck_assert_msg(rc == 0 && err == ERRNO_SENTINEL,
		      "G1 close() returned %d, errno %d (%s)", rc, err, strerror(err));
	ck_assert_msg(took < QUICK_MS, "G1 close() took %lld ms", (long long)took);

	hc->held_fd = lb_find_socket_fd(hc->inode, HELD_MIN_FD);
	lb_describe_fds(fds, sizeof(fds));
	ck_assert_msg(hc->held_fd >= 0,
		      "after a G1 close with data pending, no descriptor >= %d refers to socket:[%lu]: nothing is held (open: %s)",
		      HELD_MIN_FD, (unsigned long)hc->inode, fds);
}

/* The peer reads everything: every byte then EOF; the copy is released
 * soon after, and the process is back to its baseline (the reaper's own
 * event descriptors aside: idle_process_holds_only_app_descriptors owns
 * that question). */
static void finish_held_case(struct held_case *hc)
{
	struct lb_drain_result r;
	char fds[2048];

	lb_drain_now(hc->pair.peer, DRAIN_TIMEOUT_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == hc->sent && r.pattern_ok,
		      "held close: the peer got %llu of %llu bytes (pattern %s), then %s",
		      (unsigned long long)r.bytes, (unsigned long long)hc->sent,
		      r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));

	bool gone = lb_wait_socket_gone(hc->inode, HELD_MIN_FD, RELEASE_MS);
	int64_t after_eof = lb_now_ms() - r.end_ms;

	ck_assert_msg(gone,
		      "the held copy of socket:[%lu] is still open %lld ms after the peer read everything (FIN acknowledged)",
		      (unsigned long)hc->inode, (long long)after_eof);

	lb_pair_close(&hc->pair);
	int count = lb_wait_app_fd_count(hc->baseline, RELEASE_MS);

	lb_describe_fds(fds, sizeof(fds));
	ck_assert_msg(count == hc->baseline,
		      "after every teardown finished the process has %d descriptors, %d before the test: %s",
		      count, hc->baseline, fds);
	ck_assert_int_eq(lb_count_socket_fds_from(HELD_MIN_FD), 0);
}

START_TEST(held_copy_is_high_and_cloexec)
{
	struct held_case hc;

	start_held_case(&hc);
	ck_assert_msg(hc.held_fd >= HELD_MIN_FD, "held copy at fd %d", hc.held_fd);
	/* Read from /proc: the copy is the library's, not ours to fcntl(). */
	int flags = lb_fdinfo_flags(hc.held_fd);

	ck_assert_msg(flags >= 0 && (flags & O_CLOEXEC),
		      "held copy fd %d has flags 0%o: no O_CLOEXEC", hc.held_fd, flags);
	finish_held_case(&hc);
}
END_TEST

/* The number the application closed is free at once: socket() gets it. */
START_TEST(closed_number_is_free_at_once)
{
	struct held_case hc;

	start_held_case(&hc);
	/* Only meaningful if every lower number is in use. */
	for (int lower = 0; lower < hc.closed_fd; lower++)
		ck_assert_msg(lb_fdinfo_flags(lower) >= 0,
			      "test setup: fd %d below the closed fd %d is free",
			      lower, hc.closed_fd);

	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_msg(fd == hc.closed_fd,
		      "socket() after close(%d) returned %d: the closed number is not free",
		      hc.closed_fd, fd);
	close(fd);
	finish_held_case(&hc);
}
END_TEST

START_TEST(held_copy_released_once_peer_reads_all)
{
	struct held_case hc;

	start_held_case(&hc);
	/* 300 ms in which the peer does not read: no FIN can be sent, so the
	 * copy must stay (the grace time is 60 s). */
	int rev = lb_poll(hc.pair.peer, POLLRDHUP, 300);

	ck_assert_msg(rev >= 0 && (rev & (POLLRDHUP | POLLHUP | POLLERR)) == 0,
		      "the peer saw the end of the stream before reading the data (revents 0x%x)", rev);
	ck_assert_msg(lb_find_socket_fd(hc.inode, HELD_MIN_FD) == hc.held_fd,
		      "the held copy went away while the peer was not reading");
	finish_held_case(&hc);
}
END_TEST

/* §1: a descriptor the library owns is not open for the application. */
START_TEST(closing_the_held_copy_number_is_ebadf)
{
	struct held_case hc;

	start_held_case(&hc);
	errno = 0;
	int rc = close(hc.held_fd);
	int err = errno;

	ck_assert_msg(rc == -1 && err == EBADF,
		      "close(%d) on the library's held copy returned %d (errno %d, %s), expected -1/EBADF",
		      hc.held_fd, rc, err, strerror(err));
	ck_assert_msg(lb_find_socket_fd(hc.inode, HELD_MIN_FD) == hc.held_fd,
		      "the application's close() closed the library's held copy");
	finish_held_case(&hc);
}
END_TEST

/* ------------------------------------------------------- nothing if idle */

struct thread_switches {
	int tid;
	long switches;   /* voluntary + involuntary context switches */
};

/* Context switches of every thread but the caller (the reaper, if any). */
static int sample_other_threads(struct thread_switches *out, int max)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	if (dir == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL && n < max) {
		int tid = atoi(de->d_name);

		if (tid <= 0 || tid == gettid())
			continue;
		char path[96], line[128];

		snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
		FILE *f = fopen(path, "re");

		if (f == NULL)
			continue;
		out[n].tid = tid;
		out[n].switches = 0;
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
				out[n].switches += atol(line + 24);
			else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
				out[n].switches += atol(line + 27);
		}
		fclose(f);
		n++;
	}
	closedir(dir);
	return n;
}

/* A few ordinary graceful closes that finish quickly. */
static void run_quick_graceful_closes(void)
{
	for (int i = 0; i < 3; i++) {
		struct lb_pair pair;
		struct lb_drain_result r;
		uint64_t sent = 0;

		ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
		ck_assert(lb_send_pattern(pair.client, &sent, 20000) == 0);
		ck_assert_int_eq(close(pair.client), 0);
		pair.client = -1;
		lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
		ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent && r.pattern_ok,
			      "graceful close %d: the peer got %llu of %llu bytes, then %s",
			      i, (unsigned long long)r.bytes, (unsigned long long)sent,
			      lb_end_name(r.end));
		lb_pair_close(&pair);
	}
}

/* §6: the channel may outlive the last teardown by one second, and an idle
 * process closes it with one timed wake-up; after that no thread of the
 * library wakes up at all. */
START_TEST(nothing_held_and_no_wakeups_while_idle)
{
	char fds[2048];
	int baseline = lb_count_app_fds();
	int all_before = lb_count_fds();

	run_quick_graceful_closes();
	int count = lb_wait_app_fd_count(baseline, RELEASE_MS);

	lb_describe_fds(fds, sizeof(fds));
	ck_assert_msg(count == baseline,
		      "idle after all teardowns: %d descriptors open (reaper event fds not counted), %d before: %s",
		      count, baseline, fds);
	ck_assert_int_eq(lb_count_socket_fds_from(HELD_MIN_FD), 0);
	int64_t idle = lb_now_ms();
	int all = lb_wait_fd_count(all_before, RELEASE_MS);
	int64_t lingered = lb_now_ms() - idle;
	lb_describe_fds(fds, sizeof(fds));
	ck_assert_msg(all <= all_before && lingered <= 1500,
		      "the reaper's channel was still open %lld ms after the last teardown (%d descriptors, %d before): %s",
		      (long long)lingered, all, all_before, fds);

	/* The reaper's last step after closing the channel is to go to sleep
	 * (one voluntary switch, microseconds later): let it get there, then
	 * count. */
	struct timespec settle = { 0, 50 * 1000 * 1000 };
	while (nanosleep(&settle, &settle) == -1 && errno == EINTR)
		;

	/* Nothing is held: no thread of the library may wake up. The sleep is
	 * the measurement window, not a synchronisation. */
	struct thread_switches before[32], after[32];
	int nb = sample_other_threads(before, 32);
	struct timespec window = { 1, 0 };

	while (nanosleep(&window, &window) == -1 && errno == EINTR)
		;
	int na = sample_other_threads(after, 32);

	for (int i = 0; i < nb; i++) {
		for (int j = 0; j < na; j++) {
			if (before[i].tid != after[j].tid)
				continue;
			ck_assert_msg(after[j].switches == before[i].switches,
				      "thread %d woke up %ld times in 1 s while nothing was held",
				      before[i].tid, after[j].switches - before[i].switches);
		}
	}
}
END_TEST

/* §6, read literally: "once all teardowns finish, the process holds
 * exactly the descriptors the app holds", so not even the reaper's own
 * epoll/eventfd stay open while nothing is held. */
START_TEST(idle_process_holds_only_app_descriptors)
{
	char fds[2048];
	int baseline = lb_count_fds();

	run_quick_graceful_closes();
	int count = lb_wait_fd_count(baseline, RELEASE_MS);

	lb_describe_fds(fds, sizeof(fds));
	ck_assert_msg(count == baseline,
		      "idle after all teardowns: %d descriptors open, the application holds %d: %s",
		      count, baseline, fds);
}
END_TEST

/* ------------------------------------------- scenarios in a fresh process */

/* The library reads WSPCLOSE_* once at load, so these run in a child
 * started with execve("/proc/self/exe", "--scenario NAME") and the setting
 * in its environment (LD_PRELOAD is inherited). The child prints one line
 * and exits 0 on success. */

static void scenario_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(1);
}

static void scenario_open_full(struct lb_pair *pair, uint64_t *sent, ino_t *inode)
{
	*sent = 0;
	if (lb_pair_open_small(pair, AF_INET) < 0)
		scenario_fail("cannot connect a loopback pair: %s", strerror(errno));
	if (lb_fill_send_queue(pair->client, sent) <= 0 || lb_outq(pair->client) <= 0)
		scenario_fail("could not fill the send queue");
	*inode = lb_socket_inode(pair->client);
}

static void scenario_close_g1(struct lb_pair *pair, const char *what)
{
	int64_t start = lb_now_ms();

	errno = ERRNO_SENTINEL;
	int rc = close(pair->client);
	int err = errno;
	int64_t took = lb_now_ms() - start;

	pair->client = -1;
	if (rc != 0 || err != ERRNO_SENTINEL)
		scenario_fail("%s: close() returned %d, errno %d (%s)", what, rc, err,
			      strerror(err));
	if (took >= QUICK_MS)
		scenario_fail("%s: close() took %lld ms", what, (long long)took);
}

static void scenario_back_to_baseline(int baseline)
{
	char fds[2048];
	int count = lb_wait_app_fd_count(baseline, RELEASE_MS);

	if (count != baseline) {
		lb_describe_fds(fds, sizeof(fds));
		scenario_fail("%d descriptors open after every teardown, %d before: %s",
			      count, baseline, fds);
	}
}

/* WSPCLOSE_GRACE_MS=500: a held socket whose peer never reads is reset and
 * released after about 0.5 s. */
static int scenario_grace(void)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent;
	ino_t inode;
	int baseline = lb_count_app_fds();

	scenario_open_full(&pair, &sent, &inode);
	int64_t closed_at = lb_now_ms();

	scenario_close_g1(&pair, "G1 close");
	if (lb_find_socket_fd(inode, HELD_MIN_FD) < 0)
		scenario_fail("no held copy of socket:[%lu] after the G1 close",
			      (unsigned long)inode);

	int rev = lb_poll(pair.peer, 0, 4000);
	int64_t reset_after = lb_now_ms() - closed_at;

	if (!(rev > 0 && (rev & (POLLERR | POLLHUP))))
		scenario_fail("the peer (never reading) was not reset within 4 s (revents 0x%x)", rev);
	if (reset_after < 300 || reset_after > 3000)
		scenario_fail("the peer was reset %lld ms after close(); expected about 500 ms (0.3 .. 3 s)",
			      (long long)reset_after);
	if (!lb_wait_socket_gone(inode, HELD_MIN_FD, 1000))
		scenario_fail("the held copy is still open 1 s after the grace-timeout reset");
	int64_t released_after = lb_now_ms() - closed_at;

	lb_drain_now(pair.peer, DRAIN_TIMEOUT_MS, &r);
	if (r.end != LB_END_RESET)
		scenario_fail("the peer's stream ended with %s, expected ECONNRESET",
			      lb_end_name(r.end));
	lb_pair_close(&pair);
	scenario_back_to_baseline(baseline);
	printf("OK: reset after %lld ms, released after %lld ms\n",
	       (long long)reset_after, (long long)released_after);
	return 0;
}

static void scenario_drain_all(struct lb_pair *pair, uint64_t sent, const char *what)
{
	struct lb_drain_result r;

	lb_drain_now(pair->peer, DRAIN_TIMEOUT_MS, &r);
	if (r.end != LB_END_EOF || r.bytes != sent || !r.pattern_ok)
		scenario_fail("%s: the peer got %llu of %llu bytes (pattern %s), then %s",
			      what, (unsigned long long)r.bytes, (unsigned long long)sent,
			      r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
}

/* WSPCLOSE_MAX_HELD=1: the second close cannot be held; it still succeeds
 * and degrades to the kernel's graceful close. */
static int scenario_max_held(void)
{
	struct lb_pair first, second;
	uint64_t sent1, sent2;
	ino_t inode1, inode2;
	int baseline = lb_count_app_fds();

	scenario_open_full(&first, &sent1, &inode1);
	scenario_open_full(&second, &sent2, &inode2);
	scenario_close_g1(&first, "first G1 close");
	scenario_close_g1(&second, "second G1 close (limit reached)");

	int held = lb_count_socket_fds_from(HELD_MIN_FD);

	if (lb_find_socket_fd(inode1, HELD_MIN_FD) < 0)
		scenario_fail("the first close is not held");
	if (lb_find_socket_fd(inode2, HELD_MIN_FD) >= 0)
		scenario_fail("the second close is held too, beyond WSPCLOSE_MAX_HELD=1");
	if (held != 1)
		scenario_fail("%d copies are held, WSPCLOSE_MAX_HELD=1", held);

	scenario_drain_all(&first, sent1, "held close");
	scenario_drain_all(&second, sent2, "close beyond the limit");
	if (!lb_wait_socket_gone(inode1, HELD_MIN_FD, RELEASE_MS))
		scenario_fail("the held copy is still open after the peer read everything");
	lb_pair_close(&first);
	lb_pair_close(&second);
	scenario_back_to_baseline(baseline);
	printf("OK: one copy held, the second close degraded to the kernel's\n");
	return 0;
}

static int run_scenario(const char *name)
{
	if (strcmp(name, "grace") == 0)
		return scenario_grace();
	if (strcmp(name, "max_held") == 0)
		return scenario_max_held();
	printf("FAIL: unknown scenario %s\n", name);
	return 2;
}

/* Runs this program again with "--scenario NAME" and `setting` ("VAR=value")
 * in its environment; collects its output line into `out`. Returns the wait
 * status. */
static int run_scenario_child(const char *name, const char *setting, char *out,
			      size_t out_len)
{
	int fds[2];
	int status = -1;
	size_t used = 0;
	const char *var_end = strchr(setting, '=');
	size_t var_len = (size_t)(var_end - setting) + 1;
	size_t n_env = 0;

	while (environ[n_env] != NULL)
		n_env++;
	char **envp = calloc(n_env + 2, sizeof(char *));
	size_t k = 0;

	ck_assert(envp != NULL);
	for (size_t i = 0; i < n_env; i++) {
		if (strncmp(environ[i], setting, var_len) != 0)
			envp[k++] = environ[i];
	}
	envp[k++] = (char *)setting;
	envp[k] = NULL;

	ck_assert(pipe2(fds, O_CLOEXEC) == 0);
	pid_t pid = fork();

	ck_assert(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "test_held_copies", "--scenario", (char *)name, NULL };

		dup2(fds[1], STDOUT_FILENO);
		execve("/proc/self/exe", argv, envp);
		dprintf(STDOUT_FILENO, "FAIL: execve: %s\n", strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	free(envp);

	int64_t deadline = lb_now_ms() + 15000;

	out[0] = '\0';
	for (;;) {
		int left = (int)(deadline - lb_now_ms());

		if (left <= 0 || lb_poll(fds[0], POLLIN, left) <= 0) {
			kill(pid, SIGKILL);
			snprintf(out, out_len, "scenario %s did not finish within 15 s", name);
			break;
		}
		ssize_t r = read(fds[0], out + used, out_len - 1 - used);

		if (r <= 0)
			break;
		used += (size_t)r;
		out[used] = '\0';
		if (used == out_len - 1)
			break;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static void check_scenario(const char *name, const char *setting)
{
	char out[1024];
	int status = run_scenario_child(name, setting, out, sizeof(out));

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "with %s: %s (exit status 0x%x)", setting, out, status);
	/* Into the test log: the measured times. */
	fprintf(stderr, "scenario %s with %s: %s", name, setting, out);
}

START_TEST(grace_timeout_resets_and_releases)
{
	check_scenario("grace", "WSPCLOSE_GRACE_MS=500");
}
END_TEST

START_TEST(max_held_degrades_to_kernel_close)
{
	check_scenario("max_held", "WSPCLOSE_MAX_HELD=1");
}
END_TEST

static Suite *held_copies_suite(void)
{
	Suite *s = suite_create("held_copies");
	TCase *held = tcase_create("held_copy");
	TCase *limits = tcase_create("limits");

	tcase_add_test(held, held_copy_is_high_and_cloexec);
	tcase_add_test(held, closed_number_is_free_at_once);
	tcase_add_test(held, held_copy_released_once_peer_reads_all);
	tcase_add_test(held, closing_the_held_copy_number_is_ebadf);
	tcase_add_test(held, nothing_held_and_no_wakeups_while_idle);
	tcase_add_test(held, idle_process_holds_only_app_descriptors);
	tcase_set_timeout(held, 20);
	suite_add_tcase(s, held);

	tcase_add_test(limits, grace_timeout_resets_and_releases);
	tcase_add_test(limits, max_held_degrades_to_kernel_close);
	tcase_set_timeout(limits, 20);
	suite_add_tcase(s, limits);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--scenario") == 0)
		return run_scenario(argv[2]);

	SRunner *sr = srunner_create(held_copies_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
