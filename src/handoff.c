/* handoff.c: the hand-off protocol of handoff.h (its header states the
 * shared state and the invariants I1-I5 this file keeps). */
#include "handoff.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "interleaving.h"
#include "monotonic.h"
#include "nursery.h"
#include "raw_syscall.h"
#include "tcp_probe.h"
#include "waiting.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum channel_state {
	CHANNEL_NONE,     /* no descriptors; the reaper sleeps on the futex */
	CHANNEL_CREATING, /* a closer is making the descriptors */
	CHANNEL_READY,    /* epoll_fd and wake_fd are open */
	CHANNEL_CLOSING,  /* the reaper is closing them (nothing held) */
};

static struct {
	_Atomic int32_t channel;      /* enum channel_state; also a futex word */
	_Atomic int channel_sleepers; /* the reaper, while it waits on `channel` */
	_Atomic int epoll_fd;
	_Atomic int wake_fd;
	_Atomic int wakers;
	_Atomic int32_t head;
	_Atomic long held;
	_Atomic int64_t wakes_by;
} handoff = { .epoll_fd = -1, .wake_fd = -1, .head = -1 };

/* Raised while this thread creates the channel or is inside wake_reaper()
 * (I5). Initial-exec TLS: a plain access, fine in a signal handler. */
static __thread _Atomic int busy_here __attribute__((tls_model("initial-exec")));

bool handoff_busy_here(void)
{
	return busy_here > 0;
}

/* The copy this thread is delivering (fd + 1; 0: none), I6. */
static __thread _Atomic int delivering __attribute__((tls_model("initial-exec")));

int handoff_delivery_begin(int copy_fd)
{
	int previous = atomic_load_explicit(&delivering, memory_order_relaxed);
	atomic_store_explicit(&delivering, copy_fd + 1, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	return previous;
}

void handoff_delivery_end(int previous)
{
	atomic_signal_fence(memory_order_seq_cst);
	atomic_store_explicit(&delivering, previous, memory_order_relaxed);
}

bool handoff_delivering_here(int fd)
{
	return atomic_load_explicit(&delivering, memory_order_relaxed) == fd + 1;
}

/* ---------------------------------------------------------------- descriptors */

/* A library descriptor, moved up out of the application's way. */
static int own_descriptor(int fd)
{
	fd = raw_move_high(fd);
	if (fd >= 0)
		fd_table_set_library_owned(fd);
	return fd;
}

/* Callers hold a window already (fork_guard.h), or are the fork child. */
static void close_own_descriptor(_Atomic int *fd)
{
	int old = atomic_exchange(fd, -1);
	if (old < 0)
		return;
	fd_table_forget(old);
	raw_close(old);
}

/* Edge-triggered: every write to the eventfd is one event and nothing is
 * ever read from it (its count, far from its 2^64 limit, goes with the
 * channel), so a wake-up costs the closer's write and no read. */
static long watch_wake_fd(int ep, int wake)
{
	struct epoll_event ev = { .events = EPOLLET | EPOLLIN, .data.u64 = HANDOFF_WAKE_TOKEN };
	return raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, wake, &ev);
}

static bool create_channel_descriptors(void)
{
	int ep = own_descriptor((int)raw_syscall(SYS_epoll_create1, EPOLL_CLOEXEC));
	int wake = own_descriptor((int)raw_syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK));
	atomic_store(&handoff.epoll_fd, ep);
	atomic_store(&handoff.wake_fd, wake);
	if (ep >= 0 && wake >= 0 && watch_wake_fd(ep, wake) == 0)
		return true;
	close_own_descriptor(&handoff.epoll_fd);
	close_own_descriptor(&handoff.wake_fd);
	return false;
}

/* ---------------------------------------------------------------- closer side */

/* Makes sure the channel is open; waits only for another thread. */
static bool open_channel(void)
{
	unsigned round = 0;
	for (;;) {
		int32_t state = atomic_load(&handoff.channel);
		if (state == CHANNEL_READY)
			return true;
		int32_t none = CHANNEL_NONE;
		if (state == CHANNEL_NONE) {
			/* Raised before the state changes and lowered after it is
			 * settled: a signal handler interrupting us anywhere in
			 * between must see it (I5). */
			busy_here++;
			if (!atomic_compare_exchange_strong(&handoff.channel, &none,
							    CHANNEL_CREATING)) {
				busy_here--;
				continue;
			}
			interleaving_point();
			int saved = errno;
			/* Not while a fork() is pending: the child must see them. */
			bool ok = fork_guard_try_enter();
			if (ok) {
				ok = create_channel_descriptors();
				fork_guard_leave();
			}
			atomic_store(&handoff.channel, ok ? CHANNEL_READY : CHANNEL_NONE);
			interleaving_point();
			busy_here--;
			/* Pairs with the reaper raising channel_sleepers before it
			 * reads the channel state: no wake-up is ever lost. */
			if (atomic_load(&handoff.channel_sleepers) > 0)
				futex_wake_all(&handoff.channel);
			errno = saved;
			return ok;
		}
		if (busy_here > 0)
			return false; /* we interrupted ourselves: degrade (I5) */
		pause_briefly(&round);
	}
}

/* Wakes the reaper. Raising `wakers` before reading the channel pairs with
 * the reaper reading `wakers` after it marked the channel CLOSING (I2). A
 * closer that finds it CLOSING writes nothing: the reaper either closes the
 * channel (nothing held) or reopens it and looks at the stack itself. */
void handoff_wake_reaper(void)
{
	int saved = errno;
	busy_here++;
	atomic_fetch_add(&handoff.wakers, 1);
	interleaving_point();
	if (atomic_load(&handoff.channel) == CHANNEL_READY) {
		uint64_t one = 1;
		interleaving_point();
		raw_syscall(SYS_write, atomic_load(&handoff.wake_fd), &one, sizeof one);
	}
	atomic_fetch_sub(&handoff.wakers, 1);
	busy_here--;
	errno = saved;
}

bool handoff_reserve(long max_held)
{
	if (atomic_fetch_add(&handoff.held, 1) >= max_held || !open_channel()) {
		handoff_unreserve();
		return false;
	}
	return true;
}

void handoff_unreserve(void)
{
	/* The last one: let the reaper close the channel. */
	if (atomic_fetch_sub(&handoff.held, 1) == 1)
		handoff_wake_reaper();
}

void handoff_push(int copy_fd, bool urgent)
{
	struct fd_entry *e = fd_table_entry(copy_fd);
	int32_t head = atomic_load(&handoff.head);
	do {
		atomic_store_explicit(&e->next_handoff, head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak(&handoff.head, &head, copy_fd));
	interleaving_point();
	/* I3: a busy reaper looks at the stack before it sleeps; a sleeping
	 * one is woken unless it wakes soon enough by itself. */
	handoff_expect_look_by(urgent ? INT64_MIN : monotonic_ns() + HANDOFF_LAZY_WAKE_NS);
}

void handoff_expect_look_by(int64_t by_ns)
{
	int64_t wakes_by = atomic_load(&handoff.wakes_by);
	if (wakes_by != 0 && wakes_by > by_ns)
		handoff_wake_reaper();
}

long handoff_held(void)
{
	return atomic_load(&handoff.held);
}

/* ---------------------------------------------------------------- reaper side */

void handoff_wait_for_channel(void (*before_sleep)(void))
{
	for (;;) {
		atomic_fetch_add(&handoff.channel_sleepers, 1);
		int32_t channel = atomic_load(&handoff.channel);
		interleaving_point();
		if (channel != CHANNEL_READY) {
			before_sleep();
			futex_wait_while(&handoff.channel, channel);
		}
		atomic_fetch_sub(&handoff.channel_sleepers, 1);
		if (channel == CHANNEL_READY)
			return;
	}
}

bool handoff_close_channel_if_idle(void)
{
	if (atomic_load(&handoff.held) != 0)
		return true;
	interleaving_point();
	atomic_store(&handoff.channel, CHANNEL_CLOSING);
	interleaving_point();
	if (atomic_load(&handoff.held) != 0) {
		/* A closer reserved, having seen the channel ready just before
		 * we marked it; it may already have pushed its copy and, seeing
		 * CLOSING, sent no wake-up: the caller looks at the stack. */
		atomic_store(&handoff.channel, CHANNEL_READY);
		return true;
	}
	while (atomic_load(&handoff.wakers) > 0)
		sched_yield();
	fork_guard_enter();
	interleaving_point();
	close_own_descriptor(&handoff.epoll_fd);
	close_own_descriptor(&handoff.wake_fd);
	fork_guard_leave();
	atomic_store(&handoff.channel, CHANNEL_NONE);
	return false;
}

int handoff_epoll_fd(void)
{
	return atomic_load(&handoff.epoll_fd);
}

int handoff_wake_fd(void)
{
	return atomic_load(&handoff.wake_fd);
}

int handoff_begin_wait(int timeout_ms)
{
	int64_t now = monotonic_ns();
	/* Never 0 while waiting: a timeout of 0 is a time, now. */
	atomic_store(&handoff.wakes_by, timeout_ms < 0 ? INT64_MAX
				       : now + (int64_t)timeout_ms * NS_PER_MS);
	if (atomic_load(&handoff.head) >= 0)
		return 0;
	/* N3: a copy placed before the store above is seen here; one placed
	 * after it sees when we wake. */
	int64_t due = nursery_due_at(now);
	if (due == INT64_MAX)
		return timeout_ms;
	int64_t ms = due <= now ? 0 : (due - now + NS_PER_MS - 1) / NS_PER_MS;
	if (timeout_ms >= 0 && ms >= timeout_ms)
		return timeout_ms;
	atomic_store(&handoff.wakes_by, now + (ms > 0 ? ms : 1) * NS_PER_MS);
	return (int)ms;
}

void handoff_end_wait(void)
{
	atomic_store(&handoff.wakes_by, 0);
}

bool handoff_has_copies(void)
{
	return atomic_load(&handoff.head) >= 0;
}

int handoff_take_all(void)
{
	return atomic_exchange(&handoff.head, -1);
}

void handoff_released(void)
{
	atomic_fetch_sub(&handoff.held, 1);
}

bool handoff_is_channel_descriptor(int fd)
{
	return fd == atomic_load(&handoff.epoll_fd) || fd == atomic_load(&handoff.wake_fd);
}

bool handoff_channel_creating(void)
{
	return atomic_load(&handoff.channel) == CHANNEL_CREATING;
}

bool handoff_move_channel_descriptor(int fd)
{
	bool is_wake_fd = fd == atomic_load(&handoff.wake_fd);
	_Atomic int *which = is_wake_fd ? &handoff.wake_fd : &handoff.epoll_fd;
	int moved = fork_guard_dup_own_high(fd);
	if (moved < 0)
		return false; /* no room: the application's dup2 waits for the next try */
	if (is_wake_fd) {
		int ep = atomic_load(&handoff.epoll_fd);
		watch_wake_fd(ep, moved);
		raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, fd, NULL);
	}
	atomic_store(which, moved);
	/* A closer that read the old number is still writing to it (I2). */
	while (is_wake_fd && atomic_load(&handoff.wakers) > 0)
		sched_yield();
	fork_guard_forget_and_close(fd);
	return true;
}

void handoff_forget_after_fork(void)
{
	close_own_descriptor(&handoff.epoll_fd);
	close_own_descriptor(&handoff.wake_fd);
	atomic_store(&handoff.channel, CHANNEL_NONE);
	atomic_store(&handoff.channel_sleepers, 0);
	atomic_store(&handoff.head, -1);
	atomic_store(&handoff.wakers, 0);
	atomic_store(&handoff.held, 0);
	atomic_store(&handoff.wakes_by, 0);
	busy_here = 0;
	atomic_store(&delivering, 0);
}
