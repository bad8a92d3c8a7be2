/* held_copies.c: what happens to each held copy in the reaper thread (§3):
 * adoption (RST for unread data, else the shutdown when the closer could
 * not make it, then a look once the copy has settled, or registration),
 * its events, its deadline, its
 * release and trace lines, and its move when the application dup2()s onto
 * its number. The reaper thread's alone. */
#include "held_copies.h"
#include "close_decision.h"
#include "deadline_heap.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "handoff.h"
#include "interleaving.h"
#include "look_gate.h"
#include "monotonic.h"
#include "nursery.h"
#include "raw_syscall.h"
#include "settle_queue.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* How long collected trace lines may wait for more before they are written:
 * under load a dozen lines then share one write(); a quiet program sees its
 * lines 1 ms late at most. */
#define TRACE_BATCH_NS NS_PER_MS

static struct {
	struct deadline_heap deadlines;
	/* Released while tracing, their lines collected but not yet written:
	 * an exit waiting for the teardowns (the exit report) waits for them. */
	_Atomic long untold_releases;
	/* After settling (settle_queue.h). */
	struct look_gate settled;
} held;

/* ---------------------------------------------------------------- release */

static void note_heap_index(int fd, uint32_t index, void *context)
{
	(void)context;
	fd_table_entry(fd)->held.heap_index = index;
}

/* Writes the trace lines collected so far. */
void held_copies_flush_trace(void)
{
	trace_flush();
	atomic_store(&held.untold_releases, 0);
}

/* Before the reaper traces: its lines leave through flush_trace() alone
 * (never as a full collection written behind its back), so that
 * untold_releases stays accurate. */
static void make_room_for_trace_line(void)
{
	if (!trace_room_for_a_line())
		held_copies_flush_trace();
}

/* `state`: the TCP state that allowed the release (for the trace). */
static void release_in_state(int fd, enum held_outcome outcome, int state)
{
	struct fd_entry *e = fd_table_entry(fd);
	bool reset = outcome == OUTCOME_GRACE_TIMEOUT || outcome == OUTCOME_LINGER_TIMEOUT ||
		     outcome == OUTCOME_UNREAD_DATA;
	if (e->held.adopted)
		deadline_heap_remove(&held.deadlines, e->held.heap_index);
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
	fork_guard_forget_and_close(fd);
	interleaving_point();
	/* Counted before the copy stops counting as held, so that an exit
	 * waiting for both never finds a moment with neither. */
	if (trace_collected_since() != 0)
		atomic_fetch_add(&held.untold_releases, 1);
	handoff_released();
}

static void release(int fd, enum held_outcome outcome)
{
	release_in_state(fd, outcome, trace_enabled() ? probe_tcp_state(fd) : -1);
}

bool held_copy_teardown_over(int fd, enum held_outcome *outcome_out, int *state_out)
{
	/* Unobserved, only "over or not" matters: nothing left to acknowledge
	 * (SIOCOUTQ counts our FIN too, once queued) says it without the
	 * socket lock and the cache lines TCP_INFO reads. */
	if (!stats_report_wanted() && probe_send_queue(fd) == 0) {
		*outcome_out = OUTCOME_FIN_ACKED;
		*state_out = -1; /* not traced */
		return true;
	}
	struct tcp_snapshot now;
	int rc = probe_tcp_snapshot(fd, &now);
	if (rc >= 0 && tcp_state_is_draining(now.state))
		return false;
	enum held_outcome outcome = OUTCOME_FIN_ACKED;
	bool closed = rc >= 0 && now.state == TCP_STATE_CLOSE;
	if (closed && now.segs_out == 0)
		outcome = OUTCOME_NOT_CONNECTED; /* a listener, or never connected */
	/* CLOSE is both "both FINs done" and "reset": SO_ERROR tells them apart. */
	int error = closed && outcome == OUTCOME_FIN_ACKED && stats_report_wanted()
		    ? probe_socket_error(fd) : 0;
	if (error == ECONNRESET || error == EPIPE) {
		/* Data segments after our shutdown: the kernel answered them with
		 * RST. Otherwise the peer reset on its own. */
		bool data_came = now.data_segs_in != fd_table_entry(fd)->held.data_segs_in;
		outcome = data_came ? OUTCOME_DATA_AFTER_CLOSE : OUTCOME_PEER_RESET;
	}
	*outcome_out = outcome;
	*state_out = rc >= 0 ? now.state : -1;
	return true;
}

/* Releases fd when its teardown is over (true); otherwise it keeps
 * waiting. */
static bool check_teardown(int fd)
{
	enum held_outcome outcome;
	int state;
	if (!held_copy_teardown_over(fd, &outcome, &state))
		return false;
	release_in_state(fd, outcome, state);
	return true;
}

static uint64_t event_token(int fd, struct fd_entry *e)
{
	return ((uint64_t)atomic_load(&e->held.generation) << 32) | (uint32_t)fd;
}

/* The token names an adopted copy that is still held, not an earlier copy
 * with the same number. */
static bool held_copy_is_live(uint64_t token)
{
	struct fd_entry *e = fd_table_entry((int)(uint32_t)token);
	uint32_t live = FD_LIBRARY_OWNED | FD_HELD;
	return e != NULL && (atomic_load_explicit(&e->state, memory_order_acquire) & live) == live &&
	       atomic_load(&e->held.generation) == (uint32_t)(token >> 32) && e->held.adopted;
}

/* Edge-triggered, and the mask holds no EPOLLOUT: data ACKs (EPOLLOUT
 * wake-ups) are filtered out by the kernel, TCP state changes (key-less
 * wake-ups) are reported. After SHUT_RDWR the socket is readable and hung
 * up, so the registration is ready at once. */
static bool watch(int fd, struct fd_entry *e)
{
	struct epoll_event ev = { .events = EPOLLET | EPOLLIN | EPOLLRDHUP,
				  .data.u64 = event_token(fd, e) };
	return raw_syscall(SYS_epoll_ctl, handoff_epoll_fd(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

/* A copy shut down, looked at once it has settled (true), or not (false:
 * register it now). */
static bool settle(int fd, struct fd_entry *e)
{
	return look_gate_open(&held.settled) && settle_queue_add(event_token(fd, e));
}

static void look_at_settled(uint64_t token)
{
	int fd = (int)(uint32_t)token;
	if (!held_copy_is_live(token))
		return; /* released meanwhile (its deadline), or moved */
	bool over = check_teardown(fd);
	look_gate_note(&held.settled, over);
	if (!over && !watch(fd, fd_table_entry(fd)))
		release(fd, OUTCOME_NO_ROOM);
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
	/* Unread data at close: RST, as the kernel and RFC 1122 do. The
	 * closer's peek said (enum teardown_start); a reset it took is the
	 * peer's (SO_ERROR no longer shows it). */
	enum teardown_start start = e->held.start;
	if (start == START_UNREAD || start == START_PEER_RESET) {
		release(fd, start == START_UNREAD ? OUTCOME_UNREAD_DATA : OUTCOME_PEER_RESET);
		return;
	}
	/* Data segments counted from here tell data-after-close from a peer's
	 * reset; the closer counted them if it read TCP_INFO (a socket it did
	 * not know to be connected), else they are counted here when the
	 * outcome is observed at all. */
	struct tcp_snapshot before;
	if (!e->held.data_segs_known && stats_report_wanted() &&
	    probe_tcp_snapshot(fd, &before) == 0)
		e->held.data_segs_in = before.data_segs_in;
	/* FIN after the queued data; wakes threads still blocked on it. A
	 * connection already over (both FINs, or a reset) answers ENOTCONN:
	 * its outcome now. A listener stops listening here and is released at
	 * its first look. */
	int rc = start == START_SHUT_DOWN ? 0 : raw_shutdown(fd, SHUT_RDWR);
	if (rc == -ENOTCONN) {
		check_teardown(fd);
		return;
	}
	if (rc < 0 || !deadline_heap_push(&held.deadlines, fd, e->held.deadline_ns)) {
		/* Not a socket any more, or no room: the kernel finishes it. */
		release(fd, rc < 0 ? OUTCOME_NOT_CONNECTED : OUTCOME_NO_ROOM);
		return;
	}
	e->held.adopted = true;
	/* A peer that has not closed yet usually holds back its ACK of our FIN
	 * (delayed ACK) until it closes too, and one that has closed answers
	 * within a round trip: look once it has settled, or wait for events.
	 * The registration is ready at once after the shutdown: its first
	 * event looks at the teardown. */
	if (!settle(fd, e) && !watch(fd, e))
		release(fd, OUTCOME_NO_ROOM);
}

void held_copies_end_round(void)
{
	settle_queue_end_round(monotonic_ns(), look_at_settled);
}

void held_copies_adopt_handed_off(void)
{
	int32_t fd = handoff_take_all();
	while (fd >= 0) {
		int32_t next = atomic_load(&fd_table_entry(fd)->next_handoff);
		interleaving_point();
		adopt(fd);
		fd = next;
	}
}

void held_copies_adopt_from_nursery(int64_t min_age_ns)
{
	nursery_sweep(monotonic_ns(), min_age_ns, adopt);
}

void held_copies_on_event(uint64_t token)
{
	if (held_copy_is_live(token)) /* else stale: that copy is already released */
		check_teardown((int)(uint32_t)token);
}

void held_copies_expire(int64_t now)
{
	const struct deadline_item *first;
	while ((first = deadline_heap_first(&held.deadlines)) != NULL &&
	       first->deadline_ns <= now) {
		int fd = first->fd;
		struct fd_entry *e = fd_table_entry(fd);
		release(fd, e->held.deadline_kind == DEADLINE_LINGER ? OUTCOME_LINGER_TIMEOUT
								     : OUTCOME_GRACE_TIMEOUT);
	}
}

/* When the collected trace lines are due (INT64_MAX: none to write). */
int64_t held_copies_trace_due(void)
{
	int64_t since = trace_collected_since();
	return since != 0 ? since + TRACE_BATCH_NS : INT64_MAX;
}

int held_copies_timeout_ms(int64_t now, int64_t flush_due)
{
	const struct deadline_item *first = deadline_heap_first(&held.deadlines);
	int64_t until = first != NULL ? first->deadline_ns : INT64_MAX;
	if (flush_due < until)
		until = flush_due;
	int64_t settled_at = settle_queue_due_at();
	if (settled_at < until)
		until = settled_at;
	if (until == INT64_MAX)
		return -1; /* nothing to time: sleep until an event */
	int64_t left = until - now;
	if (left <= 0)
		return 0;
	int64_t ms = (left + NS_PER_MS - 1) / NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}


void held_copies_move(int fd)
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
	e->held.data_segs_known = old->held.data_segs_known;
	e->held.row = old->held.row;
	e->held.deadline_kind = old->held.deadline_kind;
	e->held.linger_on = old->held.linger_on;
	e->held.start = old->held.start;
	atomic_store(&e->held.adopted, atomic_load(&old->held.adopted));
	e->held.heap_index = old->held.heap_index;
	atomic_fetch_add(&e->held.generation, 1);
	atomic_store(&e->socket_id, atomic_load(&old->socket_id));
	fd_table_publish_held(moved, atomic_load(&old->state));
	fork_guard_leave();
	raw_syscall(SYS_epoll_ctl, handoff_epoll_fd(), EPOLL_CTL_DEL, fd, NULL);
	watch(moved, e);
	if (e->held.heap_index != DEADLINE_HEAP_NOWHERE)
		held.deadlines.items[e->held.heap_index].fd = moved;
	atomic_fetch_add(&old->held.generation, 1);
	old->held.heap_index = DEADLINE_HEAP_NOWHERE;
	old->held.adopted = false;
	fork_guard_forget_and_close(fd);
	check_teardown(moved);
}


bool held_copies_init(size_t max_held)
{
	if (held.deadlines.cap != max_held) {
		deadline_heap_free(&held.deadlines);
		if (!deadline_heap_init(&held.deadlines, max_held, note_heap_index, NULL))
			return false;
	}
	held.deadlines.len = 0;
	return settle_queue_init(max_held);
}

long held_copies_untold(void)
{
	return atomic_load(&held.untold_releases);
}

void held_copies_forget_after_fork(void)
{
	atomic_store(&held.untold_releases, 0);
	held.deadlines.len = 0;
	settle_queue_forget();
}
