/* reaper.c: the reaper thread and its rounds. Held copies wait in the
 * settle queue for about a millisecond, or in an edge-triggered epoll set
 * (EPOLLIN|EPOLLRDHUP and no EPOLLOUT: it fires on TCP state changes, not
 * on data ACKs), and in a deadline heap; they are released when our FIN is
 * acknowledged, the peer resets, or the deadline passes (RST). Copies
 * arrive through the hand-off protocol (handoff.h), or through the sweep of
 * the nursery when no closer released them first (nursery.h). The hand-off
 * protocol also owns the channel: while nothing is held the library holds
 * no descriptor at all and the thread sleeps on a futex, with no wake-ups.
 * What is done to each copy is held_copies.c's. */
#include "reaper.h"
#include "close_decision.h"
#include "config.h"
#include "deadline_heap.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "handoff.h"
#include "held_copies.h"
#include "interleaving.h"
#include "monotonic.h"
#include "nursery.h"
#include "raw_syscall.h"
#include "stats.h"
#include "tcp_probe.h"
#include "waiting.h"
#include "trace.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* STARTING until the thread itself reports in from reaper_main(): a copy is
 * handed off only to a thread that exists (see reaper_start_once()). */
enum reaper_status { REAPER_STOPPED, REAPER_STARTING, REAPER_RUNNING, REAPER_FAILED };

#define EVENTS_PER_WAIT 64

/* How long the first TCP socket() waits for the new thread to report in. */
#define START_WAIT_MS 1000

static struct {
	_Atomic int32_t status;         /* enum reaper_status; also a futex word */
	_Atomic int32_t vacate_fd;      /* a number the application wants, or -1 */
	bool skipped_wait;              /* the last round did not wait (the reaper's) */
} reaper = { .vacate_fd = -1 };

static void serve_vacate_request(void)
{
	int fd = atomic_load(&reaper.vacate_fd);
	if (fd < 0)
		return;
	/* A copy still on the stack or in the nursery is adopted first, one a
	 * closer took from the nursery once it is handed off (N4), and one
	 * its closer has not handed off yet once it has (I6). */
	struct fd_entry *e = fd_table_entry(fd);
	for (;;) {
		held_copies_adopt_from_nursery(0);
		nursery_wait_for_takers();
		held_copies_adopt_handed_off();
		uint32_t state = e != NULL ? atomic_load(&e->state) : 0;
		if (!(state & FD_HELD) || atomic_load(&e->held.adopted))
			break;
		sched_yield();
	}
	if (handoff_is_channel_descriptor(fd))
		handoff_move_channel_descriptor(fd);
	else if (e != NULL && (atomic_load(&e->state) & FD_HELD))
		held_copies_move(fd);
	atomic_store(&reaper.vacate_fd, -1);
	futex_wake_all(&reaper.vacate_fd);
}

/* ---------------------------------------------------------------- the thread */

/* How long the channel stays open after the last held copy is released
 * (§6 allows up to one second): connection churn then reuses it instead of
 * making and closing an epoll set and an eventfd per connection, and an
 * idle process closes it with one timed wake-up. */
#define CHANNEL_LINGER_NS (900 * NS_PER_MS)

/* One round of waiting and serving; `wake_by` (CLOCK_MONOTONIC ns, or
 * INT64_MAX) bounds the wait. */
static void serve_events(int64_t wake_by)
{
	/* A request made while the channel was being created sent no wake-up. */
	serve_vacate_request();
	int64_t now = monotonic_ns();
	int64_t flush_due = held_copies_trace_due();
	if (flush_due <= now) {
		held_copies_flush_trace();
		flush_due = INT64_MAX;
	}
	struct epoll_event events[EVENTS_PER_WAIT];
	int n = 0;
	/* Copies already on the stack: adopted without asking epoll first (a
	 * wait that would return at once), every other round at most, so that
	 * events wait one round at most. */
	reaper.skipped_wait = !reaper.skipped_wait && handoff_has_copies();
	if (!reaper.skipped_wait) {
		int timeout = held_copies_timeout_ms(now, flush_due < wake_by ? flush_due : wake_by);
		timeout = handoff_begin_wait(timeout);
		n = (int)raw_syscall(SYS_epoll_pwait, handoff_epoll_fd(), events, EVENTS_PER_WAIT,
				     timeout, NULL, 0);
		handoff_end_wait();
	}
	for (int i = 0; i < n; i++) {
		if (events[i].data.u64 != HANDOFF_WAKE_TOKEN)
			held_copies_on_event(events[i].data.u64);
	}
	/* Not idle any more: a copy pushed from here on is found at the next
	 * round's look at the stack (handoff.h, I3). */
	held_copies_adopt_handed_off();
	held_copies_adopt_from_nursery(NURSERY_SWEEP_NS);
	held_copies_end_round();
	serve_vacate_request();
	held_copies_expire(monotonic_ns());
}

static void *reaper_main(void *unused)
{
	(void)unused;
	trace_collect_this_thread();
	/* Past the thread's start-up (a sanitizer's included, which may take
	 * locks): from now on closers may hand copies to us. */
	int32_t starting = REAPER_STARTING;
	atomic_compare_exchange_strong(&reaper.status, &starting, REAPER_RUNNING);
	futex_wake_all(&reaper.status);
	for (;;) {
		/* Never sleep on lines still to write. */
		handoff_wait_for_channel(held_copies_flush_trace);
		/* Serve while something is held, then linger; a reservation made
		 * meanwhile starts over. Reopened after being marked closing: a
		 * copy may be on the stack without a wake-up, so serve again. */
		int64_t idle_since = 0;
		for (;;) {
			if (handoff_held() > 0) {
				idle_since = 0;
				serve_events(INT64_MAX);
				continue;
			}
			int64_t now = monotonic_ns();
			if (idle_since == 0)
				idle_since = now;
			if (now - idle_since < CHANNEL_LINGER_NS) {
				serve_events(idle_since + CHANNEL_LINGER_NS);
				continue;
			}
			if (!handoff_close_channel_if_idle())
				break;
			idle_since = 0;
		}
		/* A dup2() waiting for one of the channel's numbers: free now. */
		if (atomic_exchange(&reaper.vacate_fd, -1) != -1)
			futex_wake_all(&reaper.vacate_fd);
	}
	return NULL;
}

/* Grows the kernel's descriptor table up to where held copies go, once, so
 * that no close() pays for it: growing a table shared by several threads
 * waits for an RCU grace period (~10 ms here); done before the reaper
 * thread exists, it usually costs nothing. The table never shrinks. */
static void grow_descriptor_table(void)
{
	int probe = (int)raw_syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
	if (probe >= 0)
		raw_close(raw_move_high(probe));
}

static bool start_thread(void)
{
	grow_descriptor_table();
	if (!held_copies_init((size_t)wspclose_settings.max_held))
		return false;

	/* The thread inherits a full signal mask: no handler ever runs on it. */
	sigset_t all, previous;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &previous);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	pthread_t thread;
	int rc = pthread_create(&thread, &attr, reaper_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	return rc == 0;
}

/* Waits (at most START_WAIT_MS) until the new thread has reported in. */
static void await_thread_start(void)
{
	int64_t until = monotonic_ns() + START_WAIT_MS * NS_PER_MS;
	for (;;) {
		if (atomic_load(&reaper.status) != REAPER_STARTING)
			return;
		int64_t left = until - monotonic_ns();
		if (left <= 0)
			return;
		struct timespec ts = { left / NS_PER_SEC, left % NS_PER_SEC };
		futex_wait_while_for(&reaper.status, REAPER_STARTING, &ts);
	}
}

void reaper_start_once(void)
{
	/* No table (an inert second copy, or no memory for it): nothing can be
	 * held, so no thread either. */
	if (fd_table_capacity() == 0)
		return;
	int32_t expected = REAPER_STOPPED;
	if (atomic_load(&reaper.status) != REAPER_STOPPED ||
	    !atomic_compare_exchange_strong(&reaper.status, &expected, REAPER_STARTING))
		return;
	int saved = errno;
	/* Degrade for good on failure: every close is then the kernel's own. */
	if (!start_thread()) {
		atomic_store(&reaper.status, REAPER_FAILED);
		errno = saved;
		return;
	}
	/* The thread counts as running only once it runs: until then every
	 * close degrades instead of handing a copy to a thread that may never
	 * get there. A thread's start-up can block for good in a fork() child,
	 * on a lock (a sanitizer allocator's, say) that another thread of the
	 * parent held at the fork. Waiting here also keeps a fork() right after
	 * this socket() from catching our own thread inside such a lock. */
	await_thread_start();
	errno = saved;
}

/* ---------------------------------------------------------------- close path */

bool reaper_is_running(void)
{
	return atomic_load_explicit(&reaper.status, memory_order_acquire) == REAPER_RUNNING;
}

bool reaper_reserve(void)
{
	return handoff_reserve(wspclose_settings.max_held);
}

void reaper_unreserve(void)
{
	handoff_unreserve();
}

long reaper_held_count(void)
{
	return handoff_held();
}

bool reaper_settling(void)
{
	return handoff_held() > 0 || held_copies_untold() > 0;
}

void reaper_hand_off(int copy_fd, bool urgent)
{
	handoff_push(copy_fd, urgent);
}

bool reaper_vacate(int fd)
{
	/* A signal handler that interrupted this thread inside the protocol
	 * cannot wait for the reaper (handoff.h, I5). */
	if (handoff_busy_here() || nursery_busy_here() || handoff_delivering_here(fd))
		return false;
	int saved = errno;
	for (;;) {
		struct fd_entry *e = fd_table_entry(fd);
		if (e == NULL || !(atomic_load(&e->state) & FD_LIBRARY_OWNED))
			break; /* free for the application now */
		bool reapers = handoff_is_channel_descriptor(fd) ||
			       (atomic_load(&e->state) & FD_HELD);
		int32_t idle = -1;
		unsigned round = 0;
		if (!reapers || !reaper_is_running()) {
			if (trace_move_descriptor(fd) || stats_move_descriptor(fd))
				continue;
			if (handoff_channel_creating()) {
				pause_briefly(&round); /* it becomes the epoll set */
				continue;
			}
			/* A linger wait's epoll set: the application takes the
			 * number over and the wait polls instead. */
			fd_table_forget(fd);
			break;
		} else if (atomic_compare_exchange_strong(&reaper.vacate_fd, &idle, fd)) {
			interleaving_point();
			handoff_wake_reaper();
			while (atomic_load(&reaper.vacate_fd) == fd)
				futex_wait_while(&reaper.vacate_fd, fd);
		} else {
			futex_wait_while(&reaper.vacate_fd, idle); /* one request at a time */
		}
	}
	errno = saved;
	return true;
}

/* ---------------------------------------------------------------- fork */

/* Held copies, and the copies and epoll sets of linger waits whose threads
 * do not exist in the child. */
static void close_inherited_copy(int fd, struct fd_entry *e)
{
	if (atomic_load(&e->state) & (FD_HELD | FD_TRANSIENT)) {
		fd_table_forget(fd);
		raw_close(fd);
	}
}

void reaper_forget_after_fork(void)
{
	/* Single-threaded here: the parent's reaper and closers are gone. */
	fd_table_for_each(close_inherited_copy);
	nursery_forget_after_fork();
	handoff_forget_after_fork();
	atomic_store(&reaper.vacate_fd, -1);
	reaper.skipped_wait = false;
	held_copies_forget_after_fork();
	atomic_store(&reaper.status, REAPER_STOPPED);
}
