/* close_path.c: the close() of a descriptor the library may care about. The
 * common case (not a socket we know of) costs one table load; a TCP socket
 * costs the probes its row needs, then a hand-off, an abort, a W1 refusal or
 * a linger wait (SPEC §2). */
#include "close_path.h"
#include "config.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "monotonic.h"
#include "reaper.h"
#include "tcp_probe.h"

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Held copies go at or above this number when RLIMIT_NOFILE allows, so the
 * application's own descriptors stay low (below FD_SETSIZE). */
#define HELD_FD_FLOOR 1024

/* The facts close_decide() needs, read in order of cost: the table first,
 * SO_LINGER next, O_NONBLOCK and SIOCOUTQ only for the W and L rows. */
struct probed {
	struct close_facts facts;
	struct linger linger;
};

static int gather_socket_facts(int fd, struct probed *p)
{
	int rc = probe_linger(fd, &p->linger);
	if (rc < 0)
		return rc;
	struct close_facts *f = &p->facts;
	f->linger_on = p->linger.l_onoff != 0;
	f->linger_seconds = p->linger.l_linger;
	/* With linger off, G1 and G2 act alike: spare the TCP_INFO call. A FIN
	 * already sent also means shutdown(SHUT_WR), even one made behind our
	 * back (a dup, a raw system call). */
	if (f->linger_on && !f->write_shut) {
		int state = probe_tcp_state(fd);
		f->write_shut = state >= 0 && tcp_state_write_shut(state);
	}
	if (close_needs_drain_facts(f)) {
		f->nonblocking = probe_nonblocking(fd) == 1;
		f->pending = probe_send_queue(fd) > 0;
	}
	return 0;
}

/* ---------------------------------------------------------------- actions */

static int close_for_real(int fd)
{
	fd_table_forget(fd);
	return libc_close(fd);
}

/* The kernel's own graceful close, never lingering: what a hand-off degrades
 * to when no copy can be held. */
static int close_gracefully_now(int fd, const struct probed *p)
{
	if (p->facts.linger_on)
		set_linger(fd, false, p->linger.l_linger);
	fd_table_forget(fd);
	raw_close(fd);
	return 0;
}

static int held_floor_fallback(void)
{
	struct rlimit lim;
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &lim) != 0 ||
	    lim.rlim_cur == RLIM_INFINITY)
		return -1;
	int half = (int)(lim.rlim_cur / 2);
	return half > 2 ? half : -1;
}

/* A private O_CLOEXEC copy, high in the descriptor space. */
static int make_held_copy(int fd)
{
	int copy = raw_dup_at_or_above(fd, HELD_FD_FLOOR);
	if (copy == -EINVAL || copy == -EMFILE) {
		int floor = held_floor_fallback();
		if (floor >= 0 && floor < HELD_FD_FLOOR)
			copy = raw_dup_at_or_above(fd, floor);
	}
	return copy;
}

static int hand_off(int fd, const struct probed *p, const struct close_plan *plan)
{
	const struct close_facts *f = &p->facts;
	if (!reaper_is_running() || !reaper_reserve())
		return close_gracefully_now(fd, p);
	int copy = make_held_copy(fd);
	struct fd_entry *held = copy >= 0 ? fd_table_entry(copy) : NULL;
	if (held == NULL) {
		if (copy >= 0)
			raw_close(copy);
		reaper_unreserve();
		return close_gracefully_now(fd, p);
	}
	int64_t now = monotonic_ns();
	bool linger_deadline = plan->action == ACTION_HAND_OFF_LINGER;
	held->held.since_ns = now;
	held->held.deadline_ns = now + (linger_deadline
		? (int64_t)f->linger_seconds * NS_PER_SEC
		: (int64_t)wspclose_settings.grace_ms * NS_PER_MS);
	held->held.row = (uint8_t)plan->row;
	held->held.deadline_kind = linger_deadline ? DEADLINE_LINGER : DEADLINE_GRACE;
	held->held.linger_on = f->linger_on;
	atomic_store(&held->socket_id, 0);
	atomic_store_explicit(&held->state, FD_KIND_TCP | FD_LIBRARY_OWNED | FD_HELD,
			      memory_order_release);
	/* Not the last reference any more: no FIN, no linger, just the number. */
	fd_table_forget(fd);
	raw_close(fd);
	reaper_hand_off(copy);
	return 0;
}

static int abort_connection(int fd)
{
	raw_abort_connection(fd);
	fd_table_forget(fd);
	raw_close(fd);
	return 0;
}

/* Waits (bounded by the deadline) until our FIN is acknowledged. Returns
 * true when the teardown finished, false at the deadline. */
static bool wait_for_drain(int fd, int64_t deadline)
{
	/* Edge-triggered, no event bits: fires on TCP state changes only. */
	int ep = (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (ep >= 0) {
		fd_table_set_library_owned(ep);
		struct epoll_event ev = { .events = EPOLLET, .data.fd = fd };
		if (syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			fd_table_forget(ep);
			raw_close(ep);
			ep = -1;
		}
	}
	bool drained = false;
	int64_t backoff_ms = 1;
	for (;;) {
		int state = probe_tcp_state(fd);
		if (state < 0 || !tcp_state_is_draining(state)) {
			drained = true;
			break;
		}
		int64_t left_ms = (deadline - monotonic_ns() + NS_PER_MS - 1) / NS_PER_MS;
		if (left_ms <= 0)
			break;
		if (ep >= 0) {
			/* The 100 ms cap only bounds the cost of a missed edge. */
			struct epoll_event ev;
			syscall(SYS_epoll_pwait, ep, &ev, 1, (int)(left_ms < 100 ? left_ms : 100),
				NULL, 0);
		} else {
			/* No descriptor to spare: poll the state with a short backoff. */
			int64_t ms = backoff_ms < left_ms ? backoff_ms : left_ms;
			struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(ms * NS_PER_MS) };
			syscall(SYS_nanosleep, &ts, NULL);
			if (backoff_ms < 16)
				backoff_ms *= 2;
		}
	}
	if (ep >= 0) {
		fd_table_forget(ep);
		raw_close(ep);
	}
	return drained;
}

/* L1/L2: block up to the linger time for the data to be acknowledged, then
 * close gracefully (L1) or reset the connection before returning (L2). */
static int linger_close(int fd, const struct probed *p)
{
	int64_t deadline = monotonic_ns() + (int64_t)p->facts.linger_seconds * NS_PER_SEC;
	if (probe_receive_queue(fd) > 0)
		return abort_connection(fd); /* unread data: RST, in every row */
	raw_shutdown(fd, SHUT_RDWR);
	if (!wait_for_drain(fd, deadline))
		return abort_connection(fd); /* L2 */
	return close_gracefully_now(fd, p); /* L1 */
}

/* ---------------------------------------------------------------- entry */

static int close_socket(int fd, struct fd_entry *e, enum close_origin origin)
{
	uint32_t state;
	if (!fd_table_claim_close(e, &state)) {
		errno = EBADF; /* another thread is closing this very descriptor */
		return -1;
	}
	uint64_t id = atomic_load(&e->socket_id);
	struct probed p = { .facts = {
		.is_socket = true,
		.is_tcp = fd_kind(state) == FD_KIND_TCP,
		.shared_with_process = (state & FD_SHARED) != 0,
		.write_shut = (state & FD_WRITE_SHUT) != 0,
		.origin = origin,
		.passthrough = wspclose_settings.passthrough,
	} };
	p.facts.last_reference = !p.facts.is_tcp || fd_table_is_last_reference(fd, state, id);

	/* §1 rows first: they need no probe at all. */
	if (close_decide(&p.facts).action == ACTION_REAL_CLOSE)
		return close_for_real(fd);
	if (gather_socket_facts(fd, &p) < 0)
		return close_for_real(fd); /* stale entry: not a socket any more */

	int saved_errno = errno;
	struct close_plan plan = close_decide(&p.facts);
	int rc;
	switch (plan.action) {
	case ACTION_FAIL_WOULDBLOCK:
		fd_table_release_claim(e);
		errno = EWOULDBLOCK;
		return -1;
	case ACTION_HAND_OFF:
	case ACTION_HAND_OFF_LINGER:
		pthread_testcancel(); /* close() stays a cancellation point */
		rc = hand_off(fd, &p, &plan);
		break;
	case ACTION_ABORT:
		rc = abort_connection(fd);
		break;
	case ACTION_LINGER_WAIT:
		pthread_testcancel();
		rc = linger_close(fd, &p);
		break;
	case ACTION_REAL_CLOSE:
	default:
		return close_for_real(fd);
	}
	errno = saved_errno;
	return rc;
}

int close_path_close(int fd, enum close_origin origin)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e == NULL)
		return libc_close(fd);
	uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
	if (state == 0)
		return libc_close(fd); /* not a socket we know of: nothing extra */
	if (state & FD_LIBRARY_OWNED) {
		errno = EBADF; /* the application never opened it */
		return -1;
	}
	return close_socket(fd, e, origin);
}
