/* handoff.h: the hand-off protocol between closing threads and the reaper
 * thread (§3): how a held copy reaches the reaper, and the channel (an
 * epoll set and an eventfd) that exists only while something is held, and
 * for a moment after (reaper.c decides when to close it, §6).
 *
 * Shared state (sequentially consistent atomics):
 *   channel   NONE -> CREATING (one closer) -> READY -> CLOSING (the reaper)
 *             -> NONE, or back to READY when a closer reserved meanwhile;
 *             also the futex word the reaper sleeps on while it is not READY
 *   held      copies reserved or live (WSPCLOSE_MAX_HELD bounds it)
 *   head      a lock-free stack of handed-off copies (their fds, linked
 *             through fd_entry.next_handoff): closers push, the reaper takes
 *             the whole stack at once
 *   wakers    closers between reading `channel` and writing the eventfd
 *   wakes_by  0 while the reaper is busy; once it is about to sleep in
 *             epoll_pwait(), when it wakes by itself (CLOCK_MONOTONIC ns,
 *             INT64_MAX: only when woken)
 *
 * Invariants:
 *   I1 A closer reserves (held+1, channel READY) before it makes its copy,
 *      so a pushed copy always finds the channel open, and the channel
 *      cannot close while a copy is on its way (held > 0).
 *   I2 The reaper closes the channel only with held == 0 and wakers == 0:
 *      no closer ever writes to an eventfd number that is no longer ours.
 *   I3 Every push is followed by a look at the stack without waiting for
 *      another closer, at once for an urgent copy and within
 *      HANDOFF_LAZY_WAKE_NS for one the closer already shut down: the
 *      reaper sets `wakes_by`, then looks at the stack (and does not sleep
 *      if it holds anything); a closer pushes, then reads `wakes_by` and
 *      wakes the reaper if it sleeps and, for a lazy copy, would not wake
 *      by itself in time. One of them sees the other, so a copy never
 *      waits for a wake-up that no one sends, a stalled pusher delays no
 *      one, and a reaper that is busy, or wakes soon anyway (its settle
 *      queue, under churn), is sent no wake-up at all.
 *      Copies waiting in the nursery (nursery.h) are looked for the same
 *      way (N3).
 *   I4 A wake-up is never owed to a copy the reaper already took: an extra
 *      eventfd token only costs a spurious wake-up (no flag can go stale).
 *   I5 A thread interrupted by a signal inside the protocol (opening the
 *      channel, waking the reaper) never waits for itself: its handler's
 *      hand-off degrades, and its dup2() onto one of the channel's numbers
 *      answers EBUSY instead of waiting (handoff_busy_here()).
 *   I6 A copy published as held is its closer's until the closer pushes it
 *      or places it in the nursery. Before the reaper moves a copy out of
 *      the way of a dup2() onto its number, it waits until it has adopted
 *      it; a signal handler that interrupted that closer and dup2()s onto
 *      the copy's number answers EBUSY (handoff_delivering_here()).
 * Everything on the closer side is async-signal-safe: atomics, futexes and
 * system calls. */
#ifndef WSPCLOSE_HANDOFF_H
#define WSPCLOSE_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>

/* The token of the eventfd's registration in the epoll set (edge-triggered:
 * its events need nothing done but looking at the stack). */
#define HANDOFF_WAKE_TOKEN UINT64_MAX

/* ---- closer side */

/* Counts one more held copy against `max_held` and opens the channel;
 * false when full or when the channel cannot be made (then degrade). */
bool handoff_reserve(long max_held);
/* Gives a reservation back (no copy was made). */
void handoff_unreserve(void);
/* How late a lazy copy may be looked at: the reaper's own timed rounds
 * (settle_queue.h) come at least this often while copies settle. */
#define HANDOFF_LAZY_WAKE_NS (2 * 1000 * 1000)

/* Gives the reaper a reserved copy whose entry is filled in. `urgent`: it
 * has something to do at once (the copy is not shut down yet, or owes an
 * RST); otherwise only its release waits on the reaper. */
void handoff_push(int copy_fd, bool urgent);
/* Wakes the reaper (also for a request other than a hand-off). */
void handoff_wake_reaper(void);
/* Wakes the reaper if it sleeps past `by_ns` (CLOCK_MONOTONIC): for a copy
 * that waits elsewhere (nursery.h, N3). */
void handoff_expect_look_by(int64_t by_ns);
/* This thread is inside the protocol (a signal handler interrupted it). */
bool handoff_busy_here(void);
/* Around the time this thread holds a published copy it has not handed
 * off yet (I6): begin returns what end restores (a signal handler's close
 * may deliver a copy of its own meanwhile). */
int handoff_delivery_begin(int copy_fd);
void handoff_delivery_end(int previous);
/* This thread is delivering the copy at fd (I6). */
bool handoff_delivering_here(int fd);
/* Held copies right now (reserved ones included). */
long handoff_held(void);

/* ---- reaper side */

/* Sleeps until the channel is READY; before_sleep() runs first when it has
 * to sleep at all. */
void handoff_wait_for_channel(void (*before_sleep)(void));
/* With nothing held: closes the channel and returns false; true when it
 * stays open (something held, or a closer reserved meanwhile). */
bool handoff_close_channel_if_idle(void);
/* The channel's descriptors, while READY. */
int handoff_epoll_fd(void);
int handoff_wake_fd(void);
/* Publishes when the reaper wakes by itself: returns the epoll_pwait()
 * timeout to use (`timeout_ms`, 0 when copies wait on the stack, or
 * shorter when a copy in the nursery is due for its sweep, N3). */
int handoff_begin_wait(int timeout_ms);
void handoff_end_wait(void);
/* Copies wait on the stack. */
bool handoff_has_copies(void);
/* Takes the whole stack: the newest copy's fd, or -1; the next ones follow
 * fd_entry.next_handoff. */
int handoff_take_all(void);
/* A held copy was released. */
void handoff_released(void);
/* dup2() onto one of the channel's numbers: moves it up (the reaper
 * only). False when it could not move (no descriptor to spare). */
bool handoff_move_channel_descriptor(int fd);
bool handoff_is_channel_descriptor(int fd);
bool handoff_channel_creating(void);

/* ---- fork child: the reaper thread and the closers are gone */
void handoff_forget_after_fork(void);

#endif
