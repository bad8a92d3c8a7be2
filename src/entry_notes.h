/* entry_notes.h: what the interposed calls record once the kernel has
 * answered, shared with the entry point that reaches the same system calls
 * another way: syscall() (entry_syscall.c). Each keeps errno. */
#ifndef WSPCLOSE_ENTRY_NOTES_H
#define WSPCLOSE_ENTRY_NOTES_H

#include <stdbool.h>
#include <sys/socket.h>

/* entry_socket.c */
void entry_note_socket(int fd, int domain, int type, int protocol);
void entry_note_socketpair(const int fds[2], int domain, int type, int protocol);
void entry_note_accepted(int listener, int fd);
/* connect(fd, addr, len) returned 0. */
void entry_note_connected(int fd, const struct sockaddr *addr, socklen_t len);

/* entry_epoll.c */
/* An epoll_ctl() on one of the library's own descriptors: EBADF, true. */
bool entry_epoll_ctl_refused(int epfd, int fd);
/* epoll_ctl(epfd, op, fd) returned 0. */
void entry_note_epoll_ctl(int epfd, int op, int fd);
/* epoll_create()/epoll_create1() returned epfd (or failed: negative). */
void entry_note_epoll_created(int epfd);

#endif
