/* wine_peer.c: the native Linux end of `make check-wine`'s connections
 * (tests/wine/run-wine.sh). It listens on 127.0.0.1 (the port goes to
 * PORT_FILE), takes tests/wine/wstest.exe's control connection, then makes
 * or takes the data connection as told ("CONNECT port" or "ACCEPT"). At
 * "CLOSING HOLD ms" it reads nothing for up to ms milliseconds and times how
 * long after that line the connection is reset (its TCP state goes to
 * CLOSE), then reads what is left; at "CLOSING READ" it reads at once. It
 * prints one line:
 *   end=EOF|ECONNRESET|... bytes=N reset_ms=N (-1: no reset while holding)
 * and tells wstest.exe on the control connection that it is done. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOLD_LIMIT_MS 6000

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
	fprintf(stderr, "wine_peer: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* One line from the control connection, without its newline. */
static void read_line(int fd, char *buf, size_t len)
{
	size_t used = 0;
	while (used + 1 < len) {
		ssize_t n = read(fd, buf + used, 1);
		if (n <= 0)
			die("control connection");
		if (buf[used] == '\n')
			break;
		used++;
	}
	buf[used] = '\0';
}

static int tcp_state(int fd)
{
	struct tcp_info info;
	socklen_t len = sizeof info;
	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: wine_peer PORT_FILE\n");
		return 2;
	}
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096; /* a small receive buffer: the sender's queue fills */
	setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof addr;
	if (bind(listener, (struct sockaddr *)&addr, len) != 0 || listen(listener, 4) != 0 ||
	    getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
		die("listen");
	FILE *port_file = fopen(argv[1], "w");
	if (port_file == NULL)
		die(argv[1]);
	fprintf(port_file, "%u\n", ntohs(addr.sin_port));
	fclose(port_file);

	int control = accept(listener, NULL, NULL);
	if (control < 0)
		die("accept the control connection");
	char line[64];
	read_line(control, line, sizeof line);
	int data;
	if (strncmp(line, "CONNECT ", 8) == 0) {
		data = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(data, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		addr.sin_port = htons((unsigned short)atoi(line + 8));
		if (connect(data, (struct sockaddr *)&addr, sizeof addr) != 0)
			die("connect");
	} else {
		data = accept(listener, NULL, NULL);
	}
	if (data < 0)
		die("data connection");
	read_line(control, line, sizeof line);
	long long closing = now_ms(), reset_ms = -1;
	if (strncmp(line, "CLOSING HOLD ", 13) == 0) {
		long long hold_ms = atoll(line + 13);
		while (now_ms() - closing < hold_ms) {
			if (tcp_state(data) == TCP_CLOSE) {
				reset_ms = now_ms() - closing;
				break;
			}
			usleep(2000);
		}
	}
	unsigned long long bytes = 0;
	const char *end = "TIMEOUT";
	char buf[65536];
	struct pollfd p = { .fd = data, .events = POLLIN };
	while (poll(&p, 1, HOLD_LIMIT_MS) == 1) {
		ssize_t n = read(data, buf, sizeof buf);
		if (n > 0) {
			bytes += (unsigned long long)n;
			continue;
		}
		end = n == 0 ? "EOF" : errno == ECONNRESET ? "ECONNRESET" : strerror(errno);
		break;
	}
	printf("end=%s bytes=%llu reset_ms=%lld\n", end, bytes, reset_ms);
	fflush(stdout);
	if (write(control, "DONE\n", 5) != 5)
		die("control connection");
	close(data);
	close(control);
	close(listener);
	return 0;
}
