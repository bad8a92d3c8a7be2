/* tests/faults/fault_common.h: what the fault-injection helpers share: clock,
 * payload pattern and checksum, descriptor counting (proc_fds.h), go-files,
 * addresses. */
#ifndef FAULT_COMMON_H
#define FAULT_COMMON_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../proc_fds.h"

/* Header of a loss-test transfer: seed and payload length (both u32, host
 * order); the payload follows, then its 64-bit FNV-1a checksum. */
#define XFER_HEADER 8
#define XFER_TRAILER 8

static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static inline void fail(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(2);
}

/* The payload byte stream of a seed (xorshift32). */
struct pattern {
	uint32_t x;
};

static inline void pattern_init(struct pattern *p, uint32_t seed)
{
	p->x = seed * 2654435761u + 0x9e3779b9u;
	if (p->x == 0)
		p->x = 1;
}

static inline uint8_t pattern_next(struct pattern *p)
{
	uint32_t x = p->x;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	p->x = x;
	return (uint8_t)(x >> 24);
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static inline uint64_t fnv1a(uint64_t h, uint8_t byte)
{
	return (h ^ byte) * FNV_PRIME;
}

/* Waits until `path` exists; false after `timeout_ms`. */
static inline bool wait_file(const char *path, int timeout_ms)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	struct stat st;
	while (stat(path, &st) != 0) {
		if (mono_ns() > deadline)
			return false;
		sleep_us(500);
	}
	return true;
}

static inline void touch(const char *path)
{
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
}

static inline struct sockaddr_in make_addr(const char *prog, const char *ip, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
		fprintf(stderr, "%s: bad address %s\n", prog, ip);
		exit(2);
	}
	return sa;
}

static inline const char *tcp_state_name(int state)
{
	static const char *const names[] = {
		"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
	};
	return state > 0 && state < (int)(sizeof names / sizeof names[0]) ? names[state] : "?";
}

static inline int tcp_state_of(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return -1;
	return ti.tcpi_state;
}

static inline const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EAGAIN: return "EAGAIN";
	case ENOTCONN: return "ENOTCONN";
	default: return strerror(e);
	}
}

#endif /* FAULT_COMMON_H */
