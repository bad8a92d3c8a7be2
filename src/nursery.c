/* nursery.c: the slots of held copies that closing threads may release
 * themselves (nursery.h states the shared state and the invariants N1-N4
 * this file keeps). */
#include "nursery.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "handoff.h"
#include "interleaving.h"
#include "monotonic.h"
#include "stats.h"
#include "tcp_probe.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>

static _Atomic uint64_t slots[NURSERY_SLOTS];
/* Closers between taking a copy and releasing or handing it off (N4), and
 * whether this thread is one (initial-exec TLS: a plain access). */
static _Atomic int takers;
static __thread int taking __attribute__((tls_model("initial-exec")));
/* Where the next placement starts looking: spreads closers over the slots. */
static _Atomic unsigned next_slot;

/* Microseconds, wrapping every 71 minutes: a copy is never that old here. */
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

static int64_t age_ns(uint64_t word, int64_t now)
{
	return (int64_t)(uint32_t)(stamp(now) - (uint32_t)(word >> 32)) * 1000;
}

/* N2: true when this thread now owns the copy the slot held. */
static bool take(_Atomic uint64_t *slot, uint64_t word)
{
	return atomic_compare_exchange_strong(slot, &word, 0);
}

/* ---------------------------------------------------------------- closer side */

bool nursery_place(int copy_fd, int64_t now)
{
	uint64_t word = word_of(copy_fd, now);
	unsigned start = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
	for (unsigned i = 0; i < NURSERY_SLOTS; i++) {
		_Atomic uint64_t *slot = &slots[(start + i) % NURSERY_SLOTS];
		uint64_t empty = 0;
		if (atomic_load_explicit(slot, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(slot, &empty, word)) {
			interleaving_point();
			/* N3: the reaper sleeps no longer than the sweep time. */
			handoff_expect_look_by(now + NURSERY_SWEEP_NS);
			return true;
		}
	}
	return false;
}

/* What the reaper's release does for a copy whose FIN is acknowledged,
 * unobserved (held_copies.c), done here: the last reference goes. False
 * when something is still owed (SIOCOUTQ counts our FIN too: 0 is "all
 * acknowledged"), or while a fork() is pending: no fork() between
 * unmarking the copy and closing it (fork_guard.h). */
static bool release_here(int fd)
{
	if (probe_send_queue(fd) != 0 || !fork_guard_try_enter())
		return false;
	struct fd_entry *e = fd_table_entry(fd);
	atomic_fetch_add(&e->held.generation, 1);
	stats_count_release(OUTCOME_FIN_ACKED);
	fd_table_forget(fd);
	interleaving_point();
	raw_close(fd);
	fork_guard_leave();
	handoff_released();
	return true;
}

void nursery_release_settled(int64_t now)
{
	int saved = errno;
	int taken = 0;
	unsigned start = atomic_load_explicit(&next_slot, memory_order_relaxed);
	for (unsigned i = 0; i < NURSERY_SLOTS && taken < 2; i++) {
		_Atomic uint64_t *slot = &slots[(start + i) % NURSERY_SLOTS];
		uint64_t word = atomic_load(slot);
		if (word == 0 || age_ns(word, now) < NURSERY_SETTLE_NS)
			continue;
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
	taking = 0;
}
