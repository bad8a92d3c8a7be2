/* strict_clean.c: a program that handles W1 as Windows requires: when a
 * lingering non-blocking close() fails with EWOULDBLOCK it retries. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PEER_RCVBUF 4096
#define CLIENT_SNDBUF 8192
#define GIVE_UP_MS 30000     /* the whole retry loop, generous */

static void die(const char *what)
{
	fprintf(stderr, "strict_clean: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what has arrived on fd within wait_ms; returns 0 at EOF, 1 if
 * the stream goes on. */
static int read_some(int fd, int wait_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	if (poll(&pfd, 1, wait_ms) <= 0)
		return 1;
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0 && errno != EINTR)
		die("read");
	return n == 0 ? 0 : 1;
}

int main(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof addr;
	int rcvbuf = PEER_RCVBUF, sndbuf = CLIENT_SNDBUF;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	int listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 ||
	    setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
	    bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1) < 0 ||
	    getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		die("listen");
	int client = socket(AF_INET, SOCK_STREAM, 0);
	if (client < 0 || setsockopt(client, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0 ||
	    connect(client, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect");
	int peer = accept(listener, NULL, NULL);
	if (peer < 0)
		die("accept");

	struct linger linger = { 1, 2 };
	if (setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, sizeof linger) < 0 ||
	    fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK) < 0)
		die("linger / O_NONBLOCK");
	char chunk[4096];
	memset(chunk, 'x', sizeof chunk);
	for (;;) {
		if (send(client, chunk, sizeof chunk, MSG_NOSIGNAL) > 0)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			die("send");
		struct pollfd pfd = { client, POLLOUT, 0 };
		if (poll(&pfd, 1, 50) == 0)
			break;
	}

	/* Windows: WSAEWOULDBLOCK means "not yet": let the data be delivered
	 * (the peer reads it), then close again. */
	long long give_up = now_ms() + GIVE_UP_MS;
	while (close(client) != 0) {
		if (errno != EWOULDBLOCK && errno != EAGAIN)
			die("close");
		if (now_ms() > give_up) {
			fprintf(stderr, "strict_clean: close() still refused after %d ms\n",
				GIVE_UP_MS);
			return 1;
		}
		read_some(peer, 10);
	}
	/* The peer reads the rest, then the end of the stream. */
	while (read_some(peer, 1000) != 0)
		if (now_ms() > give_up) {
			fprintf(stderr, "strict_clean: no end of stream after %d ms\n", GIVE_UP_MS);
			return 1;
		}
	if (close(peer) != 0 || close(listener) != 0)
		die("close");
	return 0;
}
