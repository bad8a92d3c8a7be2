/* stats.h: counters for the exit summary and the divergence report
 * (WSPCLOSE_STATS, §7): closes by row, how held sockets ended, and the
 * findings that would break on Windows. Lock-free counters. */
#ifndef WSPCLOSE_STATS_H
#define WSPCLOSE_STATS_H

#include "close_decision.h"

#include <stdbool.h>

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
/* Opens what the report writes to: a copy of stderr (WSPCLOSE_STATS=1; the
 * program may close fd 2 before it exits) and WSPCLOSE_FINDINGS_FILE, both
 * high and O_CLOEXEC. Constructor only. */
struct wspclose_config;
void stats_open(const struct wspclose_config *config);
/* dup2() onto one of the report's descriptors: moves it; false otherwise. */
bool stats_move_descriptor(int fd);
/* Anything to report at exit (statistics, trace or findings file)? */
bool stats_report_wanted(void);

/* Findings (issue 4): the first three are appended to the findings file as
 * they happen, so that a process ending in _exit() still reports them. */
void stats_note_double_close(void);
void stats_note_linger_reset(void);   /* L2 or a linger deadline: data lost */
void stats_note_w1_abandoned(void);   /* a W1 socket closed implicitly */

/* The exit report: to stderr when WSPCLOSE_STATS=1, as a trace line when
 * tracing, and "PID KIND COUNT" lines in WSPCLOSE_FINDINGS_FILE. */
void stats_report_at_exit(long still_held);

#endif
