/* fork_guard.c: a counter of open "unmarked descriptor" windows and a count
 * of pending fork() calls (two threads may fork at once: a flag would be
 * lowered by the first to finish). A window opens by raising its counter and
 * then reading the other; prepare raises the pending count and then waits
 * for the windows: with sequentially consistent atomics one side always
 * sees the other. */
#include "fork_guard.h"
#include "fd_table.h"
#include "interleaving.h"
#include "tcp_probe.h"
#include "monotonic.h"
#include "raw_syscall.h"

#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PREPARE_WAIT_MS 50

static _Atomic int open_windows;
static _Atomic int fork_pending;

static void pause_a_little(unsigned round)
{
	if (round < 64) {
		raw_syscall(SYS_sched_yield);
		return;
	}
	struct timespec ts = { 0, 100000 }; /* 0.1 ms */
	raw_syscall(SYS_nanosleep, &ts, NULL);
}

bool fork_guard_try_enter(void)
{
	atomic_fetch_add(&open_windows, 1);
	if (atomic_load(&fork_pending) == 0)
		return true;
	atomic_fetch_sub(&open_windows, 1);
	return false;
}

void fork_guard_enter(void)
{
	for (unsigned round = 0; !fork_guard_try_enter(); round++)
		pause_a_little(round);
}

void fork_guard_leave(void)
{
	atomic_fetch_sub(&open_windows, 1);
}

void fork_guard_prepare(void)
{
	atomic_fetch_add(&fork_pending, 1);
	int64_t until = monotonic_ns() + PREPARE_WAIT_MS * NS_PER_MS;
	for (unsigned round = 0; atomic_load(&open_windows) > 0 && monotonic_ns() < until;
	     round++)
		pause_a_little(round);
}

void fork_guard_done(void)
{
	atomic_fetch_sub(&fork_pending, 1);
}

void fork_guard_forget_and_close(int fd)
{
	fork_guard_enter();
	fd_table_forget(fd);
	interleaving_point();
	raw_syscall(SYS_close, fd);
	fork_guard_leave();
}

int fork_guard_dup_own_high(int fd)
{
	fork_guard_enter();
	int moved = raw_dup_high(fd);
	if (moved >= 0)
		fd_table_set_library_owned(moved);
	fork_guard_leave();
	return moved;
}

void fork_guard_close_windows(void)
{
	fork_guard_prepare();
}

void fork_guard_reopen_windows(void)
{
	fork_guard_done();
}

void fork_guard_reset_in_child(void)
{
	atomic_store(&open_windows, 0);
	atomic_store(&fork_pending, 0);
}
