/* loopback.c: helpers shared by the integration tests: connected TCP pairs
 * over loopback, a filled send queue, a peer drainer, descriptor inspection. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "loopback.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Small buffers so a send queue fills with a few hundred KB at most; the
 * kernel doubles the value and applies its own minimum. */
#define SMALL_PEER_RCVBUF 4096
#define SMALL_CLIENT_SNDBUF 8192

int64_t lb_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

static socklen_t loopback_addr(int family, struct sockaddr_storage *ss)
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

int lb_pair_open(struct lb_pair *pair, int family, int peer_rcvbuf,
		 int client_sndbuf)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback_addr(family, &ss);

	pair->family = family;
	pair->listener = pair->client = pair->peer = -1;

	pair->listener = socket(family, SOCK_STREAM, 0);
	if (pair->listener < 0)
		goto fail;
	if (peer_rcvbuf > 0 &&
	    setsockopt(pair->listener, SOL_SOCKET, SO_RCVBUF, &peer_rcvbuf,
		       sizeof(peer_rcvbuf)) < 0)
		goto fail;
	if (bind(pair->listener, (struct sockaddr *)&ss, len) < 0 ||
	    listen(pair->listener, 4) < 0 ||
	    getsockname(pair->listener, (struct sockaddr *)&ss, &len) < 0)
		goto fail;

	pair->client = socket(family, SOCK_STREAM, 0);
	if (pair->client < 0)
		goto fail;
	if (client_sndbuf > 0 &&
	    setsockopt(pair->client, SOL_SOCKET, SO_SNDBUF, &client_sndbuf,
		       sizeof(client_sndbuf)) < 0)
		goto fail;
	if (connect(pair->client, (struct sockaddr *)&ss, len) < 0)
		goto fail;

	pair->peer = accept(pair->listener, NULL, NULL);
	if (pair->peer < 0)
		goto fail;
	return 0;

fail:
	close_keep_errno(pair->peer);
	close_keep_errno(pair->client);
	close_keep_errno(pair->listener);
	pair->listener = pair->client = pair->peer = -1;
	return -1;
}

int lb_pair_open_small(struct lb_pair *pair, int family)
{
	return lb_pair_open(pair, family, SMALL_PEER_RCVBUF,
			    SMALL_CLIENT_SNDBUF);
}

void lb_pair_close(struct lb_pair *pair)
{
	int *fds[] = { &pair->client, &pair->peer, &pair->listener };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

bool lb_ipv6_available(char *why, size_t why_len)
{
	/* Probed in a child process, so that the caller (the test runner)
	 * never closes a connected TCP socket itself. */
	int fds[2];
	int status;

	snprintf(why, why_len, "probe failed");
	if (pipe(fds) < 0)
		return false;
	pid_t pid = fork();

	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	if (pid == 0) {
		struct lb_pair pair;

		close(fds[0]);
		if (lb_pair_open(&pair, AF_INET6, 0, 0) < 0) {
			dprintf(fds[1], "cannot connect over [::1]: %s",
				strerror(errno));
			_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], why, why_len - 1);

	if (n > 0)
		why[n] = '\0';
	else
		snprintf(why, why_len, "the probe process failed");
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

unsigned char lb_pattern_byte(uint64_t offset)
{
	/* 251 is prime: chunk sizes that are powers of two never line up. */
	return (unsigned char)(offset % 251);
}

static void pattern_fill(unsigned char *buf, size_t len, uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = lb_pattern_byte(offset + i);
}

int lb_send_pattern(int fd, uint64_t *offset, size_t len)
{
	unsigned char buf[16384];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);

		pattern_fill(buf, n, *offset);
		ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		*offset += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

/* settle: after EAGAIN, wait until the queue is really stuck. */
static ssize_t fill_send_queue(int fd, uint64_t *offset, bool settle)
{
	unsigned char buf[4096];
	ssize_t total = 0;
	int64_t deadline = lb_now_ms() + 5000;

	for (;;) {
		pattern_fill(buf, sizeof(buf), *offset);
		ssize_t r = send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			*offset += (uint64_t)r;
			total += r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* On loopback the last segments may still be in flight
			 * to the peer's receive queue; wait until the queue is
			 * really stuck (a short poll for POLLOUT times out). */
			if (!settle || lb_poll(fd, POLLOUT, 50) == 0)
				return total;
			if (lb_now_ms() > deadline)
				return total;
			continue;
		}
		return -1;
	}
}

ssize_t lb_fill_send_queue(int fd, uint64_t *offset)
{
	return fill_send_queue(fd, offset, true);
}

ssize_t lb_fill_send_queue_quick(int fd, uint64_t *offset)
{
	return fill_send_queue(fd, offset, false);
}

const char *lb_end_name(enum lb_end end)
{
	switch (end) {
	case LB_END_EOF:
		return "EOF";
	case LB_END_RESET:
		return "ECONNRESET";
	case LB_END_TIMEOUT:
		return "timeout (neither EOF nor reset)";
	case LB_END_ERROR:
		return "another error";
	}
	return "?";
}

static void *drainer_main(void *arg)
{
	struct lb_drainer *d = arg;
	struct lb_drain_result *res = &d->result;
	unsigned char *buf = malloc(d->chunk);

	res->bytes = 0;
	res->pattern_ok = true;
	res->err = 0;
	res->end = LB_END_TIMEOUT;
	if (buf == NULL) {
		res->end = LB_END_ERROR;
		res->err = ENOMEM;
		res->end_ms = lb_now_ms();
		return NULL;
	}

	for (;;) {
		int64_t left = d->deadline_ms - lb_now_ms();

		if (left <= 0) {
			res->end = LB_END_TIMEOUT;
			break;
		}
		int rev = lb_poll(d->fd, POLLIN, (int)left);

		if (rev == 0)
			continue;  /* loop re-checks the deadline */
		if (rev < 0) {
			res->end = LB_END_ERROR;
			res->err = errno;
			break;
		}

		pthread_mutex_lock(&d->lock);
		ssize_t r = recv(d->fd, buf, d->chunk, MSG_DONTWAIT);
		int err = errno;

		if (r > 0) {
			for (ssize_t i = 0; i < r; i++) {
				if (buf[i] != lb_pattern_byte(res->bytes + (uint64_t)i))
					res->pattern_ok = false;
			}
			res->bytes += (uint64_t)r;
		}
		pthread_mutex_unlock(&d->lock);

		if (r > 0) {
			if (d->pause_ms > 0)
				sleep_ms(d->pause_ms);  /* a deliberately slow reader */
			continue;
		}
		if (r == 0) {
			res->end = LB_END_EOF;
			break;
		}
		if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK)
			continue;
		res->end = err == ECONNRESET ? LB_END_RESET : LB_END_ERROR;
		res->err = err;
		break;
	}
	res->end_ms = lb_now_ms();
	free(buf);
	return NULL;
}

int lb_drainer_start(struct lb_drainer *drainer, int fd, size_t chunk,
		     int pause_ms, int timeout_ms)
{
	memset(drainer, 0, sizeof(*drainer));
	drainer->fd = fd;
	drainer->chunk = chunk > 0 ? chunk : 65536;
	drainer->pause_ms = pause_ms;
	drainer->deadline_ms = lb_now_ms() + timeout_ms;
	pthread_mutex_init(&drainer->lock, NULL);
	int rc = pthread_create(&drainer->thread, NULL, drainer_main, drainer);

	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

void lb_drainer_join(struct lb_drainer *drainer, struct lb_drain_result *out)
{
	pthread_join(drainer->thread, NULL);
	pthread_mutex_destroy(&drainer->lock);
	*out = drainer->result;
}

uint64_t lb_drainer_arrived(struct lb_drainer *drainer)
{
	int queued = 0;

	pthread_mutex_lock(&drainer->lock);
	uint64_t read_so_far = drainer->result.bytes;

	if (ioctl(drainer->fd, SIOCINQ, &queued) < 0)
		queued = 0;
	pthread_mutex_unlock(&drainer->lock);
	return read_so_far + (uint64_t)queued;
}

void lb_drain_now(int fd, int timeout_ms, struct lb_drain_result *out)
{
	struct lb_drainer d;

	if (lb_drainer_start(&d, fd, 65536, 0, timeout_ms) < 0) {
		memset(out, 0, sizeof(*out));
		out->end = LB_END_ERROR;
		out->err = errno;
		return;
	}
	lb_drainer_join(&d, out);
}

/* Calls visit(fd, link) for each open descriptor >= min_fd (not the one
 * listing them); returns the lowest fd for which visit returned true, or -1. */
static int scan_fds(int min_fd, bool (*visit)(int fd, const char *link, void *ctx),
		    void *ctx);

static bool count_all(int fd, const char *link, void *ctx)
{
	int *count = ctx;

	(void)fd;
	(void)link;
	(*count)++;
	return false;
}

int lb_count_fds(void)
{
	int count = 0;

	scan_fds(0, count_all, &count);
	return count;
}

static bool count_app(int fd, const char *link, void *ctx)
{
	static const char *const events[] = {
		"anon_inode:[eventpoll]", "anon_inode:[eventfd]",
		"anon_inode:[timerfd]", "anon_inode:[signalfd]",
	};
	int *count = ctx;

	if (fd >= 1024) {
		for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
			if (strcmp(link, events[i]) == 0)
				return false;
		}
	}
	(*count)++;
	return false;
}

int lb_count_app_fds(void)
{
	int count = 0;

	scan_fds(0, count_app, &count);
	return count;
}

int lb_wait_fd_count(int expected, int timeout_ms)
{
	int64_t deadline = lb_now_ms() + timeout_ms;
	int count;

	/* Polling: there is no event for "a descriptor was closed". */
	while ((count = lb_count_fds()) != expected && lb_now_ms() < deadline)
		sleep_ms(10);
	return count;
}

int lb_wait_app_fd_count(int expected, int timeout_ms)
{
	int64_t deadline = lb_now_ms() + timeout_ms;
	int count;

	while ((count = lb_count_app_fds()) != expected && lb_now_ms() < deadline)
		sleep_ms(10);
	return count;
}

ino_t lb_socket_inode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return st.st_ino;
}

static int scan_fds(int min_fd, bool (*visit)(int fd, const char *link, void *ctx),
		    void *ctx)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int found = -1;

	if (dir == NULL)
		return -1;
	int self = dirfd(dir);

	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);

		if (fd == self || fd < min_fd)
			continue;
		char path[64], link[128];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof(link) - 1);

		if (n < 0)
			continue;
		link[n] = '\0';
		if (visit(fd, link, ctx) && (found < 0 || fd < found))
			found = fd;
	}
	closedir(dir);
	return found;
}

struct inode_match {
	char want[64];
};

static bool match_inode(int fd, const char *link, void *ctx)
{
	struct inode_match *m = ctx;

	(void)fd;
	return strcmp(link, m->want) == 0;
}

int lb_find_socket_fd(ino_t inode, int min_fd)
{
	struct inode_match m;

	snprintf(m.want, sizeof(m.want), "socket:[%lu]", (unsigned long)inode);
	return scan_fds(min_fd, match_inode, &m);
}

static bool count_sockets(int fd, const char *link, void *ctx)
{
	int *count = ctx;

	(void)fd;
	if (strncmp(link, "socket:[", 8) == 0)
		(*count)++;
	return false;
}

int lb_count_socket_fds_from(int min_fd)
{
	int count = 0;

	scan_fds(min_fd, count_sockets, &count);
	return count;
}

bool lb_wait_socket_gone(ino_t inode, int min_fd, int timeout_ms)
{
	int64_t deadline = lb_now_ms() + timeout_ms;

	for (;;) {
		if (lb_find_socket_fd(inode, min_fd) < 0)
			return true;
		if (lb_now_ms() >= deadline)
			return false;
		sleep_ms(5);
	}
}

int lb_fdinfo_flags(int fd)
{
	char path[64], line[256];
	int flags = -1;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "flags:", 6) == 0) {
			flags = (int)strtol(line + 6, NULL, 8);
			break;
		}
	}
	fclose(f);
	return flags;
}

struct describe_ctx {
	char *buf;
	size_t len;
	size_t used;
};

static bool describe_fd(int fd, const char *link, void *ctx)
{
	struct describe_ctx *d = ctx;

	if (d->used < d->len) {
		int n = snprintf(d->buf + d->used, d->len - d->used, "%s%d:%s",
				 d->used > 0 ? " " : "", fd, link);

		if (n > 0)
			d->used += (size_t)n;
	}
	return false;
}

void lb_describe_fds(char *buf, size_t len)
{
	struct describe_ctx d = { buf, len, 0 };

	if (len > 0)
		buf[0] = '\0';
	scan_fds(0, describe_fd, &d);
}

int lb_tcp_state(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
		return -1;
	return info.tcpi_state;
}

int lb_outq(int fd)
{
	int n = 0;

	if (ioctl(fd, SIOCOUTQ, &n) < 0)
		return -1;
	return n;
}

bool lb_wait_outq_empty(int fd, int timeout_ms)
{
	int64_t deadline = lb_now_ms() + timeout_ms;

	/* No event says "everything acknowledged"; poll the counter. */
	for (;;) {
		if (lb_outq(fd) == 0)
			return true;
		if (lb_now_ms() >= deadline)
			return false;
		sleep_ms(5);
	}
}

int lb_set_nonblocking(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, flags);
}

int lb_set_linger(int fd, int onoff, int seconds)
{
	struct linger l = { .l_onoff = onoff, .l_linger = seconds };

	return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

int lb_poll(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t deadline = lb_now_ms() + timeout_ms;

	for (;;) {
		int r = poll(&pfd, 1, timeout_ms);

		if (r > 0)
			return pfd.revents;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
		timeout_ms = (int)(deadline - lb_now_ms());
		if (timeout_ms < 0)
			timeout_ms = 0;
	}
}
