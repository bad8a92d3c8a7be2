/* waiting.h: how the library's threads wait for one another: futexes, and
 * a brief yield-then-sleep for states another thread leaves within
 * microseconds. System calls only: async-signal-safe. */
#ifndef WSPCLOSE_WAITING_H
#define WSPCLOSE_WAITING_H

#include "raw_syscall.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == value, at most `timeout` (NULL: no limit). */
static inline void futex_wait_while_for(_Atomic int32_t *word, int32_t value,
					const struct timespec *timeout)
{
	raw_syscall(SYS_futex, (int32_t *)word, FUTEX_WAIT_PRIVATE, value, timeout, NULL, 0);
}

static inline void futex_wait_while(_Atomic int32_t *word, int32_t value)
{
	futex_wait_while_for(word, value, NULL);
}

static inline void futex_wake_all(_Atomic int32_t *word)
{
	raw_syscall(SYS_futex, (int32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Yield 16 times, then sleep 50 µs a round. */
static inline void pause_briefly(unsigned *round)
{
	if ((*round)++ < 16) {
		raw_syscall(SYS_sched_yield);
		return;
	}
	struct timespec ts = { 0, 50000 };
	raw_syscall(SYS_nanosleep, &ts, NULL);
}

#endif
