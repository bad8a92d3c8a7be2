/* nursery.h: held copies that closing threads may release themselves (§3).
 * Releasing a copy on another CPU, in the reaper, costs more than the close
 * it replaces: the socket's cache lines and its slab objects are the
 * closer's. So a copy that only waits for the ACK of its FIN first waits
 * in a small array of slots; a later close() in any thread takes a copy
 * that has settled, looks once as the reaper would (SIOCOUTQ, or TCP_INFO
 * when a trace or the statistics want the outcome) and, if the teardown is
 * over, writes its trace lines and closes it in place of the reaper. What
 * is still owed goes to the reaper, which also sweeps every copy left in a
 * slot for NURSERY_SWEEP_NS: a program that stops closing waits for no one.
 *
 * Shared state: NURSERY_SLOTS atomic words, 0 when empty, else the copy's
 * number and when it was placed.
 *
 * Invariants:
 *   N1 A copy in a slot is reserved (handoff.h, I1), published as held,
 *      shut down, with linger off, its deadline far off, and not adopted:
 *      the reaper's structures know nothing of it (its close line waits in
 *      trace_later.c for whoever takes it).
 *   N2 Whoever swaps a slot's word for 0 owns that copy alone: a closer
 *      releases it or hands it off (handoff_push), the reaper adopts it.
 *      The same word twice names the same live copy, so a stale swap
 *      still takes a copy that is in the slot (no ABA harm).
 *   N3 A closer places, then asks the hand-off protocol for a look by the
 *      sweep time (I3); the reaper publishes its wake-up time, then reads
 *      the slots (nursery_due_at): one of them sees the other.
 *   N4 Before it moves a copy for a dup2() onto its number, the reaper
 *      empties every slot and waits for closers that took a copy and have
 *      not yet released it or handed it off (they count themselves before
 *      the take), then adopts what they handed off; a dup2() from a signal
 *      handler that interrupted such a closer answers EBUSY instead of
 *      waiting for it. A fork child empties the slots after closing every
 *      held copy.
 * Atomics and system calls only: async-signal-safe, no cancellation point. */
#ifndef WSPCLOSE_NURSERY_H
#define WSPCLOSE_NURSERY_H

#include <stdbool.h>
#include <stdint.h>

#define NURSERY_SLOTS 64
/* A closer looks at a copy once it is this old: over loopback and a LAN
 * the peer has acknowledged by then, unless it holds its ACK back. */
#define NURSERY_SETTLE_NS (500 * 1000)
/* The reaper takes every copy this old. */
#define NURSERY_SWEEP_NS (2 * 1000 * 1000)

/* ---- closer side */

/* Puts a copy (N1) in a free slot; false when none is free. */
bool nursery_place(int copy_fd, int64_t now);
/* Takes up to two settled copies: each is released here when all is
 * acknowledged, else handed off to the reaper. */
void nursery_release_settled(int64_t now);
/* This thread took a copy it has not released or handed off yet (N4). */
bool nursery_busy_here(void);

/* ---- reaper side */

/* Takes every copy at least `min_age_ns` old (0: all) and gives it to
 * adopt(). */
void nursery_sweep(int64_t now, int64_t min_age_ns, void (*adopt)(int fd));
/* Waits until no closer holds a copy it took (N4). */
void nursery_wait_for_takers(void);
/* When the oldest copy is due for the sweep (INT64_MAX: none). */
int64_t nursery_due_at(int64_t now);

/* ---- fork child: its held copies are closed already */
void nursery_forget_after_fork(void);

#endif
