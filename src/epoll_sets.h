/* epoll_sets.h: the application's epoll sets, for the registrations the
 * library cannot see. io_uring's IORING_OP_EPOLL_CTL (libuv >= 1.45 makes
 * its registrations so) adds a socket to a set without epoll_ctl(); a held
 * copy would keep such a registration alive, and the set would report a
 * closed number (§4.1). So, before a closing socket's copy is held, it is
 * deleted from each set that may hold it unseen: every known set once the
 * process is known to use io_uring, and otherwise the sets in which no
 * epoll_ctl(EPOLL_CTL_ADD) was ever seen. A process that does neither pays
 * two loads per close. Async-signal-safe: atomics and system calls. */
#ifndef WSPCLOSE_EPOLL_SETS_H
#define WSPCLOSE_EPOLL_SETS_H

#include <stdbool.h>

/* epoll_create()/epoll_create1() returned epfd. */
void epoll_sets_note_created(int epfd);
/* epoll_ctl(epfd, EPOLL_CTL_ADD, ...) succeeded. */
void epoll_sets_note_add_seen(int epfd);
/* dup()/dup2()/F_DUPFD made target another number of the set source. */
void epoll_sets_note_duplicate(int source, int target);
/* The number epfd no longer names the set. */
void epoll_sets_note_closed(int epfd);
/* An io_uring instance exists in this process (io_uring_setup). */
void epoll_sets_note_io_uring(void);
bool epoll_sets_io_uring_seen(void);

/* Deletes fd from each set that may hold a registration of it the library
 * did not see. errno is kept. */
void epoll_sets_leave_unseen(int fd);

#endif
