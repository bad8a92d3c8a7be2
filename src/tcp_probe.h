/* tcp_probe.h: questions the library asks the kernel about a socket (linger,
 * blocking mode, queues, TCP state) and the few changes it makes to one.
 * Raw system calls: async-signal-safe, never cancellation points, never
 * routed back through the interposed functions. Errors return -errno. */
#ifndef WSPCLOSE_TCP_PROBE_H
#define WSPCLOSE_TCP_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

int probe_linger(int fd, struct linger *out);
int set_linger(int fd, bool on, int seconds);
int probe_nonblocking(int fd);   /* 1, 0 or -errno */
int probe_send_queue(int fd);    /* SIOCOUTQ: unsent + unacknowledged bytes */
int probe_receive_queue(int fd); /* SIOCINQ: unread bytes */
/* recv(MSG_PEEK | MSG_DONTWAIT) of one byte: 1 when received data waits
 * unread, 0 when nothing but the peer's FIN is left (the peer closed its
 * side), -EAGAIN when nothing came, else -errno (a pending error, which the
 * call consumes as the application's own recv() would: ECONNRESET for a
 * peer's reset). */
int probe_unread(int fd);
/* The kernel's TCP states (include/net/tcp_states.h, a stable ABI seen in
 * TCP_INFO); glibc's <netinet/tcp.h> and <linux/tcp.h> cannot be mixed, and
 * only the latter has the full struct tcp_info. */
enum tcp_state_number {
	TCP_STATE_ESTABLISHED = 1,
	TCP_STATE_SYN_SENT,
	TCP_STATE_SYN_RECV,
	TCP_STATE_FIN_WAIT1,
	TCP_STATE_FIN_WAIT2,
	TCP_STATE_TIME_WAIT,
	TCP_STATE_CLOSE,
	TCP_STATE_CLOSE_WAIT,
	TCP_STATE_LAST_ACK,
	TCP_STATE_LISTEN,
	TCP_STATE_CLOSING,
};

/* What the library needs from TCP_INFO. */
struct tcp_snapshot {
	int state;
	uint32_t data_segs_in;   /* segments with data received so far */
	uint32_t segs_out;       /* segments sent: 0 for a socket never connected */
	bool send_queue_empty;   /* known: SIOCOUTQ would say 0 */
};

int probe_tcp_state(int fd);     /* TCP_INFO tcpi_state, or -errno */
int probe_tcp_snapshot(int fd, struct tcp_snapshot *out);
/* probe_send_queue(), without the ioctl when snap knows the queue is empty. */
int probe_send_queue_known(int fd, const struct tcp_snapshot *snap);
int probe_socket_error(int fd);  /* SO_ERROR */

/* FD_KIND_TCP, FD_KIND_OTHER_SOCKET or FD_KIND_NONE for any descriptor, and
 * its inode when it is a socket. Costs up to four system calls. */
uint32_t probe_descriptor_kind(int fd, uint64_t *inode);

/* Our FIN is still unacknowledged (or never sent): the kernel's own linger
 * condition (FIN_WAIT1, CLOSING, LAST_ACK) plus the states before a FIN. */
bool tcp_state_is_draining(int state);
/* Nothing to tear down (§3): listening, never connected or connecting,
 * already closed, or our FIN already acknowledged. */
bool tcp_state_nothing_to_tear_down(int state);
/* A FIN was already sent: shutdown(SHUT_WR) happened, maybe behind our back. */
bool tcp_state_write_shut(int state);

/* RLIMIT_NOFILE's soft limit (0: unknown or unlimited). */
uint64_t probe_descriptor_limit(void);

int raw_close(int fd);
int raw_shutdown(int fd, int how);
/* Resets the connection now (RST), whatever other references exist. */
int raw_abort_connection(int fd);
/* An O_CLOEXEC copy for the library's own use, out of the application's way:
 * at or above 1024 when RLIMIT_NOFILE allows, otherwise in its upper half
 * (the application's descriptors stay below FD_SETSIZE). */
int raw_dup_high(int fd);
/* fd is where raw_dup_high() puts copies (or has put them since the soft
 * limit fell below 2048). */
bool raw_number_may_be_library_high(int fd);
/* Moves a descriptor the library just created up with raw_dup_high(); on
 * failure it stays where it is. */
int raw_move_high(int fd);

#endif
