/* fork_guard.h: keeps fork() out of the short windows in which one of the
 * library's descriptors exists but its table entry does not say so yet (or
 * no longer), so that a fork child can find and close every copy it
 * inherits. Lock-free and async-signal-safe. */
#ifndef WSPCLOSE_FORK_GUARD_H
#define WSPCLOSE_FORK_GUARD_H

#include <stdbool.h>

/* A closing thread: false while a fork() is pending (the caller then does
 * without a copy). */
bool fork_guard_try_enter(void);
/* The reaper: waits while a fork() is pending. */
void fork_guard_enter(void);
void fork_guard_leave(void);

/* pthread_atfork handlers: prepare waits (at most 50 ms: a fork() from a
 * signal handler that interrupted such a window in its own thread must not
 * wait for itself) for open windows to close; done lets them open again. */
void fork_guard_prepare(void);
void fork_guard_done(void);
/* The fork child: the parent's other threads, their windows and forks, do
 * not exist here. */
void fork_guard_reset_in_child(void);

/* The fork handlers proper (entry_process.c): the parent marks every socket
 * shared; the child also closes what the reaper held and forgets it. */
void fork_handlers_parent(void);
void fork_handlers_child(void);

#endif
