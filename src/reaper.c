/* reaper.c: the reaper thread. Held copies wait in an edge-triggered epoll
 * set (EPOLLIN|EPOLLRDHUP and no EPOLLOUT: it fires on TCP state changes,
 * not on data ACKs) and in a deadline heap, and are released when our FIN
 * is acknowledged, the peer resets, or the deadline passes (RST).
 *
 * Closers push held copies on a lock-free stack; the one that finds the
 * stack empty wakes the reaper with its eventfd (the reaper empties the
 * stack only after reading the eventfd, so no hand-off is ever left
 * without a wake-up on its way); the reaper adopts them:
 * RST for unread data, else shutdown(SHUT_RDWR) (FIN after the queued
 * data; blocked threads wake) and registration. The channel (the epoll set
 * and that eventfd) exists only while something is held: the closer that
 * needs it first creates it, before giving up the application's number,
 * and the reaper closes it when the last held copy is gone. While nothing is held the library holds no
 * descriptor at all and the thread sleeps on a futex: no wake-ups. */
#include "reaper.h"
#include "close_decision.h"
#include "config.h"
#include "deadline_heap.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "interleaving.h"
#include "monotonic.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum reaper_status { REAPER_STOPPED, REAPER_STARTING, REAPER_RUNNING, REAPER_FAILED };

enum channel_state {
	CHANNEL_NONE,     /* no descriptors; the thread sleeps on the futex */
	CHANNEL_CREATING, /* a closer is making the descriptors */
	CHANNEL_READY,    /* epoll_fd and wake_fd are open */
	CHANNEL_CLOSING,  /* the reaper is closing them (nothing held) */
};

#define WAKE_TOKEN UINT64_MAX
#define EVENTS_PER_WAIT 64
/* How long collected trace lines may wait for more before they are written:
 * under load a dozen lines then share one write(); a quiet program sees its
 * lines 1 ms late at most. */
#define TRACE_BATCH_NS NS_PER_MS

static struct {
	_Atomic int status;
	_Atomic int32_t channel;        /* enum channel_state; also a futex word */
	_Atomic int channel_sleepers;   /* the reaper, while it waits on `channel` */
	_Atomic int epoll_fd;
	_Atomic int wake_fd;
	_Atomic int wakers;             /* closers between checking the channel and writing */
	_Atomic int32_t vacate_fd;      /* a number the application wants, or -1 */
	_Atomic int32_t handoff_head;   /* fd of the newest hand-off, or -1 */
	_Atomic long held;              /* held copies, reserved or live */
	struct deadline_heap deadlines; /* the reaper thread's alone */
	/* Released while tracing, their lines collected but not yet written:
	 * an exit waiting for the teardowns (the exit report) waits for them. */
	_Atomic long untold_releases;
} reaper = { .epoll_fd = -1, .wake_fd = -1, .vacate_fd = -1, .handoff_head = -1 };

/* Raised while this thread creates the channel or is inside wake_reaper()
 * (where the reaper, closing the channel, waits for it): a signal handler
 * interrupting it must not wait for the channel itself. Initial-exec TLS:
 * a plain access, fine in a signal handler. */
static __thread _Atomic int channel_busy_here __attribute__((tls_model("initial-exec")));

/* ---------------------------------------------------------------- waiting */

static void futex_wait_while(_Atomic int32_t *word, int32_t value)
{
	syscall(SYS_futex, (int32_t *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic int32_t *word)
{
	syscall(SYS_futex, (int32_t *)word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* For states another thread leaves within microseconds: yield first, and
 * sleep only if the other thread does not get there. */
static void pause_briefly(unsigned *round)
{
	if ((*round)++ < 16) {
		syscall(SYS_sched_yield);
		return;
	}
	struct timespec ts = { 0, 50000 }; /* 50 µs */
	syscall(SYS_nanosleep, &ts, NULL);
}

/* ---------------------------------------------------------------- the channel */

/* A library descriptor, moved up out of the application's way. */
static int own_descriptor(int fd)
{
	fd = raw_move_high(fd);
	if (fd >= 0)
		fd_table_set_library_owned(fd);
	return fd;
}

static void close_own_descriptor(_Atomic int *fd)
{
	int old = atomic_exchange(fd, -1);
	if (old < 0)
		return;
	fd_table_forget(old);
	raw_close(old);
}

static bool create_channel_descriptors(void)
{
	int ep = own_descriptor((int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC));
	int wake = own_descriptor((int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK));
	atomic_store(&reaper.epoll_fd, ep);
	atomic_store(&reaper.wake_fd, wake);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TOKEN };
	if (ep >= 0 && wake >= 0 &&
	    syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, wake, &ev) == 0)
		return true;
	close_own_descriptor(&reaper.epoll_fd);
	close_own_descriptor(&reaper.wake_fd);
	return false;
}

/* Closer side: makes sure the channel is open. Async-signal-safe: system
 * calls and atomics; it waits only for another thread. */
static bool open_channel(void)
{
	unsigned round = 0;
	for (;;) {
		int32_t state = atomic_load(&reaper.channel);
		if (state == CHANNEL_READY)
			return true;
		int32_t none = CHANNEL_NONE;
		if (state == CHANNEL_NONE) {
			/* Raised before the state changes and lowered after it is
			 * settled: a signal handler interrupting us anywhere in
			 * between must see it. */
			channel_busy_here++;
			if (!atomic_compare_exchange_strong(&reaper.channel, &none,
							    CHANNEL_CREATING)) {
				channel_busy_here--;
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
			atomic_store(&reaper.channel, ok ? CHANNEL_READY : CHANNEL_NONE);
			interleaving_point();
			channel_busy_here--;
			/* Pairs with the reaper raising channel_sleepers before it
			 * reads the channel state: no wake-up is ever lost. */
			if (atomic_load(&reaper.channel_sleepers) > 0)
				futex_wake_all(&reaper.channel);
			errno = saved;
			return ok;
		}
		if (channel_busy_here > 0)
			return false; /* we interrupted ourselves: degrade */
		pause_briefly(&round);
	}
}

/* Wakes the reaper. The channel check after `wakers` is raised pairs with
 * the reaper's check of `wakers` after it marked the channel CLOSING: a
 * closer never writes to a number that is no longer ours. A closer that
 * finds it CLOSING writes nothing: the reaper either closes the channel
 * (nothing is held, nothing to wake it for) or reopens it and looks at the
 * hand-off stack itself. */
static void wake_reaper(void)
{
	int saved = errno;
	channel_busy_here++;
	atomic_fetch_add(&reaper.wakers, 1);
	interleaving_point();
	if (atomic_load(&reaper.channel) == CHANNEL_READY) {
		uint64_t one = 1;
		interleaving_point();
		syscall(SYS_write, atomic_load(&reaper.wake_fd), &one, sizeof one);
	}
	atomic_fetch_sub(&reaper.wakers, 1);
	channel_busy_here--;
	errno = saved;
}

static void adopt_handoffs(void);

/* Reaper side: nothing held any more, so no descriptor either. */
static void close_channel_if_idle(void)
{
	if (atomic_load(&reaper.held) != 0)
		return;
	interleaving_point();
	atomic_store(&reaper.channel, CHANNEL_CLOSING);
	interleaving_point();
	if (atomic_load(&reaper.held) != 0) {
		/* A closer reserved, having seen the channel ready just before
		 * we marked it; it may already have pushed its copy and, seeing
		 * CLOSING, sent no wake-up: look at the stack ourselves. */
		atomic_store(&reaper.channel, CHANNEL_READY);
		adopt_handoffs();
		return;
	}
	while (atomic_load(&reaper.wakers) > 0)
		sched_yield();
	fork_guard_enter();
	interleaving_point();
	close_own_descriptor(&reaper.epoll_fd);
	close_own_descriptor(&reaper.wake_fd);
	fork_guard_leave();
	/* A dup2() waiting for one of them: its number is free now. */
	if (atomic_exchange(&reaper.vacate_fd, -1) != -1)
		futex_wake_all(&reaper.vacate_fd);
	atomic_store(&reaper.channel, CHANNEL_NONE);
}

/* ---------------------------------------------------------------- release */

static void note_heap_index(int fd, uint32_t index, void *context)
{
	(void)context;
	fd_table_entry(fd)->held.heap_index = index;
}

/* Writes the trace lines collected so far. */
static void flush_trace(void)
{
	trace_flush();
	atomic_store(&reaper.untold_releases, 0);
}

/* Before the reaper traces: its lines leave through flush_trace() alone
 * (never as a full collection written behind its back), so that
 * untold_releases stays accurate. */
static void make_room_for_trace_line(void)
{
	if (!trace_room_for_a_line())
		flush_trace();
}

/* `state`: the TCP state that allowed the release (for the trace). */
static void release_in_state(int fd, enum held_outcome outcome, int state)
{
	struct fd_entry *e = fd_table_entry(fd);
	bool reset = outcome == OUTCOME_GRACE_TIMEOUT || outcome == OUTCOME_LINGER_TIMEOUT ||
		     outcome == OUTCOME_UNREAD_DATA;
	if (e->held.adopted)
		deadline_heap_remove(&reaper.deadlines, e->held.heap_index);
	e->held.heap_index = DEADLINE_HEAP_NOWHERE;
	e->held.adopted = false;
	atomic_fetch_add(&e->held.generation, 1);
	if (reset)
		raw_abort_connection(fd); /* RST now; threads still blocked on it wake */
	else if (e->held.linger_on)
		set_linger(fd, false, 0); /* never let the real close linger */
	/* Written before the copy goes (so that an exit right after sees it),
	 * and read before its number can be reused by another held copy. */
	make_room_for_trace_line();
	trace_release(fd, atomic_load(&e->socket_id), (enum close_row)e->held.row,
		      held_outcome_name(outcome), state, monotonic_ns() - e->held.since_ns);
	stats_count_release(outcome);
	if (outcome == OUTCOME_LINGER_TIMEOUT)
		stats_note_linger_reset();
	/* The copy is the last reference: closing it also takes it out of the
	 * epoll set (a late event of a still-referenced file is stale by its
	 * generation). No fork() between unmarking and closing it. */
	fork_guard_enter();
	atomic_store_explicit(&e->state, 0, memory_order_release);
	interleaving_point();
	raw_close(fd);
	fork_guard_leave();
	interleaving_point();
	/* Counted before the copy stops counting as held, so that an exit
	 * waiting for both never finds a moment with neither. */
	if (trace_collected_since() != 0)
		atomic_fetch_add(&reaper.untold_releases, 1);
	atomic_fetch_sub(&reaper.held, 1);
}

static void release(int fd, enum held_outcome outcome)
{
	release_in_state(fd, outcome, trace_enabled() ? probe_tcp_state(fd) : -1);
}

/* Releases fd when its teardown is over; otherwise it keeps waiting. */
static void check_teardown(int fd)
{
	struct tcp_snapshot now;
	int rc = probe_tcp_snapshot(fd, &now);
	if (rc >= 0 && tcp_state_is_draining(now.state))
		return;
	enum held_outcome outcome = OUTCOME_FIN_ACKED;
	/* CLOSE is both "both FINs done" and "reset": SO_ERROR tells them apart. */
	int error = rc >= 0 && now.state == TCP_STATE_CLOSE ? probe_socket_error(fd) : 0;
	if (error == ECONNRESET || error == EPIPE) {
		/* Data segments after our shutdown: the kernel answered them with
		 * RST. Otherwise the peer reset on its own. */
		bool data_came = now.data_segs_in != fd_table_entry(fd)->held.data_segs_in;
		outcome = data_came ? OUTCOME_DATA_AFTER_CLOSE : OUTCOME_PEER_RESET;
	}
	release_in_state(fd, outcome, rc >= 0 ? now.state : -1);
}

static uint64_t event_token(int fd, struct fd_entry *e)
{
	return ((uint64_t)atomic_load(&e->held.generation) << 32) | (uint32_t)fd;
}

/* Edge-triggered, and the mask holds no EPOLLOUT: data ACKs (EPOLLOUT
 * wake-ups) are filtered out by the kernel, TCP state changes (key-less
 * wake-ups) are reported. After SHUT_RDWR the socket is readable and hung
 * up, so the registration is ready at once. */
static bool watch(int fd, struct fd_entry *e)
{
	struct epoll_event ev = { .events = EPOLLET | EPOLLIN | EPOLLRDHUP,
				  .data.u64 = event_token(fd, e) };
	return syscall(SYS_epoll_ctl, atomic_load(&reaper.epoll_fd), EPOLL_CTL_ADD, fd, &ev) == 0;
}

/* A new held copy, from the stack. */
static void adopt(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	/* The close() that handed it off, traced now from the copy. */
	if (trace_enabled()) {
		make_room_for_trace_line();
		atomic_store(&e->socket_id, trace_close_adopted(fd));
	}
	/* Unread data at close: RST, as the kernel and RFC 1122 do. */
	if (probe_receive_queue(fd) > 0) {
		release(fd, OUTCOME_UNREAD_DATA);
		return;
	}
	struct tcp_snapshot before;
	if (probe_tcp_snapshot(fd, &before) < 0)
		before = (struct tcp_snapshot){ .state = TCP_STATE_CLOSE };
	/* A listener (the shutdown makes its blocked accept() calls fail and
	 * refuses new connections) or a socket that never connected: nothing
	 * to tear down. */
	if (before.state == TCP_STATE_LISTEN ||
	    (before.state == TCP_STATE_CLOSE && before.segs_out == 0)) {
		raw_shutdown(fd, SHUT_RDWR);
		release(fd, OUTCOME_NOT_CONNECTED);
		return;
	}
	/* A connection already over (both FINs, or a reset): its outcome. */
	e->held.data_segs_in = before.data_segs_in;
	if (before.state == TCP_STATE_CLOSE) {
		check_teardown(fd);
		return;
	}
	/* FIN after the queued data; wakes threads still blocked on it. */
	raw_shutdown(fd, SHUT_RDWR);
	if (!watch(fd, e) || !deadline_heap_push(&reaper.deadlines, fd, e->held.deadline_ns)) {
		release(fd, OUTCOME_NO_ROOM); /* cannot watch it: the kernel finishes it */
		return;
	}
	e->held.adopted = true;
	/* The registration is ready at once after the shutdown: its first
	 * event checks the teardown. */
}

static void adopt_handoffs(void)
{
	int32_t fd = atomic_exchange(&reaper.handoff_head, -1);
	while (fd >= 0) {
		int32_t next = atomic_load(&fd_table_entry(fd)->next_handoff);
		interleaving_point();
		adopt(fd);
		fd = next;
	}
}

static void on_event(uint64_t token)
{
	int fd = (int)(uint32_t)token;
	struct fd_entry *e = fd_table_entry(fd);
	uint32_t held = FD_LIBRARY_OWNED | FD_HELD;
	if (e == NULL || (atomic_load_explicit(&e->state, memory_order_acquire) & held) != held ||
	    atomic_load(&e->held.generation) != (uint32_t)(token >> 32) || !e->held.adopted)
		return; /* stale: that copy is already released */
	check_teardown(fd);
}

static void expire_deadlines(int64_t now)
{
	const struct deadline_item *first;
	while ((first = deadline_heap_first(&reaper.deadlines)) != NULL &&
	       first->deadline_ns <= now) {
		int fd = first->fd;
		struct fd_entry *e = fd_table_entry(fd);
		release(fd, e->held.deadline_kind == DEADLINE_LINGER ? OUTCOME_LINGER_TIMEOUT
								     : OUTCOME_GRACE_TIMEOUT);
	}
}

/* When the collected trace lines are due (INT64_MAX: none to write). */
static int64_t trace_flush_due(void)
{
	int64_t since = trace_collected_since();
	return since != 0 ? since + TRACE_BATCH_NS : INT64_MAX;
}

static int wait_timeout_ms(int64_t now, int64_t flush_due)
{
	const struct deadline_item *first = deadline_heap_first(&reaper.deadlines);
	int64_t until = first != NULL ? first->deadline_ns : INT64_MAX;
	if (flush_due < until)
		until = flush_due;
	if (until == INT64_MAX)
		return -1; /* nothing to time: sleep until an event */
	int64_t left = until - now;
	if (left <= 0)
		return 0;
	int64_t ms = (left + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* ---------------------------------------------------------------- vacate */

/* The reaper's side of reaper_vacate(): the same descriptor, a new number. */
static void move_own_descriptor(_Atomic int *which, int fd, bool is_wake_fd)
{
	int moved = raw_dup_high(fd);
	if (moved < 0)
		return; /* no room: the application's dup2 waits for the next try */
	fd_table_set_library_owned(moved);
	if (is_wake_fd) {
		int ep = atomic_load(&reaper.epoll_fd);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TOKEN };
		syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, moved, &ev);
		syscall(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, fd, NULL);
	}
	atomic_store(which, moved);
	/* A closer that read the old number is still writing to it. */
	while (is_wake_fd && atomic_load(&reaper.wakers) > 0)
		sched_yield();
	fd_table_forget(fd);
	raw_close(fd);
}

static void move_held_copy(int fd)
{
	struct fd_entry *old = fd_table_entry(fd);
	fork_guard_enter();
	int moved = raw_dup_high(fd);
	struct fd_entry *e = moved >= 0 ? fd_table_entry(moved) : NULL;
	if (e == NULL) {
		/* Nowhere to go: the kernel finishes the graceful close itself. */
		if (moved >= 0)
			raw_close(moved);
		fork_guard_leave();
		release(fd, OUTCOME_NO_ROOM);
		return;
	}
	e->held.since_ns = old->held.since_ns;
	e->held.deadline_ns = old->held.deadline_ns;
	e->held.data_segs_in = old->held.data_segs_in;
	e->held.row = old->held.row;
	e->held.deadline_kind = old->held.deadline_kind;
	e->held.linger_on = old->held.linger_on;
	e->held.adopted = old->held.adopted;
	e->held.heap_index = old->held.heap_index;
	atomic_fetch_add(&e->held.generation, 1);
	atomic_store(&e->socket_id, atomic_load(&old->socket_id));
	fd_table_publish_held(moved, atomic_load(&old->state));
	fork_guard_leave();
	syscall(SYS_epoll_ctl, atomic_load(&reaper.epoll_fd), EPOLL_CTL_DEL, fd, NULL);
	watch(moved, e);
	if (e->held.heap_index != DEADLINE_HEAP_NOWHERE)
		reaper.deadlines.items[e->held.heap_index].fd = moved;
	atomic_fetch_add(&old->held.generation, 1);
	old->held.heap_index = DEADLINE_HEAP_NOWHERE;
	old->held.adopted = false;
	fork_guard_enter();
	fd_table_forget(fd);
	raw_close(fd);
	fork_guard_leave();
	check_teardown(moved);
}

static void serve_vacate_request(void)
{
	int fd = atomic_load(&reaper.vacate_fd);
	if (fd < 0)
		return;
	adopt_handoffs(); /* a copy still on the stack must be adopted first */
	struct fd_entry *e = fd_table_entry(fd);
	if (fd == atomic_load(&reaper.epoll_fd))
		move_own_descriptor(&reaper.epoll_fd, fd, false);
	else if (fd == atomic_load(&reaper.wake_fd))
		move_own_descriptor(&reaper.wake_fd, fd, true);
	else if (e != NULL && (atomic_load(&e->state) & FD_HELD))
		move_held_copy(fd);
	atomic_store(&reaper.vacate_fd, -1);
	futex_wake_all(&reaper.vacate_fd);
}

/* ---------------------------------------------------------------- the thread */

static void serve_events(void)
{
	/* A request made while the channel was being created sent no wake-up. */
	serve_vacate_request();
	int64_t now = monotonic_ns();
	int64_t flush_due = trace_flush_due();
	if (flush_due <= now) {
		flush_trace();
		flush_due = INT64_MAX;
	}
	struct epoll_event events[EVENTS_PER_WAIT];
	int n = (int)syscall(SYS_epoll_pwait, atomic_load(&reaper.epoll_fd), events,
			     EVENTS_PER_WAIT, wait_timeout_ms(now, flush_due), NULL, 0);
	for (int i = 0; i < n; i++) {
		if (events[i].data.u64 != WAKE_TOKEN) {
			on_event(events[i].data.u64);
			continue;
		}
		uint64_t count;
		syscall(SYS_read, atomic_load(&reaper.wake_fd), &count, sizeof count);
		interleaving_point();
		/* Emptied after the read: a hand-off that finds the stack empty
		 * from here on sends a wake-up this read did not consume. */
		adopt_handoffs();
		serve_vacate_request();
	}
	expire_deadlines(monotonic_ns());
}

static void *reaper_main(void *unused)
{
	(void)unused;
	trace_collect_this_thread();
	for (;;) {
		atomic_fetch_add(&reaper.channel_sleepers, 1);
		int32_t channel = atomic_load(&reaper.channel);
		interleaving_point();
		if (channel != CHANNEL_READY) {
			flush_trace(); /* never sleep on lines still to write */
			futex_wait_while(&reaper.channel, channel);
		}
		atomic_fetch_sub(&reaper.channel_sleepers, 1);
		if (channel != CHANNEL_READY)
			continue;
		/* A reservation given back before we got here: nothing to wait for. */
		close_channel_if_idle();
		if (atomic_load(&reaper.channel) == CHANNEL_READY)
			serve_events();
	}
	return NULL;
}

/* Grows the kernel's descriptor table up to where held copies go, once, so
 * that no close() pays for it: growing a table shared by several threads
 * waits for an RCU grace period (~10 ms here); done before the reaper
 * thread exists, it usually costs nothing. The table never shrinks. */
static void grow_descriptor_table(void)
{
	int probe = (int)syscall(SYS_eventfd2, 0, EFD_CLOEXEC);
	if (probe >= 0)
		raw_close(raw_move_high(probe));
}

static bool start_thread(void)
{
	grow_descriptor_table();
	size_t want = (size_t)wspclose_settings.max_held;
	if (reaper.deadlines.cap != want) {
		deadline_heap_free(&reaper.deadlines);
		if (!deadline_heap_init(&reaper.deadlines, want, note_heap_index, NULL))
			return false;
	}
	reaper.deadlines.len = 0;

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

void reaper_start_once(void)
{
	int expected = REAPER_STOPPED;
	if (atomic_load(&reaper.status) != REAPER_STOPPED ||
	    !atomic_compare_exchange_strong(&reaper.status, &expected, REAPER_STARTING))
		return;
	int saved = errno;
	/* Degrade for good on failure: every close is then the kernel's own. */
	atomic_store(&reaper.status, start_thread() ? REAPER_RUNNING : REAPER_FAILED);
	errno = saved;
}

/* ---------------------------------------------------------------- close path */

bool reaper_is_running(void)
{
	return atomic_load_explicit(&reaper.status, memory_order_acquire) == REAPER_RUNNING;
}

bool reaper_reserve(void)
{
	if (atomic_fetch_add(&reaper.held, 1) >= wspclose_settings.max_held) {
		reaper_unreserve();
		return false;
	}
	if (!open_channel()) {
		reaper_unreserve();
		return false;
	}
	return true;
}

void reaper_unreserve(void)
{
	/* The last one: let the reaper close the channel. */
	if (atomic_fetch_sub(&reaper.held, 1) == 1)
		wake_reaper();
}

long reaper_held_count(void)
{
	return atomic_load(&reaper.held);
}

bool reaper_settling(void)
{
	return atomic_load(&reaper.held) > 0 || atomic_load(&reaper.untold_releases) > 0;
}

void reaper_hand_off(int copy_fd)
{
	struct fd_entry *e = fd_table_entry(copy_fd);
	int32_t head = atomic_load(&reaper.handoff_head);
	do {
		atomic_store_explicit(&e->next_handoff, head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak(&reaper.handoff_head, &head, copy_fd));
	interleaving_point();
	/* On a non-empty stack the closer that found it empty wakes the
	 * reaper (or already did, and the reaper has yet to empty it). The
	 * decision lives in the stack itself, which only the reaper empties:
	 * a separate "wake-up pending" flag could be left raised by a closer
	 * whose copy the reaper took, released and whose channel it closed
	 * before that closer got to its wake-up, and would then silence the
	 * next channel's first hand-off for good. */
	if (head < 0)
		wake_reaper();
}

void reaper_vacate(int fd)
{
	int saved = errno;
	for (;;) {
		struct fd_entry *e = fd_table_entry(fd);
		if (e == NULL || !(atomic_load(&e->state) & FD_LIBRARY_OWNED))
			break; /* free for the application now */
		bool reapers = fd == atomic_load(&reaper.epoll_fd) ||
			       fd == atomic_load(&reaper.wake_fd) ||
			       (atomic_load(&e->state) & FD_HELD);
		int32_t idle = -1;
		unsigned round = 0;
		if (!reapers || !reaper_is_running()) {
			if (trace_move_descriptor(fd) || stats_move_descriptor(fd))
				continue;
			if (atomic_load(&reaper.channel) == CHANNEL_CREATING) {
				pause_briefly(&round); /* it becomes the epoll set */
				continue;
			}
			/* A linger wait's epoll set: the application takes the
			 * number over and the wait polls instead. */
			fd_table_forget(fd);
			break;
		} else if (atomic_compare_exchange_strong(&reaper.vacate_fd, &idle, fd)) {
			interleaving_point();
			wake_reaper();
			while (atomic_load(&reaper.vacate_fd) == fd)
				futex_wait_while(&reaper.vacate_fd, fd);
		} else {
			futex_wait_while(&reaper.vacate_fd, idle); /* one request at a time */
		}
	}
	errno = saved;
}

/* ---------------------------------------------------------------- fork */

/* Held copies, and the copies and epoll sets of linger waits whose threads
 * do not exist in the child. */
static void close_inherited_copy(int fd, struct fd_entry *e)
{
	if (atomic_load(&e->state) & (FD_HELD | FD_TRANSIENT)) {
		atomic_store(&e->state, 0);
		raw_close(fd);
	}
}

void reaper_forget_after_fork(void)
{
	/* Single-threaded here: the parent's reaper and closers are gone. */
	fd_table_for_each(close_inherited_copy);
	close_own_descriptor(&reaper.epoll_fd);
	close_own_descriptor(&reaper.wake_fd);
	atomic_store(&reaper.channel, CHANNEL_NONE);
	atomic_store(&reaper.channel_sleepers, 0);
	atomic_store(&reaper.handoff_head, -1);
	atomic_store(&reaper.wakers, 0);
	atomic_store(&reaper.vacate_fd, -1);
	atomic_store(&reaper.held, 0);
	atomic_store(&reaper.untold_releases, 0);
	reaper.deadlines.len = 0;
	atomic_store(&reaper.status, REAPER_STOPPED);
	channel_busy_here = 0;
}
