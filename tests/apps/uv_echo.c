/* uv_echo.c: a libuv program for `make check-apps` (tests/apps/run-event-loops.sh),
 * built against Debian's libuv1. libuv closes every descriptor with
 * syscall(SYS_close, fd), so without syscall() interposed the library would
 * see none of these closes. Two parts, in one event loop:
 *   echo: a TCP echo server and CONNECTIONS clients over 127.0.0.1, at most
 *     IN_FLIGHT at once; each client sends MESSAGE bytes, reads them back,
 *     and closes; the server closes at the client's EOF.
 *   poll: libuv's poll tests in small (test-poll.c's duplex and
 *     unidirectional modes, and a close while polling): sockets made with
 *     socket()/accept(), watched with uv_poll_t, closed with close() after
 *     uv_close(); numbers are reused at once, so an event left over from a
 *     closed descriptor would reach the new one's watcher as a readable
 *     event with nothing to read (counted as spurious).
 * Prints one line per part with its counts, and exits 0 only when every
 * byte came back and no event arrived for a closed descriptor. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define CONNECTIONS 2000
#define IN_FLIGHT 16
#define MESSAGE 4096
#define POLL_PAIRS 300

static uv_loop_t *loop;
static struct sockaddr_in server_addr;
static int started, finished, echo_failures;
static unsigned long long echoed_bytes;

static void fail(const char *what, int status)
{
	fprintf(stderr, "uv_echo: %s: %s\n", what, uv_strerror(status));
	exit(2);
}

/* ------------------------------------------------------------ echo server */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(suggested);
	buf->len = suggested;
}

static void free_handle(uv_handle_t *h) { free(h); }

static void on_echoed(uv_write_t *req, int status)
{
	if (status < 0)
		echo_failures++;
	free(req->data);
	free(req);
}

static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0) {
		uv_write_t *req = malloc(sizeof *req);
		req->data = buf->base;
		uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
		if (uv_write(req, s, &out, 1, on_echoed) != 0)
			echo_failures++;
		return;
	}
	free(buf->base);
	if (n < 0) /* the client's EOF (or an error): close our end */
		uv_close((uv_handle_t *)s, free_handle);
}

static void on_connection(uv_stream_t *server, int status)
{
	if (status < 0)
		fail("listen callback", status);
	uv_tcp_t *conn = malloc(sizeof *conn);
	uv_tcp_init(loop, conn);
	if (uv_accept(server, (uv_stream_t *)conn) == 0)
		uv_read_start((uv_stream_t *)conn, on_alloc, on_server_read);
	else
		uv_close((uv_handle_t *)conn, free_handle);
}

/* ------------------------------------------------------------ echo clients */

struct client {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	char out[MESSAGE];
	size_t got;
	bool ok;
};

static void start_client(void);

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	if (!c->ok)
		echo_failures++;
	free(c);
	finished++;
	if (started < CONNECTIONS)
		start_client();
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = s->data;
	if (n > 0) {
		if (c->got + (size_t)n > MESSAGE || memcmp(buf->base, c->out + c->got, (size_t)n) != 0)
			echo_failures++;
		c->got += (size_t)n;
		echoed_bytes += (unsigned long long)n;
	}
	free(buf->base);
	if (n < 0 || c->got == MESSAGE) {
		c->ok = c->got == MESSAGE;
		uv_close((uv_handle_t *)s, on_client_closed);
	}
}

static void on_client_wrote(uv_write_t *req, int status)
{
	if (status < 0)
		echo_failures++;
	(void)req;
}

static void on_connected(uv_connect_t *req, int status)
{
	struct client *c = req->data;
	if (status < 0) {
		echo_failures++;
		uv_close((uv_handle_t *)&c->tcp, on_client_closed);
		return;
	}
	uv_buf_t out = uv_buf_init(c->out, MESSAGE);
	uv_write(&c->write, (uv_stream_t *)&c->tcp, &out, 1, on_client_wrote);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_client_read);
}

static void start_client(void)
{
	struct client *c = calloc(1, sizeof *c);
	for (size_t i = 0; i < MESSAGE; i++)
		c->out[i] = (char)(started * 7 + i);
	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	c->connect.data = c;
	started++;
	int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&server_addr, on_connected);
	if (rc != 0)
		fail("uv_tcp_connect", rc);
}

/* ------------------------------------------------------------ poll */

#define POLL_BYTES 65536

struct poll_end {
	uv_poll_t poll;
	int fd;
	size_t to_send, sent, received;
	bool shut, closed;
};

static int poll_pairs_done, poll_failures, spurious_readable;
static unsigned long long poll_bytes;
static int listener_fd;

static void on_poll_closed(uv_handle_t *h)
{
	struct poll_end *e = h->data;
	/* libuv forgot the descriptor: closing it is the application's. */
	if (close(e->fd) != 0)
		poll_failures++;
	e->closed = true;
}

static void end_poll(struct poll_end *e)
{
	uv_poll_stop(&e->poll);
	uv_close((uv_handle_t *)&e->poll, on_poll_closed);
}

/* Writes its share, then shuts its side and reads to the peer's EOF. A
 * readable event with nothing to read is spurious: an event for another,
 * closed descriptor that had this number. */
static void on_poll(uv_poll_t *p, int status, int events)
{
	struct poll_end *e = p->data;
	if (status < 0) {
		poll_failures++;
		end_poll(e);
		return;
	}
	char buf[8192];
	if ((events & UV_WRITABLE) && e->sent < e->to_send) {
		size_t want = e->to_send - e->sent;
		memset(buf, 'p', sizeof buf);
		ssize_t n = send(e->fd, buf, want < sizeof buf ? want : sizeof buf, MSG_NOSIGNAL);
		if (n > 0)
			e->sent += (size_t)n;
	}
	if (e->sent == e->to_send && !e->shut) {
		e->shut = true;
		shutdown(e->fd, SHUT_WR);
		uv_poll_start(p, UV_READABLE | UV_DISCONNECT, on_poll);
	}
	if (!(events & (UV_READABLE | UV_DISCONNECT)))
		return;
	ssize_t n, total = 0;
	while ((n = recv(e->fd, buf, sizeof buf, 0)) > 0)
		total += n;
	e->received += (size_t)total;
	poll_bytes += (unsigned long long)total;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (total == 0 && (events & UV_READABLE) && !(events & UV_DISCONNECT))
			spurious_readable++;
		return;
	}
	if (n < 0)
		poll_failures++;
	if (e->shut && !uv_is_closing((uv_handle_t *)p))
		end_poll(e);
}

static int tcp_pair(int *a, int *b)
{
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (const struct sockaddr *)&server_addr, sizeof server_addr) != 0)
		return -1;
	*b = accept(listener_fd, NULL, NULL);
	if (*b < 0)
		return -1;
	fcntl(*a, F_SETFL, O_NONBLOCK);
	fcntl(*b, F_SETFL, O_NONBLOCK);
	return 0;
}

/* One pair, as in libuv's test-poll.c: both ends write and read (duplex),
 * or only the first writes (unidirectional, i odd); every tenth pair is
 * closed while still polled, right after its first events. */
static void run_poll_pair(int i)
{
	struct poll_end ends[2];
	memset(ends, 0, sizeof ends);
	if (tcp_pair(&ends[0].fd, &ends[1].fd) != 0) {
		poll_failures++;
		return;
	}
	bool unidirectional = i % 2 == 1, close_early = i % 10 == 0;
	for (int k = 0; k < 2; k++) {
		ends[k].to_send = unidirectional && k == 1 ? 0 : POLL_BYTES;
		uv_poll_init(loop, &ends[k].poll, ends[k].fd);
		ends[k].poll.data = &ends[k];
		uv_poll_start(&ends[k].poll, UV_READABLE | UV_WRITABLE | UV_DISCONNECT, on_poll);
	}
	if (close_early) {
		uv_run(loop, UV_RUN_NOWAIT);
		for (int k = 0; k < 2; k++)
			if (!uv_is_closing((uv_handle_t *)&ends[k].poll))
				end_poll(&ends[k]);
	}
	while (!ends[0].closed || !ends[1].closed)
		uv_run(loop, UV_RUN_ONCE);
	if (!close_early && (ends[0].received != ends[1].to_send || ends[1].received != ends[0].to_send))
		poll_failures++;
	poll_pairs_done++;
}

int main(void)
{
	loop = uv_default_loop();
	uv_tcp_t server;
	uv_tcp_init(loop, &server);
	uv_ip4_addr("127.0.0.1", 0, &server_addr);
	int rc = uv_tcp_bind(&server, (const struct sockaddr *)&server_addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&server, 128, on_connection);
	if (rc != 0)
		fail("listen", rc);
	int len = sizeof server_addr;
	uv_tcp_getsockname(&server, (struct sockaddr *)&server_addr, &len);
	for (int i = 0; i < IN_FLIGHT; i++)
		start_client();
	while (finished < CONNECTIONS)
		uv_run(loop, UV_RUN_ONCE);
	printf("echo: %d connections, %llu bytes echoed, %d failures\n", finished, echoed_bytes,
	       echo_failures);

	/* The poll part accepts on a listener of its own, with plain calls. */
	struct sockaddr_in poll_addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	listener_fd = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t alen = sizeof poll_addr;
	if (listener_fd < 0 || bind(listener_fd, (struct sockaddr *)&poll_addr, alen) != 0 ||
	    listen(listener_fd, 16) != 0 || getsockname(listener_fd, (struct sockaddr *)&poll_addr, &alen) != 0)
		fail("poll listener", -errno);
	server_addr = poll_addr;
	for (int i = 0; i < POLL_PAIRS; i++)
		run_poll_pair(i);
	close(listener_fd);
	printf("poll: %d pairs, %llu bytes, %d failures, %d spurious readable events\n", poll_pairs_done,
	       poll_bytes, poll_failures, spurious_readable);

	uv_close((uv_handle_t *)&server, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	bool ok = finished == CONNECTIONS && echo_failures == 0 &&
		  echoed_bytes == (unsigned long long)CONNECTIONS * MESSAGE && poll_failures == 0 &&
		  spurious_readable == 0 && poll_pairs_done == POLL_PAIRS;
	return ok ? 0 : 1;
}
