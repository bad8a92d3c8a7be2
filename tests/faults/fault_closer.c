/* tests/faults/fault_closer.c: the closer of the fault tests (libwspclose preloaded):
 * L2/G1 under a blackhole, a held copy reset by the peer, graceful closes under loss. */
#include "fault_common.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

static const char *prog = "fault_closer";

static void usage(void)
{
	fprintf(stderr,
		"usage: fault_closer linger  IP PORT LINGER_S BYTES GO_FILE EXIT_FILE\n"
		"       fault_closer g1-hold IP PORT BYTES GO_FILE EXIT_FILE\n"
		"       fault_closer held-reset IP PORT HELD_FILE\n"
		"       fault_closer serve-many IP PORT COUNT BYTES\n");
	exit(2);
}

static int outq(int fd)
{
	int n = -1;
	if (ioctl(fd, SIOCOUTQ, &n) != 0)
		return -1;
	return n;
}

static int connect_to(const char *ip, const char *port)
{
	struct sockaddr_in sa = make_addr(prog, ip, port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(prog, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		fail(prog, "connect");
	return fd;
}

static void send_all(int fd, long bytes)
{
	char buf[4096];
	memset(buf, 'x', sizeof buf);
	while (bytes > 0) {
		size_t n = bytes < (long)sizeof buf ? (size_t)bytes : sizeof buf;
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0)
			fail(prog, "send");
		bytes -= w;
	}
}

/* Connects, says CONNECTED, waits for the script's go file (the fault is
 * in place), then sends `bytes`. Returns the socket, or -1 without a go. */
static int connect_then_send(const char *ip, const char *port, long bytes, const char *go_file)
{
	int fd = connect_to(ip, port);
	printf("CONNECTED\n");
	fflush(stdout);
	if (!wait_file(go_file, 30000)) {
		fprintf(stderr, "%s: no go file\n", prog);
		return -1;
	}
	send_all(fd, bytes);
	return fd;
}

/* Socket descriptors of this process, listed for the report. */
static int socket_fds(int *list, int max)
{
	int socks = 0;
	count_fds(&socks, list, max);
	return socks;
}

/* L1/L2: a blocking close with linger {1,N} while the peer's ACKs are dropped. */
static int run_linger(char **argv)
{
	int linger_s = atoi(argv[2]);
	int fd = connect_then_send(argv[0], argv[1], atol(argv[3]), argv[4]);
	if (fd < 0)
		return 2;
	struct linger l = { .l_onoff = 1, .l_linger = linger_s };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
		fail(prog, "setsockopt(SO_LINGER)");
	int pending = outq(fd);
	int64_t t0 = mono_ns();
	int rc = close(fd);
	int err = rc == 0 ? 0 : errno;
	int64_t t1 = mono_ns();
	int list[8];
	int socks = socket_fds(list, 8);
	printf("RESULT close_rc=%d close_errno=%s outq_before=%d close_ms=%.1f sockets_after=%d\n",
	       rc, errno_name(err), pending, (double)(t1 - t0) / 1e6, socks);
	/* Stay alive while the connection is inspected: what the peer sees was
	 * done by close(), not by the exit. */
	wait_file(argv[5], 30000);
	return 0;
}

/* G1 under a blackhole: close() returns at once, the held copy is reset
 * and released at WSPCLOSE_GRACE_MS (watched in /proc/self/fd). */
static int run_g1_hold(char **argv)
{
	int fd = connect_then_send(argv[0], argv[1], atol(argv[2]), argv[3]);
	if (fd < 0)
		return 2;
	int pending = outq(fd);
	int before[8];
	int socks_before = socket_fds(before, 8);
	int64_t t0 = mono_ns();
	int rc = close(fd);
	int err = rc == 0 ? 0 : errno;
	int64_t t1 = mono_ns();
	int held[8];
	int socks_held = socket_fds(held, 8);
	/* Watch for the held copy to go (1 ms steps, 10 s at most). */
	int64_t released = -1;
	while (mono_ns() - t0 < 10000000000LL) {
		if (socket_fds(NULL, 0) == 0) {
			released = mono_ns();
			break;
		}
		sleep_us(1000);
	}
	printf("RESULT close_rc=%d close_errno=%s outq_before=%d close_ms=%.1f "
	       "sockets_before=%d sockets_after_close=%d held_fd=%d release_ms=%.1f\n",
	       rc, errno_name(err), pending, (double)(t1 - t0) / 1e6, socks_before, socks_held,
	       socks_held > 0 ? held[0] : -1,
	       released < 0 ? -1.0 : (double)(released - t0) / 1e6);
	wait_file(argv[4], 30000); /* alive while the connection is inspected */
	return 0;
}

/* A held copy with data unacknowledged (the peer's window is full) is
 * released when the peer resets: reports when the copy went. */
static int run_held_reset(char **argv)
{
	int fd = connect_to(argv[0], argv[1]);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		fail(prog, "fcntl(O_NONBLOCK)");
	char buf[65536];
	memset(buf, 'r', sizeof buf);
	long sent = 0;
	int64_t fill_deadline = mono_ns() + 5000000000LL;
	/* Fill until the send buffer stays full (the peer reads nothing). */
	for (int idle = 0; idle < 50 && mono_ns() < fill_deadline;) {
		ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
		if (w > 0) {
			sent += w;
			idle = 0;
		} else if (w < 0 && errno == EAGAIN) {
			idle++;
			sleep_us(2000);
		} else {
			fail(prog, "send");
		}
	}
	int pending = outq(fd);
	int64_t t0 = mono_ns();
	int rc = close(fd);
	int err = rc == 0 ? 0 : errno;
	int64_t t1 = mono_ns();
	int held[8];
	int socks_held = socket_fds(held, 8);
	printf("HELD close_rc=%d close_errno=%s sent=%ld outq_before=%d close_ms=%.2f "
	       "sockets_after_close=%d held_fd=%d\n",
	       rc, errno_name(err), sent, pending, (double)(t1 - t0) / 1e6, socks_held,
	       socks_held > 0 ? held[0] : -1);
	fflush(stdout);
	touch(argv[2]);
	int64_t released = -1;
	while (mono_ns() - t1 < 10000000000LL) {
		if (socket_fds(NULL, 0) == 0) {
			released = mono_ns();
			break;
		}
		sleep_us(200);
	}
	printf("RESULT released_at_ns=%lld held_ms=%.1f\n", (long long)released,
	       released < 0 ? -1.0 : (double)(released - t1) / 1e6);
	return 0;
}

/* ---------------------------------------------------------------- serve-many */

struct conn {
	int fd;
	uint32_t seed;
	size_t off, len;
	unsigned char *data; /* header + payload + trailer */
};

/* The whole transfer of one connection, made at accept time. */
static unsigned char *make_transfer(uint32_t seed, long payload, size_t *len)
{
	*len = XFER_HEADER + (size_t)payload + XFER_TRAILER;
	unsigned char *d = malloc(*len);
	if (d == NULL)
		fail(prog, "malloc");
	uint32_t plen = (uint32_t)payload;
	memcpy(d, &seed, 4);
	memcpy(d + 4, &plen, 4);
	struct pattern p;
	pattern_init(&p, seed);
	uint64_t sum = FNV_OFFSET;
	for (long i = 0; i < payload; i++) {
		d[XFER_HEADER + i] = pattern_next(&p);
		sum = fnv1a(sum, d[XFER_HEADER + i]);
	}
	memcpy(d + XFER_HEADER + payload, &sum, 8);
	return d;
}

static int run_serve_many(char **argv)
{
	struct sockaddr_in sa = make_addr(prog, argv[0], argv[1]);
	int count = atoi(argv[2]);
	long payload = atol(argv[3]);
	if (count < 1 || payload < 1)
		usage();
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1024) != 0)
		fail(prog, "listen");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) != 0)
		fail(prog, "epoll");
	printf("LISTENING\n");
	fflush(stdout);
	int accepted = 0, closed = 0, errors = 0, g1 = 0, g2 = 0, max_sockets = 0;
	int64_t start = -1, last_close = 0, deadline = mono_ns() + 150000000000LL;
	while (closed + errors < count && mono_ns() < deadline) {
		struct epoll_event evs[128];
		int n = epoll_wait(ep, evs, 128, 1000);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				for (;;) {
					int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					if (start < 0)
						start = mono_ns();
					c = calloc(1, sizeof *c);
					if (c == NULL)
						fail(prog, "calloc");
					c->fd = fd;
					c->seed = (uint32_t)accepted++;
					c->data = make_transfer(c->seed, payload, &c->len);
					struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
						fail(prog, "epoll_ctl");
				}
				continue;
			}
			bool failed = false;
			while (c->off < c->len) {
				ssize_t w = send(c->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
				if (w < 0) {
					if (errno != EAGAIN) {
						fprintf(stderr, "%s: send(seed %u): %s\n", prog, c->seed,
							strerror(errno));
						failed = true;
					}
					break;
				}
				c->off += (size_t)w;
			}
			if (!failed && c->off < c->len)
				continue;
			/* Graceful close: G1, or G2 (shutdown first) for odd seeds. */
			if (!failed && (c->seed & 1)) {
				shutdown(c->fd, SHUT_WR);
				g2++;
			} else if (!failed) {
				g1++;
			}
			int socks = 0;
			if ((closed & 31) == 0) {
				count_fds(&socks, NULL, 0);
				if (socks > max_sockets)
					max_sockets = socks;
			}
			if (close(c->fd) != 0) {
				fprintf(stderr, "%s: close(seed %u): %s\n", prog, c->seed, strerror(errno));
				failed = true;
			}
			free(c->data);
			free(c);
			if (failed)
				errors++;
			else
				closed++;
			last_close = mono_ns();
		}
	}
	close(ep);
	/* Every held copy is released once its FIN is acknowledged. */
	int socks = -1;
	int64_t settled = -1;
	while (mono_ns() - last_close < 60000000000LL) {
		count_fds(&socks, NULL, 0);
		if (socks == 1) { /* the listener */
			settled = mono_ns();
			break;
		}
		sleep_us(5000);
	}
	close(ls);
	printf("RESULT accepted=%d closed=%d g1=%d g2=%d errors=%d serve_ms=%.0f "
	       "max_sockets_sampled=%d sockets_left=%d release_wait_ms=%.0f\n",
	       accepted, closed, g1, g2, errors,
	       start < 0 ? -1.0 : (double)(last_close - start) / 1e6, max_sockets,
	       socks - 1, settled < 0 ? -1.0 : (double)(settled - last_close) / 1e6);
	return closed == count && errors == 0 && socks == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	if (strcmp(mode, "linger") == 0 && argc == 8)
		return run_linger(argv + 2);
	if (strcmp(mode, "g1-hold") == 0 && argc == 7)
		return run_g1_hold(argv + 2);
	if (strcmp(mode, "held-reset") == 0 && argc == 5)
		return run_held_reset(argv + 2);
	if (strcmp(mode, "serve-many") == 0 && argc == 6)
		return run_serve_many(argv + 2);
	usage();
	return 2;
}
