/* strict_clean.c: a program that handles W1 as Windows requires: when a
 * lingering non-blocking close() fails with EWOULDBLOCK it retries. */
#include "w1_situation.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM "strict_clean"
#define GIVE_UP_MS 30000     /* the whole retry loop, generous */

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
		w1_die(PROGRAM, "read");
	return n == 0 ? 0 : 1;
}

int main(void)
{
	struct w1_situation s;
	w1_situation_open(&s, PROGRAM);

	/* Windows: WSAEWOULDBLOCK means "not yet": let the data be delivered
	 * (the peer reads it), then close again. */
	long long give_up = now_ms() + GIVE_UP_MS;
	while (close(s.client) != 0) {
		if (errno != EWOULDBLOCK && errno != EAGAIN)
			w1_die(PROGRAM, "close");
		if (now_ms() > give_up) {
			fprintf(stderr, PROGRAM ": close() still refused after %d ms\n", GIVE_UP_MS);
			return 1;
		}
		read_some(s.peer, 10);
	}
	/* The peer reads the rest, then the end of the stream. */
	while (read_some(s.peer, 1000) != 0)
		if (now_ms() > give_up) {
			fprintf(stderr, PROGRAM ": no end of stream after %d ms\n", GIVE_UP_MS);
			return 1;
		}
	if (close(s.peer) != 0 || close(s.listener) != 0)
		w1_die(PROGRAM, "close");
	return 0;
}
