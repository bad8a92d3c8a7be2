/* settle_queue.h: held copies the reaper has shut down but not registered
 * with its epoll set yet (held_copies.c). Most teardowns over loopback, and
 * many on a LAN, are over by the time the reaper next wakes up for another
 * copy; one look at each then releases it, with no registration and no
 * event. Copies queued since the last look wait together; they are looked
 * at, at the end of a round of the reaper, once SETTLE_QUEUE_WAIT_MS has
 * passed since the look before (the reaper's wait is capped so that such a
 * round comes): every copy is at least that old when looked at, and at
 * most about twice that.
 * The reaper thread's alone: plain memory, no locks. */
#ifndef WSPCLOSE_SETTLE_QUEUE_H
#define WSPCLOSE_SETTLE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long copies settle before they are looked at. */
#define SETTLE_QUEUE_WAIT_MS 1

/* Room for `capacity` copies in each round (WSPCLOSE_MAX_HELD). */
bool settle_queue_init(size_t capacity);
/* Queues a copy's event token; false when there is no room (the copy is
 * then registered at once). */
bool settle_queue_add(uint64_t token);
/* At the end of a round (now: CLOCK_MONOTONIC ns): hands look() the
 * copies whose time has come, and starts the settling of those queued
 * since. */
void settle_queue_end_round(int64_t now, void (*look)(uint64_t token));
/* When the next copies are due (INT64_MAX: none queued). */
int64_t settle_queue_due_at(void);
/* In a fork child: the parent's copies are gone. */
void settle_queue_forget(void);

#endif
