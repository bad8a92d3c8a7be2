/* stats.h: counters for the exit summary and the divergence report
 * (WSPCLOSE_STATS, SPEC §7): closes by row, how held sockets ended, and the
 * findings that would break on Windows. Lock-free counters. */
#ifndef WSPCLOSE_STATS_H
#define WSPCLOSE_STATS_H

#include "close_decision.h"

#include <stdint.h>

/* How a held copy ended (the reaper's outcome). */
enum held_outcome {
	OUTCOME_FIN_ACKED,        /* our FIN acknowledged, nothing unacknowledged */
	OUTCOME_PEER_RESET,       /* the peer reset the connection */
	OUTCOME_DATA_AFTER_CLOSE, /* the peer sent data after close: RST */
	OUTCOME_UNREAD_DATA,      /* unread data at close: RST, like Linux */
	OUTCOME_GRACE_TIMEOUT,    /* WSPCLOSE_GRACE_MS passed: RST */
	OUTCOME_LINGER_TIMEOUT,   /* an implicit close's linger time passed: RST */
	OUTCOME_NOT_CONNECTED,    /* nothing to tear down (listener, never connected) */
	OUTCOME_NO_ROOM,          /* could not be watched: the kernel finishes it */
	OUTCOME_COUNT
};

const char *held_outcome_name(enum held_outcome outcome);

void stats_count_close(enum close_row row);
void stats_count_release(enum held_outcome outcome);
/* Findings (SPEC §7 / issue 4): */
void stats_note_double_close(void);
void stats_note_w1_abandoned(void);  /* a W1 socket closed implicitly */

/* The exit report: to stderr when WSPCLOSE_STATS=1, as a trace line when
 * tracing, and as "PID FINDINGS" appended to WSPCLOSE_FINDINGS_FILE. */
void stats_report_at_exit(long still_held);

#endif
