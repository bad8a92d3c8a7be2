/* look_gate.h: whether to try a look at a teardown that pays off only in
 * some conditions (a peer over loopback, a peer that closes at once). It is
 * tried while it pays; after LOOK_MISSES_TO_PAUSE misses in a row only every
 * LOOK_RETRY_EVERY-th one is tried, until one succeeds again. A missed look
 * costs one TCP_INFO. Relaxed atomics: a gate may be shared by closing
 * threads (close_actions.c) or be the reaper's alone (held_copies.c); it is
 * a statistic, never a correctness decision. Async-signal-safe. */
#ifndef WSPCLOSE_LOOK_GATE_H
#define WSPCLOSE_LOOK_GATE_H

#include <stdatomic.h>
#include <stdbool.h>

#define LOOK_MISSES_TO_PAUSE 8
#define LOOK_RETRY_EVERY 16

struct look_gate {
	_Atomic unsigned misses;
	_Atomic unsigned skipped;
};

static inline bool look_gate_open(struct look_gate *g)
{
	return atomic_load_explicit(&g->misses, memory_order_relaxed) < LOOK_MISSES_TO_PAUSE ||
	       atomic_fetch_add_explicit(&g->skipped, 1, memory_order_relaxed) %
			       LOOK_RETRY_EVERY == 0;
}

static inline void look_gate_note(struct look_gate *g, bool hit)
{
	unsigned misses = atomic_load_explicit(&g->misses, memory_order_relaxed);
	if (hit || misses < LOOK_MISSES_TO_PAUSE)
		atomic_store_explicit(&g->misses, hit ? 0 : misses + 1, memory_order_relaxed);
}

#endif
