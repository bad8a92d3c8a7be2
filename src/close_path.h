/* close_path.h: carries out the close of one descriptor, explicit (close)
 * or implicit (dup2/dup3 onto it, close_range, closefrom): gathers the facts,
 * asks close_decide() for the row, and executes it. */
#ifndef WSPCLOSE_CLOSE_PATH_H
#define WSPCLOSE_CLOSE_PATH_H

#include "close_decision.h"

/* Same contract as close(2), plus W1's EWOULDBLOCK for explicit closes.
 * Async-signal-safe: atomics and system calls only. */
int close_path_close(int fd, enum close_origin origin);

/* syscall(SYS_close, fd): close()'s semantics (every row, W1 included),
 * but, like the C library's syscall(), never a cancellation point. */
int close_path_close_syscall(int fd);

/* dup2(source, target) (use_dup3: dup3 with flags) where the implicit close
 * of target gets its §2 row; the number is handed over atomically. Same
 * contract as dup2(2)/dup3(2). */
int close_path_replace(int source, int target, bool use_dup3, int flags);

/* fclose() of a stream on the TCP socket fd: dup2(placeholder, fd), where
 * the implicit close of fd gets its row (trace: implicit-close-fclose). */
int close_path_fclose_socket(int placeholder, int fd);
/* Whether fd is an application TCP socket the library knows. */
bool close_path_is_tcp_socket(int fd);

/* This thread now has a private descriptor table (CLOSE_RANGE_UNSHARE): the
 * reaper and the table describe another one, so this thread's closes are
 * the kernel's own from now on (it is normally about to exec). */
void close_path_note_files_unshared(void);

#endif
