/* settle_queue.h: held copies the reaper has shut down but not registered
 * with its epoll set yet (held_copies.c). Most teardowns over loopback, and
 * many on a LAN, are over by the time the reaper next wakes up for another
 * copy; one look at each then releases it, with no registration and no
 * event. A copy shut down in one round of the reaper is looked at the end
 * of the next round, which comes at most SETTLE_QUEUE_WAIT_MS later.
 * The reaper thread's alone: plain memory, no locks. */
#ifndef WSPCLOSE_SETTLE_QUEUE_H
#define WSPCLOSE_SETTLE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest a copy waits to be looked at (the reaper's wait is capped). */
#define SETTLE_QUEUE_WAIT_MS 1

/* Room for `capacity` copies in each round (WSPCLOSE_MAX_HELD). */
bool settle_queue_init(size_t capacity);
/* Queues a copy's event token for the end of the next round; false when
 * there is no room (the copy is then registered at once). */
bool settle_queue_add(uint64_t token);
/* At the end of a round: hands look() the copies of the round before, then
 * makes this round's copies the next ones due. */
void settle_queue_end_round(void (*look)(uint64_t token));
/* Copies are due at the end of the next round. */
bool settle_queue_has_due(void);
/* In a fork child: the parent's copies are gone. */
void settle_queue_forget(void);

#endif
