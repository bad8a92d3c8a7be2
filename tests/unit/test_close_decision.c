/* test_close_decision.c: owns the pure close rule (src/close_decision.c):
 * every row of §1 and §2, their precedence, implicit closes, wineserver's
 * closes (§3.1), names. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "close_decision.h"

#define N_ROWS ((int)ROW_L2 + 1)
#define N_ACTIONS ((int)ACTION_DEGRADE + 1)

/* A last-reference TCP socket, not shared, not in passthrough mode. */
#define TCP(shut, lon, lsec, nb, pend, orig)                               \
	{ .is_socket = true, .is_tcp = true, .shared_with_process = false, \
	  .last_reference = true, .write_shut = (shut),                    \
	  .linger_on = (lon), .linger_seconds = (lsec),                    \
	  .nonblocking = (nb), .pending = (pend), .origin = (orig),        \
	  .passthrough = false }

/* Any descriptor, every fact spelled out. */
#define FACTS(sock, tcp, shared, last, shut, lon, lsec, nb, pend, orig, pt) \
	{ .is_socket = (sock), .is_tcp = (tcp),                            \
	  .shared_with_process = (shared), .last_reference = (last),       \
	  .write_shut = (shut), .linger_on = (lon),                        \
	  .linger_seconds = (lsec), .nonblocking = (nb),                   \
	  .pending = (pend), .origin = (orig), .passthrough = (pt) }

#define EX CLOSE_EXPLICIT
#define IM CLOSE_IMPLICIT

struct row_case {
	const char *name;
	struct close_facts facts;
	enum close_row row;
	enum close_action action;
};

static const struct row_case cases[] = {
	/* ---- G1: linger off, any O_NONBLOCK, any state ---- */
	{ "G1 blocking idle", TCP(false, false, 0, false, false, EX), ROW_G1, ACTION_HAND_OFF },
	{ "G1 blocking pending", TCP(false, false, 0, false, true, EX), ROW_G1, ACTION_HAND_OFF },
	{ "G1 nonblocking idle", TCP(false, false, 0, true, false, EX), ROW_G1, ACTION_HAND_OFF },
	{ "G1 nonblocking pending", TCP(false, false, 0, true, true, EX), ROW_G1, ACTION_HAND_OFF },
	/* SO_DONTLINGER keeps l_linger: {0,5} is still linger off. */
	{ "G1 {0,5} nonblocking pending", TCP(false, false, 5, true, true, EX), ROW_G1, ACTION_HAND_OFF },
	{ "G1 {0,5} blocking pending", TCP(false, false, 5, false, true, EX), ROW_G1, ACTION_HAND_OFF },

	/* ---- G2: shutdown(SHUT_WR/RDWR) before close; linger ignored ---- */
	{ "G2 linger off", TCP(true, false, 0, false, false, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {0,5}", TCP(true, false, 5, true, true, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,0} does not reset", TCP(true, true, 0, false, false, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,0} nonblocking pending", TCP(true, true, 0, true, true, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,5} nonblocking pending (not W1)", TCP(true, true, 5, true, true, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,5} nonblocking idle (not W2)", TCP(true, true, 5, true, false, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,5} blocking pending (not L)", TCP(true, true, 5, false, true, EX), ROW_G2, ACTION_HAND_OFF },
	{ "G2 {1,5} blocking idle (not L)", TCP(true, true, 5, false, false, EX), ROW_G2, ACTION_HAND_OFF },

	/* ---- A1: linger on, timeout 0, any O_NONBLOCK/state ---- */
	{ "A1 blocking idle", TCP(false, true, 0, false, false, EX), ROW_A1, ACTION_ABORT },
	{ "A1 blocking pending", TCP(false, true, 0, false, true, EX), ROW_A1, ACTION_ABORT },
	{ "A1 nonblocking idle", TCP(false, true, 0, true, false, EX), ROW_A1, ACTION_ABORT },
	{ "A1 nonblocking pending", TCP(false, true, 0, true, true, EX), ROW_A1, ACTION_ABORT },

	/* ---- W1: linger N>0, O_NONBLOCK, pending ---- */
	{ "W1 {1,1}", TCP(false, true, 1, true, true, EX), ROW_W1, ACTION_FAIL_WOULDBLOCK },
	{ "W1 {1,5}", TCP(false, true, 5, true, true, EX), ROW_W1, ACTION_FAIL_WOULDBLOCK },
	{ "W1 {1,65535}", TCP(false, true, 65535, true, true, EX), ROW_W1, ACTION_FAIL_WOULDBLOCK },

	/* ---- W2: linger N>0, O_NONBLOCK, not pending ---- */
	{ "W2 {1,1}", TCP(false, true, 1, true, false, EX), ROW_W2, ACTION_HAND_OFF },
	{ "W2 {1,5}", TCP(false, true, 5, true, false, EX), ROW_W2, ACTION_HAND_OFF },

	/* ---- L (L1/L2 by outcome): linger N>0, blocking ---- */
	{ "L {1,1} pending", TCP(false, true, 1, false, true, EX), ROW_L, ACTION_LINGER_WAIT },
	{ "L {1,5} pending", TCP(false, true, 5, false, true, EX), ROW_L, ACTION_LINGER_WAIT },
	{ "L {1,5} idle", TCP(false, true, 5, false, false, EX), ROW_L, ACTION_LINGER_WAIT },

	/* ---- §1: no row of §2 applies ---- */
	{ "not a socket", FACTS(false, false, false, true, false, false, 0, false, false, EX, false),
	  ROW_NOT_SOCKET, ACTION_REAL_CLOSE },
	{ "not a socket, odd facts", FACTS(false, false, false, true, true, true, 5, true, true, EX, false),
	  ROW_NOT_SOCKET, ACTION_REAL_CLOSE },
	{ "not a socket, implicit", FACTS(false, false, false, true, false, true, 0, true, true, IM, false),
	  ROW_NOT_SOCKET, ACTION_REAL_CLOSE },
	{ "not TCP", FACTS(true, false, false, true, false, false, 0, false, false, EX, false),
	  ROW_NOT_TCP, ACTION_REAL_CLOSE },
	{ "not TCP {1,0}", FACTS(true, false, false, true, false, true, 0, false, false, EX, false),
	  ROW_NOT_TCP, ACTION_REAL_CLOSE },
	{ "not TCP {1,5} nonblocking pending", FACTS(true, false, false, true, false, true, 5, true, true, EX, false),
	  ROW_NOT_TCP, ACTION_REAL_CLOSE },
	{ "not TCP, implicit {1,5}", FACTS(true, false, false, true, false, true, 5, false, true, IM, false),
	  ROW_NOT_TCP, ACTION_REAL_CLOSE },
	{ "TCP not last ref, linger off", FACTS(true, true, false, false, false, false, 0, false, false, EX, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP not last ref {1,0} (no abort)", FACTS(true, true, false, false, false, true, 0, false, true, EX, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP not last ref {1,5} nonblocking pending (no W1)",
	  FACTS(true, true, false, false, false, true, 5, true, true, EX, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP not last ref {1,5} blocking (no wait)", FACTS(true, true, false, false, false, true, 5, false, true, EX, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP not last ref, shut", FACTS(true, true, false, false, true, false, 0, false, false, EX, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP not last ref, implicit {1,0}", FACTS(true, true, false, false, false, true, 0, false, false, IM, false),
	  ROW_NOT_LAST_REFERENCE, ACTION_REAL_CLOSE },
	{ "TCP shared with process, linger off", FACTS(true, true, true, true, false, false, 0, false, false, EX, false),
	  ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE },
	{ "TCP shared with process {1,0}", FACTS(true, true, true, true, false, true, 0, false, false, EX, false),
	  ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE },
	{ "TCP shared with process {1,5} nonblocking pending",
	  FACTS(true, true, true, true, false, true, 5, true, true, EX, false),
	  ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE },
	{ "TCP shared with process {1,5} blocking", FACTS(true, true, true, true, false, true, 5, false, true, EX, false),
	  ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE },
	{ "TCP shared with process, implicit", FACTS(true, true, true, true, false, true, 5, false, true, IM, false),
	  ROW_SHARED_WITH_PROCESS, ACTION_REAL_CLOSE },
	{ "passthrough, linger off", FACTS(true, true, false, true, false, false, 0, false, false, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough {1,0}", FACTS(true, true, false, true, false, true, 0, false, false, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough {1,5} nonblocking pending", FACTS(true, true, false, true, false, true, 5, true, true, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough {1,5} nonblocking idle", FACTS(true, true, false, true, false, true, 5, true, false, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough {1,5} blocking pending", FACTS(true, true, false, true, false, true, 5, false, true, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough, shut", FACTS(true, true, false, true, true, true, 0, false, false, EX, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },
	{ "passthrough, implicit {1,5}", FACTS(true, true, false, true, false, true, 5, true, true, IM, true),
	  ROW_PASSTHROUGH, ACTION_REAL_CLOSE },

	/* ---- implicit closes: never fail, never block ---- */
	{ "implicit G1", TCP(false, false, 0, false, false, IM), ROW_G1, ACTION_HAND_OFF },
	{ "implicit G1 nonblocking pending", TCP(false, false, 0, true, true, IM), ROW_G1, ACTION_HAND_OFF },
	{ "implicit G1 {0,5} blocking pending", TCP(false, false, 5, false, true, IM), ROW_G1, ACTION_HAND_OFF },
	{ "implicit A1", TCP(false, true, 0, false, false, IM), ROW_A1, ACTION_ABORT },
	{ "implicit A1 nonblocking pending", TCP(false, true, 0, true, true, IM), ROW_A1, ACTION_ABORT },
	{ "implicit G2 linger off", TCP(true, false, 0, false, false, IM), ROW_G2, ACTION_HAND_OFF },
	{ "implicit G2 {1,0}", TCP(true, true, 0, true, true, IM), ROW_G2, ACTION_HAND_OFF },
	{ "implicit G2 {1,5} nonblocking pending", TCP(true, true, 5, true, true, IM), ROW_G2, ACTION_HAND_OFF },
	{ "implicit G2 {1,5} blocking pending", TCP(true, true, 5, false, true, IM), ROW_G2, ACTION_HAND_OFF },
	{ "implicit W1 situation -> background linger", TCP(false, true, 5, true, true, IM),
	  ROW_L, ACTION_HAND_OFF_LINGER },
	{ "implicit W2 situation -> background linger", TCP(false, true, 5, true, false, IM),
	  ROW_L, ACTION_HAND_OFF_LINGER },
	{ "implicit blocking {1,5} pending", TCP(false, true, 5, false, true, IM), ROW_L, ACTION_HAND_OFF_LINGER },
	{ "implicit blocking {1,5} idle", TCP(false, true, 5, false, false, IM), ROW_L, ACTION_HAND_OFF_LINGER },
	{ "implicit blocking {1,1} pending", TCP(false, true, 1, false, true, IM), ROW_L, ACTION_HAND_OFF_LINGER },
};

#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static const char *safe_name(const char *s)
{
	return s ? s : "(null)";
}

static void describe(char *buf, size_t len, const struct close_facts *f)
{
	snprintf(buf, len,
		 "sock=%d tcp=%d shared=%d last=%d shut=%d linger={%d,%d} "
		 "nb=%d pending=%d origin=%s passthrough=%d",
		 f->is_socket, f->is_tcp, f->shared_with_process,
		 f->last_reference, f->write_shut, f->linger_on,
		 f->linger_seconds, f->nonblocking, f->pending,
		 f->origin == CLOSE_EXPLICIT ? "explicit" : "implicit",
		 f->passthrough);
}

START_TEST(test_row_table)
{
	const struct row_case *c = &cases[_i];
	struct close_facts f = c->facts;
	struct close_plan p = close_decide(&f);

	ck_assert_msg(p.row == c->row && p.action == c->action,
		      "case \"%s\": got row %s (%d) action %s (%d), "
		      "expected row %s action %s",
		      c->name,
		      (int)p.row >= 0 && (int)p.row < N_ROWS ? safe_name(close_row_name(p.row)) : "?",
		      (int)p.row,
		      (int)p.action >= 0 && (int)p.action < N_ACTIONS ? safe_name(close_action_name(p.action)) : "?",
		      (int)p.action,
		      safe_name(close_row_name(c->row)),
		      safe_name(close_action_name(c->action)));
	/* Pure: the facts are not modified. */
	ck_assert_msg(memcmp(&f, &c->facts, sizeof f) == 0,
		      "case \"%s\": close_decide modified its input", c->name);
}
END_TEST

/* The drain facts (O_NONBLOCK, SIOCOUTQ) cost two system calls: needed
 * exactly for a last-reference TCP socket, not passthrough, not shut, with
 * linger {1,N>0}. */
struct drain_case {
	const char *name;
	struct close_facts facts;
	bool needed;
};

static const struct drain_case drain_cases[] = {
	{ "{1,5} explicit", TCP(false, true, 5, false, false, EX), true },
	{ "{1,1} explicit", TCP(false, true, 1, false, false, EX), true },
	{ "{1,5} explicit nb pending (not yet read)", TCP(false, true, 5, true, true, EX), true },
	{ "linger off", TCP(false, false, 0, false, false, EX), false },
	{ "{0,5} linger off", TCP(false, false, 5, false, false, EX), false },
	{ "{1,0} abort", TCP(false, true, 0, false, false, EX), false },
	{ "shut {1,5}", TCP(true, true, 5, false, false, EX), false },
	{ "not a socket", FACTS(false, false, false, true, false, true, 5, false, false, EX, false), false },
	{ "not TCP {1,5}", FACTS(true, false, false, true, false, true, 5, false, false, EX, false), false },
	{ "not last ref {1,5}", FACTS(true, true, false, false, false, true, 5, false, false, EX, false), false },
	{ "shared with process {1,5}", FACTS(true, true, true, true, false, true, 5, false, false, EX, false), false },
	{ "passthrough {1,5}", FACTS(true, true, false, true, false, true, 5, false, false, EX, true), false },
	{ "implicit linger off", TCP(false, false, 0, false, false, IM), false },
	{ "implicit {1,0}", TCP(false, true, 0, false, false, IM), false },
	{ "implicit shut {1,5}", TCP(true, true, 5, false, false, IM), false },
};

#define N_DRAIN_CASES ((int)(sizeof drain_cases / sizeof drain_cases[0]))

START_TEST(test_drain_facts_table)
{
	const struct drain_case *c = &drain_cases[_i];

	ck_assert_msg(close_needs_drain_facts(&c->facts) == c->needed,
		      "case \"%s\": close_needs_drain_facts should be %s",
		      c->name, c->needed ? "true" : "false");
}
END_TEST

/* Implicit closes: the decision does not depend on O_NONBLOCK or pending
 * (neither failing nor blocking is allowed, so neither matters). */
START_TEST(test_implicit_ignores_drain_facts)
{
	static const struct { bool shut, lon; int lsec; } lingers[] = {
		{ false, false, 0 }, { false, false, 5 }, { false, true, 0 },
		{ false, true, 1 }, { false, true, 5 }, { true, false, 0 },
		{ true, true, 0 }, { true, true, 5 },
	};
	for (size_t i = 0; i < sizeof lingers / sizeof lingers[0]; i++) {
		struct close_facts base = TCP(lingers[i].shut, lingers[i].lon,
					      lingers[i].lsec, false, false, IM);
		struct close_plan p0 = close_decide(&base);
		for (int nb = 0; nb <= 1; nb++) {
			for (int pend = 0; pend <= 1; pend++) {
				struct close_facts f = base;
				f.nonblocking = nb;
				f.pending = pend;
				struct close_plan p = close_decide(&f);
				ck_assert_msg(p.row == p0.row && p.action == p0.action,
					      "implicit shut=%d linger={%d,%d}: nb=%d pending=%d "
					      "gives row %d action %d, nb=0 pending=0 gives %d/%d",
					      lingers[i].shut, lingers[i].lon, lingers[i].lsec,
					      nb, pend, (int)p.row, (int)p.action,
					      (int)p0.row, (int)p0.action);
			}
		}
	}
}
END_TEST

/* W1 is not sticky: once the app sets linger off, {1,0} or shuts down, the
 * same nonblocking, pending socket closes as G1, A1 or G2 (§2 W1). */
START_TEST(test_w1_escapes)
{
	struct close_facts f = TCP(false, true, 5, true, true, EX);
	struct close_plan p = close_decide(&f);
	ck_assert_int_eq(p.row, ROW_W1);
	ck_assert_int_eq(p.action, ACTION_FAIL_WOULDBLOCK);

	/* Retrying without changing anything keeps failing. */
	p = close_decide(&f);
	ck_assert_int_eq(p.row, ROW_W1);
	ck_assert_int_eq(p.action, ACTION_FAIL_WOULDBLOCK);

	struct close_facts g1 = f;
	g1.linger_on = false; /* SO_DONTLINGER keeps l_linger = 5 */
	p = close_decide(&g1);
	ck_assert_int_eq(p.row, ROW_G1);
	ck_assert_int_eq(p.action, ACTION_HAND_OFF);

	struct close_facts a1 = f;
	a1.linger_seconds = 0;
	p = close_decide(&a1);
	ck_assert_int_eq(p.row, ROW_A1);
	ck_assert_int_eq(p.action, ACTION_ABORT);

	struct close_facts g2 = f;
	g2.write_shut = true;
	p = close_decide(&g2);
	ck_assert_int_eq(p.row, ROW_G2);
	ck_assert_int_eq(p.action, ACTION_HAND_OFF);

	struct close_facts w2 = f;
	w2.pending = false; /* the data was acknowledged */
	p = close_decide(&w2);
	ck_assert_int_eq(p.row, ROW_W2);
	ck_assert_int_eq(p.action, ACTION_HAND_OFF);
}
END_TEST

/* ---------------------------------------------------------------- exhaustive */

#define ROW_BIT(r) (1u << (unsigned)(r))

/* §1/§2 as an oracle. `rows` is the set of acceptable rows where the
 * contract does not order two reasons that both lead to the real close()
 * (not-last-reference vs shared, passthrough vs a §1 reason). */
static void oracle(const struct close_facts *f, unsigned *rows,
		   enum close_action *action)
{
	unsigned pt = f->passthrough ? ROW_BIT(ROW_PASSTHROUGH) : 0;

	*action = ACTION_REAL_CLOSE;
	if (!f->is_socket) {
		*rows = ROW_BIT(ROW_NOT_SOCKET) | pt;
		return;
	}
	if (!f->is_tcp) {
		*rows = ROW_BIT(ROW_NOT_TCP) | pt;
		return;
	}
	if (!f->last_reference) {
		*rows = ROW_BIT(ROW_NOT_LAST_REFERENCE) | pt |
			(f->shared_with_process ? ROW_BIT(ROW_SHARED_WITH_PROCESS) : 0);
		return;
	}
	if (f->shared_with_process) {
		*rows = ROW_BIT(ROW_SHARED_WITH_PROCESS) | pt;
		return;
	}
	if (f->passthrough) {
		*rows = ROW_BIT(ROW_PASSTHROUGH);
		return;
	}
	if (f->write_shut) {
		*rows = ROW_BIT(ROW_G2);
		*action = ACTION_HAND_OFF;
	} else if (!f->linger_on) {
		*rows = ROW_BIT(ROW_G1);
		*action = ACTION_HAND_OFF;
	} else if (f->linger_seconds == 0) {
		*rows = ROW_BIT(ROW_A1);
		*action = ACTION_ABORT;
	} else if (f->origin == CLOSE_IMPLICIT) {
		*rows = ROW_BIT(ROW_L);
		*action = ACTION_HAND_OFF_LINGER;
	} else if (f->nonblocking && f->pending) {
		*rows = ROW_BIT(ROW_W1);
		*action = ACTION_FAIL_WOULDBLOCK;
	} else if (f->nonblocking) {
		*rows = ROW_BIT(ROW_W2);
		*action = ACTION_HAND_OFF;
	} else {
		*rows = ROW_BIT(ROW_L);
		*action = ACTION_LINGER_WAIT;
	}
}

static bool drain_oracle(const struct close_facts *f)
{
	return f->is_socket && f->is_tcp && f->last_reference &&
	       !f->shared_with_process && !f->passthrough && !f->write_shut &&
	       f->linger_on && f->linger_seconds > 0;
}

/* Enumerate every combination of the nine booleans, both origins and linger
 * seconds in {0,1,5}; call `check` on each. */
static void for_all_facts(void (*check)(const struct close_facts *f))
{
	static const int seconds[] = { 0, 1, 5 };
	for (unsigned bits = 0; bits < (1u << 9); bits++) {
		for (int o = 0; o <= 1; o++) {
			for (size_t s = 0; s < sizeof seconds / sizeof seconds[0]; s++) {
				struct close_facts f = {
					.is_socket = bits & 1u,
					.is_tcp = bits & 2u,
					.shared_with_process = bits & 4u,
					.last_reference = bits & 8u,
					.write_shut = bits & 16u,
					.linger_on = bits & 32u,
					.nonblocking = bits & 64u,
					.pending = bits & 128u,
					.passthrough = bits & 256u,
					.linger_seconds = seconds[s],
					.origin = o ? CLOSE_IMPLICIT : CLOSE_EXPLICIT,
				};
				check(&f);
			}
		}
	}
}

static void check_implicit_never_fails_or_blocks(const struct close_facts *f)
{
	char d[256];
	struct close_plan p = close_decide(f);

	if (f->origin != CLOSE_IMPLICIT)
		return;
	describe(d, sizeof d, f);
	ck_assert_msg(p.action != ACTION_FAIL_WOULDBLOCK,
		      "implicit close fails with EWOULDBLOCK: %s", d);
	ck_assert_msg(p.action != ACTION_LINGER_WAIT,
		      "implicit close blocks: %s", d);
	ck_assert_msg(p.row != ROW_W1, "implicit close chose W1: %s", d);
}

START_TEST(test_exhaustive_implicit_never_fails_or_blocks)
{
	for_all_facts(check_implicit_never_fails_or_blocks);
}
END_TEST

/* Inside wineserver (§3.1) no close fails or blocks, explicit ones
 * included; a lingering one is handed off with its deadline, and the rows
 * are otherwise the same as anywhere. */
static void check_wineserver_never_fails_or_blocks(const struct close_facts *given)
{
	char d[256];
	struct close_facts f = *given;
	struct close_plan anywhere = close_decide(&f);
	f.never_block = true;
	struct close_plan p = close_decide(&f);
	describe(d, sizeof d, &f);
	ck_assert_msg(p.action != ACTION_FAIL_WOULDBLOCK && p.action != ACTION_LINGER_WAIT,
		      "wineserver close fails or blocks: %s", d);
	bool lingering = anywhere.action == ACTION_FAIL_WOULDBLOCK ||
			 anywhere.action == ACTION_LINGER_WAIT;
	if (!lingering) {
		ck_assert_msg(p.row == anywhere.row && p.action == anywhere.action,
			      "wineserver changed a row that cannot block: %s", d);
		return;
	}
	ck_assert_msg(p.action == ACTION_HAND_OFF_LINGER, "lingering wineserver close not handed off "
		      "with its deadline: %s", d);
	ck_assert_msg(p.row == (f.nonblocking ? ROW_W1 : ROW_L), "wineserver row %s: %s",
		      close_row_name(p.row), d);
}

START_TEST(test_exhaustive_wineserver_never_fails_or_blocks)
{
	for_all_facts(check_wineserver_never_fails_or_blocks);
}
END_TEST

static void check_against_oracle(const struct close_facts *f)
{
	char d[256];
	unsigned rows;
	enum close_action action;

	/* TCP implies socket: the other combination cannot be observed. */
	if (f->is_tcp && !f->is_socket)
		return;
	struct close_plan p = close_decide(f);
	oracle(f, &rows, &action);
	describe(d, sizeof d, f);
	ck_assert_msg((int)p.row >= 0 && (int)p.row < N_ROWS, "row %d out of range: %s", (int)p.row, d);
	ck_assert_msg((int)p.action >= 0 && (int)p.action < N_ACTIONS,
		      "action %d out of range: %s", (int)p.action, d);
	ck_assert_msg((rows & ROW_BIT(p.row)) != 0 && p.action == action,
		      "%s: got %s/%s, expected action %s", d,
		      safe_name(close_row_name(p.row)),
		      safe_name(close_action_name(p.action)),
		      safe_name(close_action_name(action)));
}

START_TEST(test_exhaustive_matches_spec)
{
	for_all_facts(check_against_oracle);
}
END_TEST

static void check_row_action_consistent(const struct close_facts *f)
{
	char d[256];
	struct close_plan p = close_decide(f);

	describe(d, sizeof d, f);
	/* L1/L2 are outcomes of ROW_L, never a decision. */
	ck_assert_msg(p.row != ROW_L1 && p.row != ROW_L2, "decided L1/L2: %s", d);
	switch (p.row) {
	case ROW_NOT_SOCKET:
	case ROW_NOT_TCP:
	case ROW_NOT_LAST_REFERENCE:
	case ROW_SHARED_WITH_PROCESS:
	case ROW_PASSTHROUGH:
		ck_assert_msg(p.action == ACTION_REAL_CLOSE, "%s", d);
		break;
	case ROW_G1:
	case ROW_G2:
	case ROW_W2:
		ck_assert_msg(p.action == ACTION_HAND_OFF, "%s", d);
		break;
	case ROW_A1:
		ck_assert_msg(p.action == ACTION_ABORT, "%s", d);
		break;
	case ROW_W1:
		ck_assert_msg(p.action == ACTION_FAIL_WOULDBLOCK, "%s", d);
		break;
	case ROW_L:
		ck_assert_msg(p.action == (f->origin == CLOSE_EXPLICIT
					   ? ACTION_LINGER_WAIT
					   : ACTION_HAND_OFF_LINGER), "%s", d);
		break;
	default:
		ck_abort_msg("unexpected row %d: %s", (int)p.row, d);
	}
}

START_TEST(test_exhaustive_row_action_consistent)
{
	for_all_facts(check_row_action_consistent);
}
END_TEST

static void check_drain_facts(const struct close_facts *f)
{
	char d[256];
	bool need = close_needs_drain_facts(f);

	if (f->is_tcp && !f->is_socket)
		return;
	describe(d, sizeof d, f);

	/* It is asked before O_NONBLOCK and SIOCOUTQ are read. */
	for (int nb = 0; nb <= 1; nb++) {
		for (int pend = 0; pend <= 1; pend++) {
			struct close_facts g = *f;
			g.nonblocking = nb;
			g.pending = pend;
			ck_assert_msg(close_needs_drain_facts(&g) == need,
				      "close_needs_drain_facts depends on nb/pending: %s", d);
		}
	}

	if (!drain_oracle(f))
		ck_assert_msg(!need, "drain facts asked for needlessly: %s", d);
	else if (f->origin == CLOSE_EXPLICIT)
		ck_assert_msg(need, "drain facts not asked for: %s", d);

	/* Whenever they are not asked for, the decision must not depend on
	 * them (the caller leaves them at whatever value). */
	if (!need) {
		struct close_plan p0 = close_decide(f);
		for (int nb = 0; nb <= 1; nb++) {
			for (int pend = 0; pend <= 1; pend++) {
				struct close_facts g = *f;
				g.nonblocking = nb;
				g.pending = pend;
				struct close_plan p = close_decide(&g);
				ck_assert_msg(p.row == p0.row && p.action == p0.action,
					      "decision depends on drain facts that were "
					      "not asked for: %s (nb=%d pending=%d)", d, nb, pend);
			}
		}
	}
}

START_TEST(test_exhaustive_drain_facts)
{
	for_all_facts(check_drain_facts);
}
END_TEST

/* ---------------------------------------------------------------- names */

START_TEST(test_row_names)
{
	for (int r = 0; r < N_ROWS; r++) {
		const char *n = close_row_name((enum close_row)r);
		ck_assert_msg(n != NULL, "close_row_name(%d) is NULL", r);
		ck_assert_msg(n[0] != '\0', "close_row_name(%d) is empty", r);
		for (int s = 0; s < r; s++)
			ck_assert_msg(strcmp(n, close_row_name((enum close_row)s)) != 0,
				      "rows %d and %d share the name \"%s\"", s, r, n);
	}
	/* The §2 labels appear as such in traces. */
	ck_assert_str_eq(close_row_name(ROW_G1), "G1");
	ck_assert_str_eq(close_row_name(ROW_G2), "G2");
	ck_assert_str_eq(close_row_name(ROW_A1), "A1");
	ck_assert_str_eq(close_row_name(ROW_W1), "W1");
	ck_assert_str_eq(close_row_name(ROW_W2), "W2");
	ck_assert_str_eq(close_row_name(ROW_L1), "L1");
	ck_assert_str_eq(close_row_name(ROW_L2), "L2");
	ck_assert_str_eq(close_row_name(ROW_NOT_TCP), "not-tcp");
}
END_TEST

START_TEST(test_action_names)
{
	for (int a = 0; a < N_ACTIONS; a++) {
		const char *n = close_action_name((enum close_action)a);
		ck_assert_msg(n != NULL, "close_action_name(%d) is NULL", a);
		ck_assert_msg(n[0] != '\0', "close_action_name(%d) is empty", a);
		for (int b = 0; b < a; b++)
			ck_assert_msg(strcmp(n, close_action_name((enum close_action)b)) != 0,
				      "actions %d and %d share the name \"%s\"", b, a, n);
	}
}
END_TEST

static Suite *close_decision_suite(void)
{
	Suite *s = suite_create("close_decision");

	TCase *rows = tcase_create("rows");
	tcase_add_loop_test(rows, test_row_table, 0, N_CASES);
	tcase_add_test(rows, test_w1_escapes);
	tcase_add_test(rows, test_implicit_ignores_drain_facts);
	suite_add_tcase(s, rows);

	TCase *drain = tcase_create("drain_facts");
	tcase_add_loop_test(drain, test_drain_facts_table, 0, N_DRAIN_CASES);
	suite_add_tcase(s, drain);

	TCase *all = tcase_create("exhaustive");
	tcase_add_test(all, test_exhaustive_implicit_never_fails_or_blocks);
	tcase_add_test(all, test_exhaustive_wineserver_never_fails_or_blocks);
	tcase_add_test(all, test_exhaustive_matches_spec);
	tcase_add_test(all, test_exhaustive_row_action_consistent);
	tcase_add_test(all, test_exhaustive_drain_facts);
	suite_add_tcase(s, all);

	TCase *names = tcase_create("names");
	tcase_add_test(names, test_row_names);
	tcase_add_test(names, test_action_names);
	suite_add_tcase(s, names);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(close_decision_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
