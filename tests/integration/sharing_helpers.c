/* sharing_helpers.c: helpers of the sharing, implicit-close, epoll, blocked-
 * caller, own-descriptor, fork/exec and signal tests (and the stress program). */
#include "sharing_helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------ child processes */

struct sh_shared {
	sem_t to_child;
	sem_t to_parent;
	char msg[2048];
};

/* Set in the child only: where sh_fail() reports. */
static struct sh_shared *current_child;

void sh_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int sh_child_start(struct sh_child *child, sh_child_main fn, void *arg)
{
	struct sh_shared *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	child->pid = -1;
	child->shared = NULL;
	if (shared == MAP_FAILED)
		return -1;
	memset(shared, 0, sizeof(*shared));
	sem_init(&shared->to_child, 1, 0);
	sem_init(&shared->to_parent, 1, 0);
	fflush(NULL);
	pid_t pid = fork();

	if (pid < 0) {
		int err = errno;

		munmap(shared, sizeof(*shared));
		errno = err;
		return -1;
	}
	if (pid == 0) {
		current_child = shared;
		fn(arg);
		_exit(0);
	}
	child->pid = pid;
	child->shared = shared;
	return 0;
}

void *sh_shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, len);
	return p;
}

void sh_shared_free(void *p, size_t len)
{
	if (p != NULL)
		munmap(p, len);
}

bool sh_wait_pid(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = lb_now_ms() + timeout_ms;
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid) {
			if (pidfd >= 0)
				close(pidfd);
			return true;
		}
		if (r < 0 && errno != EINTR) {
			if (pidfd >= 0)
				close(pidfd);
			return false;
		}
		int64_t left = deadline - lb_now_ms();

		if (left <= 0)
			break;
		if (pidfd >= 0)
			lb_poll(pidfd, POLLIN, (int)left); /* readable when it exits */
		else
			sh_sleep_ms(left < 5 ? (int)left : 5);
	}
	if (pidfd >= 0)
		close(pidfd);
	return false;
}

bool sh_child_finish(struct sh_child *child, int timeout_ms, char *msg, size_t len)
{
	int status = 0;
	bool ok;

	if (child->pid <= 0) {
		snprintf(msg, len, "the child process could not be started");
		return false;
	}
	if (!sh_wait_pid(child->pid, timeout_ms, &status)) {
		kill(child->pid, SIGKILL);
		while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
			;
		snprintf(msg, len, "the child did not finish within %d ms (killed); last words: %s",
			 timeout_ms, child->shared->msg[0] ? child->shared->msg : "none");
		ok = false;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(msg, len, "ok");
		ok = true;
	} else if (WIFSIGNALED(status)) {
		snprintf(msg, len, "the child died of signal %d (%s)%s%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)), child->shared->msg[0] ? ": " : "",
			 child->shared->msg);
		ok = false;
	} else {
		snprintf(msg, len, "%s", child->shared->msg[0] ? child->shared->msg
			 : "the child exited non-zero without a reason");
		ok = false;
	}
	sem_destroy(&child->shared->to_child);
	sem_destroy(&child->shared->to_parent);
	munmap(child->shared, sizeof(*child->shared));
	child->shared = NULL;
	child->pid = -1;
	return ok;
}

bool sh_run_in_child(sh_child_main fn, void *arg, int timeout_ms, char *msg, size_t len)
{
	struct sh_child child;

	if (sh_child_start(&child, fn, arg) < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		return false;
	}
	return sh_child_finish(&child, timeout_ms, msg, len);
}

static bool sem_wait_bounded(sem_t *sem, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (sem_timedwait(sem, &ts) == 0)
			return true;
		if (errno != EINTR)
			return false;
	}
}

void sh_parent_signal_child(struct sh_child *child)
{
	sem_post(&child->shared->to_child);
}

bool sh_parent_await_child(struct sh_child *child, int timeout_ms)
{
	return sem_wait_bounded(&child->shared->to_parent, timeout_ms);
}

void sh_child_signal_parent(void)
{
	if (current_child != NULL)
		sem_post(&current_child->to_parent);
}

bool sh_child_await_parent(int timeout_ms)
{
	return current_child != NULL && sem_wait_bounded(&current_child->to_child, timeout_ms);
}

void sh_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (current_child != NULL) {
		vsnprintf(current_child->msg, sizeof(current_child->msg), fmt, ap);
		va_end(ap);
		_exit(1);
	}
	fputs("FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ------------------------------------------------------ connections */

static socklen_t loopback_address(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*sin);
}

static void close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int sh_listener_open(int family, int rcvbuf, int backlog,
		     struct sockaddr_storage *addr, socklen_t *addr_len)
{
	*addr_len = loopback_address(family, addr);
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if ((rcvbuf > 0 &&
	     setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) ||
	    bind(fd, (struct sockaddr *)addr, *addr_len) < 0 ||
	    listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, addr_len) < 0) {
		close_keep_errno(fd);
		return -1;
	}
	return fd;
}

int sh_connect(const struct sockaddr_storage *addr, socklen_t addr_len, int sndbuf)
{
	int fd = socket(addr->ss_family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (sndbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
		close_keep_errno(fd);
		return -1;
	}
	while (connect(fd, (const struct sockaddr *)addr, addr_len) < 0) {
		if (errno == EINTR)
			continue; /* a restarted connect of a pending handshake */
		if (errno == EISCONN)
			break;
		if (errno == EALREADY) {
			lb_poll(fd, POLLOUT, 1000);
			continue;
		}
		close_keep_errno(fd);
		return -1;
	}
	return fd;
}

int sh_accept(int listener, int timeout_ms)
{
	int64_t deadline = lb_now_ms() + timeout_ms;

	for (;;) {
		int left = (int)(deadline - lb_now_ms());

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		int rev = lb_poll(listener, POLLIN, left);

		if (rev < 0)
			return -1;
		if (rev == 0)
			continue;
		int fd = accept4(listener, NULL, NULL, 0);

		if (fd >= 0 || (errno != EINTR && errno != EAGAIN))
			return fd;
	}
}

int sh_pair_via(int listener, int sndbuf, int *client, int *peer)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);

	*client = *peer = -1;
	if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		return -1;
	*client = sh_connect(&addr, len, sndbuf);
	if (*client < 0)
		return -1;
	*peer = sh_accept(listener, 5000);
	if (*peer < 0) {
		close_keep_errno(*client);
		*client = -1;
		return -1;
	}
	return 0;
}

int sh_held_case_start(struct sh_held_case *hc)
{
	hc->sent = 0;
	if (lb_pair_open_small(&hc->pair, AF_INET) != 0)
		return -1;
	if (lb_fill_send_queue(hc->pair.client, &hc->sent) <= 0) {
		lb_pair_close(&hc->pair);
		return -1;
	}
	hc->inode = lb_socket_inode(hc->pair.client);
	int rc = close(hc->pair.client);
	hc->pair.client = -1;
	return rc;
}

bool sh_held_case_finish(struct sh_held_case *hc, char *msg, size_t len)
{
	struct lb_drain_result r;
	bool ok = false;

	lb_drain_now(hc->pair.peer, SH_DRAIN_MS, &r);
	if (r.end != LB_END_EOF || r.bytes != hc->sent || !r.pattern_ok)
		snprintf(msg, len, "held connection: the peer got %llu of %llu bytes (pattern %s), then %s",
			 (unsigned long long)r.bytes, (unsigned long long)hc->sent,
			 r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
	else if (!lb_wait_socket_gone(hc->inode, SH_HELD_MIN_FD, 2000))
		snprintf(msg, len, "the held copy of socket:[%lu] was not released after the peer read everything",
			 (unsigned long)hc->inode);
	else
		ok = true;
	lb_pair_close(&hc->pair);
	return ok;
}

/* ------------------------------------------------------ observation */

bool sh_fd_is_open(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return access(path, F_OK) == 0;
}

int sh_fd_link(int fd, char *buf, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, len - 1);

	if (n < 0) {
		buf[0] = '\0';
		return -1;
	}
	buf[n] = '\0';
	return 0;
}

bool sh_peer_quiet(int peer, int ms)
{
	/* A bounded negative observation: nothing may arrive in the window. */
	return lb_poll(peer, POLLIN | POLLRDHUP, ms) == 0;
}

int sh_expect_pattern(int fd, uint64_t *offset, size_t len, int timeout_ms,
		      char *why, size_t why_len)
{
	unsigned char buf[16384];
	int64_t deadline = lb_now_ms() + timeout_ms;
	size_t got = 0;

	while (got < len) {
		int left = (int)(deadline - lb_now_ms());

		if (left <= 0) {
			snprintf(why, why_len, "only %zu of %zu bytes arrived within %d ms",
				 got, len, timeout_ms);
			return -1;
		}
		int rev = lb_poll(fd, POLLIN, left);

		if (rev <= 0)
			continue;
		size_t want = len - got < sizeof(buf) ? len - got : sizeof(buf);
		ssize_t r = recv(fd, buf, want, MSG_DONTWAIT);

		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			snprintf(why, why_len, "recv failed after %zu of %zu bytes: %s",
				 got, len, strerror(errno));
			return -1;
		}
		if (r == 0) {
			snprintf(why, why_len, "EOF after %zu of %zu bytes", got, len);
			return -1;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != lb_pattern_byte(*offset + (uint64_t)i)) {
				snprintf(why, why_len, "corrupt byte at stream offset %llu",
					 (unsigned long long)(*offset + (uint64_t)i));
				return -1;
			}
		}
		*offset += (uint64_t)r;
		got += (size_t)r;
	}
	return 0;
}

void sh_drain_inline(int fd, uint64_t offset, int timeout_ms, struct lb_drain_result *out)
{
	unsigned char buf[16384];
	int64_t deadline = lb_now_ms() + timeout_ms;

	memset(out, 0, sizeof(*out));
	out->pattern_ok = true;
	out->end = LB_END_TIMEOUT;
	for (;;) {
		int left = (int)(deadline - lb_now_ms());

		if (left <= 0)
			break;
		int rev = lb_poll(fd, POLLIN, left);

		if (rev < 0) {
			out->end = LB_END_ERROR;
			out->err = errno;
			break;
		}
		if (rev == 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r > 0) {
			for (ssize_t i = 0; i < r; i++) {
				if (buf[i] != lb_pattern_byte(offset + out->bytes + (uint64_t)i))
					out->pattern_ok = false;
			}
			out->bytes += (uint64_t)r;
			continue;
		}
		if (r == 0) {
			out->end = LB_END_EOF;
			break;
		}
		if (errno == EINTR || errno == EAGAIN)
			continue;
		out->end = errno == ECONNRESET ? LB_END_RESET : LB_END_ERROR;
		out->err = errno;
		break;
	}
	out->end_ms = lb_now_ms();
}

bool sh_epoll_lists_fd(int epfd, int fd)
{
	char path[64], line[256];
	bool found = false;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "tfd:", 4) == 0 && atoi(line + 4) == fd) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int sh_list_fds(int *fds, int max)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (dir == NULL)
		return 0;
	int self = dirfd(dir);

	while ((de = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);

		if (*end != '\0' || end == de->d_name || fd == self)
			continue;
		if (n < max)
			fds[n++] = (int)fd;
	}
	closedir(dir);
	qsort(fds, (size_t)n, sizeof(int), compare_ints);
	return n;
}

bool sh_fd_in(const int *fds, int n, int fd)
{
	return bsearch(&fd, fds, (size_t)n, sizeof(int), compare_ints) != NULL;
}

int sh_send_fd(int unix_sock, int fd, const void *data, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { (void *)data, len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};

	memset(control.buf, 0, sizeof(control.buf));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t r;

	while ((r = sendmsg(unix_sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return r < 0 ? -1 : 0;
}

ssize_t sh_recv_fd(int unix_sock, void *data, size_t len, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { data, len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	ssize_t r;

	*fd = -1;
	while ((r = recvmsg(unix_sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	}
	return r;
}

bool sh_wait_thread_blocked(pid_t tid, int timeout_ms)
{
	char path[96], stat[512];
	int64_t deadline = lb_now_ms() + timeout_ms;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (;;) {
		FILE *f = fopen(path, "re");

		if (f != NULL) {
			size_t n = fread(stat, 1, sizeof(stat) - 1, f);

			fclose(f);
			stat[n] = '\0';
			/* "tid (comm) S ...": the state follows the last ')'. */
			char *close_paren = strrchr(stat, ')');

			if (close_paren != NULL && close_paren[1] == ' ' &&
			    (close_paren[2] == 'S' || close_paren[2] == 'D'))
				return true;
		}
		if (lb_now_ms() >= deadline)
			return false;
		sh_sleep_ms(2);
	}
}

/* ------------------------------------------------------ §2 rows */

static bool row_fail(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool row_fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return false;
}

struct timed_close {
	int rc;
	int err;
	int64_t ms;
};

static struct timed_close close_timed(int fd)
{
	struct timed_close t;
	int64_t start = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	t.rc = close(fd);
	t.err = errno;
	t.ms = lb_now_ms() - start;
	return t;
}

bool sh_check_g1_hold(char *why, size_t len)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	if (lb_pair_open_small(&pair, AF_INET) < 0)
		return row_fail(why, len, "G1: cannot connect a pair: %s", strerror(errno));
	if (lb_fill_send_queue(pair.client, &sent) <= 0 || lb_outq(pair.client) <= 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "G1: could not make the send queue pending");
	}
	ino_t inode = lb_socket_inode(pair.client);
	struct timed_close t = close_timed(pair.client);

	pair.client = -1;
	if (t.rc != 0 || t.err != SH_ERRNO_SENTINEL || t.ms >= SH_QUICK_MS) {
		lb_pair_close(&pair);
		return row_fail(why, len, "G1: close() returned %d, errno %d (%s), after %lld ms; expected 0 at once",
				t.rc, t.err, strerror(t.err), (long long)t.ms);
	}
	if (lb_find_socket_fd(inode, SH_HELD_MIN_FD) < 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "G1: no copy of socket:[%lu] is held at >= %d after close() with data pending",
				(unsigned long)inode, SH_HELD_MIN_FD);
	}
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	if (r.end != LB_END_EOF || r.bytes != sent || !r.pattern_ok) {
		lb_pair_close(&pair);
		return row_fail(why, len, "G1: the peer got %llu of %llu bytes (pattern %s), then %s",
				(unsigned long long)r.bytes, (unsigned long long)sent,
				r.pattern_ok ? "ok" : "corrupt", lb_end_name(r.end));
	}
	bool gone = lb_wait_socket_gone(inode, SH_HELD_MIN_FD, 2000);

	lb_pair_close(&pair);
	if (!gone)
		return row_fail(why, len, "G1: the held copy is still open 2 s after the peer read everything");
	return true;
}

bool sh_check_a1(char *why, size_t len)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	if (lb_pair_open(&pair, AF_INET, 0, 0) < 0)
		return row_fail(why, len, "A1: cannot connect a pair: %s", strerror(errno));
	if (lb_send_pattern(pair.client, &sent, 1000) < 0 ||
	    lb_set_linger(pair.client, 1, 0) < 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "A1: setup failed: %s", strerror(errno));
	}
	struct timed_close t = close_timed(pair.client);

	pair.client = -1;
	if (t.rc != 0 || t.err != SH_ERRNO_SENTINEL || t.ms >= SH_QUICK_MS) {
		lb_pair_close(&pair);
		return row_fail(why, len, "A1: close() returned %d, errno %d (%s), after %lld ms; expected 0 at once",
				t.rc, t.err, strerror(t.err), (long long)t.ms);
	}
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	lb_pair_close(&pair);
	if (r.end != LB_END_RESET)
		return row_fail(why, len, "A1: the peer's stream ended with %s after %llu bytes; expected ECONNRESET",
				lb_end_name(r.end), (unsigned long long)r.bytes);
	return true;
}

bool sh_check_w1(char *why, size_t len)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;

	if (lb_pair_open_small(&pair, AF_INET) < 0)
		return row_fail(why, len, "W1: cannot connect a pair: %s", strerror(errno));
	if (lb_fill_send_queue(pair.client, &sent) <= 0 || lb_outq(pair.client) <= 0 ||
	    lb_set_nonblocking(pair.client, true) < 0 || lb_set_linger(pair.client, 1, 5) < 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "W1: setup failed");
	}
	struct timed_close t = close_timed(pair.client);

	if (t.rc != -1 || t.err != EWOULDBLOCK || t.ms >= SH_QUICK_MS) {
		if (t.rc == 0)
			pair.client = -1;
		lb_pair_close(&pair);
		return row_fail(why, len, "W1: close() returned %d, errno %d (%s), after %lld ms; expected -1/EWOULDBLOCK at once",
				t.rc, t.err, strerror(t.err), (long long)t.ms);
	}
	if (!sh_fd_is_open(pair.client) || lb_tcp_state(pair.client) != 1 /* ESTABLISHED */) {
		lb_pair_close(&pair);
		return row_fail(why, len, "W1: after EWOULDBLOCK the fd is closed or the connection changed state");
	}
	if (lb_set_linger(pair.client, 0, 0) < 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "W1: setsockopt(SO_LINGER off) after W1: %s", strerror(errno));
	}
	t = close_timed(pair.client);
	pair.client = -1;
	if (t.rc != 0) {
		lb_pair_close(&pair);
		return row_fail(why, len, "W1: close() with linger off after W1 returned %d (%s)",
				t.rc, strerror(t.err));
	}
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	lb_pair_close(&pair);
	if (r.end != LB_END_EOF || r.bytes != sent || !r.pattern_ok)
		return row_fail(why, len, "W1: after the final close the peer got %llu of %llu bytes, then %s",
				(unsigned long long)r.bytes, (unsigned long long)sent,
				lb_end_name(r.end));
	return true;
}

bool sh_check_rows(char *why, size_t len)
{
	return sh_check_g1_hold(why, len) && sh_check_a1(why, len) && sh_check_w1(why, len);
}
