/* close_request.h: one close in progress, shared by the close path
 * (close_path.c: claim, decide, single exit), the actions that carry a row
 * out (close_actions.c) and the trace glue (close_trace.c). */
#ifndef WSPCLOSE_CLOSE_REQUEST_H
#define WSPCLOSE_CLOSE_REQUEST_H

#include "close_decision.h"
#include "fd_table.h"
#include "stats.h"
#include "trace.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct close_request {
	int fd;
	struct fd_entry *entry;
	enum close_origin origin;
	bool cancellation_point; /* close(), not syscall(SYS_close) or an implicit close */
	bool replacing;       /* dup2/dup3 onto fd, not a close */
	bool by_fclose;       /* that dup2 is the library's, for fclose() */
	int replacement;      /* then: the source taking fd's number */
	bool use_dup3;
	int dup3_flags;
	uint32_t state;       /* the entry as claimed (with FD_CLOSING) */
	uint64_t socket_id;
	struct close_facts facts;
	struct linger linger;
	int tcp_state;        /* TCP_INFO state when read, else -1 */
	uint32_t data_segs_in;/* TCP_INFO when read: for the reaper's outcome */
	bool data_segs_read;  /* data_segs_in is known (the row's or the trace's TCP_INFO) */
	int64_t started_ns;
	/* Filled while acting: */
	bool number_given_up; /* the number is closed or replaced: no claim left */
	enum close_row final_row; /* L becomes L1 or L2 */
	int held_fd;
	bool degraded;        /* a hand-off that could not hold a copy */
	uint8_t start;        /* enum teardown_start: what the hand-off's peek found */
	bool torn_down;       /* a hand-off whose teardown ended inside the call */
	int torn_down_state;  /* then: the TCP state, and how it ended */
	enum held_outcome torn_down_outcome;
	/* For the trace only: */
	bool tracing;
	bool traced;          /* the close line is already written (or recorded) */
	bool described_fully; /* identity, O_NONBLOCK and queues read for the line */
	int pending_bytes;    /* SIOCOUTQ before acting (traced closes only) */
	struct trace_socket described;
};

/* close_path.c: the probes the row needs (SO_LINGER, TCP_INFO, and for the
 * W and L rows O_NONBLOCK and SIOCOUTQ). Negative: the entry is stale. */
int close_gather_facts(struct close_request *r);

/* close_actions.c: each carries out one action of close_decide() and gives
 * the number up (except W1, which keeps it). They return what close() or
 * dup2()/dup3() returns; errno is set when that is negative. */
int close_action_plain(struct close_request *r);
int close_action_now(struct close_request *r);
int close_action_hand_off(struct close_request *r, const struct close_plan *plan);
int close_action_abort(struct close_request *r);
int close_action_linger_wait(struct close_request *r);
/* Gives up fd's number (the real close, or the replacement by dup2/dup3)
 * and ends the claim; the entry is buried first, so the number is never
 * free while the entry still says "being closed". */
int close_give_up_number(struct close_request *r);

/* close_trace.c: what the trace needs, read outside the decision. */
void close_trace_prepare(struct close_request *r, const struct close_plan *plan);
void close_trace_hand_off(struct close_request *r, const struct close_plan *plan, int copy,
			  int rc);
void close_trace_degraded(struct close_request *r);
/* Before a teardown inside the call: describes the socket as it is. */
void close_trace_before_shutdown(struct close_request *r, bool full);
void close_trace_finish(struct close_request *r, const struct close_plan *plan, int rc,
			int error);
/* What-if mode (WSPCLOSE_PASSTHROUGH=1): Linux semantics, traced with what
 * Windows would have done. */
int close_passthrough(struct close_request *r);

#endif
