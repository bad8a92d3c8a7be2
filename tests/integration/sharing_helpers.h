/* sharing_helpers.h: helpers of the sharing, implicit-close, epoll, blocked-
 * caller, own-descriptor, fork/exec and signal tests (and the stress program). */
#ifndef WSPCLOSE_TEST_SHARING_HELPERS_H
#define WSPCLOSE_TEST_SHARING_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "loopback.h"

/* Where §3 puts the library's held copies and reaper descriptors. */
#define SH_HELD_MIN_FD 1024
/* "Returns at once" on a noisy shared 2-core VM. */
#define SH_QUICK_MS 500
/* How long a peer may take to see all data and the end of the stream. */
#define SH_DRAIN_MS 5000
/* A successful call must leave errno untouched: the tests preset this. */
#define SH_ERRNO_SENTINEL EDOM

/* ------------------------------------------------------ child processes */

/* A forked child that reports through shared memory, so it can close every
 * descriptor (even the test framework's) and still say what went wrong. */
struct sh_shared;
struct sh_child {
	pid_t pid;
	struct sh_shared *shared;
};

typedef void (*sh_child_main)(void *arg);

/* Forks; the child runs fn(arg) and exits 0 when it returns. Returns 0, or
 * -1 with errno. */
int sh_child_start(struct sh_child *child, sh_child_main fn, void *arg);

/* Waits up to timeout_ms for the child (SIGKILL after that). Returns true
 * when it exited 0; otherwise false and the reason in msg. */
bool sh_child_finish(struct sh_child *child, int timeout_ms, char *msg, size_t len);

/* sh_child_start + sh_child_finish. */
bool sh_run_in_child(sh_child_main fn, void *arg, int timeout_ms, char *msg, size_t len);

/* Zeroed memory shared with children forked afterwards (results a child
 * hands back); NULL on failure. */
void *sh_shared_alloc(size_t len);
void sh_shared_free(void *p, size_t len);

/* Waits up to timeout_ms for a child process to end (it is not killed).
 * Returns true and its wait status in *status if it ended. */
bool sh_wait_pid(pid_t pid, int timeout_ms, int *status);

/* Parent <-> child hand-shakes (process-shared semaphores). */
void sh_parent_signal_child(struct sh_child *child);
bool sh_parent_await_child(struct sh_child *child, int timeout_ms);
void sh_child_signal_parent(void);
bool sh_child_await_parent(int timeout_ms);

/* In a child: records the reason and _exit(1)s. Outside a child: prints it
 * on stderr and exit(1)s (the stress program uses it that way). */
void sh_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define SH_REQUIRE(cond, ...) \
	do { \
		if (!(cond)) \
			sh_fail(__VA_ARGS__); \
	} while (0)

/* ------------------------------------------------------ connections */

/* A TCP listener on the loopback address of `family`, ephemeral port.
 * rcvbuf > 0 sets SO_RCVBUF (inherited by accepted sockets). Its address
 * goes to *addr / *addr_len. Returns the fd or -1. */
int sh_listener_open(int family, int rcvbuf, int backlog,
		     struct sockaddr_storage *addr, socklen_t *addr_len);

/* A TCP socket connected to addr (sndbuf > 0 sets SO_SNDBUF first).
 * Returns the fd or -1. */
int sh_connect(const struct sockaddr_storage *addr, socklen_t addr_len, int sndbuf);

/* accept() with a bound wait; returns the fd, or -1 (errno ETIMEDOUT). */
int sh_accept(int listener, int timeout_ms);

/* Connects a new client to `listener` (sndbuf > 0: its SO_SNDBUF) and
 * accepts it. Returns 0 or -1. */
int sh_pair_via(int listener, int sndbuf, int *client, int *peer);


/* A G1 close with the send queue full (the peer not reading): the library
 * holds a copy of the socket until the peer has read everything. */
struct sh_held_case {
	struct lb_pair pair;
	uint64_t sent;
	ino_t inode;
};

/* Opens the pair, fills the client's queue and closes the client. Returns
 * 0, or -1 with errno. */
int sh_held_case_start(struct sh_held_case *hc);
/* The peer reads every byte then EOF, and the held copy is released within
 * 2 s: true; otherwise false with the reason in msg. Closes the pair. */
bool sh_held_case_finish(struct sh_held_case *hc, char *msg, size_t len);

/* ------------------------------------------------------ observation */

void sh_sleep_ms(int ms);

/* True when fd is open in this process (/proc/self/fdinfo; no fcntl, which
 * the library interposes). */
bool sh_fd_is_open(int fd);

/* The /proc/self/fd link of fd into buf ("socket:[123]", ...); 0 or -1. */
int sh_fd_link(int fd, char *buf, size_t len);

/* True when nothing at all (data, EOF, error, reset) reaches `peer` within
 * ms: "the close sent nothing". */
bool sh_peer_quiet(int peer, int ms);

/* Reads exactly len pattern bytes starting at stream offset *offset (the
 * lb_pattern_byte stream). Returns 0, or -1 with a reason in why. */
int sh_expect_pattern(int fd, uint64_t *offset, size_t len, int timeout_ms,
		      char *why, size_t why_len);

/* A drain in the calling thread (no helper thread): reads until EOF, an
 * error or the timeout, checking the pattern from stream offset `offset`.
 * Fills out like lb_drain_now() (out->bytes: the bytes this call read). */
void sh_drain_inline(int fd, uint64_t offset, int timeout_ms, struct lb_drain_result *out);

/* True when /proc/self/fdinfo/<epfd> has a "tfd: <fd>" line: fd's number
 * is still registered in that epoll set. */
bool sh_epoll_lists_fd(int epfd, int fd);

/* The open descriptors of this process, ascending (not the one used to
 * list them). Returns how many (at most max are stored). */
int sh_list_fds(int *fds, int max);

/* True when fd is in the sorted array. */
bool sh_fd_in(const int *fds, int n, int fd);

/* Sends fd with SCM_RIGHTS and `len` bytes of data; returns 0 or -1. */
int sh_send_fd(int unix_sock, int fd, const void *data, size_t len);
/* Receives one message with SCM_RIGHTS; *fd gets the descriptor (-1 if
 * none). Returns the data length or -1. */
ssize_t sh_recv_fd(int unix_sock, void *data, size_t len, int *fd);

/* Waits until thread `tid` of this process is asleep (state S or D in
 * /proc/self/task/<tid>/stat), i.e. blocked in the call it was about to
 * make. Returns true if seen within timeout_ms. */
bool sh_wait_thread_blocked(pid_t tid, int timeout_ms);

/* ------------------------------------------------------ §2 rows */

/* Checks §2 rows on new loopback connections, without Check (usable
 * in children that closed every descriptor):
 *  G1 hold: close() of a full send queue returns 0 at once, a copy is held
 *     at >= 1024, the peer then gets every byte and EOF, the copy goes;
 *  A1: {1,0} close returns 0 at once, the peer gets ECONNRESET;
 *  W1: nonblocking, {1,5}, pending: -1/EWOULDBLOCK, the fd stays open and
 *      usable; with linger off the next close() returns 0 and the peer
 *      gets every byte then EOF.
 * Each returns true, or false with the reason in why. */
bool sh_check_g1_hold(char *why, size_t len);
bool sh_check_a1(char *why, size_t len);
bool sh_check_w1(char *why, size_t len);
bool sh_check_rows(char *why, size_t len);

#endif
