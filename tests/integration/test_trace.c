/* test_trace.c: the diagnostics of §7 / issue 4 seen from outside: runs
 * scenarios in child processes that trace to a file, parses every line. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json_check.h"
#include "loopback.h"
#include "wspclose.h"

extern char **environ;

/* Generous bounds for a loaded 2-core CI machine. */
#define CHILD_TIMEOUT_MS 45000      /* one scenario process, all included */
#define DRAIN_TIMEOUT_MS 20000      /* a peer reading to the end of a stream */
#define RELEASE_TIMEOUT_MS 20000    /* a release line to appear in the trace */
/* Linger time of the L2 and what-if scenarios, and the least time a close
 * that lingers must have blocked (a little under, for clock granularity). */
#define LINGER_SECONDS 1
#define LINGERED_AT_LEAST_MS 900

#define MULTI_CHILDREN 4
#define MULTI_CLOSES_PER_CHILD 200
/* Connections the exit scenario closes just before it exits. */
#define EXIT_CLOSES 64
/* Connections of the churn scenario, and the WSPCLOSE_MAX_HELD it runs
 * with: far more releases than copies allowed at once, but never more than
 * three held at a time. */
#define CHURN_CONNECTIONS 1500
#define CHURN_MAX_HELD "WSPCLOSE_MAX_HELD=16"
#define CHURN_RELEASE_TIMEOUT_MS 5000

/* ================================================================ scenarios
 * Run in a child process (argv: --scenario NAME) with libwspclose preloaded
 * and WSPCLOSE_* set by the test. Exit status 0 when the program saw what
 * libwspclose(7) promises; otherwise a message on stderr and status 1. Facts the
 * test needs (inode, fd) go to stdout as "key=value" words. */

static const char *scenario_name = "?";

__attribute__((format(printf, 1, 2)))
static int scenario_fail(const char *format, ...)
{
	va_list ap;
	fprintf(stderr, "scenario %s: ", scenario_name);
	va_start(ap, format);
	vfprintf(stderr, format, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* True when `text` holds a release line for `inode`, in either format. */
static bool has_release_line(const char *text, unsigned long long inode)
{
	char json_key[48], text_key[48];
	snprintf(json_key, sizeof json_key, "\"inode\":%llu,", inode);
	snprintf(text_key, sizeof text_key, " inode=%llu ", inode);
	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);
		bool found = copy && strstr(copy, "release") &&
			     (strstr(copy, json_key) || strstr(copy, text_key));
		free(copy);
		if (found)
			return true;
		line += len + (end ? 1 : 0);
	}
	return false;
}

static char *read_whole_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (buf == NULL)
			break;
		if (len == cap) {
			char *grown = realloc(buf, cap * 2 + 1);
			if (grown == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf != NULL) {
		buf[len] = '\0';
		if (len_out)
			*len_out = len;
	}
	return buf;
}

/* The reaper writes its release line after the real close of the held copy,
 * so "the socket is gone" does not mean "the line is written": wait for the
 * line itself (inotify on the trace file, bounded). Untraced or traced to
 * stderr: nothing to wait for. */
static bool wait_for_release_line(unsigned long long inode, int timeout_ms)
{
	const char *path = getenv("WSPCLOSE_TRACE");
	if (path == NULL || strcmp(path, "stderr") == 0 || access(path, R_OK) != 0)
		return true;
	int watch = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (watch >= 0 && inotify_add_watch(watch, path, IN_MODIFY) < 0) {
		close(watch);
		watch = -1;
	}
	int64_t deadline = lb_now_ms() + timeout_ms;
	bool found = false;
	for (;;) {
		char *text = read_whole_file(path, NULL);
		found = text && has_release_line(text, inode);
		free(text);
		int64_t left = deadline - lb_now_ms();
		if (found || left <= 0)
			break;
		/* Without inotify, re-read every 10 ms. */
		struct pollfd pfd = { watch, POLLIN, 0 };
		int slice = watch >= 0 ? (int)left : (left < 10 ? (int)left : 10);
		if (poll(&pfd, watch >= 0 ? 1 : 0, slice) > 0) {
			char events[4096];
			while (read(watch, events, sizeof events) > 0)
				;
		}
	}
	if (watch >= 0)
		close(watch);
	return found;
}

/* A small-buffer pair whose client send queue is full (peer not reading). */
static int open_pending_pair(struct lb_pair *p, uint64_t *queued)
{
	*queued = 0;
	if (lb_pair_open_small(p, AF_INET) < 0)
		return scenario_fail("cannot connect a loopback pair: %s", strerror(errno));
	if (lb_fill_send_queue(p->client, queued) <= 0 || lb_outq(p->client) <= 0)
		return scenario_fail("could not make the send queue pending: %s", strerror(errno));
	return 0;
}

/* The peer reads every byte, then EOF; then the held copy's release line. */
static int drain_and_await_release(struct lb_pair *p, uint64_t sent, ino_t inode)
{
	struct lb_drain_result r;
	lb_drain_now(p->peer, DRAIN_TIMEOUT_MS, &r);
	if (r.end != LB_END_EOF || r.bytes != sent || !r.pattern_ok)
		return scenario_fail("peer saw %s after %llu of %llu bytes (pattern %s)",
				     lb_end_name(r.end), (unsigned long long)r.bytes,
				     (unsigned long long)sent, r.pattern_ok ? "ok" : "BAD");
	if (!wait_for_release_line((unsigned long long)inode, RELEASE_TIMEOUT_MS))
		return scenario_fail("no release line for inode %llu within %d ms",
				     (unsigned long long)inode, RELEASE_TIMEOUT_MS);
	return 0;
}

static void report_socket(int fd, ino_t inode)
{
	printf("inode=%llu fd=%d\n", (unsigned long long)inode, fd);
}

/* G1: close with data pending returns 0 at once; the peer gets it all. */
static int scenario_g1(void)
{
	struct lb_pair p;
	uint64_t sent;
	if (open_pending_pair(&p, &sent) != 0)
		return 1;
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	int outq = lb_outq(fd); /* the peer reads nothing: it stays so */
	errno = 0;
	int rc = close(fd);
	p.client = -1;
	if (rc != 0)
		return scenario_fail("close() = %d (%s), expected 0", rc, strerror(errno));
	if (drain_and_await_release(&p, sent, inode) != 0)
		return 1;
	printf("inode=%llu fd=%d outq=%d\n", (unsigned long long)inode, fd, outq);
	lb_pair_close(&p);
	return 0;
}

/* W1, then resolved the way Windows allows: linger off, close again (G1). */
static int scenario_w1(void)
{
	struct lb_pair p;
	uint64_t sent;
	if (lb_pair_open_small(&p, AF_INET) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	if (lb_set_linger(p.client, 1, 5) < 0 || lb_set_nonblocking(p.client, true) < 0)
		return scenario_fail("cannot set linger / O_NONBLOCK: %s", strerror(errno));
	sent = 0;
	if (lb_fill_send_queue(p.client, &sent) <= 0 || lb_outq(p.client) <= 0)
		return scenario_fail("send queue not pending");
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	errno = 0;
	int rc = close(fd);
	if (rc != -1 || errno != EWOULDBLOCK)
		return scenario_fail("W1 close() = %d (%s), expected -1 EWOULDBLOCK", rc,
				     strerror(errno));
	if (lb_outq(fd) <= 0)
		return scenario_fail("after W1 the fd is not open with data pending");
	if (lb_set_linger(fd, 0, 5) < 0)
		return scenario_fail("cannot turn linger off: %s", strerror(errno));
	errno = 0;
	rc = close(fd);
	p.client = -1;
	if (rc != 0)
		return scenario_fail("second close() = %d (%s), expected 0", rc, strerror(errno));
	if (drain_and_await_release(&p, sent, inode) != 0)
		return 1;
	report_socket(fd, inode);
	lb_pair_close(&p);
	return 0;
}

/* L2: blocking, linger {1,1}, the peer never reads: 0 after ~1 s, RST. */
static int scenario_l2(void)
{
	struct lb_pair p;
	uint64_t sent;
	if (open_pending_pair(&p, &sent) != 0)
		return 1;
	if (lb_set_linger(p.client, 1, LINGER_SECONDS) < 0)
		return scenario_fail("cannot set linger: %s", strerror(errno));
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	int64_t start = lb_now_ms();
	errno = 0;
	int rc = close(fd);
	int64_t blocked = lb_now_ms() - start;
	p.client = -1;
	if (rc != 0)
		return scenario_fail("close() = %d (%s), expected 0", rc, strerror(errno));
	if (blocked < LINGERED_AT_LEAST_MS)
		return scenario_fail("close() returned after %lld ms, expected the %d s linger",
				     (long long)blocked, LINGER_SECONDS);
	struct lb_drain_result r;
	lb_drain_now(p.peer, DRAIN_TIMEOUT_MS, &r);
	if (r.end != LB_END_RESET)
		return scenario_fail("peer saw %s, expected ECONNRESET", lb_end_name(r.end));
	report_socket(fd, inode);
	lb_pair_close(&p);
	return 0;
}

/* shutdown(SHUT_WR), then close: G2. */
static int scenario_shutdown(void)
{
	struct lb_pair p;
	uint64_t sent = 0;
	if (lb_pair_open(&p, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	if (lb_send_pattern(p.client, &sent, 1000) < 0)
		return scenario_fail("send: %s", strerror(errno));
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	if (shutdown(fd, SHUT_WR) != 0)
		return scenario_fail("shutdown: %s", strerror(errno));
	int rc = close(fd);
	p.client = -1;
	if (rc != 0)
		return scenario_fail("close() = %d (%s)", rc, strerror(errno));
	if (drain_and_await_release(&p, sent, inode) != 0)
		return 1;
	report_socket(fd, inode);
	lb_pair_close(&p);
	return 0;
}

/* SO_LINGER {1,3}, then SO_DONTLINGER 1 (keeps l_linger = 3), then close. */
static int scenario_linger(void)
{
	struct lb_pair p;
	if (lb_pair_open(&p, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	struct linger on = { 1, 3 };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &on, sizeof on) != 0)
		return scenario_fail("SO_LINGER: %s", strerror(errno));
	int dont = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &dont, sizeof dont) != 0)
		return scenario_fail("SO_DONTLINGER: %s", strerror(errno));
	struct linger now;
	socklen_t len = sizeof now;
	if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &now, &len) != 0 || now.l_onoff != 0 ||
	    now.l_linger != 3)
		return scenario_fail("after SO_DONTLINGER linger is {%d,%d}, expected {0,3}",
				     now.l_onoff, now.l_linger);
	int rc = close(fd);
	p.client = -1;
	if (rc != 0)
		return scenario_fail("close() = %d (%s)", rc, strerror(errno));
	if (drain_and_await_release(&p, 0, inode) != 0)
		return 1;
	report_socket(fd, inode);
	lb_pair_close(&p);
	return 0;
}

/* close(s) twice, nothing opened in between: the second is EBADF. */
static int scenario_double_close(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return scenario_fail("socket: %s", strerror(errno));
	ino_t inode = lb_socket_inode(s);
	if (close(s) != 0)
		return scenario_fail("first close: %s", strerror(errno));
	errno = 0;
	int rc = close(s);
	if (rc != -1 || errno != EBADF)
		return scenario_fail("second close() = %d (%s), expected -1 EBADF", rc,
				     strerror(errno));
	report_socket(s, inode);
	return 0;
}

/* MULTI_CHILDREN processes released together by a pipe, each closing
 * MULTI_CLOSES_PER_CHILD UDP sockets (one close line each, nothing else). */
static int scenario_multiprocess(void)
{
	int barrier[2];
	if (pipe2(barrier, O_CLOEXEC) != 0)
		return scenario_fail("pipe: %s", strerror(errno));
	pid_t children[MULTI_CHILDREN];
	fflush(NULL); /* no buffered output duplicated into the children */
	for (int i = 0; i < MULTI_CHILDREN; i++) {
		children[i] = fork();
		if (children[i] < 0)
			return scenario_fail("fork: %s", strerror(errno));
		if (children[i] == 0) {
			close(barrier[1]);
			char byte;
			while (read(barrier[0], &byte, 1) < 0 && errno == EINTR)
				;
			close(barrier[0]);
			for (int n = 0; n < MULTI_CLOSES_PER_CHILD; n++) {
				int s = socket(AF_INET, SOCK_DGRAM, 0);
				if (s < 0 || close(s) != 0) {
					fprintf(stderr, "child %d: socket/close: %s\n", i,
						strerror(errno));
					exit(1);
				}
			}
			exit(0); /* destructors run: each child writes its summary */
		}
	}
	close(barrier[0]);
	close(barrier[1]); /* all children start at once */
	int failures = 0;
	printf("children=");
	for (int i = 0; i < MULTI_CHILDREN; i++) {
		int status;
		while (waitpid(children[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failures++;
		printf("%s%ld", i ? "," : "", (long)children[i]);
	}
	printf("\n");
	return failures ? scenario_fail("%d children failed", failures) : 0;
}

static int64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What the closing thread of scenario_thread_close saw. */
struct thread_close {
	struct lb_pair pair;
	ino_t inode;
	int fd;
	int rc;
	int error;
	pid_t tid;
	int outq;
	int64_t before_us, after_us;
};

static void *close_in_thread(void *arg)
{
	struct thread_close *c = arg;
	c->tid = (pid_t)syscall(SYS_gettid);
	c->fd = c->pair.client;
	c->inode = lb_socket_inode(c->fd);
	c->outq = lb_outq(c->fd);
	c->before_us = realtime_us();
	errno = 0;
	c->rc = close(c->fd);
	c->error = errno;
	c->after_us = realtime_us();
	c->pair.client = -1;
	return NULL;
}

/* G1 closed by a thread of its own: the close line is that thread's (its
 * tid, the time of the close()), whoever writes it. */
static int scenario_thread_close(void)
{
	struct thread_close c = { .rc = -1 };
	if (lb_pair_open(&c.pair, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	pthread_t thread;
	if (pthread_create(&thread, NULL, close_in_thread, &c) != 0)
		return scenario_fail("pthread_create failed");
	pthread_join(thread, NULL);
	if (c.rc != 0)
		return scenario_fail("close() = %d (%s), expected 0", c.rc, strerror(c.error));
	if (!wait_for_release_line((unsigned long long)c.inode, RELEASE_TIMEOUT_MS))
		return scenario_fail("no release line for inode %llu within %d ms",
				     (unsigned long long)c.inode, RELEASE_TIMEOUT_MS);
	printf("inode=%llu fd=%d tid=%ld before_us=%lld after_us=%lld outq=%d\n",
	       (unsigned long long)c.inode, c.fd, (long)c.tid, (long long)c.before_us,
	       (long long)c.after_us, c.outq);
	lb_pair_close(&c.pair);
	return 0;
}

/* Closes EXIT_CLOSES connections (G1) and exits at once: no line may be lost. */
static int scenario_exit_after_closes(void)
{
	static struct lb_pair pairs[EXIT_CLOSES];
	for (int i = 0; i < EXIT_CLOSES; i++)
		if (lb_pair_open(&pairs[i], AF_INET, 0, 0) < 0)
			return scenario_fail("cannot connect pair %d: %s", i, strerror(errno));
	for (int i = 0; i < EXIT_CLOSES; i++) {
		if (close(pairs[i].client) != 0)
			return scenario_fail("close() of pair %d: %s", i, strerror(errno));
		pairs[i].client = -1;
	}
	printf("tid=%ld\n", (long)syscall(SYS_gettid));
	fflush(stdout);
	exit(0);
}

/* Connection after connection, all three sockets closed (G1), the next as
 * soon as the reaper has released them: it keeps collecting lines, and
 * never holds more than three copies. */
static int scenario_churn(void)
{
	for (int i = 0; i < CHURN_CONNECTIONS; i++) {
		struct lb_pair p;
		if (lb_pair_open(&p, AF_INET, 0, 0) < 0)
			return scenario_fail("cannot connect pair %d: %s", i, strerror(errno));
		if (close(p.client) != 0 || close(p.peer) != 0 || close(p.listener) != 0)
			return scenario_fail("close() of pair %d: %s", i, strerror(errno));
		int64_t deadline = lb_now_ms() + CHURN_RELEASE_TIMEOUT_MS;
		while (lb_count_socket_fds_from(0) > 0) {
			if (lb_now_ms() > deadline)
				return scenario_fail("pair %d: copies not released in %d ms", i,
						     CHURN_RELEASE_TIMEOUT_MS);
			sched_yield();
		}
	}
	return 0;
}

/* dup2() of another descriptor onto a connected socket: an implicit G1
 * close whose call returns the number. */
static int scenario_dup2_onto_socket(void)
{
	struct lb_pair p;
	if (lb_pair_open(&p, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0)
		return scenario_fail("open /dev/null: %s", strerror(errno));
	int rc = dup2(null, fd);
	if (rc != fd)
		return scenario_fail("dup2() = %d (%s), expected %d", rc, strerror(errno), fd);
	if (!wait_for_release_line((unsigned long long)inode, RELEASE_TIMEOUT_MS))
		return scenario_fail("no release line for inode %llu within %d ms",
				     (unsigned long long)inode, RELEASE_TIMEOUT_MS);
	report_socket(fd, inode);
	close(null);
	lb_pair_close(&p); /* fd is /dev/null's now */
	return 0;
}

/* fclose() of a stream on a connected socket: the library's implicit close
 * (libwspclose(7) §8.1). */
static int scenario_fclose_socket_stream(void)
{
	struct lb_pair p;
	if (lb_pair_open(&p, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	FILE *stream = fdopen(fd, "w");
	if (stream == NULL || fputs("bytes through stdio\n", stream) < 0)
		return scenario_fail("fdopen/fputs: %s", strerror(errno));
	if (fclose(stream) != 0)
		return scenario_fail("fclose(): %s", strerror(errno));
	if (!wait_for_release_line((unsigned long long)inode, RELEASE_TIMEOUT_MS))
		return scenario_fail("no release line for inode %llu within %d ms",
				     (unsigned long long)inode, RELEASE_TIMEOUT_MS);
	report_socket(fd, inode);
	p.client = -1;
	lb_pair_close(&p);
	return 0;
}

/* With WSPCLOSE_MAX_HELD=1 and one copy held (its peer not reading), the
 * next G1 close cannot hold a copy: the kernel's own graceful close. */
static int scenario_degrade(void)
{
	struct lb_pair held, second;
	uint64_t sent;
	if (open_pending_pair(&held, &sent) != 0)
		return 1;
	ino_t held_inode = lb_socket_inode(held.client);
	if (close(held.client) != 0)
		return scenario_fail("first close(): %s", strerror(errno));
	held.client = -1;
	if (lb_pair_open(&second, AF_INET, 0, 0) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	int fd = second.client;
	ino_t inode = lb_socket_inode(fd);
	if (close(fd) != 0)
		return scenario_fail("second close(): %s", strerror(errno));
	second.client = -1;
	struct lb_drain_result r;
	lb_drain_now(second.peer, DRAIN_TIMEOUT_MS, &r);
	if (r.end != LB_END_EOF)
		return scenario_fail("degraded close: peer saw %s, expected EOF",
				     lb_end_name(r.end));
	if (drain_and_await_release(&held, sent, held_inode) != 0)
		return 1;
	report_socket(fd, inode);
	lb_pair_close(&second);
	lb_pair_close(&held);
	return 0;
}

/* The W1 situation under WSPCLOSE_PASSTHROUGH=1: Linux lingers even with
 * O_NONBLOCK, then returns 0. */
static int scenario_passthrough_w1(void)
{
	struct lb_pair p;
	uint64_t sent;
	if (lb_pair_open_small(&p, AF_INET) < 0)
		return scenario_fail("cannot connect: %s", strerror(errno));
	if (lb_set_linger(p.client, 1, LINGER_SECONDS) < 0 ||
	    lb_set_nonblocking(p.client, true) < 0)
		return scenario_fail("cannot set linger / O_NONBLOCK: %s", strerror(errno));
	sent = 0;
	if (lb_fill_send_queue(p.client, &sent) <= 0 || lb_outq(p.client) <= 0)
		return scenario_fail("send queue not pending");
	int fd = p.client;
	ino_t inode = lb_socket_inode(fd);
	int64_t start = lb_now_ms();
	errno = 0;
	int rc = close(fd);
	int64_t blocked = lb_now_ms() - start;
	p.client = -1;
	if (rc != 0)
		return scenario_fail("close() = %d (%s), expected 0 (Linux semantics)", rc,
				     strerror(errno));
	if (blocked < LINGERED_AT_LEAST_MS)
		return scenario_fail("close() returned after %lld ms; Linux lingers %d s",
				     (long long)blocked, LINGER_SECONDS);
	report_socket(fd, inode);
	lb_pair_close(&p);
	return 0;
}

static int run_scenario(const char *name)
{
	static const struct {
		const char *name;
		int (*run)(void);
	} scenarios[] = {
		{ "g1", scenario_g1 },
		{ "w1", scenario_w1 },
		{ "l2", scenario_l2 },
		{ "shutdown", scenario_shutdown },
		{ "linger", scenario_linger },
		{ "double-close", scenario_double_close },
		{ "multiprocess", scenario_multiprocess },
		{ "passthrough-w1", scenario_passthrough_w1 },
		{ "thread-close", scenario_thread_close },
		{ "exit-after-closes", scenario_exit_after_closes },
		{ "churn", scenario_churn },
		{ "degrade", scenario_degrade },
		{ "dup2", scenario_dup2_onto_socket },
		{ "fclose", scenario_fclose_socket_stream },
	};
	scenario_name = name;
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
		if (strcmp(scenarios[i].name, name) == 0)
			return scenarios[i].run();
	return scenario_fail("no such scenario");
}

/* ================================================================ running */

struct child_run {
	pid_t pid;
	int status;        /* waitpid status */
	char *out;         /* everything written to stdout */
	char *err;         /* everything written to stderr */
};

static char *make_temp_file(void)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	ck_assert(asprintf(&path, "%s/test_trace.XXXXXX", dir && *dir ? dir : "/tmp") > 0);
	int fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp(%s): %s", path, strerror(errno));
	close(fd);
	return path;
}

static bool is_our_variable(const char *entry)
{
	return strncmp(entry, "WSPCLOSE_", 9) == 0 && strncmp(entry, "WSPCLOSE_LIBRARY=", 17) != 0;
}

/* The test's environment without any WSPCLOSE_* setting, plus `extra`
 * (NULL-terminated). LD_PRELOAD is inherited as it is. */
static char **child_environment(const char *const *extra)
{
	size_t n = 0, k = 0;
	while (environ[n] != NULL)
		n++;
	while (extra[k] != NULL)
		k++;
	char **env = calloc(n + k + 1, sizeof *env);
	ck_assert(env != NULL);
	size_t used = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_our_variable(environ[i]))
			env[used++] = environ[i];
	for (size_t i = 0; i < k; i++)
		env[used++] = (char *)extra[i];
	env[used] = NULL;
	return env;
}

/* Waits for pid at most timeout_ms (a pidfd; plain waitpid without one, the
 * Check timeout then bounds it). Returns false on timeout (child killed). */
static bool wait_bounded(pid_t pid, int timeout_ms, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		struct pollfd pfd = { pidfd, POLLIN, 0 };
		int n;
		do
			n = poll(&pfd, 1, timeout_ms);
		while (n < 0 && errno == EINTR);
		close(pidfd);
		if (n == 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			return false;
		}
	}
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return true;
}

/* Runs this program with --scenario NAME in a child, environment as
 * child_environment(extra_env). */
static void run_child(const char *scenario, const char *const *extra_env, struct child_run *run)
{
	const char *preload = getenv("LD_PRELOAD");
	ck_assert_msg(preload != NULL && strstr(preload, "libwspclose") != NULL,
		      "LD_PRELOAD does not name libwspclose (%s): run me through "
		      "tests/run-preloaded", preload ? preload : "unset");
	char *out_path = make_temp_file();
	char *err_path = make_temp_file();
	char **env = child_environment(extra_env);
	char *argv[] = { "/proc/self/exe", "--scenario", (char *)scenario, NULL };
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int out = open(out_path, O_WRONLY | O_TRUNC);
		int err = open(err_path, O_WRONLY | O_TRUNC);
		if (out < 0 || err < 0 || dup2(out, STDOUT_FILENO) < 0 ||
		    dup2(err, STDERR_FILENO) < 0)
			_exit(126);
		close(out);
		close(err);
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	run->pid = pid;
	bool finished = wait_bounded(pid, CHILD_TIMEOUT_MS, &run->status);
	run->out = read_whole_file(out_path, NULL);
	run->err = read_whole_file(err_path, NULL);
	unlink(out_path);
	unlink(err_path);
	free(out_path);
	free(err_path);
	free(env);
	ck_assert(run->out != NULL && run->err != NULL);
	ck_assert_msg(finished, "scenario %s did not finish within %d ms; stderr: %s",
		      scenario, CHILD_TIMEOUT_MS, run->err);
}

static void assert_child_ok(const struct child_run *run, const char *scenario)
{
	ck_assert_msg(WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0,
		      "scenario %s: exit status %d (signal %d); stderr:\n%s", scenario,
		      WIFEXITED(run->status) ? WEXITSTATUS(run->status) : -1,
		      WIFSIGNALED(run->status) ? WTERMSIG(run->status) : 0, run->err);
}

static void free_child_run(struct child_run *run)
{
	free(run->out);
	free(run->err);
}

/* "inode=N fd=M" from a scenario's stdout. */
static void reported_socket(const struct child_run *run, long long *inode, long long *fd)
{
	ck_assert_msg(sscanf(run->out, "inode=%lld fd=%lld", inode, fd) == 2,
		      "scenario output has no inode/fd: '%s'", run->out);
}

/* ================================================================ checking lines */

struct trace_file {
	size_t count;
	char **texts;                  /* each line, without its newline */
	struct json_value **lines;     /* JSON only: each line parsed */
};

static void split_lines(const char *path, struct trace_file *t)
{
	size_t len;
	char *text = read_whole_file(path, &len);
	ck_assert_msg(text != NULL, "cannot read the trace file %s", path);
	unlink(path); /* read: nothing left behind, even when a check fails */
	ck_assert_msg(len > 0, "the trace file is empty");
	ck_assert_msg(text[len - 1] == '\n', "the trace does not end with a newline: torn last line");
	ck_assert_msg(strlen(text) == len, "the trace holds a NUL byte");
	t->count = 0;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			t->count++;
	t->texts = calloc(t->count, sizeof *t->texts);
	t->lines = calloc(t->count, sizeof *t->lines);
	ck_assert(t->texts != NULL && t->lines != NULL);
	char *line = text;
	for (size_t i = 0; i < t->count; i++) {
		char *end = strchr(line, '\n');
		t->texts[i] = strndup(line, (size_t)(end - line));
		ck_assert(t->texts[i] != NULL);
		line = end + 1;
	}
	free(text);
}

static void free_trace(struct trace_file *t)
{
	for (size_t i = 0; i < t->count; i++) {
		free(t->texts[i]);
		json_free(t->lines[i]);
	}
	free(t->texts);
	free(t->lines);
}

#define REQUIRE(cond, ...)                                        \
	do {                                                      \
		if (!(cond)) {                                    \
			snprintf(why, why_len, __VA_ARGS__);      \
			return false;                             \
		}                                                 \
	} while (0)

static bool field_of_type(const struct json_value *v, const char *key, enum json_type type,
			  char *why, size_t why_len)
{
	const struct json_value *f = json_get(v, key);
	REQUIRE(f != NULL, "no \"%s\"", key);
	REQUIRE(f->type == type, "\"%s\" is a %s, expected a %s", key, json_type_name(f->type),
		json_type_name(type));
	return true;
}

static bool integer_field(const struct json_value *v, const char *key, long long min,
			  char *why, size_t why_len)
{
	long long n;
	REQUIRE(json_get_integer(v, key, &n), "\"%s\" is missing or not an integer", key);
	REQUIRE(n >= min, "\"%s\" = %lld, expected >= %lld", key, n, min);
	return true;
}

/* "2025-01-31T12:34:56.123456Z" */
static bool time_field(const struct json_value *v, char *why, size_t why_len)
{
	const char *t = json_get_string(v, "time");
	REQUIRE(t != NULL, "no \"time\" string");
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	REQUIRE(strlen(t) == sizeof shape - 1, "\"time\" '%s' is not %s", t, shape);
	for (size_t i = 0; shape[i]; i++)
		REQUIRE(shape[i] == 'd' ? (t[i] >= '0' && t[i] <= '9') : t[i] == shape[i],
			"\"time\" '%s' is not %s", t, shape);
	REQUIRE(strncmp(t, "2020", 4) >= 0, "\"time\" '%s' is implausible", t);
	return true;
}

static bool linger_object(const struct json_value *v, const char *key, char *why, size_t why_len)
{
	if (!field_of_type(v, key, JSON_OBJECT, why, why_len))
		return false;
	const struct json_value *l = json_get(v, key);
	REQUIRE(l->member_count == 2, "\"%s\" has %zu members, expected on and seconds", key,
		l->member_count);
	const struct json_value *on = json_get(l, "on");
	REQUIRE(on && on->type == JSON_BOOL, "\"%s\".on is not a boolean", key);
	long long seconds;
	REQUIRE(json_get_integer(l, "seconds", &seconds) && seconds >= 0,
		"\"%s\".seconds is not an integer >= 0", key);
	return true;
}

/* fd, inode, local and remote address, TCP state. */
static bool socket_fields(const struct json_value *v, char *why, size_t why_len)
{
	return integer_field(v, "fd", 0, why, why_len) &&
	       integer_field(v, "inode", 0, why, why_len) &&
	       field_of_type(v, "local", JSON_STRING, why, why_len) &&
	       field_of_type(v, "remote", JSON_STRING, why, why_len) &&
	       field_of_type(v, "tcp_state", JSON_STRING, why, why_len);
}

/* result, and errno: null on success, a name ("EBADF") on failure. */
static bool result_fields(const struct json_value *v, char *why, size_t why_len)
{
	long long result;
	REQUIRE(json_get_integer(v, "result", &result), "\"result\" missing or not an integer");
	const struct json_value *e = json_get(v, "errno");
	REQUIRE(e != NULL, "no \"errno\"");
	if (result < 0)
		REQUIRE(e->type == JSON_STRING && e->string[0] == 'E',
			"result %lld but errno is not a name like \"EBADF\"", result);
	else
		REQUIRE(e->type == JSON_NULL, "result %lld but errno is not null", result);
	return true;
}

static bool one_of(const char *s, const char *const *choices)
{
	for (; s && *choices; choices++)
		if (strcmp(s, *choices) == 0)
			return true;
	return false;
}

static bool counts_object(const struct json_value *v, const char *key, char *why, size_t why_len)
{
	if (!field_of_type(v, key, JSON_OBJECT, why, why_len))
		return false;
	const struct json_value *o = json_get(v, key);
	for (size_t i = 0; i < o->member_count; i++) {
		const struct json_value *c = o->members[i].value;
		REQUIRE(c->type == JSON_NUMBER && c->is_integer && c->integer >= 0,
			"\"%s\".%s is not a count", key, o->members[i].key);
	}
	return true;
}

/* The fields §7 requires, by event. */
static bool check_required_fields(const struct json_value *v, char *why, size_t why_len)
{
	static const char *const outcomes[] = { "fin-acked", "peer-reset", "data-after-close",
		"unread-data-reset", "grace-timeout", "linger-timeout", "not-connected",
		"kernel-finishes", NULL };
	static const char *const hows[] = { "SHUT_RD", "SHUT_WR", "SHUT_RDWR", "invalid", NULL };
	static const char *const options[] = { "SO_LINGER", "SO_DONTLINGER", NULL };
	static const char *const close_events[] = { "close", "implicit-close",
		"implicit-close-dup2", "implicit-close-fclose", NULL };

	REQUIRE(v->type == JSON_OBJECT, "the line is a %s, not an object", json_type_name(v->type));
	if (!time_field(v, why, why_len) || !integer_field(v, "pid", 1, why, why_len) ||
	    !integer_field(v, "tid", 1, why, why_len))
		return false;
	const char *event = json_get_string(v, "event");
	REQUIRE(event != NULL, "no \"event\" string");

	if (one_of(event, close_events)) {
		if (!socket_fields(v, why, why_len) || !linger_object(v, "linger", why, why_len) ||
		    !field_of_type(v, "nonblocking", JSON_BOOL, why, why_len) ||
		    !integer_field(v, "pending", LLONG_MIN, why, why_len) || /* see below */
		    !field_of_type(v, "row", JSON_STRING, why, why_len) ||
		    !field_of_type(v, "blocked_ms", JSON_NUMBER, why, why_len) ||
		    !result_fields(v, why, why_len))
			return false;
		REQUIRE(json_get_string(v, "row")[0] != '\0', "empty \"row\"");
		const struct json_value *w = json_get(v, "windows");
		REQUIRE(w == NULL || w->type == JSON_STRING, "\"windows\" is not a string");
		return true;
	}
	if (strcmp(event, "release") == 0) {
		if (!integer_field(v, "fd", 0, why, why_len) ||
		    !integer_field(v, "inode", 0, why, why_len) ||
		    !field_of_type(v, "tcp_state", JSON_STRING, why, why_len) ||
		    !field_of_type(v, "row", JSON_STRING, why, why_len) ||
		    !field_of_type(v, "held_ms", JSON_NUMBER, why, why_len))
			return false;
		REQUIRE(one_of(json_get_string(v, "outcome"), outcomes),
			"\"outcome\" missing or not one of fin-acked, peer-reset, ...");
		REQUIRE(json_get(v, "held_ms")->number >= 0, "negative \"held_ms\"");
		return true;
	}
	if (strcmp(event, "shutdown") == 0) {
		if (!socket_fields(v, why, why_len) || !result_fields(v, why, why_len))
			return false;
		REQUIRE(one_of(json_get_string(v, "how"), hows), "bad \"how\"");
		return true;
	}
	if (strcmp(event, "linger") == 0) {
		if (!socket_fields(v, why, why_len) || !linger_object(v, "before", why, why_len) ||
		    !linger_object(v, "after", why, why_len) || !result_fields(v, why, why_len))
			return false;
		REQUIRE(one_of(json_get_string(v, "option"), options), "bad \"option\"");
		return true;
	}
	if (strcmp(event, "summary") == 0) {
		if (!counts_object(v, "closes", why, why_len) ||
		    !counts_object(v, "releases", why, why_len) ||
		    !counts_object(v, "findings", why, why_len))
			return false;
		const struct json_value *f = json_get(v, "findings");
		static const char *const names[] = { "total", "w1_unresolved", "double_close",
			"linger_resets", "held_at_exit" };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			REQUIRE(json_get(f, names[i]) != NULL, "no findings.%s", names[i]);
		return true;
	}
	REQUIRE(false, "unknown event \"%s\"", event);
}

/* Reads a JSON trace (and removes the file): every line must parse and
 * carry its required fields. */
static void load_json_trace(const char *path, struct trace_file *t)
{
	split_lines(path, t);
	for (size_t i = 0; i < t->count; i++) {
		char error[256], why[256];
		t->lines[i] = json_parse(t->texts[i], strlen(t->texts[i]), error, sizeof error);
		ck_assert_msg(t->lines[i] != NULL, "trace line %zu is not JSON (%s): %s", i + 1,
			      error, t->texts[i]);
		ck_assert_msg(check_required_fields(t->lines[i], why, sizeof why),
			      "trace line %zu: %s: %s", i + 1, why, t->texts[i]);
	}
}

static bool line_is(const struct json_value *v, const char *event, long long inode)
{
	const char *e = json_get_string(v, "event");
	long long n;
	return e && strcmp(e, event) == 0 &&
	       (inode < 0 || (json_get_integer(v, "inode", &n) && n == inode));
}

/* The only line with this event (and inode, unless -1); fails otherwise. */
static const struct json_value *only_line(const struct trace_file *t, const char *event,
					  long long inode)
{
	const struct json_value *found = NULL;
	size_t n = 0;
	for (size_t i = 0; i < t->count; i++)
		if (line_is(t->lines[i], event, inode)) {
			found = t->lines[i];
			n++;
		}
	ck_assert_msg(n == 1, "%zu \"%s\" lines for inode %lld, expected exactly 1", n, event,
		      inode);
	return found;
}

/* Where the only line with this event and inode is in the file. */
static size_t index_of_line(const struct trace_file *t, const char *event, long long inode)
{
	const struct json_value *line = only_line(t, event, inode);
	size_t i = 0;
	while (t->lines[i] != line)
		i++;
	return i;
}

/* A line's "time" ("2026-11-27T11:52:29.824683Z") in microseconds. */
static int64_t time_us_of(const struct json_value *v)
{
	const char *s = json_get_string(v, "time");
	struct tm tm = { 0 };
	long us;
	ck_assert_msg(s != NULL && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6ldZ", &tm.tm_year,
					  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
					  &tm.tm_sec, &us) == 7,
		      "bad time '%s'", s ? s : "(missing)");
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000000 + us;
}

/* Every line comes from this one process. */
static void assert_all_from(const struct trace_file *t, pid_t pid)
{
	for (size_t i = 0; i < t->count; i++) {
		long long p;
		ck_assert(json_get_integer(t->lines[i], "pid", &p));
		ck_assert_msg(p == pid, "line %zu from pid %lld, expected %ld: %s", i + 1, p,
			      (long)pid, t->texts[i]);
	}
}

static void assert_string(const struct json_value *v, const char *key, const char *expected)
{
	const char *s = json_get_string(v, key);
	ck_assert_msg(s != NULL && strcmp(s, expected) == 0, "\"%s\" is \"%s\", expected \"%s\"",
		      key, s ? s : "(missing)", expected);
}

static long long integer_of(const struct json_value *v, const char *key)
{
	long long n;
	ck_assert_msg(json_get_integer(v, key, &n), "\"%s\" is not an integer", key);
	return n;
}

static long long finding(const struct json_value *summary, const char *name)
{
	return integer_of(json_get(summary, "findings"), name);
}

/* Runs a scenario with a JSON trace into a fresh file, checks that it
 * exited 0, loads and checks every line. */
static void run_traced(const char *scenario, const char *extra, struct child_run *run,
		       struct trace_file *t)
{
	char *path = make_temp_file();
	char *trace_setting;
	ck_assert(asprintf(&trace_setting, "WSPCLOSE_TRACE=%s", path) > 0);
	const char *env[] = { trace_setting, "WSPCLOSE_TRACE_FORMAT=json", extra, NULL };
	run_child(scenario, env, run);
	struct stat st;
	bool traced = stat(path, &st) == 0 && st.st_size > 0;
	if (!traced)
		unlink(path);
	assert_child_ok(run, scenario);
	ck_assert_msg(traced, "scenario %s wrote no trace", scenario);
	load_json_trace(path, t); /* removes the file once read */
	free(path);
	free(trace_setting);
}

/* run_traced() of a scenario that reports one socket: its inode and fd. */
static void run_traced_socket(const char *scenario, const char *extra, struct child_run *run,
			      struct trace_file *t, long long *inode, long long *fd)
{
	run_traced(scenario, extra, run, t);
	reported_socket(run, inode, fd);
}

/* ================================================================ tests: parser */

START_TEST(json_parser_accepts_valid_documents)
{
	static const char *const valid[] = {
		"{}", "[]", "0", "-0", "1.5e-3", "-12E+2", "true", "false", "null",
		"\"\"", " {\"a\": [1, 2.0, {\"b\": null}], \"c\": \"x\\ty\\u00e9\\ud83d\\ude00\"} \n",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"caf\xc3\xa9\"", "[[[[]]]]",
		"{\"time\":\"2025-01-01T00:00:00.000000Z\",\"n\":18446744073709551615}",
	};
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		char error[128];
		struct json_value *v = json_parse(valid[i], strlen(valid[i]), error, sizeof error);
		ck_assert_msg(v != NULL, "rejected valid '%s': %s", valid[i], error);
		json_free(v);
	}
	struct json_value *v = json_parse("{\"s\":\"a\\u0000b\",\"n\":-42}", 24, NULL, 0);
	ck_assert(v != NULL);
	ck_assert_uint_eq(json_get(v, "s")->string_len, 3);
	long long n;
	ck_assert(json_get_integer(v, "n", &n) && n == -42);
	json_free(v);
}
END_TEST

START_TEST(json_parser_rejects_invalid_documents)
{
	static const char *const invalid[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "01", "+1", ".5",
		"1.", "1e", "-", "tru", "nul", "\"abc", "\"a\tb\"", "\"\\x\"", "\"\\u12\"",
		"\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "{} {}", "{}x", "[1 2]",
		"{\"a\" 1}", "{\"a\":1 \"b\":2}", "{\"a\":1,\"a\":2}", "\"\xc3\"", "\"\xc0\xaf\"",
		"\"\xed\xa0\x80\"", "NaN", "Infinity", "/* c */ 1", "{\"a\":1}\n{\"b\":2}",
	};
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		char error[128];
		struct json_value *v = json_parse(invalid[i], strlen(invalid[i]), error, sizeof error);
		ck_assert_msg(v == NULL, "accepted invalid '%s'", invalid[i]);
		ck_assert_msg(error[0] != '\0', "no message for '%s'", invalid[i]);
	}
	/* Nesting past the limit. */
	char deep[2 * JSON_MAX_DEPTH + 8];
	size_t n = 0;
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		deep[n++] = '[';
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		deep[n++] = ']';
	ck_assert(json_parse(deep, n, NULL, 0) == NULL);
	/* An embedded NUL after the value is trailing garbage. */
	ck_assert(json_parse("{}\0", 3, NULL, 0) == NULL);
}
END_TEST

/* ================================================================ tests: rows */

START_TEST(g1_close_and_its_release_are_traced)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("g1", NULL, &run, &t, &inode, &fd);
	assert_all_from(&t, run.pid);

	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "G1");
	assert_string(c, "tcp_state", "ESTABLISHED");
	ck_assert_int_eq(integer_of(c, "fd"), fd);
	ck_assert_int_eq(integer_of(c, "result"), 0);
	ck_assert_int_eq(json_get(c, "errno")->type, JSON_NULL);
	long long outq;
	ck_assert(sscanf(run.out, "inode=%*d fd=%*d outq=%lld", &outq) == 1);
	ck_assert_msg(outq > 0 && integer_of(c, "pending") == outq,
		      "pending is %lld, SIOCOUTQ before close() %lld", integer_of(c, "pending"),
		      outq);
	ck_assert(!json_get(c, "nonblocking")->boolean);
	ck_assert(!json_get(json_get(c, "linger"), "on")->boolean);
	ck_assert_msg(strncmp(json_get_string(c, "local"), "127.0.0.1:", 10) == 0 &&
		      strncmp(json_get_string(c, "remote"), "127.0.0.1:", 10) == 0,
		      "addresses '%s' / '%s'", json_get_string(c, "local"),
		      json_get_string(c, "remote"));
	ck_assert(json_get(c, "windows") == NULL); /* only in what-if mode */

	const struct json_value *r = only_line(&t, "release", inode);
	assert_string(r, "outcome", "fin-acked");
	assert_string(r, "row", "G1");

	const struct json_value *s = only_line(&t, "summary", -1);
	ck_assert_msg(finding(s, "total") == 0, "a clean program has %lld findings",
		      finding(s, "total"));
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* The reaper writes a hand-off's close line; it must still be the closing
 * thread's: its tid, the time of its close(), and before the release. */
START_TEST(handoff_close_line_is_the_closing_threads)
{
	struct child_run run;
	struct trace_file t;
	run_traced("thread-close", NULL, &run, &t);
	long long inode, fd, tid, before_us, after_us, outq;
	ck_assert_msg(sscanf(run.out, "inode=%lld fd=%lld tid=%lld before_us=%lld after_us=%lld "
			     "outq=%lld", &inode, &fd, &tid, &before_us, &after_us, &outq) == 6,
		      "scenario output: '%s'", run.out);
	assert_all_from(&t, run.pid);

	size_t close_at = index_of_line(&t, "close", inode);
	const struct json_value *c = t.lines[close_at];
	assert_string(c, "row", "G1");
	assert_string(c, "action", "hand-off");
	ck_assert_int_eq(integer_of(c, "fd"), fd);
	ck_assert_int_eq(integer_of(c, "tid"), tid);
	ck_assert_int_eq(outq, 0); /* nothing was sent */
	ck_assert_int_eq(integer_of(c, "pending"), outq);
	int64_t at = time_us_of(c);
	ck_assert_msg(at >= before_us && at <= after_us,
		      "close line at %lld us, close() ran from %lld to %lld us", (long long)at,
		      before_us, after_us);

	size_t release_at = index_of_line(&t, "release", inode);
	const struct json_value *r = t.lines[release_at];
	ck_assert_msg(close_at < release_at, "release (line %zu) before close (line %zu)",
		      release_at + 1, close_at + 1);
	ck_assert_int_eq(integer_of(r, "fd"), integer_of(c, "held_fd"));
	ck_assert_int_ne(integer_of(r, "tid"), tid); /* the reaper's */
	ck_assert(time_us_of(r) >= at);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* Close lines the reaper writes and release lines it collects are all out
 * before the exit summary, even when the program exits right after. */
START_TEST(exit_right_after_closes_loses_no_line)
{
	struct child_run run;
	struct trace_file t;
	run_traced("exit-after-closes", NULL, &run, &t);
	long long tid;
	ck_assert_msg(sscanf(run.out, "tid=%lld", &tid) == 1, "scenario output: '%s'", run.out);
	assert_all_from(&t, run.pid);

	size_t closes = 0;
	for (size_t i = 0; i < t.count; i++) {
		if (!line_is(t.lines[i], "close", -1))
			continue;
		closes++;
		assert_string(t.lines[i], "row", "G1");
		ck_assert_int_eq(integer_of(t.lines[i], "tid"), tid);
		long long inode = integer_of(t.lines[i], "inode");
		size_t release_at = index_of_line(&t, "release", inode);
		ck_assert_msg(release_at > i, "inode %lld: release before close", inode);
		assert_string(t.lines[release_at], "outcome", "fin-acked");
	}
	ck_assert_uint_eq(closes, EXIT_CLOSES);
	ck_assert_uint_eq(t.count, 2 * EXIT_CLOSES + 1);
	const struct json_value *s = t.lines[t.count - 1];
	ck_assert_msg(line_is(s, "summary", -1), "last line: %s", t.texts[t.count - 1]);
	ck_assert_int_eq(finding(s, "held_at_exit"), 0);
	ck_assert_int_eq(integer_of(json_get(s, "closes"), "G1"), EXIT_CLOSES);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* Where a line about a socket is: for matching close and release lines. */
struct inode_at {
	long long inode;
	size_t line;
};

static int by_inode(const void *a, const void *b)
{
	const struct inode_at *x = a, *y = b;
	return (x->inode > y->inode) - (x->inode < y->inode);
}

/* Under churn every close of a connection is still a hand-off (the held
 * count, which the reaper settles as its lines go out, never strays to
 * WSPCLOSE_MAX_HELD), or, for an end whose peer had closed first
 * (CLOSE_WAIT), a teardown over inside the call; every one has its release
 * line; a listener has nothing to tear down and is closed in the caller
 * (§3). */
START_TEST(churn_holds_every_socket_and_traces_every_release)
{
	struct child_run run;
	struct trace_file t;
	run_traced("churn", CHURN_MAX_HELD, &run, &t);
	assert_all_from(&t, run.pid);
	struct inode_at *closes = calloc(t.count, sizeof *closes);
	struct inode_at *releases = calloc(t.count, sizeof *releases);
	ck_assert(closes != NULL && releases != NULL);
	size_t n_closes = 0, n_releases = 0, n_listeners = 0;
	for (size_t i = 0; i < t.count; i++) {
		const struct json_value *v = t.lines[i];
		if (line_is(v, "release", -1))
			releases[n_releases++] = (struct inode_at){ integer_of(v, "inode"), i };
		if (!line_is(v, "close", -1))
			continue;
		const struct json_value *state = json_get(v, "tcp_state");
		if (state != NULL && state->type == JSON_STRING &&
		    strcmp(state->string, "LISTEN") == 0) {
			ck_assert_msg(json_get(v, "held_fd") == NULL, "line %zu: a listener held: %s",
				      i + 1, t.texts[i]);
			assert_string(v, "action", "close-now");
			n_listeners++;
			continue;
		}
		const struct json_value *action = json_get(v, "action");
		if (action != NULL && action->type == JSON_STRING &&
		    strcmp(action->string, "teardown-now") == 0) {
			ck_assert_msg(json_get(v, "held_fd") == NULL && state != NULL &&
				      state->type == JSON_STRING &&
				      strcmp(state->string, "CLOSE_WAIT") == 0,
				      "line %zu: a teardown in the call, not in CLOSE_WAIT: %s",
				      i + 1, t.texts[i]);
		} else {
			ck_assert_msg(json_get(v, "held_fd") != NULL, "line %zu: no copy held: %s",
				      i + 1, t.texts[i]);
			assert_string(v, "action", "hand-off");
		}
		closes[n_closes++] = (struct inode_at){ integer_of(v, "inode"), i };
	}
	ck_assert_uint_eq(n_listeners, CHURN_CONNECTIONS);
	ck_assert_uint_eq(n_closes, 2 * CHURN_CONNECTIONS);
	ck_assert_uint_eq(n_releases, n_closes);
	/* Pair them by inode: one release each, after its close. */
	qsort(closes, n_closes, sizeof *closes, by_inode);
	qsort(releases, n_releases, sizeof *releases, by_inode);
	for (size_t i = 0; i < n_closes; i++) {
		ck_assert_msg(closes[i].inode == releases[i].inode &&
			      (i == 0 || closes[i].inode != closes[i - 1].inode),
			      "close and release lines do not pair up at inode %lld",
			      closes[i].inode);
		ck_assert_msg(releases[i].line > closes[i].line, "line %zu: release before close",
			      releases[i].line + 1);
	}
	free(closes);
	free(releases);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* The close line of a dup2() onto a socket (written by the reaper) carries
 * the number dup2() returned. */
START_TEST(dup2_onto_a_socket_is_an_implicit_close_with_its_result)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("dup2", NULL, &run, &t, &inode, &fd);
	const struct json_value *c = only_line(&t, "implicit-close-dup2", inode);
	assert_string(c, "row", "G1");
	assert_string(c, "action", "hand-off");
	ck_assert_int_eq(integer_of(c, "fd"), fd);
	ck_assert_int_eq(integer_of(c, "result"), fd);
	ck_assert(json_get(c, "held_fd") != NULL);
	assert_string(only_line(&t, "release", inode), "outcome", "fin-acked");
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* fclose() of a stream on a socket is traced as the implicit close it is;
 * the flushed bytes went out before it. */
START_TEST(fclose_of_a_socket_stream_is_an_implicit_close)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("fclose", NULL, &run, &t, &inode, &fd);
	const struct json_value *c = only_line(&t, "implicit-close-fclose", inode);
	assert_string(c, "row", "G1");
	assert_string(c, "action", "hand-off");
	ck_assert_int_eq(integer_of(c, "fd"), fd);
	assert_string(only_line(&t, "release", inode), "outcome", "fin-acked");
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* A hand-off that cannot hold a copy says so: action "degrade", no
 * held_fd, and no release line (nothing was held). */
START_TEST(degraded_hand_off_is_traced_as_degrade)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("degrade", "WSPCLOSE_MAX_HELD=1", &run, &t, &inode, &fd);
	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "G1");
	assert_string(c, "action", "degrade");
	ck_assert_int_eq(integer_of(c, "fd"), fd);
	ck_assert_int_eq(integer_of(c, "result"), 0);
	ck_assert(json_get(c, "held_fd") == NULL);
	for (size_t i = 0; i < t.count; i++)
		ck_assert_msg(!line_is(t.lines[i], "release", inode), "release line for a "
			      "degraded close: %s", t.texts[i]);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(w1_refusal_is_traced_with_ewouldblock)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("w1", NULL, &run, &t, &inode, &fd);
	assert_all_from(&t, run.pid);

	size_t w1 = 0, g1 = 0;
	for (size_t i = 0; i < t.count; i++) {
		const struct json_value *v = t.lines[i];
		if (!line_is(v, "close", inode))
			continue;
		const char *row = json_get_string(v, "row");
		if (strcmp(row, "W1") == 0) {
			w1++;
			ck_assert_int_eq(integer_of(v, "result"), -1);
			assert_string(v, "errno", "EWOULDBLOCK");
			ck_assert(json_get(v, "nonblocking")->boolean);
			ck_assert(json_get(json_get(v, "linger"), "on")->boolean);
			ck_assert_int_eq(integer_of(json_get(v, "linger"), "seconds"), 5);
			ck_assert(integer_of(v, "pending") > 0);
			ck_assert_msg(g1 == 0, "the W1 line comes after the successful close");
		} else if (strcmp(row, "G1") == 0) {
			g1++;
			ck_assert_int_eq(integer_of(v, "result"), 0);
		} else {
			ck_abort_msg("unexpected row %s for the closed socket", row);
		}
	}
	ck_assert_uint_eq(w1, 1);
	ck_assert_uint_eq(g1, 1);
	/* Both linger changes are traced, in order: {1,5} on, then off. */
	const struct json_value *changes[2];
	size_t n_changes = 0;
	for (size_t i = 0; i < t.count; i++)
		if (line_is(t.lines[i], "linger", inode)) {
			ck_assert_msg(n_changes < 2, "more than 2 linger lines");
			changes[n_changes++] = t.lines[i];
		}
	ck_assert_uint_eq(n_changes, 2);
	ck_assert(!json_get(json_get(changes[0], "before"), "on")->boolean);
	ck_assert(json_get(json_get(changes[0], "after"), "on")->boolean);
	ck_assert(json_get(json_get(changes[1], "before"), "on")->boolean);
	ck_assert(!json_get(json_get(changes[1], "after"), "on")->boolean);
	/* Resolved by a successful close: not a finding. */
	const struct json_value *s = only_line(&t, "summary", -1);
	ck_assert_int_eq(finding(s, "w1_unresolved"), 0);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(l2_linger_reset_is_traced)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("l2", NULL, &run, &t, &inode, &fd);
	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "L2");
	ck_assert_int_eq(integer_of(c, "result"), 0);
	ck_assert_msg(json_get(c, "blocked_ms")->number >= LINGERED_AT_LEAST_MS,
		      "blocked_ms %.3f, the close lingered %d s", json_get(c, "blocked_ms")->number,
		      LINGER_SECONDS);
	const struct json_value *s = only_line(&t, "summary", -1);
	ck_assert_int_eq(finding(s, "linger_resets"), 1);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(shutdown_is_traced_and_close_is_g2)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("shutdown", NULL, &run, &t, &inode, &fd);
	const struct json_value *sh = only_line(&t, "shutdown", inode);
	assert_string(sh, "how", "SHUT_WR");
	ck_assert_int_eq(integer_of(sh, "fd"), fd);
	ck_assert_int_eq(integer_of(sh, "result"), 0);
	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "G2");
	const struct json_value *r = only_line(&t, "release", inode);
	assert_string(r, "outcome", "fin-acked");
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(linger_and_dontlinger_changes_are_traced)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("linger", NULL, &run, &t, &inode, &fd);
	const struct json_value *set = NULL, *dont = NULL;
	for (size_t i = 0; i < t.count; i++) {
		if (!line_is(t.lines[i], "linger", inode))
			continue;
		const char *option = json_get_string(t.lines[i], "option");
		if (strcmp(option, "SO_LINGER") == 0) {
			ck_assert_msg(set == NULL, "two SO_LINGER lines");
			set = t.lines[i];
		} else {
			ck_assert_msg(dont == NULL, "two SO_DONTLINGER lines");
			dont = t.lines[i];
		}
	}
	ck_assert_msg(set != NULL, "no linger line for SO_LINGER");
	ck_assert_msg(dont != NULL, "no linger line for SO_DONTLINGER");
	ck_assert(!json_get(json_get(set, "before"), "on")->boolean);
	ck_assert(json_get(json_get(set, "after"), "on")->boolean);
	ck_assert_int_eq(integer_of(json_get(set, "after"), "seconds"), 3);
	ck_assert_int_eq(integer_of(set, "result"), 0);
	ck_assert(json_get(json_get(dont, "before"), "on")->boolean);
	ck_assert(!json_get(json_get(dont, "after"), "on")->boolean);
	ck_assert_int_eq(integer_of(json_get(dont, "after"), "seconds"), 3);
	ck_assert_int_eq(integer_of(dont, "result"), 0);
	ck_assert_int_eq(integer_of(dont, "fd"), fd);
	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "G1");
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* "pending" is a byte count, or -1 when it was not read (trace.h): never a
 * negative errno, whatever the socket (a listener answers SIOCOUTQ with
 * EINVAL). Checked apart from the other fields so that it fails alone. */
START_TEST(pending_is_a_byte_count_or_minus_one)
{
	struct child_run run;
	struct trace_file t;
	run_traced("g1", NULL, &run, &t); /* closes a connection and its listener */
	size_t checked = 0;
	for (size_t i = 0; i < t.count; i++) {
		const struct json_value *p = json_get(t.lines[i], "pending");
		if (p == NULL)
			continue;
		checked++;
		ck_assert_msg(p->integer >= -1, "line %zu: pending %lld is not a byte count: %s",
			      i + 1, p->integer, t.texts[i]);
	}
	ck_assert_uint_ge(checked, 3);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

/* ================================================================ tests: sharing, findings */

START_TEST(processes_sharing_a_trace_file_never_tear_lines)
{
	struct child_run run;
	struct trace_file t;
	run_traced("multiprocess", NULL, &run, &t); /* every line parsed and checked */
	long pids[MULTI_CHILDREN];
	ck_assert_msg(sscanf(run.out, "children=%ld,%ld,%ld,%ld", &pids[0], &pids[1], &pids[2],
			     &pids[3]) == MULTI_CHILDREN, "no child pids in '%s'", run.out);
	size_t closes[MULTI_CHILDREN] = { 0 }, summaries[MULTI_CHILDREN] = { 0 };
	size_t parent_summaries = 0;
	for (size_t i = 0; i < t.count; i++) {
		long long pid = integer_of(t.lines[i], "pid");
		const char *event = json_get_string(t.lines[i], "event");
		if (pid == run.pid) {
			ck_assert_msg(strcmp(event, "summary") == 0, "parent line: %s", t.texts[i]);
			parent_summaries++;
			continue;
		}
		int child = -1;
		for (int k = 0; k < MULTI_CHILDREN; k++)
			if (pid == pids[k])
				child = k;
		ck_assert_msg(child >= 0, "line %zu from unknown pid %lld", i + 1, pid);
		if (strcmp(event, "close") == 0) {
			assert_string(t.lines[i], "row", "not-tcp");
			closes[child]++;
		} else {
			ck_assert_msg(strcmp(event, "summary") == 0, "unexpected: %s", t.texts[i]);
			ck_assert_int_eq(integer_of(json_get(t.lines[i], "closes"), "not-tcp"),
					 MULTI_CLOSES_PER_CHILD);
			summaries[child]++;
		}
	}
	for (int k = 0; k < MULTI_CHILDREN; k++) {
		ck_assert_msg(closes[k] == MULTI_CLOSES_PER_CHILD, "child %d: %zu close lines", k,
			      closes[k]);
		ck_assert_msg(summaries[k] == 1, "child %d: %zu summary lines", k, summaries[k]);
	}
	ck_assert_uint_eq(parent_summaries, 1);
	ck_assert_uint_eq(t.count, MULTI_CHILDREN * (MULTI_CLOSES_PER_CHILD + 1) + 1);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(double_close_is_a_finding)
{
	struct child_run run;
	struct trace_file t;
	run_traced("double-close", NULL, &run, &t);
	const struct json_value *s = only_line(&t, "summary", -1);
	ck_assert_msg(finding(s, "double_close") == 1, "findings.double_close = %lld",
		      finding(s, "double_close"));
	ck_assert_int_eq(finding(s, "total"), 1);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

START_TEST(stats_summary_is_printed_on_stderr)
{
	struct child_run run;
	const char *env[] = { "WSPCLOSE_STATS=1", NULL };
	run_child("double-close", env, &run);
	assert_child_ok(&run, "double-close");
	char first[64];
	snprintf(first, sizeof first, "libwspclose: summary for pid %ld\n", (long)run.pid);
	ck_assert_msg(strncmp(run.err, first, strlen(first)) == 0,
		      "stderr does not start with '%s': %s", first, run.err);
	size_t lines = 0;
	for (const char *p = run.err; *p; p++)
		lines += *p == '\n';
	ck_assert_msg(lines >= 5, "a %zu-line summary: %s", lines, run.err);
	ck_assert_msg(strstr(run.err, "closes by row: G1=1") != NULL, "%s", run.err);
	ck_assert_msg(strstr(run.err, "double close of a number not reused: 1\n") != NULL, "%s",
		      run.err);
	/* Every line is the library's. */
	for (const char *p = run.err; p != NULL && *p != '\0';) {
		ck_assert_msg(strncmp(p, "libwspclose:", 12) == 0, "stray stderr line: %s", p);
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	free_child_run(&run);
}
END_TEST

/* ================================================================ tests: formats, targets */

START_TEST(text_format_lines_are_single_lines)
{
	char *path = make_temp_file();
	char *trace_setting;
	ck_assert(asprintf(&trace_setting, "WSPCLOSE_TRACE=%s", path) > 0);
	const char *env[] = { trace_setting, "WSPCLOSE_TRACE_FORMAT=text", NULL };
	struct child_run run;
	run_child("g1", env, &run);
	struct trace_file t;
	split_lines(path, &t); /* removes the file once read */
	assert_child_ok(&run, "g1");
	long long inode, fd;
	reported_socket(&run, &inode, &fd);
	char pid_word[32], inode_word[48];
	snprintf(pid_word, sizeof pid_word, " pid=%ld ", (long)run.pid);
	snprintf(inode_word, sizeof inode_word, " inode=%lld ", inode);
	size_t g1 = 0;
	for (size_t i = 0; i < t.count; i++) {
		const char *line = t.texts[i];
		ck_assert_msg(line[0] >= '0' && line[0] <= '9' && strstr(line, " libwspclose ") &&
			      strstr(line, pid_word) && strstr(line, " event="),
			      "line %zu is not a text trace line: %s", i + 1, line);
		ck_assert_msg(strchr(line, '\r') == NULL && line[0] != '{', "line %zu: %s", i + 1,
			      line);
		if (strstr(line, " event=close ") && strstr(line, " row=G1 ") &&
		    strstr(line, inode_word))
			g1++;
	}
	ck_assert_msg(g1 == 1, "%zu text lines with event=close row=G1 for inode %lld", g1, inode);
	free_trace(&t);
	free_child_run(&run);
	free(path);
	free(trace_setting);
}
END_TEST

START_TEST(unwritable_trace_path_warns_once_and_runs)
{
	const char *env[] = { "WSPCLOSE_TRACE=/nonexistent/dir/x", "WSPCLOSE_TRACE_FORMAT=json",
			      NULL };
	struct child_run run;
	run_child("g1", env, &run);
	assert_child_ok(&run, "g1"); /* the program ran normally */
	size_t lines = 0;
	for (const char *p = run.err; *p; p++)
		lines += *p == '\n';
	ck_assert_msg(lines == 1, "%zu stderr lines, expected one warning:\n%s", lines, run.err);
	ck_assert_msg(strncmp(run.err, "libwspclose:", 12) == 0 &&
		      strstr(run.err, "WSPCLOSE_TRACE") != NULL,
		      "the warning does not name WSPCLOSE_TRACE: %s", run.err);
	struct stat st;
	ck_assert(stat("/nonexistent/dir/x", &st) != 0);
	free_child_run(&run);
}
END_TEST

START_TEST(passthrough_says_what_windows_would_do)
{
	struct child_run run;
	struct trace_file t;
	long long inode, fd;
	run_traced_socket("passthrough-w1", "WSPCLOSE_PASSTHROUGH=1", &run, &t, &inode, &fd);
	const struct json_value *c = only_line(&t, "close", inode);
	assert_string(c, "row", "W1");
	ck_assert_int_eq(integer_of(c, "result"), 0);
	ck_assert_int_eq(json_get(c, "errno")->type, JSON_NULL);
	const char *windows = json_get_string(c, "windows");
	ck_assert_msg(windows != NULL, "no \"windows\" field in what-if mode");
	ck_assert_msg(strstr(windows, "WSAEWOULDBLOCK") != NULL, "windows: %s", windows);
	ck_assert_msg(json_get(c, "blocked_ms")->number >= LINGERED_AT_LEAST_MS,
		      "blocked_ms %.3f", json_get(c, "blocked_ms")->number);
	/* Linux semantics: the library held nothing. */
	for (size_t i = 0; i < t.count; i++)
		ck_assert_msg(!line_is(t.lines[i], "release", inode), "held in what-if mode: %s",
			      t.texts[i]);
	/* On Windows this socket would never have been closed. */
	const struct json_value *s = only_line(&t, "summary", -1);
	ck_assert_int_eq(finding(s, "w1_unresolved"), 1);
	free_trace(&t);
	free_child_run(&run);
}
END_TEST

static Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *parser = tcase_create("json_parser");
	TCase *rows = tcase_create("rows");
	TCase *findings = tcase_create("findings");
	TCase *targets = tcase_create("formats_and_targets");

	tcase_add_test(parser, json_parser_accepts_valid_documents);
	tcase_add_test(parser, json_parser_rejects_invalid_documents);
	suite_add_tcase(s, parser);

	tcase_add_test(rows, g1_close_and_its_release_are_traced);
	tcase_add_test(rows, handoff_close_line_is_the_closing_threads);
	tcase_add_test(rows, exit_right_after_closes_loses_no_line);
	tcase_add_test(rows, churn_holds_every_socket_and_traces_every_release);
	tcase_add_test(rows, degraded_hand_off_is_traced_as_degrade);
	tcase_add_test(rows, dup2_onto_a_socket_is_an_implicit_close_with_its_result);
	tcase_add_test(rows, fclose_of_a_socket_stream_is_an_implicit_close);
	tcase_add_test(rows, w1_refusal_is_traced_with_ewouldblock);
	tcase_add_test(rows, l2_linger_reset_is_traced);
	tcase_add_test(rows, shutdown_is_traced_and_close_is_g2);
	tcase_add_test(rows, linger_and_dontlinger_changes_are_traced);
	tcase_add_test(rows, pending_is_a_byte_count_or_minus_one);
	tcase_set_timeout(rows, 60);
	suite_add_tcase(s, rows);

	tcase_add_test(findings, processes_sharing_a_trace_file_never_tear_lines);
	tcase_add_test(findings, double_close_is_a_finding);
	tcase_add_test(findings, stats_summary_is_printed_on_stderr);
	tcase_set_timeout(findings, 60);
	suite_add_tcase(s, findings);

	tcase_add_test(targets, text_format_lines_are_single_lines);
	tcase_add_test(targets, unwritable_trace_path_warns_once_and_runs);
	tcase_add_test(targets, passthrough_says_what_windows_would_do);
	tcase_set_timeout(targets, 60);
	suite_add_tcase(s, targets);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--scenario") == 0)
		return run_scenario(argv[2]);

	SRunner *sr = srunner_create(trace_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
