/* loopback.h: helpers shared by the integration tests: connected TCP pairs
 * over loopback, a filled send queue, a peer drainer, descriptor inspection. */
#ifndef WSPCLOSE_TEST_LOOPBACK_H
#define WSPCLOSE_TEST_LOOPBACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A connected TCP pair. `client` is the end the tests close (the closer);
 * `peer` is the accepted end; fields are -1 once closed. */
struct lb_pair {
	int family;     /* AF_INET or AF_INET6 */
	int listener;
	int client;
	int peer;
};

/* Connects a pair over 127.0.0.1 (AF_INET) or ::1 (AF_INET6) on an ephemeral
 * port. peer_rcvbuf / client_sndbuf > 0 shrink SO_RCVBUF on the listener
 * (inherited by the accepted peer, and it must be set before the handshake
 * to fix the window scale) and SO_SNDBUF on the client; 0 keeps the default.
 * Returns 0, or -1 with errno set and nothing left open. */
int lb_pair_open(struct lb_pair *pair, int family, int peer_rcvbuf,
		 int client_sndbuf);

/* A pair whose client send queue can be filled quickly: small buffers. */
int lb_pair_open_small(struct lb_pair *pair, int family);

/* Closes every end still open (>= 0) and sets it to -1. */
void lb_pair_close(struct lb_pair *pair);

/* True when a TCP connection over ::1 works; otherwise false and a reason. */
bool lb_ipv6_available(char *why, size_t why_len);

/* The byte at stream offset `offset` of every test stream; the drainer
 * checks it, so lost, duplicated or reordered data is detected. */
unsigned char lb_pattern_byte(uint64_t offset);

/* Sends `len` pattern bytes starting at *offset, blocking; advances *offset.
 * Returns 0, or -1 with errno. */
int lb_send_pattern(int fd, uint64_t *offset, size_t len);

/* Queues pattern bytes with MSG_DONTWAIT until the kernel answers EAGAIN
 * (the peer must not be reading): afterwards the send queue is full and
 * SIOCOUTQ > 0. Does not change O_NONBLOCK. Advances *offset; returns the
 * number of bytes queued by this call, or -1 with errno. */
ssize_t lb_fill_send_queue(int fd, uint64_t *offset);
/* The same, returning at the first EAGAIN without waiting for the queue to
 * settle (fast; the peer must not be reading): SIOCOUTQ > 0 afterwards. */
ssize_t lb_fill_send_queue_quick(int fd, uint64_t *offset);

/* How the drainer's stream ended. */
enum lb_end {
	LB_END_EOF,      /* read() returned 0: a FIN after the data */
	LB_END_RESET,    /* ECONNRESET */
	LB_END_TIMEOUT,  /* nothing conclusive before the deadline */
	LB_END_ERROR,    /* another errno, in `err` */
};

struct lb_drain_result {
	uint64_t bytes;       /* total bytes read */
	enum lb_end end;
	int err;              /* errno for LB_END_ERROR */
	bool pattern_ok;      /* every byte matched lb_pattern_byte() */
	int64_t end_ms;       /* lb_now_ms() when the stream ended */
};

/* Reads everything from `fd` in a thread, `chunk` bytes at a time, pausing
 * `pause_ms` between reads (0: read as fast as possible; > 0 makes a slow
 * reader), until EOF, an error, or `timeout_ms` after the start. The fd is
 * not closed by the drainer. */
struct lb_drainer {
	pthread_t thread;
	int fd;
	size_t chunk;
	int pause_ms;
	int64_t deadline_ms;
	pthread_mutex_t lock;    /* held across each read and count update */
	struct lb_drain_result result;
};

int lb_drainer_start(struct lb_drainer *drainer, int fd, size_t chunk,
		     int pause_ms, int timeout_ms);
void lb_drainer_join(struct lb_drainer *drainer, struct lb_drain_result *out);

/* Bytes that have reached the drained socket so far: read by the drainer
 * plus still queued (SIOCINQ), sampled consistently (the drainer cannot read
 * in between). */
uint64_t lb_drainer_arrived(struct lb_drainer *drainer);

/* Starts a fast drainer on fd and waits for its outcome. */
void lb_drain_now(int fd, int timeout_ms, struct lb_drain_result *out);

/* "EOF", "ECONNRESET", ... for assertion messages. */
const char *lb_end_name(enum lb_end end);

/* Number of open descriptors of this process (/proc/self/fd), not counting
 * the one used to list them. */
int lb_count_fds(void);

/* Waits up to timeout_ms for lb_count_fds() == expected; returns the last
 * count seen. */
int lb_wait_fd_count(int expected, int timeout_ms);

/* Like lb_count_fds(), but not counting event descriptors (epoll, eventfd,
 * timerfd, signalfd) at or above 1024: the library's reaper machinery,
 * which the tests never create up there. Sockets are always counted. */
int lb_count_app_fds(void);

/* Waits up to timeout_ms for lb_count_app_fds() == expected; returns the
 * last count seen. */
int lb_wait_app_fd_count(int expected, int timeout_ms);

/* The socket inode of fd (st_ino of fstat), or 0. */
ino_t lb_socket_inode(int fd);

/* The lowest descriptor >= min_fd whose /proc/self/fd link is
 * "socket:[inode]", or -1. With min_fd = 1024 this finds the library's held
 * copy of a closed socket. */
int lb_find_socket_fd(ino_t inode, int min_fd);

/* Number of descriptors >= min_fd whose link is some "socket:[...]". */
int lb_count_socket_fds_from(int min_fd);

/* Waits up to timeout_ms until no descriptor >= min_fd refers to inode;
 * returns true if it went away. */
bool lb_wait_socket_gone(ino_t inode, int min_fd, int timeout_ms);

/* The "flags:" field of /proc/self/fdinfo/<fd> (O_CLOEXEC, O_NONBLOCK,
 * ...), read without calling fcntl() on the descriptor; -1 if not open. */
int lb_fdinfo_flags(int fd);

/* Writes "fd:link" for every open descriptor into buf (for messages). */
void lb_describe_fds(char *buf, size_t len);

/* Monotonic clock in milliseconds. */
int64_t lb_now_ms(void);

/* TCP_INFO tcpi_state (TCP_ESTABLISHED, ...) of fd, or -1 with errno. */
int lb_tcp_state(int fd);

/* SIOCOUTQ (unsent + unacknowledged bytes) of fd, or -1 with errno. */
int lb_outq(int fd);

/* Waits up to timeout_ms for SIOCOUTQ == 0; returns true if reached. */
bool lb_wait_outq_empty(int fd, int timeout_ms);

/* Sets or clears O_NONBLOCK; returns 0 or -1. */
int lb_set_nonblocking(int fd, bool on);

/* setsockopt(SO_LINGER, {onoff, seconds}); returns 0 or -1. */
int lb_set_linger(int fd, int onoff, int seconds);

/* Polls fd for `events` for up to timeout_ms; returns revents (0 on
 * timeout, -1 on error). POLLERR and POLLHUP are always reported. */
int lb_poll(int fd, short events, int timeout_ms);

#endif
