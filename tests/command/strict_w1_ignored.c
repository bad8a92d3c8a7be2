/* strict_w1_ignored.c: a program that relies on Linux close(): it ignores
 * the W1 EWOULDBLOCK of a lingering non-blocking close and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Small buffers: the send queue fills with a few kilobytes. */
#define PEER_RCVBUF 4096
#define CLIENT_SNDBUF 8192

static void die(const char *what)
{
	fprintf(stderr, "strict_w1_ignored: %s: %s\n", what, strerror(errno));
	exit(1);
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

	/* Linger {1,2}, non-blocking, and a send queue the peer never reads. */
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
		/* Full once the last segments have reached the peer's queue. */
		struct pollfd pfd = { client, POLLOUT, 0 };
		if (poll(&pfd, 1, 50) == 0)
			break;
	}

	/* The bug under test: Windows refuses this close (WSAEWOULDBLOCK) and
	 * the socket stays open, but the program does not look. */
	(void)close(client);
	return 0;
}
