/* tests/apps/w1_event_loop.c: an epoll event-loop server and client (one thread
 * each) using SO_LINGER {1,N} on nonblocking sockets, retrying close() after W1. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../proc_fds.h"

#define HEADER_BYTES 12 /* 4-byte connection id, 8-byte payload length */
#define MAX_CONNS 1024

static int opt_conns = 32;
static long opt_bytes = 2L << 20;
static int opt_linger = 10;
static int opt_rcvbuf = 65536;
static int opt_chunk = 16384;
static int opt_timeout_s = 60;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "w1_event_loop: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Byte `offset` of connection `id`'s payload: both sides compute it. */
static uint8_t pattern(uint32_t id, uint64_t offset)
{
	uint64_t x = offset * 0x9E3779B97F4A7C15ull + id * 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return (uint8_t)(x ^ (x >> 17) ^ offset);
}

static void set_linger(int fd, int seconds)
{
	struct linger l = { .l_onoff = 1, .l_linger = seconds };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
		die("setsockopt(SO_LINGER)");
}

/* Descriptors open now (`sockets`: how many are sockets). */
static int fds_open(int *sockets)
{
	int total = count_fds(sockets, NULL, 0);
	if (total < 0)
		die("opendir(/proc/self/fd)");
	return total;
}

/* ---------------------------------------------------------------- server */

enum server_phase { SENDING, CLOSING, DONE };

struct server_conn {
	int fd;
	uint32_t id;
	uint64_t sent; /* header included */
	enum server_phase phase;
};

struct server_result {
	int accepted, closed, w1, retries, errors;
	int w1_fd_usable;     /* after W1 the fd still answers fcntl/getsockopt */
	int epollout_after_w1; /* EPOLLOUT events delivered for fds after W1 */
	int64_t max_close_ns;
};

static int timed_close(int fd, struct server_result *res)
{
	int64_t t0 = now_ns();
	int rc = close(fd);
	int saved = errno;
	int64_t took = now_ns() - t0;
	if (took > res->max_close_ns)
		res->max_close_ns = took;
	errno = saved;
	return rc;
}

/* close(), handling W1: 1 = closed, 0 = W1 (try again after the drain). */
static int try_close(struct server_conn *c, struct server_result *res)
{
	if (timed_close(c->fd, res) == 0) {
		c->phase = DONE;
		res->closed++;
		return 1;
	}
	if (errno == EWOULDBLOCK) {
		if (c->phase == CLOSING) {
			res->retries++;
		} else {
			res->w1++;
			/* W1 changes nothing: the descriptor is still open and usable. */
			struct linger l;
			socklen_t len = sizeof l;
			if (fcntl(c->fd, F_GETFD) >= 0 &&
			    getsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0 &&
			    l.l_onoff == 1 && l.l_linger == opt_linger)
				res->w1_fd_usable++;
		}
		c->phase = CLOSING;
		return 0;
	}
	fprintf(stderr, "w1_event_loop: server close(conn %u): %s\n", c->id, strerror(errno));
	res->errors++;
	c->phase = DONE;
	return 1;
}

static void server_send(struct server_conn *c, struct server_result *res)
{
	uint64_t total = HEADER_BYTES + (uint64_t)opt_bytes;
	unsigned char buf[65536];
	while (c->sent < total) {
		size_t n = 0;
		uint64_t off = c->sent;
		while (n < sizeof buf && off < total) {
			if (off < 4)
				buf[n] = (uint8_t)(c->id >> (8 * off));
			else if (off < HEADER_BYTES)
				buf[n] = (uint8_t)((uint64_t)opt_bytes >> (8 * (off - 4)));
			else
				buf[n] = pattern(c->id, off - HEADER_BYTES);
			n++;
			off++;
		}
		ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return; /* EPOLLOUT will call again */
			fprintf(stderr, "w1_event_loop: server send(conn %u): %s\n", c->id,
				strerror(errno));
			res->errors++;
			c->phase = DONE;
			close(c->fd);
			return;
		}
		c->sent += (uint64_t)w;
	}
	try_close(c, res);
}

/* W1 path: wait for SIOCOUTQ == 0 (EPOLLOUT or the tick), then close again. */
static void server_retry_close(struct server_conn *c, struct server_result *res)
{
	int outq = 0;
	if (ioctl(c->fd, SIOCOUTQ, &outq) != 0) {
		fprintf(stderr, "w1_event_loop: ioctl(SIOCOUTQ) after W1: %s\n", strerror(errno));
		res->errors++;
		c->phase = DONE;
		return;
	}
	if (outq == 0)
		try_close(c, res);
}

static void run_server(int listener, struct server_result *res)
{
	static struct server_conn conns[MAX_CONNS];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) != 0)
		die("epoll_ctl(listener)");
	int64_t deadline = now_ns() + (int64_t)opt_timeout_s * 1000000000;
	for (;;) {
		int closing = 0, open_conns = 0;
		for (int i = 0; i < res->accepted; i++) {
			if (conns[i].phase == CLOSING)
				closing++;
			if (conns[i].phase != DONE)
				open_conns++;
		}
		if (res->accepted == opt_conns && open_conns == 0)
			break;
		if (now_ns() > deadline) {
			fprintf(stderr, "w1_event_loop: server timed out (%d open)\n", open_conns);
			res->errors++;
			break;
		}
		struct epoll_event events[64];
		int n = epoll_wait(ep, events, 64, closing ? 2 : 200);
		if (n < 0 && errno != EINTR)
			die("epoll_wait(server)");
		for (int i = 0; i < n; i++) {
			uint32_t idx = events[i].data.u32;
			if (idx == UINT32_MAX) {
				for (;;) {
					int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					if (res->accepted >= opt_conns) {
						close(fd);
						continue;
					}
					struct server_conn *c = &conns[res->accepted];
					*c = (struct server_conn){ .fd = fd, .id = (uint32_t)res->accepted,
								   .phase = SENDING };
					set_linger(fd, opt_linger);
					struct epoll_event cev = { .events = EPOLLOUT | EPOLLET,
								   .data.u32 = c->id };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0)
						die("epoll_ctl(conn)");
					res->accepted++;
					server_send(c, res);
				}
				continue;
			}
			struct server_conn *c = &conns[idx];
			if (c->phase == SENDING)
				server_send(c, res);
			else if (c->phase == CLOSING) {
				res->epollout_after_w1++;
				server_retry_close(c, res);
			}
		}
		/* The tick: EPOLLOUT is not signalled for the final ACK. */
		for (int i = 0; i < res->accepted; i++)
			if (conns[i].phase == CLOSING)
				server_retry_close(&conns[i], res);
	}
	close(ep);
}

/* ---------------------------------------------------------------- client */

struct client_conn {
	int fd;
	bool done;
	uint64_t received; /* header included */
	unsigned char header[HEADER_BYTES];
	uint32_t id;
	uint64_t length;
};

struct client_result {
	int verified, eof, errors, close_errors;
	uint64_t bytes;
};

struct client_args {
	uint16_t port;
	struct client_result res;
};

static void client_fail(struct client_conn *c, struct client_result *res, const char *why)
{
	fprintf(stderr, "w1_event_loop: client conn fd %d (id %u, %llu bytes): %s\n", c->fd,
		c->id, (unsigned long long)c->received, why);
	res->errors++;
	c->done = true;
	close(c->fd);
}

static void client_read(struct client_conn *c, struct client_result *res)
{
	unsigned char buf[65536];
	size_t want = (size_t)opt_chunk < sizeof buf ? (size_t)opt_chunk : sizeof buf;
	ssize_t n = recv(c->fd, buf, want, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		client_fail(c, res, strerror(errno));
		return;
	}
	if (n == 0) {
		if (c->received < HEADER_BYTES || c->received != HEADER_BYTES + c->length) {
			client_fail(c, res, "EOF before every byte arrived");
			return;
		}
		res->eof++;
		res->verified++;
		c->done = true;
		if (close(c->fd) != 0) {
			fprintf(stderr, "w1_event_loop: client close: %s\n", strerror(errno));
			res->close_errors++;
		}
		return;
	}
	for (ssize_t i = 0; i < n; i++, c->received++) {
		uint64_t off = c->received;
		if (off < HEADER_BYTES) {
			c->header[off] = buf[i];
			if (off == HEADER_BYTES - 1) {
				memcpy(&c->id, c->header, 4);
				memcpy(&c->length, c->header + 4, 8);
				if (c->length != (uint64_t)opt_bytes) {
					client_fail(c, res, "bad length in header");
					return;
				}
			}
			continue;
		}
		if (off >= HEADER_BYTES + c->length) {
			client_fail(c, res, "bytes after the end of the payload");
			return;
		}
		if (buf[i] != pattern(c->id, off - HEADER_BYTES)) {
			client_fail(c, res, "payload byte differs");
			return;
		}
	}
	res->bytes += (uint64_t)n;
}

static void *run_client(void *arg)
{
	struct client_args *a = arg;
	struct client_result *res = &a->res;
	static struct client_conn conns[MAX_CONNS];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1(client)");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(a->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int i = 0; i < opt_conns; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket(client)");
		/* A slow reader with a small window: the server's data stays pending. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt_rcvbuf, sizeof opt_rcvbuf) != 0)
			die("setsockopt(SO_RCVBUF)");
		set_linger(fd, opt_linger);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
			die("connect");
		conns[i] = (struct client_conn){ .fd = fd };
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll_ctl(client)");
	}
	int64_t deadline = now_ns() + (int64_t)opt_timeout_s * 1000000000;
	for (;;) {
		int open_conns = 0;
		for (int i = 0; i < opt_conns; i++)
			open_conns += !conns[i].done;
		if (open_conns == 0)
			break;
		if (now_ns() > deadline) {
			fprintf(stderr, "w1_event_loop: client timed out (%d open)\n", open_conns);
			res->errors += open_conns;
			break;
		}
		struct epoll_event events[MAX_CONNS];
		int n = epoll_wait(ep, events, MAX_CONNS, 200);
		if (n < 0 && errno != EINTR)
			die("epoll_wait(client)");
		for (int i = 0; i < n; i++) {
			struct client_conn *c = &conns[events[i].data.u32];
			if (!c->done)
				client_read(c, res);
		}
		/* Throttle: one chunk per connection per millisecond at most. */
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	close(ep);
	return NULL;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
	fprintf(stderr,
		"usage: w1_event_loop [-c connections] [-b bytes_each] [-l linger_s] "
		"[-r client_rcvbuf] [-k read_chunk] [-t timeout_s]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "c:b:l:r:k:t:")) != -1) {
		switch (opt) {
		case 'c': opt_conns = atoi(optarg); break;
		case 'b': opt_bytes = atol(optarg); break;
		case 'l': opt_linger = atoi(optarg); break;
		case 'r': opt_rcvbuf = atoi(optarg); break;
		case 'k': opt_chunk = atoi(optarg); break;
		case 't': opt_timeout_s = atoi(optarg); break;
		default: usage();
		}
	}
	if (opt_conns < 1 || opt_conns > MAX_CONNS || opt_bytes < 1 || opt_linger < 1 ||
	    opt_chunk < 1 || opt_timeout_s < 1)
		usage();

	int socks_before;
	int fds_before = fds_open(&socks_before);
	int64_t t0 = now_ns();

	int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0)
		die("socket(listener)");
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	if (bind(listener, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(listener, 1024) != 0 ||
	    getsockname(listener, (struct sockaddr *)&sa, &len) != 0)
		die("bind/listen");

	struct client_args ca = { .port = ntohs(sa.sin_port) };
	pthread_t client;
	if (pthread_create(&client, NULL, run_client, &ca) != 0)
		die("pthread_create");
	struct server_result sr = { 0 };
	run_server(listener, &sr);
	pthread_join(client, NULL);
	if (close(listener) != 0)
		die("close(listener)");
	int64_t elapsed = now_ns() - t0;

	/* No descriptor left behind: wait (bounded) for teardowns to finish. */
	int socks_after = 0, fds_after = 0;
	for (int i = 0; i < 300; i++) {
		fds_after = fds_open(&socks_after);
		if (fds_after == fds_before && socks_after == socks_before)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}

	struct client_result *cr = &ca.res;
	double secs = (double)elapsed / 1e9;
	printf("w1_event_loop: connections=%d bytes_each=%ld linger=%d accepted=%d "
	       "server_closed=%d server_errors=%d verified=%d eof=%d client_errors=%d "
	       "client_close_errors=%d w1=%d w1_fd_usable=%d epollout_after_w1=%d "
	       "close_retries=%d max_close_ms=%.1f "
	       "fds_before=%d fds_after=%d sockets_after=%d elapsed_ms=%.0f MBps=%.1f\n",
	       opt_conns, opt_bytes, opt_linger, sr.accepted, sr.closed, sr.errors, cr->verified,
	       cr->eof, cr->errors, cr->close_errors, sr.w1, sr.w1_fd_usable,
	       sr.epollout_after_w1, sr.retries,
	       (double)sr.max_close_ns / 1e6, fds_before, fds_after, socks_after,
	       (double)elapsed / 1e6, (double)cr->bytes / 1e6 / secs);
	bool ok = sr.accepted == opt_conns && sr.closed == opt_conns && sr.errors == 0 &&
		  sr.w1_fd_usable == sr.w1 &&
		  cr->verified == opt_conns && cr->eof == opt_conns && cr->errors == 0 &&
		  cr->close_errors == 0 && fds_after == fds_before && socks_after == socks_before;
	return ok ? 0 : 1;
}
