/* fork_guard.h: keeps fork() out of the short windows in which one of the
 * library's descriptors exists but its table entry does not say so yet (or
 * no longer), so that a fork child can find and close every copy it
 * inherits; and keeps an application's dup2() onto the numbers where the
 * copies live out of the same windows, so that the number it names is
 * never one the library is about to take for a copy or to close. Lock-free
 * and async-signal-safe. */
#ifndef WSPCLOSE_FORK_GUARD_H
#define WSPCLOSE_FORK_GUARD_H

#include <stdbool.h>

/* A closing thread: false while a fork() is pending (the caller then does
 * without a copy). */
bool fork_guard_try_enter(void);
/* The reaper: waits while a fork() is pending. */
void fork_guard_enter(void);
void fork_guard_leave(void);

/* Unmarks one of the library's descriptors and closes it inside a window:
 * no fork() child inherits it unmarked, and no application dup2() onto its
 * number lands before the close. */
void fork_guard_forget_and_close(int fd);
/* A copy of one of the library's descriptors high up, marked as the
 * library's inside a window; -1 when there is no room. Neither opens a
 * window inside one the caller holds: a pending fork() would wait for the
 * outer one while the inner one waits for it. */
int fork_guard_dup_own_high(int fd);

/* pthread_atfork handlers: prepare waits (at most 50 ms: a fork() from a
 * signal handler that interrupted such a window in its own thread must not
 * wait for itself) for open windows to close; done lets them open again. */
void fork_guard_prepare(void);
void fork_guard_done(void);
/* The same wait and release for an application dup2()/dup3() onto a number
 * where the library keeps its copies: no copy appears there or vanishes
 * from there, unseen in the table, while the kernel hands the number over
 * (closers meanwhile do without a copy, as while a fork() is pending). */
void fork_guard_close_windows(void);
void fork_guard_reopen_windows(void);
/* The fork child: the parent's other threads, their windows and forks, do
 * not exist here. */
void fork_guard_reset_in_child(void);

/* The fork handlers proper (entry_process.c): the parent marks every socket
 * shared; the child also closes what the reaper held and forgets it. */
void fork_handlers_parent(void);
void fork_handlers_child(void);

#endif
