/* w1_situation.c: sets up the W1 situation shared by the --strict test
 * programs (see w1_situation.h). */
#include "w1_situation.h"

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

_Noreturn void w1_die(const char *program, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program, what, strerror(errno));
	exit(1);
}

void w1_situation_open(struct w1_situation *s, const char *program)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof addr;
	int rcvbuf = PEER_RCVBUF, sndbuf = CLIENT_SNDBUF;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	s->listener = socket(AF_INET, SOCK_STREAM, 0);
	if (s->listener < 0 ||
	    setsockopt(s->listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
	    bind(s->listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    listen(s->listener, 1) < 0 ||
	    getsockname(s->listener, (struct sockaddr *)&addr, &len) < 0)
		w1_die(program, "listen");
	s->client = socket(AF_INET, SOCK_STREAM, 0);
	if (s->client < 0 ||
	    setsockopt(s->client, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0 ||
	    connect(s->client, (struct sockaddr *)&addr, sizeof addr) < 0)
		w1_die(program, "connect");
	s->peer = accept(s->listener, NULL, NULL);
	if (s->peer < 0)
		w1_die(program, "accept");

	struct linger linger = { 1, 2 };
	if (setsockopt(s->client, SOL_SOCKET, SO_LINGER, &linger, sizeof linger) < 0 ||
	    fcntl(s->client, F_SETFL, fcntl(s->client, F_GETFL) | O_NONBLOCK) < 0)
		w1_die(program, "linger / O_NONBLOCK");
	char chunk[4096];
	memset(chunk, 'x', sizeof chunk);
	for (;;) {
		if (send(s->client, chunk, sizeof chunk, MSG_NOSIGNAL) > 0)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			w1_die(program, "send");
		/* Full once the last segments have reached the peer's queue. */
		struct pollfd pfd = { s->client, POLLOUT, 0 };
		if (poll(&pfd, 1, 50) == 0)
			break;
	}
}
