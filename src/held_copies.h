/* held_copies.h: the reaper thread's work on held copies (held_copies.c).
 * Called only from the reaper thread, except where said. */
#ifndef WSPCLOSE_HELD_COPIES_H
#define WSPCLOSE_HELD_COPIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* Whether a held copy's teardown is over, its outcome and the TCP state
 * that allowed it (-1 when nothing traces it). Probes only: any thread
 * that owns the copy (nursery.h). */
bool held_copy_teardown_over(int fd, enum held_outcome *outcome, int *state);
/* Before the thread starts: room for max_held deadlines. */
bool held_copies_init(size_t max_held);
/* Adopts every copy on the hand-off stack. */
void held_copies_adopt_handed_off(void);
/* Adopts the copies in the nursery at least `min_age_ns` old (0: all). */
void held_copies_adopt_from_nursery(int64_t min_age_ns);
/* At the end of each round: looks at the copies shut down in the round
 * before (settle_queue.h). */
void held_copies_end_round(void);
void held_copies_on_event(uint64_t token);
/* Releases the copies whose deadline passed (RST first). */
void held_copies_expire(int64_t now);
/* When collected trace lines are due (INT64_MAX: none), and writing them. */
int64_t held_copies_trace_due(void);
void held_copies_flush_trace(void);
/* The epoll_pwait() timeout for the next deadline or trace flush. */
int held_copies_timeout_ms(int64_t now, int64_t flush_due);
/* dup2() onto a held copy's number: the copy moves up. */
void held_copies_move(int fd);
/* Released copies whose lines are not written yet (any thread). */
long held_copies_untold(void);
/* The fork child (single-threaded). */
void held_copies_forget_after_fork(void);

#endif
