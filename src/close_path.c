/* close_path.c: the close of a descriptor the library may care about. The
 * common case (not a socket we know of) costs one table load; a socket costs
 * the probes its row needs, then a hand-off, an abort, a W1 refusal or a
 * linger wait (SPEC §2). The number itself is given up last, by close() or
 * atomically by the dup2()/dup3() that replaces it. */
#include "close_path.h"
#include "config.h"
#include "deadline_heap.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "interleaving.h"
#include "libc_binding.h"
#include "monotonic.h"
#include "reaper.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Raised while this thread runs a close: a signal handler's close() of a
 * number this thread is giving up must not wait for itself. */
static __thread _Atomic int closing_here __attribute__((tls_model("initial-exec")));

/* Initial-exec TLS: reading it is a plain load, safe in a signal handler. */
static __thread bool files_unshared __attribute__((tls_model("initial-exec")));

void close_path_note_files_unshared(void)
{
	files_unshared = true;
}

/* One close in progress: which number, why, and how the number is given up. */
struct close_request {
	int fd;
	struct fd_entry *entry;
	enum close_origin origin;
	int replacement;      /* dup2/dup3 source taking fd's number, or -1 */
	bool use_dup3;
	int dup3_flags;
	uint32_t state;       /* the entry as claimed, to restore on failure */
	uint64_t socket_id;
	struct close_facts facts;
	struct linger linger;
	/* Filled while acting, for the trace and the statistics: */
	enum close_row final_row; /* L becomes L1 or L2 */
	int pending_bytes;        /* SIOCOUTQ before acting (traced closes only) */
	int held_fd;
	bool tracing;
	bool traced;              /* the close line is already written */
	bool degraded;            /* a hand-off that could not hold a copy */
	struct trace_socket described;
};

/* ---------------------------------------------------------------- facts */

/* Probes in order of cost: SO_LINGER; TCP_INFO only with linger on;
 * O_NONBLOCK and SIOCOUTQ only for the W and L rows. Tracing adds none:
 * what a trace line shows beyond them is read afterwards. */
static int gather_socket_facts(struct close_request *r)
{
	int rc = probe_linger(r->fd, &r->linger);
	if (rc < 0)
		return rc;
	struct close_facts *f = &r->facts;
	f->linger_on = r->linger.l_onoff != 0;
	f->linger_seconds = r->linger.l_linger;
	/* With linger off, G1 and G2 act alike: spare the TCP_INFO call. A FIN
	 * already sent also means shutdown(SHUT_WR), even one made behind our
	 * back (a dup, a raw system call). */
	int state = -1;
	if (f->linger_on && !f->write_shut) {
		state = probe_tcp_state(r->fd);
		f->write_shut = state >= 0 && tcp_state_write_shut(state);
	}
	if (close_needs_drain_facts(f)) {
		f->nonblocking = probe_nonblocking(r->fd) == 1;
		f->pending = probe_send_queue(r->fd) > 0;
		/* After a reset SIOCOUTQ stays high while nothing will ever be
		 * acknowledged again: not pending (W1 would never end). */
		if (state == TCP_STATE_CLOSE || state == TCP_STATE_LISTEN)
			f->pending = false;
	}
	return 0;
}

/* ---------------------------------------------------------------- the number */

/* Gives up fd's number: a close, or the atomic replacement by dup2/dup3.
 * A close here never fails in a way the caller could act on (the number is
 * released even on EINTR), so it reports 0; a replacement reports its
 * result. */
static int give_up_number(const struct close_request *r, bool through_libc)
{
	if (r->replacement >= 0) {
		int rc = r->use_dup3 ? libc_dup3(r->replacement, r->fd, r->dup3_flags)
				     : libc_dup2(r->replacement, r->fd);
		if (rc >= 0)
			fd_table_note_duplicate(r->replacement, r->fd);
		return rc;
	}
	bool claimed = r->entry != NULL && r->state != 0;
	if (claimed)
		atomic_fetch_or(&r->entry->state, FD_RELEASING);
	int rc = 0;
	if (through_libc)
		rc = libc_close(r->fd);
	else
		raw_close(r->fd);
	interleaving_point();
	/* The entry stayed claimed until the number was closed, so a second
	 * close() of it meanwhile got EBADF and closed nothing. Now the number
	 * may already be someone else's: change the entry only if it is still
	 * ours. It leaves a tombstone, so that a later close() of the same,
	 * unreused number is reported as a double close. */
	if (claimed) {
		/* Still ours while it carries FD_RELEASING (a new owner writes a
		 * fresh state); other flags may have been added meanwhile (a
		 * fork marks every socket shared), so retry until it is done. */
		uint32_t seen = atomic_load(&r->entry->state);
		uint32_t after = FD_TOMBSTONE;
		while ((seen & FD_RELEASING) &&
		       !atomic_compare_exchange_weak(&r->entry->state, &seen, after))
			;
	}
	return rc;
}

/* Threads blocked on a socket return (Windows cancels them). */
static void wake_blocked_callers(int fd)
{
	raw_shutdown(fd, SHUT_RDWR);
}

/* ---------------------------------------------------------------- actions */

/* What a hand-off degrades to when no copy can be held: the kernel's own
 * graceful close, never lingering (blocked threads woken all the same). */
static int close_gracefully_now(const struct close_request *r)
{
	/* Unread data: the RST the close owes anyway, sent now (a blocked
	 * thread would otherwise keep the socket open and delay it). */
	if (probe_receive_queue(r->fd) > 0) {
		raw_abort_connection(r->fd);
	} else {
		if (r->facts.linger_on)
			set_linger(r->fd, false, r->linger.l_linger);
		wake_blocked_callers(r->fd);
	}
	return give_up_number(r, false);
}

static void fill_held_entry(int copy_fd, struct fd_entry *held, const struct close_request *r,
			    const struct close_plan *plan)
{
	/* The reaper read the previous copy at this number before clearing its
	 * state (release order) and closing it; this acquire orders our writes
	 * after those reads (the kernel's fd reuse alone is not visible to the
	 * memory model). */
	(void)atomic_load_explicit(&held->state, memory_order_acquire);
	int64_t now = monotonic_ns();
	bool linger_deadline = plan->action == ACTION_HAND_OFF_LINGER;
	held->held.since_ns = now;
	held->held.deadline_ns = now + (linger_deadline
		? (int64_t)r->facts.linger_seconds * NS_PER_SEC
		: (int64_t)wspclose_settings.grace_ms * NS_PER_MS);
	held->held.row = (uint8_t)plan->row;
	held->held.deadline_kind = linger_deadline ? DEADLINE_LINGER : DEADLINE_GRACE;
	held->held.linger_on = r->facts.linger_on;
	held->held.adopted = false;
	held->held.heap_index = DEADLINE_HEAP_NOWHERE;
	/* The reaper sets it (the inode) when it traces the adoption. */
	atomic_store(&held->socket_id, 0);
	fd_table_publish_held(copy_fd, FD_KIND_TCP | FD_LIBRARY_OWNED | FD_HELD);
}

static void trace_decision(const struct close_request *r, struct close_plan plan,
			   int64_t started, int rc, int error, const char *windows);
static void trace_hand_off(struct close_request *r, const struct close_plan *plan,
			   int64_t started, int copy, int rc);
static void describe_for_trace(struct close_request *r, int fd);
static int abort_connection(const struct close_request *r);

/* No copy can be held: the kernel's graceful close, traced at once. */
static int hand_off_refused(struct close_request *r)
{
	r->degraded = true;
	if (r->tracing)
		describe_for_trace(r, r->fd);
	return close_gracefully_now(r);
}

/* G1, G2, W2 and the implicit linger closes: an O_CLOEXEC copy high in the
 * descriptor space goes to the reaper, and the application's number is
 * given up at once. The rest (unread data, the shutdown that sends the FIN
 * and wakes blocked threads, waiting for the ACK) is the reaper's, so the
 * closing thread pays a few microseconds. */
static int hand_off(struct close_request *r, const struct close_plan *plan, int64_t started)
{
	if (!reaper_is_running() || !reaper_reserve())
		return hand_off_refused(r);
	interleaving_point();
	/* A fork() now would give the child a copy not yet marked held. */
	if (!fork_guard_try_enter()) {
		reaper_unreserve();
		return hand_off_refused(r);
	}
	int copy = raw_dup_high(r->fd);
	struct fd_entry *held = copy >= 0 ? fd_table_entry(copy) : NULL;
	interleaving_point();
	if (held == NULL) {
		if (copy >= 0)
			raw_close(copy);
		fork_guard_leave();
		reaper_unreserve();
		return hand_off_refused(r);
	}
	fill_held_entry(copy, held, r, plan);
	fork_guard_leave();
	r->held_fd = copy;
	/* Not the last reference any more: nothing on the wire. */
	int rc = give_up_number(r, false);
	interleaving_point();
	if (rc < 0) {
		/* The replacing dup failed: fd is still the application's. */
		fd_table_forget(copy);
		raw_close(copy);
		reaper_unreserve();
		fd_table_set_socket(r->fd, r->state & ~(uint32_t)FD_CLOSING, r->socket_id);
		if (r->tracing)
			describe_for_trace(r, r->fd);
		return rc;
	}
	/* Recorded before the reaper can see the copy (and release it). */
	if (r->tracing)
		trace_hand_off(r, plan, started, copy, rc);
	reaper_hand_off(copy);
	return rc;
}

static int abort_connection(const struct close_request *r)
{
	raw_abort_connection(r->fd);
	return give_up_number(r, false);
}

/* Waits (bounded by the deadline) until our FIN is acknowledged. Returns
 * true when the teardown finished, false at the deadline. */
static bool wait_for_drain(int fd, int64_t deadline)
{
	/* Edge-triggered, no event bits: fires on TCP state changes only. It
	 * is ours, high up; an application dup2() onto its number takes it
	 * over (reaper_vacate), and then this wait polls instead. */
	int ep = raw_move_high((int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC));
	struct fd_entry *ep_entry = ep >= 0 ? fd_table_entry(ep) : NULL;
	if (ep >= 0) {
		fd_table_set_transient(ep);
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
		bool still_ours = ep >= 0 && ep_entry != NULL &&
				  (atomic_load(&ep_entry->state) & FD_LIBRARY_OWNED);
		struct epoll_event ev;
		/* The 100 ms cap only bounds the cost of a missed edge. */
		if (still_ours &&
		    syscall(SYS_epoll_pwait, ep, &ev, 1, (int)(left_ms < 100 ? left_ms : 100),
			    NULL, 0) >= 0)
			continue;
		if (still_ours && errno == EINTR)
			continue;
		/* No descriptor to spare: poll the state with a short backoff. */
		int64_t ms = backoff_ms < left_ms ? backoff_ms : left_ms;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(ms * NS_PER_MS) };
		syscall(SYS_nanosleep, &ts, NULL);
		if (backoff_ms < 16)
			backoff_ms *= 2;
	}
	if (ep >= 0 && ep_entry != NULL && (atomic_load(&ep_entry->state) & FD_LIBRARY_OWNED)) {
		fd_table_forget(ep);
		raw_close(ep);
	}
	return drained;
}

/* L1/L2: block up to the linger time for the data to be acknowledged, then
 * close gracefully (L1) or reset the connection before returning (L2). */
static int linger_close(struct close_request *r)
{
	int64_t deadline = monotonic_ns() + (int64_t)r->facts.linger_seconds * NS_PER_SEC;
	r->final_row = ROW_L1;
	if (probe_receive_queue(r->fd) > 0)
		return abort_connection(r); /* unread data: RST, in every row */
	raw_shutdown(r->fd, SHUT_RDWR);
	/* Like Linux, give the number up before blocking: wait on a private
	 * copy (or, without one, on the application's descriptor). */
	int copy = -1;
	if (fork_guard_try_enter()) {
		copy = raw_dup_high(r->fd);
		if (copy >= 0)
			fd_table_set_transient(copy);
		fork_guard_leave();
	}
	int rc = 0;
	int subject = r->fd;
	if (copy >= 0) {
		rc = give_up_number(r, false); /* not the last reference */
		subject = copy;
	}
	bool drained = wait_for_drain(subject, deadline);
	/* A fork child or an application dup2() may have taken the copy's
	 * number meanwhile (reaper_vacate): then it is not ours to touch. */
	struct fd_entry *ce = copy >= 0 ? fd_table_entry(copy) : NULL;
	bool ours = copy < 0 || (ce && (atomic_load(&ce->state) & FD_TRANSIENT));
	if (ours && !drained) {
		r->final_row = ROW_L2;
		stats_note_linger_reset();
		raw_abort_connection(subject); /* RST before close() returns */
	} else if (ours && r->facts.linger_on) {
		set_linger(subject, false, r->linger.l_linger);
	}
	if (copy < 0)
		return give_up_number(r, false);
	if (ours) {
		fd_table_forget(copy);
		raw_close(copy);
	}
	return rc;
}

/* ---------------------------------------------------------------- entry */

static int close_plainly(const struct close_request *r)
{
	if (r->facts.passthrough)
		return give_up_number(r, true); /* what-if mode: exactly Linux */
	fd_table_leave_epoll_sets(r->fd, r->entry);
	if (r->facts.last_reference && !r->facts.shared_with_process)
		wake_blocked_callers(r->fd);
	return give_up_number(r, true);
}

/* What-if mode: what Windows would have done differently (for the trace). */
static const char *windows_difference(const struct close_request *r, enum close_row row)
{
	switch (row) {
	case ROW_W1:
		return "Windows: close() fails with WSAEWOULDBLOCK and the socket stays open "
		       "until the data is acknowledged";
	case ROW_L:
		return "Windows: close() blocks until the data is acknowledged and resets "
		       "the connection at the linger timeout (Linux never resets)";
	case ROW_W2:
		return "Windows: close() returns at once (Linux waits for the FIN to be "
		       "acknowledged)";
	case ROW_G2:
		if (r->facts.linger_on && r->facts.linger_seconds == 0)
			return "Windows: graceful close, linger is ignored after shutdown "
			       "(Linux sends RST)";
		return r->facts.linger_on ? "Windows: close() returns at once, graceful (Linux "
					    "may block up to the linger time)"
					  : "same as Windows: graceful close";
	case ROW_G1:
		return "same as Windows: graceful close, returns at once";
	case ROW_A1:
		return "same as Windows: RST at once";
	default:
		return NULL;
	}
}

static struct trace_close close_event(const struct close_request *r, struct close_plan plan,
				     int64_t started, int rc, int error, const char *windows)
{
	return (struct trace_close){
		.fd = r->fd, .origin = r->origin, .replaced = r->replacement >= 0,
		.socket = &r->described, .facts = &r->facts, .pending = r->pending_bytes,
		.plan = { r->final_row, r->degraded ? ACTION_DEGRADE : plan.action },
		.held_fd = r->held_fd,
		.blocked_ns = monotonic_ns() - started, .result = rc, .error = error,
		.windows = windows,
	};
}

static void trace_decision(const struct close_request *r, struct close_plan plan,
			   int64_t started, int rc, int error, const char *windows)
{
	struct trace_close ev = close_event(r, plan, started, rc, error, windows);
	trace_close(&ev);
}

/* For the trace: the TCP state and the send queue as close() saw them
 * (the network changes both; the rest of a socket's description does not
 * change once the application has let go of it). */
static void read_changing_facts(struct close_request *r, int fd)
{
	struct tcp_snapshot snap;
	int pending;
	if (probe_tcp_snapshot(fd, &snap) == 0) {
		r->described.tcp_state = snap.state;
		pending = probe_send_queue_known(fd, &snap);
	} else {
		r->described.tcp_state = -1;
		pending = probe_send_queue(fd);
	}
	r->pending_bytes = pending < 0 ? -1 : pending; /* a listener has none: EINVAL */
}

/* A traced close shows every fact, not only those its row needed; read
 * from fd (the application's number, or the held copy) after deciding. */
static void describe_for_trace(struct close_request *r, int fd)
{
	trace_describe_identity(fd, &r->described);
	r->facts.nonblocking = probe_nonblocking(fd) == 1;
	read_changing_facts(r, fd);
}

/* A hand-off's close line is the reaper's to write (trace_close_later): the
 * closing thread pays only for what may change (read_changing_facts);
 * without a record, trace it now from the copy, which is still ours. rc:
 * what close() (0) or dup2()/dup3() (the number) returns. */
static void trace_hand_off(struct close_request *r, const struct close_plan *plan,
			   int64_t started, int copy, int rc)
{
	struct trace_close ev = close_event(r, *plan, started, rc, 0, NULL);
	if (!trace_close_later(copy, &ev)) {
		describe_for_trace(r, copy);
		trace_decision(r, *plan, started, rc, 0, NULL);
	}
	r->traced = true;
}

/* Linux semantics, traced with what Windows would have done; the rows that
 * would differ are counted as findings for the divergence report. */
static int close_passthrough(struct close_request *r)
{
	if (r->tracing)
		describe_for_trace(r, r->fd);
	struct close_request windows = *r;
	windows.facts.passthrough = false;
	gather_socket_facts(&windows);
	struct close_plan would = close_decide(&windows.facts);
	int64_t started = monotonic_ns();
	r->facts = windows.facts;
	int rc = give_up_number(r, true); /* exactly Linux: no clean-up, no wake-up */
	int error = errno;
	int64_t blocked = monotonic_ns() - started;
	r->final_row = would.row;
	if (would.row == ROW_L) /* Linux lingered the whole time: Windows resets */
		r->final_row = blocked >= (int64_t)windows.facts.linger_seconds * NS_PER_SEC
			       ? ROW_L2 : ROW_L1;
	if (r->final_row == ROW_L2)
		stats_note_linger_reset();
	if (would.row == ROW_W1)
		stats_note_w1_abandoned(); /* never retried: leaks on Windows */
	stats_count_close(r->final_row);
	if (r->tracing)
		trace_decision(r, (struct close_plan){ would.row, ACTION_REAL_CLOSE }, started,
			       rc, error, windows_difference(r, would.row));
	errno = error;
	return rc;
}

static int close_socket(struct close_request *r)
{
	struct fd_entry *e = r->entry;
	if (!fd_table_claim_close(e, &r->state)) {
		errno = EBADF; /* another thread is closing this very descriptor */
		return -1;
	}
	int saved_errno = errno;
	int64_t started = monotonic_ns();
	r->socket_id = atomic_load(&e->socket_id);
	r->held_fd = -1;
	r->tracing = trace_enabled();
	r->traced = false;
	r->degraded = false;
	r->facts = (struct close_facts){
		.is_socket = true,
		.is_tcp = fd_kind(r->state) == FD_KIND_TCP,
		.shared_with_process = (r->state & FD_SHARED) != 0,
		.last_reference = fd_table_is_last_reference(r->fd, r->state, r->socket_id),
		.write_shut = (r->state & FD_WRITE_SHUT) != 0,
		.origin = r->origin,
		.passthrough = wspclose_settings.passthrough,
	};
	if (r->state & FD_W1_REFUSED && r->origin == CLOSE_IMPLICIT)
		stats_note_w1_abandoned(); /* Windows would have kept it open */

	/* §1 rows first: they need no probe at all (unless traced). */
	struct close_plan plan = close_decide(&r->facts);
	if ((plan.action != ACTION_REAL_CLOSE || r->tracing) && gather_socket_facts(r) < 0) {
		/* Stale entry: the number no longer holds a socket. */
		errno = saved_errno;
		return give_up_number(r, true);
	}
	plan = close_decide(&r->facts);
	r->final_row = plan.row;
	if (plan.row == ROW_PASSTHROUGH && r->facts.is_tcp)
		return close_passthrough(r);
	/* A hand-off's line is the reaper's to write: here only what may
	 * change once the reaper has the copy (trace_close_later). */
	bool hands_off = plan.action == ACTION_HAND_OFF || plan.action == ACTION_HAND_OFF_LINGER;
	if (r->tracing && hands_off)
		read_changing_facts(r, r->fd);
	else if (r->tracing)
		describe_for_trace(r, r->fd);
	int rc;
	switch (plan.action) {
	case ACTION_REAL_CLOSE:
		rc = close_plainly(r);
		break;
	case ACTION_FAIL_WOULDBLOCK:
		/* W1: nothing changes, the fd stays usable. */
		atomic_fetch_or(&e->state, FD_W1_REFUSED);
		fd_table_release_claim(e);
		stats_count_close(ROW_W1);
		if (r->tracing)
			trace_decision(r, plan, started, -1, EWOULDBLOCK, NULL);
		errno = EWOULDBLOCK;
		return -1;
	case ACTION_HAND_OFF:
	case ACTION_HAND_OFF_LINGER:
		fd_table_leave_epoll_sets(r->fd, e);
		pthread_testcancel(); /* close() stays a cancellation point */
		rc = hand_off(r, &plan, started);
		break;
	case ACTION_ABORT:
		fd_table_leave_epoll_sets(r->fd, e);
		rc = abort_connection(r);
		break;
	case ACTION_LINGER_WAIT:
	default:
		fd_table_leave_epoll_sets(r->fd, e);
		pthread_testcancel();
		rc = linger_close(r);
		break;
	}
	int error = errno;
	stats_count_close(r->final_row);
	if (r->tracing && !r->traced)
		trace_decision(r, plan, started, rc, error, NULL);
	errno = rc >= 0 ? saved_errno : error;
	return rc;
}

/* A number the application closed before: close it again, and report a
 * double close when the kernel says it was not open (not reused since). */
static int close_buried(struct close_request *r)
{
	uint32_t tombstone = FD_TOMBSTONE;
	atomic_compare_exchange_strong(&r->entry->state, &tombstone, 0);
	int rc = r->replacement < 0 ? libc_close(r->fd) : give_up_number(r, true);
	if (rc < 0 && errno == EBADF && r->replacement < 0)
		stats_note_double_close();
	return rc;
}

static int close_request_dispatch(struct close_request *r);

/* The common case: not a socket we know of. Its close is one table load
 * and the real close(), nothing else (not even a table write). */
static bool unknown_to_the_library(int fd)
{
	struct fd_entry *e = files_unshared ? NULL : fd_table_entry(fd);
	return e == NULL || atomic_load_explicit(&e->state, memory_order_acquire) == 0;
}

/* A close of a number the library knows (close_path_close() has already
 * sent the others to the real close()) or its replacement by dup2/dup3. */
static int close_request_run(struct close_request *r)
{
	closing_here++;
	int rc = close_request_dispatch(r);
	closing_here--;
	return rc;
}

/* The entry's state once no other thread is giving the number up. */
static uint32_t settled_state(struct fd_entry *e)
{
	unsigned round = 0;
	uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
	while ((state & FD_RELEASING) && closing_here == 1) {
		/* A close() of another thread is between its real close and its
		 * table update: microseconds, unless it was preempted. */
		if (round++ < 64) {
			syscall(SYS_sched_yield);
		} else {
			struct timespec ts = { 0, 100000 };
			syscall(SYS_nanosleep, &ts, NULL);
		}
		state = atomic_load_explicit(&e->state, memory_order_acquire);
	}
	return state;
}

static int close_request_dispatch(struct close_request *r)
{
	struct fd_entry *e = files_unshared ? NULL : fd_table_entry(r->fd);
	uint32_t state = e ? settled_state(e) : 0;
	r->entry = e;
	if (state == 0) {
		/* Not a socket we know of: nothing extra, not even a table write. */
		if (r->replacement < 0)
			return libc_close(r->fd);
		return give_up_number(r, true);
	}
	if (state == FD_TOMBSTONE)
		return close_buried(r);
	if (state & FD_LIBRARY_OWNED) {
		errno = EBADF; /* the application never opened it */
		return -1;
	}
	if (fd_kind(state) == FD_KIND_EPOLL) {
		fd_table_forget_epoll_set(r->fd, fd_table_is_last_reference(
			r->fd, state, atomic_load(&e->socket_id)));
		r->state = state;
		uint32_t seen = state;
		if (!atomic_compare_exchange_strong(&e->state, &seen, state | FD_CLOSING)) {
			errno = EBADF;
			return -1;
		}
		r->state = state | FD_CLOSING;
		return give_up_number(r, true);
	}
	return close_socket(r);
}

int close_path_close(int fd, enum close_origin origin)
{
	if (unknown_to_the_library(fd))
		return libc_close(fd); /* before a close_request is even set up */
	struct close_request r = { .fd = fd, .origin = origin, .replacement = -1 };
	return close_request_run(&r);
}

int close_path_replace(int source, int target, bool use_dup3, int flags)
{
	struct close_request r = {
		.fd = target, .origin = CLOSE_IMPLICIT,
		.replacement = source, .use_dup3 = use_dup3, .dup3_flags = flags,
	};
	/* The kernel fails an invalid source, flags or target without touching
	 * target: let it, before any row is applied to target. */
	struct fd_entry *src = fd_table_entry(source);
	bool source_ours = src && (atomic_load(&src->state) & FD_LIBRARY_OWNED);
	if (source_ours || syscall(SYS_fcntl, source, F_GETFD) < 0 ||
	    (use_dup3 && (source == target || (flags & ~O_CLOEXEC))) ||
	    syscall(SYS_fcntl, target, F_GETFD) < 0) {
		if (source_ours) {
			errno = EBADF;
			return -1;
		}
		int rc = use_dup3 ? libc_dup3(source, target, flags) : libc_dup2(source, target);
		if (rc >= 0)
			fd_table_note_duplicate(source, rc);
		return rc;
	}
	return close_request_run(&r);
}
