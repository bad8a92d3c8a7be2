/* nursery.c: the slots of held copies that closing threads may release
 * themselves (nursery.h states the shared state and the invariants N1-N4
 * this file keeps). */
#include "nursery.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "handoff.h"
#include "held_copies.h"
#include "interleaving.h"
#include "monotonic.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>

static _Atomic uint64_t slots[NURSERY_SLOTS];
/* Closers between taking a copy and releasing or handing it off (N4), and
 * whether this thread is one (initial-exec TLS: a plain access). */
static _Atomic int takers;
static __thread int taking __attribute__((tls_model("initial-exec")));
/* Where this thread's next placement starts looking: spreads threads. */
static __thread unsigned next_slot __attribute__((tls_model("initial-exec")));
/* Hints that spare a close() its scans: every slot was taken at the last
 * placement and none since, and no copy is settled before `next_settled`
 * (a late hint only leaves a copy to a later close, or to the sweep). */
static _Atomic bool full;
static _Atomic int64_t next_settled = INT64_MAX;

/* Microseconds, wrapping every 71 minutes: a copy is never 35 minutes old
 * here (the reaper sweeps it at 2 ms). */
static uint32_t stamp(int64_t now)
{
	return (uint32_t)(now / 1000);
}

static uint64_t word_of(int fd, int64_t now)
{
	return (uint64_t)stamp(now) << 32 | (uint32_t)(fd + 1);
}

static int fd_of(uint64_t word)
{
	return (int)(uint32_t)word - 1;
}

/* A reader's `now` may be older than a copy placed after it was read:
 * that copy is 0 old, not 71 minutes. */
static int64_t age_ns(uint64_t word, int64_t now)
{
	int32_t us = (int32_t)(stamp(now) - (uint32_t)(word >> 32));
	return us > 0 ? (int64_t)us * 1000 : 0;
}

/* N2: true when this thread now owns the copy the slot held. */
static bool take(_Atomic uint64_t *slot, uint64_t word)
{
	if (!atomic_compare_exchange_strong(slot, &word, 0))
		return false;
	if (atomic_load_explicit(&full, memory_order_relaxed))
		atomic_store_explicit(&full, false, memory_order_relaxed);
	return true;
}

/* ---------------------------------------------------------------- closer side */

bool nursery_place(int copy_fd, int64_t now)
{
	if (atomic_load_explicit(&full, memory_order_relaxed))
		return false;
	uint64_t word = word_of(copy_fd, now);
	unsigned start = next_slot++;
	for (unsigned i = 0; i < NURSERY_SLOTS; i++) {
		_Atomic uint64_t *slot = &slots[(start + i) % NURSERY_SLOTS];
		uint64_t empty = 0;
		if (atomic_load_explicit(slot, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(slot, &empty, word)) {
			int64_t settled = now + NURSERY_SETTLE_NS;
			int64_t hint = atomic_load(&next_settled);
			while (settled < hint &&
			       !atomic_compare_exchange_weak(&next_settled, &hint, settled))
				;
			interleaving_point();
			/* N3: the reaper sleeps no longer than the sweep time. */
			handoff_expect_look_by(now + NURSERY_SWEEP_NS);
			return true;
		}
	}
	atomic_store_explicit(&full, true, memory_order_relaxed);
	return false;
}

/* What the reaper's look and release do for a copy whose teardown is over
 * (held_copies.c), done here: its trace lines, its count, and the close of
 * the last reference. False when it is still draining, or while a fork()
 * is pending: no fork() between unmarking the copy and closing it
 * (fork_guard.h), and nothing traced before it is certain. */
static bool release_here(int fd)
{
	enum held_outcome outcome;
	int state;
	if (!held_copy_teardown_over(fd, &outcome, &state) || !fork_guard_try_enter())
		return false;
	struct fd_entry *e = fd_table_entry(fd);
	atomic_fetch_add(&e->held.generation, 1);
	/* The close line the reaper would write at adoption and the release
	 * line, in one write() from this thread. */
	if (trace_enabled())
		trace_close_adopted_and_released(fd, (enum close_row)e->held.row,
						 held_outcome_name(outcome), state,
						 monotonic_ns() - e->held.since_ns);
	stats_count_release(outcome);
	fd_table_forget(fd);
	interleaving_point();
	raw_close(fd);
	fork_guard_leave();
	handoff_released();
	return true;
}

void nursery_release_settled(int64_t now)
{
	if (now < atomic_load_explicit(&next_settled, memory_order_relaxed))
		return;
	int saved = errno;
	int taken = 0;
	int64_t settles_next = INT64_MAX;
	unsigned start = next_slot;
	unsigned i;
	for (i = 0; i < NURSERY_SLOTS && taken < 2; i++) {
		_Atomic uint64_t *slot = &slots[(start + i) % NURSERY_SLOTS];
		uint64_t word = atomic_load(slot);
		if (word == 0)
			continue;
		int64_t settles = now - age_ns(word, now) + NURSERY_SETTLE_NS;
		if (settles > now) {
			if (settles < settles_next)
				settles_next = settles;
			continue;
		}
		/* Counted before the take: a reaper that finds the slot empty
		 * then waits for us (N4). */
		taking++;
		atomic_fetch_add(&takers, 1);
		if (take(slot, word)) {
			taken++;
			interleaving_point();
			if (!release_here(fd_of(word)))
				handoff_push(fd_of(word), false);
		}
		atomic_fetch_sub(&takers, 1);
		taking--;
	}
	/* Every slot seen: the hint is what is left (a copy placed meanwhile
	 * lowers it again, or waits for a later look). */
	if (i == NURSERY_SLOTS)
		atomic_store(&next_settled, settles_next);
	errno = saved;
}

bool nursery_busy_here(void)
{
	return taking > 0;
}

/* ---------------------------------------------------------------- reaper side */

void nursery_sweep(int64_t now, int64_t min_age_ns, void (*adopt)(int fd))
{
	for (unsigned i = 0; i < NURSERY_SLOTS; i++) {
		uint64_t word = atomic_load(&slots[i]);
		if (word != 0 && age_ns(word, now) >= min_age_ns && take(&slots[i], word))
			adopt(fd_of(word));
	}
}

void nursery_wait_for_takers(void)
{
	while (atomic_load(&takers) > 0)
		sched_yield();
}

int64_t nursery_due_at(int64_t now)
{
	int64_t oldest = -1;
	for (unsigned i = 0; i < NURSERY_SLOTS; i++) {
		uint64_t word = atomic_load(&slots[i]);
		int64_t age = word != 0 ? age_ns(word, now) : -1;
		if (age > oldest)
			oldest = age;
	}
	return oldest < 0 ? INT64_MAX : now + NURSERY_SWEEP_NS - oldest;
}

void nursery_forget_after_fork(void)
{
	for (unsigned i = 0; i < NURSERY_SLOTS; i++)
		atomic_store(&slots[i], 0);
	atomic_store(&takers, 0);
	atomic_store(&full, false);
	atomic_store(&next_settled, INT64_MAX);
	taking = 0;
}
