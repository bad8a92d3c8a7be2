/* close_trace.c: what a traced close reads and writes (§7), kept out of
 * the close path's control flow: the close path calls these at fixed
 * points and they do nothing unless tracing is on. Also what-if mode
 * (WSPCLOSE_PASSTHROUGH=1): Linux semantics, traced with what Windows
 * would have done. */
#include "close_request.h"
#include "monotonic.h"
#include "stats.h"
#include "tcp_probe.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What-if mode: what Windows would have done differently. */
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
				     int rc, int error, const char *windows)
{
	return (struct trace_close){
		.fd = r->fd, .origin = r->origin, .replaced = r->replacing, .by_fclose = r->by_fclose,
		.socket = &r->described, .facts = &r->facts, .pending = r->pending_bytes,
		.plan = { r->final_row, r->degraded ? ACTION_DEGRADE
					: r->torn_down ? ACTION_TEARDOWN_NOW : plan.action },
		.held_fd = r->held_fd,
		.blocked_ns = monotonic_ns() - r->started_ns, .result = rc, .error = error,
		.windows = windows,
	};
}

static void write_close_line(struct close_request *r, struct close_plan plan, int rc, int error,
			     const char *windows)
{
	struct trace_close ev = close_event(r, plan, rc, error, windows);
	trace_close(&ev);
	r->traced = true;
}

/* The TCP state and the send queue as close() saw them (the network
 * changes both; the rest of a socket's description does not change once
 * the application has let go of it). */
static void read_changing_facts(struct close_request *r, int fd)
{
	struct tcp_snapshot snap;
	int pending;
	if (probe_tcp_snapshot(fd, &snap) == 0) {
		r->described.tcp_state = snap.state;
		if (!r->data_segs_read) { /* spares the hand-off a TCP_INFO of its own */
			r->data_segs_in = snap.data_segs_in;
			r->data_segs_read = true;
		}
		pending = probe_send_queue_known(fd, &snap);
	} else {
		r->described.tcp_state = -1;
		pending = probe_send_queue(fd);
	}
	r->pending_bytes = pending < 0 ? -1 : pending; /* a listener has none: EINVAL */
}

/* What cannot change while the socket lives, and O_NONBLOCK. */
static void describe_identity(struct close_request *r, int fd)
{
	char remote[sizeof r->described.remote];
	memcpy(remote, r->described.remote, sizeof remote);
	trace_describe_identity(fd, &r->described);
	if (r->described.remote[0] == '\0') /* gone: the one read before the shutdown */
		memcpy(r->described.remote, remote, sizeof remote);
	r->facts.nonblocking = probe_nonblocking(fd) == 1;
}

/* A traced close shows every fact, not only those its row needed; read
 * from fd (the application's number, or the held copy) after deciding. */
static void describe(struct close_request *r, int fd)
{
	int saved = errno;
	describe_identity(r, fd);
	read_changing_facts(r, fd);
	r->described_fully = true;
	errno = saved;
}

static bool hands_off(const struct close_plan *plan)
{
	return plan->action == ACTION_HAND_OFF || plan->action == ACTION_HAND_OFF_LINGER;
}

void close_trace_prepare(struct close_request *r, const struct close_plan *plan)
{
	if (!r->tracing)
		return;
	/* A hand-off's line is the reaper's to write: here only what may
	 * change once the reaper has the copy (trace_close_later). */
	if (hands_off(plan)) {
		int saved = errno;
		read_changing_facts(r, r->fd);
		errno = saved;
	} else {
		describe(r, r->fd);
	}
}

void close_trace_degraded(struct close_request *r)
{
	if (r->tracing && !r->described_fully)
		describe(r, r->fd);
}

/* Before the closer's shutdown: once both FINs are through, the socket
 * has no peer address left to read, and that may be before the reaper
 * takes the copy. `full`: the line may be written here (the teardown may
 * end in the call); otherwise only the peer's address is kept, for the
 * reaper's line. */
void close_trace_before_shutdown(struct close_request *r, bool full)
{
	if (!r->tracing || r->described_fully)
		return;
	int saved = errno;
	if (full) {
		/* The changing facts were read by close_trace_prepare(). */
		describe_identity(r, r->fd);
		r->described_fully = true;
	} else {
		trace_describe_peer(r->fd, &r->described);
	}
	errno = saved;
}

/* Without a record for the reaper, the line is written now from the copy,
 * which is still ours. rc: what close() (0) or dup2()/dup3() returns. */
void close_trace_hand_off(struct close_request *r, const struct close_plan *plan, int copy,
			  int rc)
{
	if (!r->tracing)
		return;
	struct trace_close ev = close_event(r, *plan, rc, 0, NULL);
	if (trace_close_later(copy, &ev)) {
		r->traced = true;
		return;
	}
	if (!r->described_fully)
		describe(r, copy);
	write_close_line(r, *plan, rc, 0, NULL);
}

void close_trace_finish(struct close_request *r, const struct close_plan *plan, int rc,
			int error)
{
	if (!r->tracing || r->traced)
		return;
	if (!r->described_fully && !r->number_given_up)
		describe(r, r->fd);
	if (!r->torn_down) {
		write_close_line(r, *plan, rc, error, NULL);
		return;
	}
	/* Its release line follows at once, as a held copy's would later. */
	struct trace_close ev = close_event(r, *plan, rc, error, NULL);
	trace_close_and_release(&ev, r->described.inode, held_outcome_name(r->torn_down_outcome),
				r->torn_down_state, monotonic_ns() - r->started_ns);
	r->traced = true;
}

/* Linux semantics, traced with what Windows would have done; the rows that
 * would differ are counted as findings for the divergence report. */
int close_passthrough(struct close_request *r)
{
	if (r->tracing)
		describe(r, r->fd);
	struct close_request windows = *r;
	windows.facts.passthrough = false;
	close_gather_facts(&windows);
	struct close_plan would = close_decide(&windows.facts);
	r->facts = windows.facts;
	int64_t started = monotonic_ns();
	int rc = close_give_up_number(r); /* exactly Linux: no clean-up, no wake-up */
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
	if (r->tracing)
		write_close_line(r, (struct close_plan){ would.row, ACTION_REAL_CLOSE }, rc, error,
				 windows_difference(r, would.row));
	errno = error;
	return rc;
}
