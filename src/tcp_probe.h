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
int probe_tcp_state(int fd);     /* TCP_INFO tcpi_state (TCP_ESTABLISHED, ...) */
int probe_socket_error(int fd);  /* SO_ERROR */

/* FD_KIND_TCP, FD_KIND_OTHER_SOCKET or FD_KIND_NONE for any descriptor, and
 * its inode when it is a socket. Costs up to four system calls. */
uint32_t probe_descriptor_kind(int fd, uint64_t *inode);

/* Our FIN is still unacknowledged (or never sent): the kernel's own linger
 * condition (FIN_WAIT1, CLOSING, LAST_ACK) plus the states before a FIN. */
bool tcp_state_is_draining(int state);
/* A FIN was already sent: shutdown(SHUT_WR) happened, maybe behind our back. */
bool tcp_state_write_shut(int state);

int raw_close(int fd);
int raw_shutdown(int fd, int how);
/* Resets the connection now (RST), whatever other references exist. */
int raw_abort_connection(int fd);
/* F_DUPFD_CLOEXEC at or above `lowest`. */
int raw_dup_at_or_above(int fd, int lowest);

#endif
