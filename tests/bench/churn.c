/* churn.c: a connection-churn load over loopback for the trace-cost bench
 * (issue 4 item 7): accept, send 1 KiB, close; prints connections/second. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONNECTIONS 5000
#define MAX_CONNECTIONS 1000000
#define PAYLOAD_BYTES 1024
#define BACKLOG 128
/* No step of one connection takes this long unless something is broken. */
#define STEP_TIMEOUT_MS 10000

struct churn {
	int listener;
	struct sockaddr_in address;
	long connections;
	const char *failure;       /* first failure, for the message */
	int failure_errno;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

static bool note_failure(struct churn *c, const char *what)
{
	pthread_mutex_lock(&failure_lock);
	if (c->failure == NULL) {
		c->failure = what;
		c->failure_errno = errno;
	}
	pthread_mutex_unlock(&failure_lock);
	return false;
}

/* Waits for `events` on fd; false on timeout or error. */
static bool wait_for(int fd, short events)
{
	struct pollfd pfd = { fd, events, 0 };
	int n;
	do
		n = poll(&pfd, 1, STEP_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0;
}

/* The server: accept, send 1 KiB, close; `connections` times. */
static void *serve(void *arg)
{
	struct churn *c = arg;
	char payload[PAYLOAD_BYTES];
	memset(payload, 'c', sizeof payload);
	for (long i = 0; i < c->connections; i++) {
		if (!wait_for(c->listener, POLLIN)) {
			note_failure(c, "accept (waiting)");
			return NULL;
		}
		int fd = accept(c->listener, NULL, NULL);
		if (fd < 0) {
			note_failure(c, "accept");
			return NULL;
		}
		size_t sent = 0;
		while (sent < sizeof payload) {
			ssize_t n = send(fd, payload + sent, sizeof payload - sent, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				note_failure(c, "send");
				close(fd);
				return NULL;
			}
			sent += (size_t)n;
		}
		if (close(fd) != 0) {
			note_failure(c, "close (server)");
			return NULL;
		}
	}
	return NULL;
}

/* One client connection: connect, read to EOF (exactly 1 KiB), close. */
static bool one_connection(struct churn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return note_failure(c, "socket");
	if (connect(fd, (struct sockaddr *)&c->address, sizeof c->address) != 0) {
		note_failure(c, "connect");
		close(fd);
		return false;
	}
	char buf[PAYLOAD_BYTES * 2];
	size_t got = 0;
	for (;;) {
		if (!wait_for(fd, POLLIN)) {
			note_failure(c, "read (waiting)");
			close(fd);
			return false;
		}
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			note_failure(c, "read");
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != PAYLOAD_BYTES) {
		errno = EPROTO;
		note_failure(c, "read (short stream)");
		close(fd);
		return false;
	}
	if (close(fd) != 0)
		return note_failure(c, "close (client)");
	return true;
}

static void usage(FILE *to)
{
	fprintf(to, "Usage: churn [--connections N]\n"
		    "Opens N loopback TCP connections one after another (default %d): the server\n"
		    "accepts, sends %d bytes and closes; the client reads to EOF and closes.\n"
		    "Prints the throughput in connections/second.\n",
		DEFAULT_CONNECTIONS, PAYLOAD_BYTES);
}

static bool parse_count(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_CONNECTIONS)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	struct churn c = { .connections = DEFAULT_CONNECTIONS };
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
			if (!parse_count(argv[++i], &c.connections)) {
				fprintf(stderr, "churn: --connections wants 1..%d, not '%s'\n",
					MAX_CONNECTIONS, argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}

	c.address.sin_family = AF_INET;
	c.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof c.address;
	c.listener = socket(AF_INET, SOCK_STREAM, 0);
	if (c.listener < 0 || bind(c.listener, (struct sockaddr *)&c.address, len) != 0 ||
	    listen(c.listener, BACKLOG) != 0 ||
	    getsockname(c.listener, (struct sockaddr *)&c.address, &len) != 0) {
		perror("churn: listen");
		return 1;
	}

	uint64_t start = now_ns();
	pthread_t server;
	int rc = pthread_create(&server, NULL, serve, &c);
	if (rc != 0) {
		fprintf(stderr, "churn: pthread_create: %s\n", strerror(rc));
		return 1;
	}
	long done = 0;
	while (done < c.connections && one_connection(&c))
		done++;
	if (done < c.connections) {
		/* Unblock a server waiting for a connection that will not come. */
		shutdown(c.listener, SHUT_RDWR);
	}
	pthread_join(server, NULL);
	double seconds = (double)(now_ns() - start) / 1e9;
	close(c.listener);

	if (c.failure != NULL) {
		fprintf(stderr, "churn: %s failed after %ld connections: %s\n", c.failure, done,
			strerror(c.failure_errno));
		return 1;
	}
	printf("churn: %ld connections in %.3f s: %.0f connections/second\n", done, seconds,
	       (double)done / seconds);
	return 0;
}
