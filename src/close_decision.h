/* close_decision.h: the pure rule that maps what is known about a closing
 * descriptor to a row of §2 and the action that carries it out. */
#ifndef WSPCLOSE_CLOSE_DECISION_H
#define WSPCLOSE_CLOSE_DECISION_H

#include <stdbool.h>

/* Where the close comes from: an explicit close() may fail (W1) and block
 * (L1/L2); an implicit one (dup2 onto a socket, close_range, closefrom) may
 * do neither. */
enum close_origin { CLOSE_EXPLICIT, CLOSE_IMPLICIT };

struct close_facts {
	bool is_socket;          /* any socket */
	bool is_tcp;             /* TCP over IPv4 or IPv6 */
	bool shared_with_process;/* inherited through fork/exec or sent with SCM_RIGHTS */
	bool last_reference;     /* no other descriptor in this process holds it */
	bool write_shut;         /* shutdown(SHUT_WR or SHUT_RDWR) happened before */
	bool linger_on;          /* SO_LINGER l_onoff */
	int linger_seconds;      /* SO_LINGER l_linger */
	bool nonblocking;        /* O_NONBLOCK; read only when drain facts are needed */
	bool pending;            /* SIOCOUTQ > 0; read only when drain facts are needed */
	/* Listening, never connected, connecting, already closed, or our FIN
	 * already acknowledged (TCP_INFO): closed in the caller (§3). */
	bool nothing_to_tear_down;
	enum close_origin origin;
	bool passthrough;        /* WSPCLOSE_PASSTHROUGH=1: Linux semantics */
	/* Inside wineserver (§3.1): a close may neither fail nor block, and
	 * every Wine socket is non-blocking on Linux whatever its Windows mode. */
	bool never_block;
};

/* The rows of §2, plus the reasons no row applies (§1). */
enum close_row {
	ROW_NOT_SOCKET,          /* plain close */
	ROW_NOT_TCP,             /* plain close (+ §4 clean-up) */
	ROW_NOT_LAST_REFERENCE,  /* plain close, nothing sent */
	ROW_SHARED_WITH_PROCESS, /* kernel semantics */
	ROW_PASSTHROUGH,         /* what-if mode: kernel semantics */
	ROW_G1, ROW_G2, ROW_A1, ROW_W1, ROW_W2,
	ROW_L,                   /* linger wait; becomes L1 or L2 by its outcome */
	ROW_L1, ROW_L2,
};

enum close_action {
	ACTION_REAL_CLOSE,       /* just the real close() */
	ACTION_HAND_OFF,         /* held copy to the reaper, graceful, grace deadline */
	ACTION_HAND_OFF_LINGER,  /* held copy, reset at the linger deadline (implicit L) */
	ACTION_ABORT,            /* RST now */
	ACTION_FAIL_WOULDBLOCK,  /* -1/EWOULDBLOCK, nothing changes */
	ACTION_LINGER_WAIT,      /* block up to linger seconds, then graceful or RST */
	ACTION_CLOSE_NOW,        /* nothing to tear down: the real close in the caller */
	/* Never chosen by close_decide(): what a hand-off becomes when no copy
	 * can be held (the kernel's own graceful close), for the trace. */
	ACTION_DEGRADE,
	/* Never chosen either: a hand-off whose teardown was over inside the
	 * call (the peer had closed first and acknowledged our FIN at once). */
	ACTION_TEARDOWN_NOW,
};

struct close_plan {
	enum close_row row;
	enum close_action action;
};

/* True when the decision needs `nonblocking` and `pending` (only rows W and
 * L depend on them; reading them costs two system calls). */
bool close_needs_drain_facts(const struct close_facts *facts);

/* Pure: no system calls, no globals. */
struct close_plan close_decide(const struct close_facts *facts);

/* "G1", "W1", "not-tcp", ... for traces and tests. */
const char *close_row_name(enum close_row row);
const char *close_action_name(enum close_action action);

#endif
