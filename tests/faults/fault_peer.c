/* tests/faults/fault_peer.c: the peer of the fault tests (no library): tells how a
 * connection ended, resets one on cue, fetches many transfers checking bytes + EOF. */
#include "fault_common.h"

#include <fcntl.h>
#include <sys/epoll.h>

static const char *prog = "fault_peer";

static void usage(void)
{
	fprintf(stderr,
		"usage: fault_peer inspect IP PORT GO_FILE\n"
		"       fault_peer reset   IP PORT HELD_FILE\n"
		"       fault_peer fetch-many IP PORT COUNT CONCURRENCY BYTES TIMEOUT_S\n");
	exit(2);
}

static int listen_on(const char *ip, const char *port, int rcvbuf)
{
	struct sockaddr_in sa = make_addr(prog, ip, port);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (ls < 0)
		fail(prog, "socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* Inherited by the accepted socket: a small window fills quickly. */
	if (rcvbuf > 0 && setsockopt(ls, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0)
		fail(prog, "setsockopt(SO_RCVBUF)");
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 16) != 0)
		fail(prog, "bind/listen");
	printf("LISTENING\n");
	return ls;
}

static int accept_one(int ls)
{
	int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		fail(prog, "accept");
	printf("ACCEPTED\n");
	return fd;
}

/* How did the connection end? Reads what arrived, then the TCP state and
 * the pending socket error: a reset shows as state CLOSE with ECONNRESET or
 * EPIPE (from recv() or SO_ERROR), a graceful close as EOF in CLOSE_WAIT. */
static int run_inspect(char **argv)
{
	int ls = listen_on(argv[0], argv[1], 0);
	int fd = accept_one(ls);
	if (!wait_file(argv[2], 60000)) {
		fprintf(stderr, "%s: no go file\n", prog);
		return 2;
	}
	long bytes = 0;
	int eof = 0, read_err = 0;
	char buf[65536];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			bytes += n;
			continue;
		}
		if (n == 0)
			eof = 1;
		else if (errno != EAGAIN)
			read_err = errno;
		break;
	}
	int state = tcp_state_of(fd);
	int so_error = 0;
	socklen_t len = sizeof so_error;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
	/* tcp_reset() reports ECONNRESET, or EPIPE in CLOSE_WAIT (our FIN came
	 * first); either way this side, which never closed, is in CLOSE. */
	bool reset = read_err == ECONNRESET || read_err == EPIPE || so_error == ECONNRESET ||
		     so_error == EPIPE || state == 7 /* TCP_CLOSE */;
	const char *verdict = reset ? "reset" : eof ? "fin" : "open";
	printf("RESULT bytes=%ld eof=%d read_error=%s tcp_state=%s so_error=%s verdict=%s\n", bytes,
	       eof, errno_name(read_err), tcp_state_name(state), errno_name(so_error), verdict);
	return 0;
}

/* Reads nothing (the closer's data stays unacknowledged in a zero window);
 * on cue, resets the connection with linger {1,0} and says when. */
static int run_reset(char **argv)
{
	int ls = listen_on(argv[0], argv[1], 65536);
	int fd = accept_one(ls);
	fflush(stdout);
	if (!wait_file(argv[2], 60000)) {
		fprintf(stderr, "%s: no held file\n", prog);
		return 2;
	}
	struct linger l = { .l_onoff = 1, .l_linger = 0 };
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
		fail(prog, "setsockopt(SO_LINGER)");
	int64_t t = mono_ns();
	if (close(fd) != 0)
		fail(prog, "close");
	printf("RESULT rst_at_ns=%lld\n", (long long)t);
	return 0;
}

/* ---------------------------------------------------------------- fetch-many */

struct fetch {
	int fd;
	bool active;
	int64_t started;
	long got; /* bytes received (header + payload + trailer) */
	unsigned char header[XFER_HEADER];
	unsigned char trailer[XFER_TRAILER];
	uint32_t seed, length;
	uint64_t sum;
	bool pattern_ok;
	struct pattern pat;
};

struct fetch_stats {
	int ok, reset, short_eof, mismatch, extra, other, timeout;
	long bytes;
	int ended;
	double *ms; /* duration of each fetch, connect to end */
};

static void fetch_start(struct fetch *f, int ep, const struct sockaddr_in *sa)
{
	*f = (struct fetch){ .fd = -1 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(prog, "socket");
	if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 && errno != EINPROGRESS)
		fail(prog, "connect");
	f->fd = fd;
	f->active = true;
	f->started = mono_ns();
	f->sum = FNV_OFFSET;
	f->pattern_ok = true;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = f };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		fail(prog, "epoll_ctl");
}

/* Ends a fetch, counting it under `what`. */
static struct fetch_stats *stats;
static void fetch_end(struct fetch *f, int *what)
{
	close(f->fd);
	f->active = false;
	(*what)++;
	stats->ms[stats->ended++] = (double)(mono_ns() - f->started) / 1e6;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Consumes what arrived; ends the fetch at EOF or on an error. */
static void fetch_read(struct fetch *f, struct fetch_stats *st, long payload)
{
	unsigned char buf[16384];
	for (;;) {
		ssize_t n = recv(f->fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNRESET)
				fetch_end(f, &st->reset);
			else {
				fprintf(stderr, "%s: recv(seed %u after %ld bytes): %s\n", prog, f->seed,
					f->got, strerror(errno));
				fetch_end(f, &st->other);
			}
			return;
		}
		long total = XFER_HEADER + payload + XFER_TRAILER;
		if (n == 0) {
			/* EOF: the transfer must be complete and intact. */
			if (f->got != total) {
				fprintf(stderr, "%s: EOF after %ld of %ld bytes (seed %u)\n", prog, f->got,
					total, f->seed);
				fetch_end(f, &st->short_eof);
				return;
			}
			uint64_t trailer;
			memcpy(&trailer, f->trailer, 8);
			if (!f->pattern_ok || trailer != f->sum || f->length != (uint32_t)payload) {
				fprintf(stderr, "%s: seed %u: payload or checksum differs\n", prog,
					f->seed);
				fetch_end(f, &st->mismatch);
				return;
			}
			fetch_end(f, &st->ok);
			return;
		}
		st->bytes += n;
		for (ssize_t i = 0; i < n; i++, f->got++) {
			long off = f->got;
			if (off < XFER_HEADER) {
				f->header[off] = buf[i];
				if (off == XFER_HEADER - 1) {
					memcpy(&f->seed, f->header, 4);
					memcpy(&f->length, f->header + 4, 4);
					pattern_init(&f->pat, f->seed);
				}
			} else if (off < XFER_HEADER + payload) {
				if (buf[i] != pattern_next(&f->pat))
					f->pattern_ok = false;
				f->sum = fnv1a(f->sum, buf[i]);
			} else if (off < total) {
				f->trailer[off - XFER_HEADER - payload] = buf[i];
			} else {
				fprintf(stderr, "%s: bytes after the transfer (seed %u)\n", prog, f->seed);
				fetch_end(f, &st->extra);
				return;
			}
		}
	}
}

static int run_fetch_many(char **argv)
{
	struct sockaddr_in sa = make_addr(prog, argv[0], argv[1]);
	int count = atoi(argv[2]), conc = atoi(argv[3]);
	long payload = atol(argv[4]);
	int timeout_s = atoi(argv[5]);
	if (count < 1 || conc < 1 || conc > 1024 || payload < 1 || timeout_s < 1)
		usage();
	struct fetch *slots = calloc((size_t)conc, sizeof *slots);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (slots == NULL || ep < 0)
		fail(prog, "setup");
	struct fetch_stats st = { 0 };
	st.ms = calloc((size_t)count, sizeof *st.ms);
	if (st.ms == NULL)
		fail(prog, "calloc");
	stats = &st;
	int started = 0, active = 0;
	int64_t t0 = mono_ns(), deadline = t0 + (int64_t)timeout_s * 1000000000;
	for (;;) {
		for (int i = 0; i < conc && started < count; i++) {
			if (!slots[i].active) {
				fetch_start(&slots[i], ep, &sa);
				started++;
			}
		}
		active = 0;
		for (int i = 0; i < conc; i++)
			active += slots[i].active;
		if (active == 0 && started == count)
			break;
		if (mono_ns() > deadline)
			break;
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 200);
		for (int i = 0; i < n; i++) {
			struct fetch *f = evs[i].data.ptr;
			if (f->active)
				fetch_read(f, &st, payload);
		}
	}
	for (int i = 0; i < conc; i++) {
		if (slots[i].active) {
			fprintf(stderr, "%s: timed out: seed %u after %ld bytes\n", prog, slots[i].seed,
				slots[i].got);
			fetch_end(&slots[i], &st.timeout);
		}
	}
	st.timeout += count - started;
	qsort(st.ms, (size_t)st.ended, sizeof *st.ms, by_value);
	double p50 = st.ended ? st.ms[st.ended / 2] : -1;
	double p99 = st.ended ? st.ms[(st.ended * 99) / 100] : -1;
	double max = st.ended ? st.ms[st.ended - 1] : -1;
	printf("RESULT count=%d ok=%d reset=%d short_eof=%d mismatch=%d extra=%d other=%d "
	       "timeout=%d bytes=%ld elapsed_ms=%.0f fetch_p50_ms=%.0f fetch_p99_ms=%.0f "
	       "fetch_max_ms=%.0f\n",
	       count, st.ok, st.reset, st.short_eof, st.mismatch, st.extra, st.other, st.timeout,
	       st.bytes, (double)(mono_ns() - t0) / 1e6, p50, p99, max);
	return st.ok == count ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	if (strcmp(mode, "inspect") == 0 && argc == 5)
		return run_inspect(argv + 2);
	if (strcmp(mode, "reset") == 0 && argc == 5)
		return run_reset(argv + 2);
	if (strcmp(mode, "fetch-many") == 0 && argc == 8)
		return run_fetch_many(argv + 2);
	usage();
	return 2;
}
