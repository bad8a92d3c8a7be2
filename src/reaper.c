/* reaper.c: the reaper thread. Held copies arrive on a lock-free stack, wait
 * in an edge-triggered epoll set (no event bits: it fires on TCP state
 * changes, not on data ACKs) and in a deadline heap, and are released when
 * our FIN is acknowledged, the peer resets, or the deadline passes (RST). */
#include "reaper.h"
#include "close_decision.h"
#include "config.h"
#include "fd_table.h"
#include "monotonic.h"
#include "tcp_probe.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

enum reaper_status { REAPER_STOPPED, REAPER_STARTING, REAPER_RUNNING, REAPER_FAILED };

#define WAKE_TOKEN UINT64_MAX
#define EVENTS_PER_WAIT 64
/* The reaper's own descriptors live with the held copies, high up. */
#define REAPER_FD_FLOOR 1024

struct deadline_item {
	int64_t deadline_ns;
	int fd;
};

static struct {
	_Atomic int status;
	int epoll_fd;
	int wake_fd;
	_Atomic int32_t handoff_head;   /* fd of the newest hand-off, or -1 */
	_Atomic int wake_pending;       /* a wake-up is already on its way */
	_Atomic long held;              /* held copies, reserved or live */
	struct deadline_item *heap;     /* min-heap on deadline_ns */
	size_t heap_len, heap_cap;
} reaper = { .handoff_head = -1, .epoll_fd = -1, .wake_fd = -1 };

/* ---------------------------------------------------------------- heap */

static void heap_place(size_t i, struct deadline_item item)
{
	reaper.heap[i] = item;
	fd_table_entry(item.fd)->held.heap_index = (uint32_t)i;
}

static void heap_sift_up(size_t i)
{
	struct deadline_item item = reaper.heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (reaper.heap[parent].deadline_ns <= item.deadline_ns)
			break;
		heap_place(i, reaper.heap[parent]);
		i = parent;
	}
	heap_place(i, item);
}

static void heap_sift_down(size_t i)
{
	struct deadline_item item = reaper.heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= reaper.heap_len)
			break;
		if (child + 1 < reaper.heap_len &&
		    reaper.heap[child + 1].deadline_ns < reaper.heap[child].deadline_ns)
			child++;
		if (item.deadline_ns <= reaper.heap[child].deadline_ns)
			break;
		heap_place(i, reaper.heap[child]);
		i = child;
	}
	heap_place(i, item);
}

static bool heap_push(int fd, int64_t deadline_ns)
{
	if (reaper.heap_len == reaper.heap_cap)
		return false;
	reaper.heap[reaper.heap_len] = (struct deadline_item){ deadline_ns, fd };
	heap_sift_up(reaper.heap_len++);
	return true;
}

static void heap_remove(size_t i)
{
	reaper.heap_len--;
	if (i == reaper.heap_len)
		return;
	heap_place(i, reaper.heap[reaper.heap_len]);
	if (i > 0 && reaper.heap[(i - 1) / 2].deadline_ns > reaper.heap[i].deadline_ns)
		heap_sift_up(i);
	else
		heap_sift_down(i);
}

/* ---------------------------------------------------------------- release */

enum held_outcome {
	OUTCOME_FIN_ACKED,
	OUTCOME_PEER_RESET,
	OUTCOME_UNREAD_DATA,
	OUTCOME_GRACE_TIMEOUT,
	OUTCOME_LINGER_TIMEOUT,
	OUTCOME_NO_CONNECTION,
	OUTCOME_NO_ROOM,
};

static void release(int fd, enum held_outcome outcome)
{
	struct fd_entry *e = fd_table_entry(fd);
	bool reset = outcome == OUTCOME_GRACE_TIMEOUT || outcome == OUTCOME_LINGER_TIMEOUT ||
		     outcome == OUTCOME_UNREAD_DATA;
	if (e->held.heap_index != UINT32_MAX)
		heap_remove(e->held.heap_index);
	e->held.heap_index = UINT32_MAX;
	e->held.generation++;
	syscall(SYS_epoll_ctl, reaper.epoll_fd, EPOLL_CTL_DEL, fd, NULL);
	if (reset)
		set_linger(fd, true, 0); /* close() then sends RST */
	else if (e->held.linger_on)
		set_linger(fd, false, 0); /* never let the real close linger */
	atomic_store(&e->state, 0);
	raw_close(fd);
	atomic_fetch_sub(&reaper.held, 1);
}

/* Releases fd when its teardown is over; otherwise it keeps waiting. */
static void check_teardown(int fd)
{
	int state = probe_tcp_state(fd);
	if (state >= 0 && tcp_state_is_draining(state))
		return;
	int error = probe_socket_error(fd);
	release(fd, error == ECONNRESET || error == EPIPE ? OUTCOME_PEER_RESET
							  : OUTCOME_FIN_ACKED);
}

static void adopt(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	e->held.heap_index = UINT32_MAX;
	/* Unread data at close: RST, as the kernel and RFC 1122 do. */
	if (probe_receive_queue(fd) > 0) {
		release(fd, OUTCOME_UNREAD_DATA);
		return;
	}
	/* FIN after the queued data; wakes threads still blocked on it. */
	if (raw_shutdown(fd, SHUT_RDWR) == -ENOTCONN) {
		release(fd, OUTCOME_NO_CONNECTION);
		return;
	}
	struct epoll_event ev = {
		.events = EPOLLET,
		.data.u64 = ((uint64_t)e->held.generation << 32) | (uint32_t)fd,
	};
	if (syscall(SYS_epoll_ctl, reaper.epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0 ||
	    !heap_push(fd, e->held.deadline_ns)) {
		/* Cannot watch it: let the kernel finish the graceful close. */
		release(fd, OUTCOME_NO_ROOM);
		return;
	}
	check_teardown(fd);
}

static void adopt_handoffs(void)
{
	int32_t fd = atomic_exchange(&reaper.handoff_head, -1);
	while (fd >= 0) {
		struct fd_entry *e = fd_table_entry(fd);
		int32_t next = atomic_load(&e->next_handoff);
		adopt(fd);
		fd = next;
	}
}

static void on_event(uint64_t token)
{
	int fd = (int)(uint32_t)token;
	struct fd_entry *e = fd_table_entry(fd);
	uint32_t held = FD_LIBRARY_OWNED | FD_HELD;
	if (e == NULL || (atomic_load(&e->state) & held) != held ||
	    e->held.generation != (uint32_t)(token >> 32))
		return; /* stale: that copy is already released */
	check_teardown(fd);
}

static void expire_deadlines(int64_t now)
{
	while (reaper.heap_len > 0 && reaper.heap[0].deadline_ns <= now) {
		int fd = reaper.heap[0].fd;
		struct fd_entry *e = fd_table_entry(fd);
		release(fd, e->held.deadline_kind == DEADLINE_LINGER ? OUTCOME_LINGER_TIMEOUT
								     : OUTCOME_GRACE_TIMEOUT);
	}
}

static int wait_timeout_ms(int64_t now)
{
	if (reaper.heap_len == 0)
		return -1; /* nothing to time: sleep until an event */
	int64_t left = reaper.heap[0].deadline_ns - now;
	if (left <= 0)
		return 0;
	int64_t ms = (left + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static void *reaper_main(void *unused)
{
	(void)unused;
	struct epoll_event events[EVENTS_PER_WAIT];
	for (;;) {
		int n = epoll_wait(reaper.epoll_fd, events, EVENTS_PER_WAIT,
				   wait_timeout_ms(monotonic_ns()));
		if (n < 0 && errno != EINTR)
			n = 0;
		for (int i = 0; i < n; i++) {
			if (events[i].data.u64 == WAKE_TOKEN) {
				uint64_t count;
				ssize_t ignored = read(reaper.wake_fd, &count, sizeof count);
				(void)ignored;
				/* Cleared before draining: a hand-off pushed after this
				 * point sends a new wake-up. */
				atomic_store(&reaper.wake_pending, 0);
				adopt_handoffs();
			} else {
				on_event(events[i].data.u64);
			}
		}
		expire_deadlines(monotonic_ns());
	}
	return NULL;
}

/* ---------------------------------------------------------------- start */

/* A library descriptor, moved up out of the application's way. */
static int own_descriptor(int fd)
{
	if (fd < 0)
		return fd;
	int high = raw_dup_at_or_above(fd, REAPER_FD_FLOOR);
	if (high >= 0) {
		raw_close(fd);
		fd = high;
	}
	fd_table_set_library_owned(fd);
	return fd;
}

static void close_own_descriptor(int *fd)
{
	if (*fd < 0)
		return;
	fd_table_forget(*fd);
	raw_close(*fd);
	*fd = -1;
}

static bool start_thread(void)
{
	size_t want = (size_t)wspclose_settings.max_held;
	if (reaper.heap == NULL || reaper.heap_cap != want) {
		free(reaper.heap);
		reaper.heap = calloc(want, sizeof *reaper.heap);
		reaper.heap_cap = reaper.heap ? want : 0;
		if (reaper.heap == NULL)
			return false;
	}
	reaper.heap_len = 0;
	reaper.epoll_fd = own_descriptor(epoll_create1(EPOLL_CLOEXEC));
	reaper.wake_fd = own_descriptor(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (reaper.epoll_fd < 0 || reaper.wake_fd < 0)
		return false;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_TOKEN };
	if (syscall(SYS_epoll_ctl, reaper.epoll_fd, EPOLL_CTL_ADD, reaper.wake_fd, &ev) != 0)
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

void reaper_start_once(void)
{
	int expected = REAPER_STOPPED;
	if (atomic_load(&reaper.status) != REAPER_STOPPED ||
	    !atomic_compare_exchange_strong(&reaper.status, &expected, REAPER_STARTING))
		return;
	int saved = errno;
	if (start_thread()) {
		atomic_store(&reaper.status, REAPER_RUNNING);
	} else {
		close_own_descriptor(&reaper.epoll_fd);
		close_own_descriptor(&reaper.wake_fd);
		/* Degrade for good: every close is then the kernel's own. */
		atomic_store(&reaper.status, REAPER_FAILED);
	}
	errno = saved;
}

/* ---------------------------------------------------------------- close path */

bool reaper_is_running(void)
{
	return atomic_load_explicit(&reaper.status, memory_order_acquire) == REAPER_RUNNING;
}

bool reaper_reserve(void)
{
	if (atomic_fetch_add(&reaper.held, 1) < wspclose_settings.max_held)
		return true;
	atomic_fetch_sub(&reaper.held, 1);
	return false;
}

void reaper_unreserve(void)
{
	atomic_fetch_sub(&reaper.held, 1);
}

void reaper_hand_off(int copy_fd)
{
	struct fd_entry *e = fd_table_entry(copy_fd);
	int32_t head = atomic_load(&reaper.handoff_head);
	do {
		atomic_store_explicit(&e->next_handoff, head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak(&reaper.handoff_head, &head, copy_fd));
	if (atomic_exchange(&reaper.wake_pending, 1) == 0) {
		uint64_t one = 1;
		int saved = errno;
		ssize_t ignored = write(reaper.wake_fd, &one, sizeof one);
		(void)ignored;
		errno = saved;
	}
}

/* ---------------------------------------------------------------- fork */

static void close_inherited_copy(int fd, struct fd_entry *e)
{
	if (atomic_load(&e->state) & FD_HELD) {
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
	atomic_store(&reaper.handoff_head, -1);
	atomic_store(&reaper.wake_pending, 0);
	atomic_store(&reaper.held, 0);
	reaper.heap_len = 0;
	atomic_store(&reaper.status, REAPER_STOPPED);
}
