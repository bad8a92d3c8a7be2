/* wspclose-demo.c: runs one loopback scenario per row of §2 and shows
 * what close() measurably did: plain Linux, libwspclose, and what Windows does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SMALL_BUFFER 4096          /* the kernel doubles it; keeps data queued */
#define FILL_LIMIT (256 * 1024)    /* most bytes queued before close */
#define PEER_READ_FOR_MS 2500      /* then the peer reports "nothing yet" */
#define AT_ONCE_MS 25              /* "at once": below the 40 ms delayed ACK */
#define ROW_WATCHDOG_S 10          /* no scenario may take longer */
#define CHILD_TIMEOUT_MS 60000     /* --compare: one child, all rows */

/* ------------------------------------------------------------ helpers */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double ms_since(uint64_t start_ns)
{
	return (double)(now_ns() - start_ns) / 1e6;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* EAGAIN is printed under its Winsock-minded alias: it is the same value. */
static void errno_name(int err, char *out, size_t size)
{
	const char *name = NULL;

	if (err == 0)
		name = "-";
	else if (err == EAGAIN)
		name = "EWOULDBLOCK";
	else
		name = strerrorname_np(err);
	if (name)
		snprintf(out, size, "%s", name);
	else
		snprintf(out, size, "E%d", err);
}

static void die(const char *what)
{
	fprintf(stderr, "wspclose-demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ------------------------------------------------------------ loopback */

struct connection {
	int listener;
	int closer;                /* the descriptor each scenario closes */
	int peer;                  /* the accepted end */
	struct sockaddr_in listen_addr;
	struct sockaddr_in closer_addr;
};

/* Small buffers keep sent data in the closer's send queue while the peer
 * does not read, so "pending" (SIOCOUTQ > 0) lasts as long as we need. */
static void connection_open(struct connection *c, bool small_buffers)
{
	socklen_t len = sizeof c->listen_addr;
	int size = SMALL_BUFFER;

	memset(c, 0, sizeof *c);
	c->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->closer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listener < 0 || c->closer < 0)
		die("socket");
	c->listen_addr.sin_family = AF_INET;
	c->listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Set before listen()/connect(): the window scale is fixed at the handshake,
	 * and the accepted socket inherits the listener's receive buffer. */
	if (small_buffers &&
	    (setsockopt(c->listener, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) != 0 ||
	     setsockopt(c->closer, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0))
		die("setsockopt SO_RCVBUF/SO_SNDBUF");
	if (bind(c->listener, (struct sockaddr *)&c->listen_addr, sizeof c->listen_addr) != 0 ||
	    listen(c->listener, 4) != 0 ||
	    getsockname(c->listener, (struct sockaddr *)&c->listen_addr, &len) != 0)
		die("listen");
	if (connect(c->closer, (struct sockaddr *)&c->listen_addr, sizeof c->listen_addr) != 0)
		die("connect");
	len = sizeof c->closer_addr;
	if (getsockname(c->closer, (struct sockaddr *)&c->closer_addr, &len) != 0)
		die("getsockname");
	c->peer = accept4(c->listener, NULL, NULL, SOCK_CLOEXEC);
	if (c->peer < 0)
		die("accept");
}

static void connection_close_rest(struct connection *c)
{
	close(c->peer);
	close(c->listener);
}

static void set_nonblocking(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) != 0)
		die("fcntl O_NONBLOCK");
}

static void set_linger(int fd, int onoff, int seconds)
{
	struct linger lg = { .l_onoff = onoff, .l_linger = seconds };

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
		die("setsockopt SO_LINGER");
}

/* Sends until the send queue is full (or FILL_LIMIT); returns the bytes
 * accepted. Leaves O_NONBLOCK as it found it. */
static long fill_send_queue(int fd)
{
	static const char pattern[1024] = { 'w' };
	int flags = fcntl(fd, F_GETFL);
	long sent = 0;

	set_nonblocking(fd, true);
	while (sent < FILL_LIMIT) {
		ssize_t n = send(fd, pattern, sizeof pattern, MSG_NOSIGNAL);

		if (n > 0)
			sent += n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	if (fcntl(fd, F_SETFL, flags) != 0)
		die("fcntl");
	return sent;
}

/* The closer's TCP state as /proc/net/tcp lists it (held copies and orphans
 * included), found by its address pair; "gone" when the kernel freed it. */
static void closer_state(const struct connection *c, char *out, size_t size)
{
	static const char *const names[] = {
		"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
		"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
	};
	unsigned local_port = ntohs(c->closer_addr.sin_port);
	unsigned remote_port = ntohs(c->listen_addr.sin_port);
	FILE *table = fopen("/proc/net/tcp", "r");
	char line[512];

	snprintf(out, size, "gone");
	if (!table) {
		snprintf(out, size, "unknown");
		return;
	}
	while (fgets(line, sizeof line, table)) {
		unsigned local_ip, lport, remote_ip, rport, state;

		if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X", &local_ip, &lport, &remote_ip,
			   &rport, &state) != 5)
			continue;
		if (lport == local_port && rport == remote_port) {
			snprintf(out, size, "%s",
				 state < sizeof names / sizeof names[0] ? names[state] : "?");
			break;
		}
	}
	fclose(table);
}

/* Counts this process's sockets, the library's held copies included. */
static int count_open_sockets(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	int sockets = 0;

	if (!dir)
		return -1;
	while ((entry = readdir(dir)) != NULL) {
		char target[64];
		ssize_t len = readlinkat(dirfd(dir), entry->d_name, target, sizeof target - 1);

		if (len > 0) {
			target[len] = '\0';
			sockets += strncmp(target, "socket:", 7) == 0;
		}
	}
	closedir(dir);
	return sockets;
}

/* ------------------------------------------------------------ the peer */

/* The other end, in its own thread so it can read while close() blocks. */
struct peer {
	int fd;
	long start_after_ms;       /* < 0: only when told (peer_start_reading) */
	size_t chunk;              /* bytes per recv() */
	long pause_ms;             /* after each recv(): a slow reader */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool told_to_read;
	pthread_t thread;
	long got;                  /* results, read after the join */
	char end[24];              /* "EOF", "ECONNRESET", ..., "nothing-yet" */
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	static __thread char buffer[64 * 1024];
	struct timespec start_at;
	uint64_t give_up_at;

	clock_gettime(CLOCK_MONOTONIC, &start_at);
	start_at.tv_sec += p->start_after_ms / 1000;
	start_at.tv_nsec += (p->start_after_ms % 1000) * 1000000L;
	if (start_at.tv_nsec >= 1000000000L) {
		start_at.tv_sec++;
		start_at.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->told_to_read) {
		if (p->start_after_ms < 0)
			pthread_cond_wait(&p->wake, &p->lock);
		else if (pthread_cond_timedwait(&p->wake, &p->lock, &start_at) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&p->lock);

	give_up_at = now_ns() + (uint64_t)PEER_READ_FOR_MS * 1000000u;
	snprintf(p->end, sizeof p->end, "nothing-yet");
	while (now_ns() < give_up_at) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, (int)((give_up_at - now_ns()) / 1000000u) + 1) <= 0)
			continue;
		n = recv(p->fd, buffer, p->chunk < sizeof buffer ? p->chunk : sizeof buffer,
			 MSG_DONTWAIT);
		if (n > 0) {
			p->got += n;
			if (p->pause_ms)
				sleep_ms(p->pause_ms);
		} else if (n == 0) {
			snprintf(p->end, sizeof p->end, "EOF");
			break;
		} else if (errno != EINTR && errno != EAGAIN) {
			errno_name(errno, p->end, sizeof p->end);
			break;
		}
	}
	return NULL;
}

static void peer_start(struct peer *p, int fd, long start_after_ms, size_t chunk, long pause_ms)
{
	pthread_condattr_t attr;

	memset(p, 0, sizeof *p);
	p->fd = fd;
	p->start_after_ms = start_after_ms;
	p->chunk = chunk;
	p->pause_ms = pause_ms;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&p->lock, NULL);
	errno = pthread_create(&p->thread, NULL, peer_main, p);
	if (errno)
		die("pthread_create");
}

static void peer_start_reading(struct peer *p)
{
	pthread_mutex_lock(&p->lock);
	p->told_to_read = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

static void peer_finish(struct peer *p)
{
	peer_start_reading(p);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
}

/* ------------------------------------------------------------ scenarios */

/* What one scenario measured; also the --machine line, field by field. */
struct outcome {
	char row[4];
	int ret;                   /* close() */
	char err[24];              /* its errno name, "-" on success */
	double blocked_ms;
	char state_after[16];      /* closer's TCP state right after close() */
	bool fd_open_after;        /* the fd still valid after close() (W1) */
	bool retried;              /* W1: linger off, then close() again */
	int retry_ret;
	char retry_err[24];
	double retry_ms;
	long sent;
	long peer_got;
	char peer_end[24];
};

struct scenario {
	const char *row;
	const char *setup;
	const char *windows;       /* §2, fixed text */
	void (*run)(struct outcome *out);
	/* What Windows does, as checked against a measurement. */
	int want_ret;
	const char *want_err;
	double min_ms, max_ms;     /* how long close() blocks */
	const char *want_peer_end; /* "EOF" also means every byte arrived */
};

static void timed_close(int fd, int *ret, char *err, size_t err_size, double *ms)
{
	uint64_t start = now_ns();
	int saved;

	errno = 0;
	*ret = close(fd);
	saved = *ret == 0 ? 0 : errno;
	*ms = ms_since(start);
	errno_name(saved, err, err_size);
}

/* The common shape: close, look at the closer's state at once, let the
 * peer finish, collect what it saw. */
static void close_and_watch(struct connection *c, struct peer *p, struct outcome *out)
{
	timed_close(c->closer, &out->ret, out->err, sizeof out->err, &out->blocked_ms);
	closer_state(c, out->state_after, sizeof out->state_after);
	if (out->ret != 0) /* the fd may still be open: never leak it */
		out->fd_open_after = fcntl(c->closer, F_GETFD) != -1;
	peer_finish(p);
	out->peer_got = p->got;
	snprintf(out->peer_end, sizeof out->peer_end, "%s", p->end);
}

static void abort_if_still_open(struct connection *c, struct outcome *out)
{
	if (out->fd_open_after) {
		set_linger(c->closer, 1, 0);
		close(c->closer);
	}
}

static void run_g1(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	out->sent = fill_send_queue(c.closer);
	peer_start(&p, c.peer, 100, 2048, 5); /* slow: 2 KiB every 5 ms, after 100 ms */
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

static void run_g2(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	out->sent = fill_send_queue(c.closer);
	set_linger(c.closer, 1, 0);
	if (shutdown(c.closer, SHUT_WR) != 0)
		die("shutdown");
	peer_start(&p, c.peer, 100, 65536, 0);
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

static void run_a1(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	out->sent = fill_send_queue(c.closer);
	set_linger(c.closer, 1, 0);
	peer_start(&p, c.peer, 100, 65536, 0);
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

/* W1: the interesting case is a failing close(); the fd must then still
 * work, and the application resolves it by turning linger off. */
static void run_w1(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	set_nonblocking(c.closer, true);
	out->sent = fill_send_queue(c.closer);
	set_linger(c.closer, 1, 2);
	peer_start(&p, c.peer, -1, 65536, 0); /* reads only once we are done */
	timed_close(c.closer, &out->ret, out->err, sizeof out->err, &out->blocked_ms);
	out->fd_open_after = fcntl(c.closer, F_GETFD) != -1;
	closer_state(&c, out->state_after, sizeof out->state_after);
	if (out->fd_open_after) {
		set_linger(c.closer, 0, 0);
		out->retried = true;
		timed_close(c.closer, &out->retry_ret, out->retry_err, sizeof out->retry_err,
			    &out->retry_ms);
		if (out->retry_ret != 0) { /* reported; still must not leak */
			set_linger(c.closer, 1, 0);
			close(c.closer);
		}
	}
	peer_finish(&p);
	out->peer_got = p.got;
	snprintf(out->peer_end, sizeof out->peer_end, "%s", p.end);
	connection_close_rest(&c);
}

static void run_w2(struct outcome *out)
{
	struct connection c;
	struct peer p;
	uint64_t give_up = now_ns() + 1000000000u;
	int unacked = 1;

	connection_open(&c, false);
	peer_start(&p, c.peer, 0, 65536, 0); /* reads at once */
	out->sent = send(c.closer, "acknowledged before close", 26, MSG_NOSIGNAL);
	if (out->sent < 0)
		die("send");
	while (unacked > 0 && now_ns() < give_up) {
		if (ioctl(c.closer, SIOCOUTQ, &unacked) != 0)
			die("ioctl SIOCOUTQ");
		if (unacked > 0)
			sleep_ms(1);
	}
	set_nonblocking(c.closer, true);
	set_linger(c.closer, 1, 2);
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

static void run_l1(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	out->sent = fill_send_queue(c.closer);
	set_linger(c.closer, 1, 3);
	peer_start(&p, c.peer, 300, 65536, 0); /* drains everything after 300 ms */
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

static void run_l2(struct outcome *out)
{
	struct connection c;
	struct peer p;

	connection_open(&c, true);
	out->sent = fill_send_queue(c.closer);
	set_linger(c.closer, 1, 1);
	/* Never reads while close() runs; afterwards it reads what it can, to
	 * show whether the data is still coming (Linux) or was reset. */
	peer_start(&p, c.peer, -1, 65536, 0);
	close_and_watch(&c, &p, out);
	abort_if_still_open(&c, out);
	connection_close_rest(&c);
}

static const struct scenario scenarios[] = {
	{ "G1", "linger off, data queued, slow peer",
	  "0 at once; queued data is sent, then FIN (graceful)",
	  run_g1, 0, "-", 0, AT_ONCE_MS, "EOF" },
	{ "G2", "linger {1,0}, shutdown(SHUT_WR), data queued",
	  "0 at once; graceful: linger is ignored after shutdown()",
	  run_g2, 0, "-", 0, AT_ONCE_MS, "EOF" },
	{ "A1", "linger {1,0}, data queued",
	  "0 at once; abortive: RST, peer gets ECONNRESET",
	  run_a1, 0, "-", 0, AT_ONCE_MS, "ECONNRESET" },
	{ "W1", "non-blocking, linger {1,2}, data unacknowledged",
	  "-1 WSAEWOULDBLOCK at once; the socket stays open, nothing is sent",
	  run_w1, -1, "EWOULDBLOCK", 0, AT_ONCE_MS, "EOF" },
	{ "W2", "non-blocking, linger {1,2}, nothing pending",
	  "0 at once; graceful",
	  run_w2, 0, "-", 0, AT_ONCE_MS, "EOF" },
	{ "L1", "blocking, linger {1,3}, peer reads after 300 ms",
	  "0 once all data is acknowledged (~0.3 s); graceful",
	  run_l1, 0, "-", 200, 3000, "EOF" },
	{ "L2", "blocking, linger {1,1}, peer never reads",
	  "0 after 1 s; the connection is reset (RST), peer gets ECONNRESET",
	  run_l2, 0, "-", 900, 2000, "ECONNRESET" },
};
#define SCENARIOS (sizeof scenarios / sizeof scenarios[0])

/* Whether a measurement is what Windows does; `why` names the first
 * difference. */
static bool matches_windows(const struct scenario *s, const struct outcome *o,
			    char *why, size_t size)
{
	snprintf(why, size, "-");
	if (o->ret != s->want_ret || strcmp(o->err, s->want_err) != 0) {
		snprintf(why, size, "close() = %d%s%s after %.0f ms", o->ret,
			 o->ret ? " " : "", o->ret ? o->err : "", o->blocked_ms);
		return false;
	}
	if (o->blocked_ms < s->min_ms || o->blocked_ms > s->max_ms) {
		snprintf(why, size, "close() took %.0f ms", o->blocked_ms);
		return false;
	}
	if (s->want_ret != 0 && !o->fd_open_after) {
		snprintf(why, size, "the fd was closed");
		return false;
	}
	if (s->want_ret != 0 && strcmp(o->state_after, "ESTABLISHED") != 0) {
		snprintf(why, size, "state became %s", o->state_after);
		return false;
	}
	if (o->retried && o->retry_ret != 0) {
		snprintf(why, size, "second close() failed: %s", o->retry_err);
		return false;
	}
	if (strcmp(o->peer_end, s->want_peer_end) != 0) {
		snprintf(why, size, "peer saw %s", o->peer_end);
		return false;
	}
	if (strcmp(s->want_peer_end, "EOF") == 0 && o->peer_got != o->sent) {
		snprintf(why, size, "peer lost %ld bytes", o->sent - o->peer_got);
		return false;
	}
	return true;
}

static const struct scenario *find_scenario(const char *row)
{
	for (size_t i = 0; i < SCENARIOS; i++)
		if (strcasecmp(scenarios[i].row, row) == 0)
			return &scenarios[i];
	return NULL;
}

/* A scenario that hangs (a broken library) must not hang the demo. */
static volatile sig_atomic_t running_row = -1;

static void watchdog_fired(int sig)
{
	static const char before[] = "wspclose-demo: row ";
	static const char after[] = " did not finish in time, giving up\n";
	const char *row = running_row >= 0 ? scenarios[running_row].row : "?";
	ssize_t ignored;

	(void)sig; /* write() only: async-signal-safe */
	ignored = write(STDERR_FILENO, before, sizeof before - 1);
	ignored = write(STDERR_FILENO, row, strlen(row));
	ignored = write(STDERR_FILENO, after, sizeof after - 1);
	(void)ignored;
	_exit(3);
}

static void run_scenario(const struct scenario *s, struct outcome *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->row, sizeof out->row, "%s", s->row);
	snprintf(out->retry_err, sizeof out->retry_err, "-");
	running_row = (sig_atomic_t)(s - scenarios);
	alarm(ROW_WATCHDOG_S);
	s->run(out);
	alarm(0);
	running_row = -1;
}

/* ------------------------------------------------------------ output */

static void print_machine(const struct scenario *s, const struct outcome *o)
{
	char why[96], retry_ret[16] = "-", retry_ms[32] = "-";
	bool match = matches_windows(s, o, why, sizeof why);

	if (o->retried) {
		snprintf(retry_ret, sizeof retry_ret, "%d", o->retry_ret);
		snprintf(retry_ms, sizeof retry_ms, "%.1f", o->retry_ms);
	}
	printf("row=%s\tret=%d\terrno=%s\tblocked_ms=%.1f\tstate_after=%s\tfd_after=%s\t"
	       "retry_ret=%s\tretry_errno=%s\tretry_ms=%s\tsent=%ld\tpeer_got=%ld\t"
	       "peer_end=%s\twindows=%s\twhy=%s\n",
	       o->row, o->ret, o->err, o->blocked_ms, o->state_after,
	       o->fd_open_after ? "open" : "closed", retry_ret, o->retry_err, retry_ms,
	       o->sent, o->peer_got, o->peer_end, match ? "match" : "differs", why);
}

/* Parses one --machine line back; false if it is not a row line. */
static bool parse_machine(char *line, struct outcome *o)
{
	bool any = false;

	memset(o, 0, sizeof *o);
	for (char *save, *field = strtok_r(line, "\t\n", &save); field;
	     field = strtok_r(NULL, "\t\n", &save)) {
		char *value = strchr(field, '=');

		if (!value)
			continue;
		*value++ = '\0';
		if (strcmp(field, "row") == 0) {
			snprintf(o->row, sizeof o->row, "%s", value);
			any = true;
		} else if (strcmp(field, "ret") == 0)
			o->ret = atoi(value);
		else if (strcmp(field, "errno") == 0)
			snprintf(o->err, sizeof o->err, "%s", value);
		else if (strcmp(field, "blocked_ms") == 0)
			o->blocked_ms = strtod(value, NULL);
		else if (strcmp(field, "state_after") == 0)
			snprintf(o->state_after, sizeof o->state_after, "%s", value);
		else if (strcmp(field, "fd_after") == 0)
			o->fd_open_after = strcmp(value, "open") == 0;
		else if (strcmp(field, "retry_ret") == 0) {
			o->retried = value[0] != '-';
			o->retry_ret = o->retried ? atoi(value) : 0;
		} else if (strcmp(field, "retry_errno") == 0)
			snprintf(o->retry_err, sizeof o->retry_err, "%s", value);
		else if (strcmp(field, "retry_ms") == 0 && value[0] != '-')
			o->retry_ms = strtod(value, NULL);
		else if (strcmp(field, "sent") == 0)
			o->sent = atol(value);
		else if (strcmp(field, "peer_got") == 0)
			o->peer_got = atol(value);
		else if (strcmp(field, "peer_end") == 0)
			snprintf(o->peer_end, sizeof o->peer_end, "%s", value);
	}
	return any;
}

/* A table cell: a few short lines. */
#define CELL_LINES 8
#define CELL_WIDTH 34
struct cell {
	char line[CELL_LINES][CELL_WIDTH + 1];
	int count;
};

__attribute__((format(printf, 2, 3)))
static void cell_add(struct cell *c, const char *format, ...)
{
	va_list args;

	if (c->count == CELL_LINES)
		return;
	va_start(args, format);
	vsnprintf(c->line[c->count++], sizeof c->line[0], format, args);
	va_end(args);
}

/* Word-wraps fixed text into a cell. */
static void cell_wrap(struct cell *c, const char *text)
{
	while (*text && c->count < CELL_LINES) {
		size_t take = strlen(text);

		if (take > CELL_WIDTH) {
			take = CELL_WIDTH;
			while (take > 0 && text[take] != ' ')
				take--;
			if (take == 0)
				take = CELL_WIDTH;
		}
		cell_add(c, "%.*s", (int)take, text);
		text += take;
		while (*text == ' ')
			text++;
	}
}

static void describe_close(struct cell *c, int ret, const char *err, double ms)
{
	if (ret == 0)
		cell_add(c, "close() = 0 after %.1f ms", ms);
	else
		cell_add(c, "close() = %d %s, %.1f ms", ret, err, ms);
}

static void describe(struct cell *c, const struct scenario *s, const struct outcome *o)
{
	char why[96];

	memset(c, 0, sizeof *c);
	if (!o) {
		cell_add(c, "(no result)");
		return;
	}
	describe_close(c, o->ret, o->err, o->blocked_ms);
	if (o->ret != 0)
		cell_add(c, "fd still %s", o->fd_open_after ? "open" : "closed");
	cell_add(c, "closer then: %s", o->state_after);
	if (o->retried) {
		cell_add(c, "linger off, close() again:");
		describe_close(c, o->retry_ret, o->retry_err, o->retry_ms);
	}
	cell_add(c, "peer got %ld/%ld B, %s", o->peer_got, o->sent, o->peer_end);
	if (matches_windows(s, o, why, sizeof why))
		cell_add(c, "= Windows");
	else
		cell_add(c, "DIFFERS: %s", why);
}

/* Table lines are built whole so trailing blanks can be dropped. */
struct table_line {
	char text[8 + 3 * (CELL_WIDTH + 3)];
	size_t used;
};

__attribute__((format(printf, 2, 3)))
static void line_add(struct table_line *l, const char *format, ...)
{
	va_list args;
	int n;

	va_start(args, format);
	n = vsnprintf(l->text + l->used, sizeof l->text - l->used, format, args);
	va_end(args);
	if (n > 0)
		l->used = l->used + (size_t)n < sizeof l->text ? l->used + (size_t)n :
			  sizeof l->text - 1;
}

static void line_print(struct table_line *l)
{
	while (l->used > 0 && l->text[l->used - 1] == ' ')
		l->text[--l->used] = '\0';
	puts(l->text);
	l->used = 0;
	l->text[0] = '\0';
}

static void print_rule(int columns)
{
	struct table_line l = { .used = 0 };

	line_add(&l, "----");
	for (int i = 0; i < columns; i++)
		line_add(&l, "+-%.*s-", CELL_WIDTH, "--------------------------------------------------");
	line_print(&l);
}

static void print_header(const char *const *titles, int columns)
{
	struct table_line l = { .used = 0 };

	line_add(&l, "%-4s", "row");
	for (int i = 0; i < columns; i++)
		line_add(&l, "| %-*s ", CELL_WIDTH, titles[i]);
	line_print(&l);
	print_rule(columns);
}

/* One table row: its name and set-up across the table, then the cells side
 * by side. */
static void print_row(const struct scenario *s, const struct cell *cells, int columns)
{
	struct table_line l = { .used = 0 };
	int height = 0;

	line_add(&l, "%-4s| set-up: %s", s->row, s->setup);
	line_print(&l);
	for (int i = 0; i < columns; i++)
		if (cells[i].count > height)
			height = cells[i].count;
	for (int line = 0; line < height; line++) {
		line_add(&l, "%-4s", "");
		for (int i = 0; i < columns; i++)
			line_add(&l, "| %-*s ", CELL_WIDTH,
				 line < cells[i].count ? cells[i].line[line] : "");
		line_print(&l);
	}
	print_rule(columns);
}

/* True when a mapped file's path contains `needle`. */
static bool is_mapped(const char *needle)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	if (!maps)
		return false;
	while (!found && fgets(line, sizeof line, maps))
		found = strstr(line, needle) != NULL;
	fclose(maps);
	return found;
}

/* True when every LD_PRELOAD entry really got loaded (the dynamic loader
 * only warns when it cannot load one). */
static bool preload_is_mapped(void)
{
	const char *preload = getenv("LD_PRELOAD");
	char list[4096];
	bool all = true;

	if (!preload || !*preload)
		return false;
	snprintf(list, sizeof list, "%s", preload);
	for (char *save, *entry = strtok_r(list, ": ", &save); entry;
	     entry = strtok_r(NULL, ": ", &save)) {
		char resolved[PATH_MAX];

		all &= is_mapped(realpath(entry, resolved) ? resolved : entry);
	}
	return all;
}

static void print_uname(void)
{
	struct utsname uts;

	if (uname(&uts) == 0)
		printf("kernel: %s %s %s\n", uts.sysname, uts.release, uts.machine);
}

/* Default mode: the scenarios in this process, one table row each. */
static int run_human(const struct scenario *only)
{
	const char *preload = getenv("LD_PRELOAD");
	int matching = 0, ran = 0;

	printf("wspclose-demo: close() of a loopback TCP socket, one scenario per row of libwspclose(7) section 2\n");
	printf("this process: LD_PRELOAD=%s (libwspclose %s)\n",
	       preload && *preload ? preload : "(none)",
	       is_mapped("libwspclose") ? "loaded" : "NOT loaded: plain Linux semantics");
	print_uname();
	static const char *const titles[] = { "measured here", "Windows expects" };

	printf("\n");
	print_header(titles, 2);
	for (size_t i = 0; i < SCENARIOS; i++) {
		struct outcome o;
		struct cell cells[2];
		char why[96];

		if (only && only != &scenarios[i])
			continue;
		run_scenario(&scenarios[i], &o);
		describe(&cells[0], &scenarios[i], &o);
		memset(&cells[1], 0, sizeof cells[1]);
		cell_wrap(&cells[1], scenarios[i].windows);
		print_row(&scenarios[i], cells, 2);
		fflush(stdout);
		ran++;
		matching += matches_windows(&scenarios[i], &o, why, sizeof why);
	}
	printf("%d of %d rows behave as on Windows.\n", matching, ran);
	return 0;
}

/* Held copies end within milliseconds once peers are closed; report any
 * socket still open so a leak shows up. */
static int sockets_left_after_teardown(void)
{
	int left = count_open_sockets();

	for (int waited = 0; left > 0 && waited < 2000; waited += 10) {
		sleep_ms(10);
		left = count_open_sockets();
	}
	return left;
}

static int run_machine(const struct scenario *only)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# preload=%s\tpreload_mapped=%s\n",
	       getenv("LD_PRELOAD") && *getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "-",
	       preload_is_mapped() ? "yes" : "no");
	for (size_t i = 0; i < SCENARIOS; i++) {
		struct outcome o;

		if (only && only != &scenarios[i])
			continue;
		run_scenario(&scenarios[i], &o);
		print_machine(&scenarios[i], &o);
	}
	printf("# sockets_left=%d\n", sockets_left_after_teardown());
	return 0;
}

/* ------------------------------------------------------------ --compare */

enum side { LINUX, LIBRARY, SIDES };

struct side_results {
	struct outcome rows[SCENARIOS];
	bool have[SCENARIOS];
	bool library_loaded;
	int sockets_left;          /* -1: the child did not say */
	int exit_status;           /* -1: killed or died of a signal */
};

/* Runs /proc/self/exe --machine with the given LD_PRELOAD (NULL: none). */
static void run_side(const char *preload_entry, const char *only_row, struct side_results *out)
{
	char *argv[] = { "wspclose-demo", "--machine", NULL, NULL, NULL };
	size_t count = 0, used = 0;
	char **env, line[1024];
	int pipefd[2], status;
	pid_t pid;
	FILE *from_child;
	struct pollfd pfd;
	uint64_t give_up = now_ns() + (uint64_t)CHILD_TIMEOUT_MS * 1000000u;

	memset(out, 0, sizeof *out);
	out->sockets_left = -1;
	if (only_row) {
		argv[2] = "--row";
		argv[3] = (char *)only_row;
	}
	while (environ[count])
		count++;
	env = calloc(count + 2, sizeof *env);
	if (!env)
		die("calloc");
	for (size_t i = 0; i < count; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
			env[used++] = environ[i];
	if (preload_entry)
		env[used++] = (char *)preload_entry;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		die("pipe");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execve("/proc/self/exe", argv, env);
		fprintf(stderr, "wspclose-demo: execve /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	free(env);
	close(pipefd[1]);
	from_child = fdopen(pipefd[0], "r");
	if (!from_child)
		die("fdopen");
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	for (;;) {
		struct outcome o;
		uint64_t now = now_ns();

		if (now >= give_up || poll(&pfd, 1, (int)((give_up - now) / 1000000u) + 1) == 0) {
			fprintf(stderr, "wspclose-demo: child %d took too long, killing it\n", (int)pid);
			kill(pid, SIGKILL);
			break;
		}
		if (!fgets(line, sizeof line, from_child))
			break;
		if (strncmp(line, "# ", 2) == 0) {
			if (strstr(line, "preload_mapped=yes"))
				out->library_loaded = true;
			if (strncmp(line, "# sockets_left=", 15) == 0)
				out->sockets_left = atoi(line + 15);
			continue;
		}
		if (parse_machine(line, &o)) {
			const struct scenario *s = find_scenario(o.row);

			if (s) {
				out->rows[s - scenarios] = o;
				out->have[s - scenarios] = true;
			}
		}
	}
	fclose(from_child);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	out->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_compare(const char *library, const struct scenario *only)
{
	static struct side_results sides[SIDES];
	static const char *const titles[] = { "Linux", "libwspclose", "Windows expects" };
	char resolved[PATH_MAX], preload_entry[PATH_MAX + 16];
	int matching[SIDES] = { 0, 0 }, ran = 0;

	if (!realpath(library, resolved)) {
		fprintf(stderr, "wspclose-demo: %s: %s\n", library, strerror(errno));
		return 2;
	}
	snprintf(preload_entry, sizeof preload_entry, "LD_PRELOAD=%s", resolved);
	printf("wspclose-demo: close() of a loopback TCP socket, one scenario per row of libwspclose(7) section 2,\n"
	       "run twice: plain Linux, then LD_PRELOAD=%s\n", resolved);
	print_uname();
	fflush(stdout);
	run_side(NULL, only ? only->row : NULL, &sides[LINUX]);
	run_side(preload_entry, only ? only->row : NULL, &sides[LIBRARY]);
	if (!sides[LIBRARY].library_loaded)
		printf("WARNING: the library was not loaded in the second run (see the dynamic\n"
		       "         loader's message above); its column shows plain Linux.\n");

	printf("\n");
	print_header(titles, 3);
	for (size_t i = 0; i < SCENARIOS; i++) {
		struct cell cells[3];
		char why[96];

		if (only && only != &scenarios[i])
			continue;
		ran++;
		for (int side = 0; side < SIDES; side++) {
			const struct outcome *o = sides[side].have[i] ? &sides[side].rows[i] : NULL;

			describe(&cells[side], &scenarios[i], o);
			if (o && matches_windows(&scenarios[i], o, why, sizeof why))
				matching[side]++;
		}
		memset(&cells[2], 0, sizeof cells[2]);
		cell_wrap(&cells[2], scenarios[i].windows);
		print_row(&scenarios[i], cells, 3);
	}
	printf("Behaves as on Windows: Linux %d of %d rows, libwspclose %d of %d rows.\n",
	       matching[LINUX], ran, matching[LIBRARY], ran);
	for (int side = 0; side < SIDES; side++) {
		const char *name = side == LINUX ? "Linux" : "libwspclose";

		if (sides[side].exit_status != 0)
			printf("WARNING: the %s run failed (%s %d).\n", name,
			       sides[side].exit_status < 0 ? "killed, status" : "exit status",
			       sides[side].exit_status);
		else if (sides[side].sockets_left > 0)
			printf("WARNING: the %s run still had %d sockets open at its end.\n",
			       name, sides[side].sockets_left);
	}
	return 0;
}

/* ------------------------------------------------------------ entry */

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: wspclose-demo [--row NAME] [--machine]\n"
		"       wspclose-demo [--row NAME] --compare LIBRARY_PATH\n"
		"Runs one loopback TCP scenario per row of the libwspclose contract\n"
		"(G1 G2 A1 W1 W2 L1 L2) and shows what close() did: its result, how long it\n"
		"blocked, what the peer received and the closing side's TCP state.\n"
		"  --row NAME      only this row\n"
		"  --machine       tab-separated key=value lines, one per row\n"
		"  --compare LIB   run without and with LD_PRELOAD=LIB, side by side with\n"
		"                  what Windows does\n");
}

int main(int argc, char **argv)
{
	const struct scenario *only = NULL;
	const char *compare_library = NULL;
	bool machine = false;
	struct sigaction on_alarm = { .sa_handler = watchdog_fired };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--machine") == 0) {
			machine = true;
		} else if (strcmp(argv[i], "--row") == 0 && i + 1 < argc) {
			only = find_scenario(argv[++i]);
			if (!only) {
				fprintf(stderr, "wspclose-demo: no row '%s' (G1 G2 A1 W1 W2 L1 L2)\n",
					argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--compare") == 0 && i + 1 < argc) {
			compare_library = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wspclose-demo: bad argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	sigaction(SIGALRM, &on_alarm, NULL);
	if (compare_library)
		return run_compare(compare_library, only);
	if (machine)
		return run_machine(only);
	return run_human(only);
}
