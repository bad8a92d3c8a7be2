/* close_actions.c: carries out the action close_decide() chose for a
 * claimed descriptor (§2, §3): a plain close, a close in the caller for a
 * socket with nothing to tear down, a hand-off to the reaper, an abort or a
 * linger wait. Each ends by giving the number up, which also ends the
 * claim. System calls and atomics only: async-signal-safe, and no
 * cancellation point while the claim is held. */
#include "close_request.h"
#include "config.h"
#include "deadline_heap.h"
#include "epoll_sets.h"
#include "fork_guard.h"
#include "handoff.h"
#include "interleaving.h"
#include "libc_binding.h"
#include "look_gate.h"
#include "monotonic.h"
#include "nursery.h"
#include "raw_syscall.h"
#include "reaper.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the number */

int close_give_up_number(struct close_request *r)
{
	r->number_given_up = true;
	if (r->replacing) {
		/* The entry describes what the number holds next before it
		 * changes hands, so that no moment shows a free number with a
		 * claimed entry; a failed replacement puts the old one back. */
		struct fd_snapshot before;
		fd_table_snapshot(r->entry, &before);
		fd_table_note_duplicate(r->replacement, r->fd);
		int rc = r->use_dup3 ? libc_dup3(r->replacement, r->fd, r->dup3_flags)
				     : libc_dup2(r->replacement, r->fd);
		if (rc < 0) {
			int error = errno;
			fd_table_restore(r->entry, &before);
			r->number_given_up = false;
			errno = error;
		}
		return rc;
	}
	/* Buried before the real close: once the kernel frees the number it
	 * may be reused at once (by a signal handler, another thread), and
	 * the new owner must find no claim on it. The tombstone lets a later
	 * close() of the same, unreused number be told as a double close. */
	fd_table_bury(r->entry);
	interleaving_point();
	return (int)raw_syscall(SYS_close, r->fd);
}

/* Threads blocked on a socket return (Windows cancels them); a listener
 * stops accepting. */
static void wake_blocked_callers(int fd)
{
	raw_shutdown(fd, SHUT_RDWR);
}

/* ---------------------------------------------------------------- plain */

/* Kernel semantics, or a socket that is not TCP. A close that is not the
 * last reference, or of a socket another process holds, changes nothing
 * but the descriptor (§4): no epoll_ctl (an inherited epoll set is the
 * other process's too), no shutdown. */
int close_action_plain(struct close_request *r)
{
	if (r->facts.last_reference && !r->facts.shared_with_process) {
		fd_table_leave_epoll_sets(r->fd, r->entry);
		wake_blocked_callers(r->fd);
	} else if (!r->facts.shared_with_process) {
		fd_table_note_stale_epoll(r->fd, r->entry);
	}
	return close_give_up_number(r);
}

/* A socket with nothing to tear down (listening, never connected, already
 * closed, or our FIN already acknowledged) is closed in the caller (§3):
 * when close() returns, a listener refuses connections and the port can be
 * bound again. Linger is cleared first: it must neither block nor reset
 * (after shutdown it is ignored, row G2). */
int close_action_now(struct close_request *r)
{
	fd_table_leave_epoll_sets(r->fd, r->entry);
	if (r->tcp_state != TCP_STATE_CLOSE)
		wake_blocked_callers(r->fd); /* accept(), connect() or recv() return */
	if (r->facts.linger_on)
		set_linger(r->fd, false, r->linger.l_linger);
	return close_give_up_number(r);
}

int close_action_abort(struct close_request *r)
{
	fd_table_leave_epoll_sets(r->fd, r->entry);
	raw_abort_connection(r->fd);
	return close_give_up_number(r);
}

/* ---------------------------------------------------------------- hand-off */

/* What a hand-off degrades to when no copy can be held: the kernel's own
 * graceful close, never lingering (blocked threads woken all the same). */
static int close_gracefully_now(struct close_request *r)
{
	r->degraded = true;
	close_trace_degraded(r);
	/* Unread data: the RST the close owes anyway, sent now (a blocked
	 * thread would otherwise keep the socket open and delay it). */
	if (probe_receive_queue(r->fd) > 0) {
		raw_abort_connection(r->fd);
	} else {
		if (r->facts.linger_on)
			set_linger(r->fd, false, r->linger.l_linger);
		wake_blocked_callers(r->fd);
	}
	return close_give_up_number(r);
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
	atomic_store_explicit(&held->held.adopted, false, memory_order_relaxed);
	held->held.heap_index = DEADLINE_HEAP_NOWHERE;
	held->held.data_segs_in = r->data_segs_in;
	held->held.data_segs_known = r->data_segs_read;
	held->held.start = r->start;
	/* The reaper sets it (the inode) when it traces the adoption. */
	atomic_store(&held->socket_id, 0);
	fd_table_publish_held(copy_fd, FD_KIND_TCP | FD_LIBRARY_OWNED | FD_HELD);
}

/* What is left unread, and whether the peer has closed (enum
 * teardown_start): one peek, or SIOCINQ where a peek could miss unread
 * data (SO_PEEK_OFF set; io_uring can set it unseen), which cannot tell
 * the peer's FIN. */
static enum teardown_start look_at_receive_side(const struct close_request *r)
{
	if ((r->state & FD_PEEK_OFFSET) || epoll_sets_io_uring_seen())
		return probe_receive_queue(r->fd) > 0 ? START_UNREAD : START_PEER_OPEN;
	int unread = probe_unread(r->fd);
	if (unread > 0)
		return START_UNREAD;
	if (unread == -ECONNRESET || unread == -EPIPE)
		return START_PEER_RESET;
	return unread == 0 ? START_PEER_CLOSED : START_PEER_OPEN;
}

/* Whether to look at the teardown right after the shutdown: while the
 * peer's ACK of our FIN is usually there when shutdown() returns (as over
 * loopback, for a peer that had closed first). Shared by every closing
 * thread. */
static struct look_gate teardown_gate;

/* Sends our FIN from the caller, as the kernel's close() would: shutdown()
 * queues it behind the data and returns without waiting, and threads
 * blocked on the socket return. `look`: read TCP_INFO at once, for a peer
 * that usually acknowledges at once. True when the teardown is then over
 * and may end here (linger off: the number is closed with nothing held);
 * false to hand the copy off, shut down (START_SHUT_DOWN: only the ACK is
 * waited for), or as it was when shutdown() failed (the reaper tries). */
static bool shut_down_in_caller(struct close_request *r, bool look, bool may_end_here)
{
	/* ENOTCONN: both FINs are through already (the peer's end is gone,
	 * ours is in TIME_WAIT or CLOSE), or a reset came; nothing is left to
	 * tear down. */
	int rc = raw_shutdown(r->fd, SHUT_RDWR);
	if (rc != 0 && rc != -ENOTCONN)
		return false;
	if (rc == 0) {
		r->start = START_SHUT_DOWN;
		/* Data segments counted from here tell the reaper data after
		 * close from the peer's own reset, when outcomes are observed;
		 * a count read earlier in this close() does as well (data that
		 * came before the peek is unread data, and an RST). */
		if (!look && (!stats_report_wanted() || r->data_segs_read))
			return false;
	}
	struct tcp_snapshot snap;
	if (probe_tcp_snapshot(r->fd, &snap) != 0)
		return false;
	r->tcp_state = snap.state;
	r->data_segs_in = snap.data_segs_in;
	r->data_segs_read = true;
	bool over = !tcp_state_is_draining(snap.state);
	if (look)
		look_gate_note(&teardown_gate, over);
	/* Only a look, or a connection already over, ends it here: a count
	 * read for the trace changes nothing. */
	if (!over || !may_end_here || !(look || rc != 0))
		return false;
	/* CLOSE is also what a reset leaves: only a trace or the statistics
	 * tell them apart (as the reaper does). */
	int error = snap.state == TCP_STATE_CLOSE && stats_report_wanted()
		    ? probe_socket_error(r->fd) : 0;
	r->torn_down = true;
	r->torn_down_state = snap.state;
	r->torn_down_outcome = error == ECONNRESET || error == EPIPE ? OUTCOME_PEER_RESET
								     : OUTCOME_FIN_ACKED;
	return true;
}

/* N1 (nursery.h): a copy whose release waits for the ACK of its FIN alone,
 * with a deadline far beyond the sweep. */
static bool may_wait_in_nursery(const struct close_request *r, const struct close_plan *plan,
				const struct fd_entry *held)
{
	return plan->action == ACTION_HAND_OFF && !r->facts.linger_on &&
	       held->held.start == START_SHUT_DOWN &&
	       held->held.deadline_ns - held->held.since_ns > 4 * NURSERY_SWEEP_NS;
}

/* G1, G2, W2 and the implicit linger closes. The closing thread looks at
 * the receive side (one peek) and, unless an RST is owed, sends the FIN
 * itself (shutdown); when the peer had closed first it also looks whether
 * the peer acknowledged at once, and if so it is done. Otherwise an
 * O_CLOEXEC copy high in the descriptor space goes to the reaper, which
 * only waits for the ACK (or sends the RST), and the application's number
 * is given up at once. */
int close_action_hand_off(struct close_request *r, const struct close_plan *plan)
{
	fd_table_leave_epoll_sets(r->fd, r->entry);
	/* A copy would keep an epoll registration alive that no one can
	 * delete any more: the kernel's own close lets it go with the file. */
	if (r->state & FD_STALE_EPOLL)
		return close_gracefully_now(r);
	r->start = look_at_receive_side(r);
	bool owes_fin = r->start == START_PEER_OPEN || r->start == START_PEER_CLOSED;
	/* A dup2()/dup3() that replaces the number may still fail, and must
	 * then leave the socket as it was: its copy is shut down after it. */
	if (owes_fin && r->replacing)
		close_trace_before_shutdown(r, false);
	if (owes_fin && !r->replacing) {
		bool may_end_here = plan->action == ACTION_HAND_OFF && !r->facts.linger_on;
		bool look = may_end_here && r->start == START_PEER_CLOSED &&
			    look_gate_open(&teardown_gate);
		close_trace_before_shutdown(r, look); /* the socket as close() found it */
		if (shut_down_in_caller(r, look, may_end_here)) {
			close_trace_before_shutdown(r, true); /* if not yet (ENOTCONN) */
			stats_count_release(r->torn_down_outcome);
			return close_give_up_number(r);
		}
	}
	if (!reaper_is_running() || !reaper_reserve())
		return close_gracefully_now(r);
	interleaving_point();
	/* A fork() now would give the child a copy not yet marked held. */
	if (!fork_guard_try_enter()) {
		reaper_unreserve();
		return close_gracefully_now(r);
	}
	int copy = raw_dup_high(r->fd);
	struct fd_entry *held = copy >= 0 ? fd_table_entry(copy) : NULL;
	interleaving_point();
	if (held == NULL) {
		if (copy >= 0)
			raw_close(copy);
		fork_guard_leave();
		reaper_unreserve();
		return close_gracefully_now(r);
	}
	/* Ours until it is pushed or placed (handoff.h, I6). */
	int delivering = handoff_delivery_begin(copy);
	fill_held_entry(copy, held, r, plan);
	fork_guard_leave();
	r->held_fd = copy;
	/* Not the last reference any more: nothing on the wire. */
	int rc = close_give_up_number(r);
	interleaving_point();
	if (!r->number_given_up) {
		/* The replacing dup failed: fd is still the application's. */
		int error = errno;
		fork_guard_forget_and_close(copy);
		handoff_delivery_end(delivering);
		reaper_unreserve();
		r->held_fd = -1;
		errno = error;
		return rc;
	}
	if (owes_fin && r->replacing && raw_shutdown(copy, SHUT_RDWR) == 0)
		held->held.start = START_SHUT_DOWN;
	/* Recorded before the reaper can see the copy (and release it). */
	close_trace_hand_off(r, plan, copy, rc);
	int64_t now = held->held.since_ns; /* read a moment ago, when the copy was made */
	if (!may_wait_in_nursery(r, plan, held) || !nursery_place(copy, now))
		reaper_hand_off(copy, held->held.start != START_SHUT_DOWN);
	handoff_delivery_end(delivering);
	/* In place of the reaper, on this CPU: what an earlier close left. */
	nursery_release_settled(now);
	return rc;
}

/* ---------------------------------------------------------------- linger */

/* Waits (bounded by the deadline) until our FIN is acknowledged. Returns
 * true when the teardown finished, false at the deadline. */
static bool wait_for_drain(int fd, int64_t deadline)
{
	/* Edge-triggered, no event bits: fires on TCP state changes only. It
	 * is ours, high up; an application dup2() onto its number takes it
	 * over (reaper_vacate), and then this wait polls instead. */
	int ep = -1;
	if (fork_guard_try_enter()) { /* marked before a fork() or a dup2() sees it */
		ep = raw_move_high((int)raw_syscall(SYS_epoll_create1, EPOLL_CLOEXEC));
		if (ep >= 0)
			fd_table_set_transient(ep);
		fork_guard_leave();
	}
	struct fd_entry *ep_entry = ep >= 0 ? fd_table_entry(ep) : NULL;
	if (ep >= 0) {
		struct epoll_event ev = { .events = EPOLLET, .data.fd = fd };
		if (raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			fork_guard_forget_and_close(ep);
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
		    raw_syscall(SYS_epoll_pwait, ep, &ev, 1, (int)(left_ms < 100 ? left_ms : 100),
			    NULL, 0) >= 0)
			continue;
		if (still_ours && errno == EINTR)
			continue;
		/* No descriptor to spare: poll the state with a short backoff. */
		int64_t ms = backoff_ms < left_ms ? backoff_ms : left_ms;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(ms * NS_PER_MS) };
		raw_syscall(SYS_nanosleep, &ts, NULL);
		if (backoff_ms < 16)
			backoff_ms *= 2;
	}
	/* Still ours (not taken over by a dup2()) and closed in one window. */
	fork_guard_enter();
	if (ep >= 0 && ep_entry != NULL && (atomic_load(&ep_entry->state) & FD_LIBRARY_OWNED)) {
		fd_table_forget(ep);
		raw_close(ep);
	}
	fork_guard_leave();
	return drained;
}

/* L1/L2: block up to the linger time for the data to be acknowledged, then
 * close gracefully (L1) or reset the connection before returning (L2). */
int close_action_linger_wait(struct close_request *r)
{
	fd_table_leave_epoll_sets(r->fd, r->entry);
	int64_t deadline = monotonic_ns() + (int64_t)r->facts.linger_seconds * NS_PER_SEC;
	r->final_row = ROW_L1;
	if (probe_receive_queue(r->fd) > 0)
		return close_action_abort(r); /* unread data: RST, in every row */
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
		rc = close_give_up_number(r); /* not the last reference */
		subject = copy;
	}
	bool drained = wait_for_drain(subject, deadline);
	/* A fork child or an application dup2() may have taken the copy's
	 * number meanwhile (reaper_vacate): then it is not ours to touch. From
	 * that look to its close, no dup2() can take it (a window). */
	if (copy >= 0)
		fork_guard_enter();
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
		return close_give_up_number(r);
	if (ours) {
		fd_table_forget(copy);
		raw_close(copy);
	}
	fork_guard_leave();
	return rc;
}
