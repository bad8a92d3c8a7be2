/* close_decision.c: the pure rule of §1/§2: socket facts in, the row and
 * the action out. No system calls and no globals, so it is tested directly. */
#include "close_decision.h"

static bool is_last_reference_tcp(const struct close_facts *f)
{
	return f->is_socket && f->is_tcp && !f->shared_with_process &&
	       f->last_reference && !f->passthrough;
}

bool close_needs_drain_facts(const struct close_facts *f)
{
	return is_last_reference_tcp(f) && !f->write_shut && f->linger_on &&
	       f->linger_seconds > 0;
}

static struct close_plan plan(enum close_row row, enum close_action action)
{
	struct close_plan p = { row, action };
	return p;
}

/* The row of §2 for the last reference of a TCP socket. */
static struct close_plan windows_plan(const struct close_facts *f)
{
	/* Windows ignores linger once the application shut the send side. */
	if (f->write_shut)
		return plan(ROW_G2, ACTION_HAND_OFF);
	if (!f->linger_on)
		return plan(ROW_G1, ACTION_HAND_OFF);
	if (f->linger_seconds <= 0)
		return plan(ROW_A1, ACTION_ABORT);

	/* Linger N>0. An implicit close can neither fail nor block: the reaper
	 * enforces the linger deadline in the background. */
	if (f->origin == CLOSE_IMPLICIT)
		return plan(ROW_L, ACTION_HAND_OFF_LINGER);
	/* Nor can wineserver's: data still queued is the W1 situation, which
	 * can never reach the program (a finding), handed off like the rest. */
	if (f->never_block)
		return f->nonblocking && !f->pending ? plan(ROW_W2, ACTION_HAND_OFF)
		       : plan(f->nonblocking ? ROW_W1 : ROW_L, ACTION_HAND_OFF_LINGER);
	if (f->nonblocking)
		return f->pending ? plan(ROW_W1, ACTION_FAIL_WOULDBLOCK)
				  : plan(ROW_W2, ACTION_HAND_OFF);
	return plan(ROW_L, ACTION_LINGER_WAIT);
}

struct close_plan close_decide(const struct close_facts *f)
{
	if (!f->is_socket)
		return plan(ROW_NOT_SOCKET, ACTION_REAL_CLOSE);
	if (!f->is_tcp)
		return plan(ROW_NOT_TCP, ACTION_REAL_CLOSE);
	if (!f->last_reference)
		return plan(ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE);
	if (f->shared_with_process)
		return plan(ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE);
	if (f->passthrough)
		return plan(ROW_PASSTHROUGH, ACTION_REAL_CLOSE);
	struct close_plan p = windows_plan(f);
	/* Nothing left to send or wait for (§3): the row stays, the socket
	 * is closed in the caller; a linger wait drains at once (L1). An
	 * abort still resets, and W1 cannot arise (nothing is pending). */
	if (f->nothing_to_tear_down && p.action != ACTION_ABORT &&
	    p.action != ACTION_FAIL_WOULDBLOCK)
		return plan(p.row == ROW_L ? ROW_L1 : p.row, ACTION_CLOSE_NOW);
	return p;
}

const char *close_row_name(enum close_row row)
{
	switch (row) {
	case ROW_NOT_SOCKET: return "not-socket";
	case ROW_NOT_TCP: return "not-tcp";
	case ROW_NOT_LAST_REFERENCE: return "not-last-reference";
	case ROW_SHARED_WITH_PROCESS: return "shared-with-process";
	case ROW_PASSTHROUGH: return "passthrough";
	case ROW_G1: return "G1";
	case ROW_G2: return "G2";
	case ROW_A1: return "A1";
	case ROW_W1: return "W1";
	case ROW_W2: return "W2";
	case ROW_L: return "L";
	case ROW_L1: return "L1";
	case ROW_L2: return "L2";
	}
	return "unknown";
}

const char *close_action_name(enum close_action action)
{
	switch (action) {
	case ACTION_REAL_CLOSE: return "real-close";
	case ACTION_HAND_OFF: return "hand-off";
	case ACTION_HAND_OFF_LINGER: return "hand-off-linger";
	case ACTION_ABORT: return "abort";
	case ACTION_FAIL_WOULDBLOCK: return "fail-wouldblock";
	case ACTION_LINGER_WAIT: return "linger-wait";
	case ACTION_CLOSE_NOW: return "close-now";
	case ACTION_DEGRADE: return "degrade";
	case ACTION_TEARDOWN_NOW: return "teardown-now";
	}
	return "unknown";
}
