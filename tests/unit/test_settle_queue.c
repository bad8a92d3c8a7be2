/* test_settle_queue.c: owns the settle queue's timing (src/settle_queue.c):
 * a copy is looked at once SETTLE_QUEUE_WAIT_MS has passed since the look
 * before, never earlier, at most about twice that after it was queued, and
 * exactly once; settle_queue_due_at() names the time of that look. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "monotonic.h"
#include "settle_queue.h"

#define WAIT_NS (SETTLE_QUEUE_WAIT_MS * NS_PER_MS)
#define MAX_LOOKED 64

static uint64_t looked[MAX_LOOKED];
static size_t n_looked;

static void look(uint64_t token)
{
	ck_assert_uint_lt(n_looked, MAX_LOOKED);
	looked[n_looked++] = token;
}

static void setup(void)
{
	ck_assert(settle_queue_init(16));
	n_looked = 0;
}

/* A round queues copies; the next rounds within the wait look at none of
 * them; the first round at the wait looks at each once. */
START_TEST(copies_are_looked_at_once_after_the_wait)
{
	int64_t t0 = 1000 * NS_PER_MS;
	ck_assert(settle_queue_due_at() == INT64_MAX);
	ck_assert(settle_queue_add(1) && settle_queue_add(2));
	settle_queue_end_round(t0, look); /* they start settling now */
	ck_assert_uint_eq(n_looked, 0);
	ck_assert(settle_queue_due_at() == t0 + WAIT_NS);
	settle_queue_end_round(t0 + WAIT_NS / 10, look);
	settle_queue_end_round(t0 + WAIT_NS - 1, look);
	ck_assert_uint_eq(n_looked, 0);
	settle_queue_end_round(t0 + WAIT_NS, look);
	ck_assert_uint_eq(n_looked, 2);
	ck_assert(looked[0] == 1 && looked[1] == 2);
	settle_queue_end_round(t0 + 3 * WAIT_NS, look);
	ck_assert_uint_eq(n_looked, 2);
	ck_assert(settle_queue_due_at() == INT64_MAX);
}
END_TEST

/* A copy queued while others settle joins the next set: it is not looked
 * at with them (it would be too young), but at the wait after their look. */
START_TEST(a_copy_queued_meanwhile_waits_for_the_next_look)
{
	int64_t t0 = 5000 * NS_PER_MS;
	ck_assert(settle_queue_add(1));
	settle_queue_end_round(t0, look);
	ck_assert(settle_queue_add(2)); /* queued just before the look of 1 */
	settle_queue_end_round(t0 + WAIT_NS, look);
	ck_assert_uint_eq(n_looked, 1);
	ck_assert(looked[0] == 1);
	ck_assert(settle_queue_due_at() == t0 + 2 * WAIT_NS);
	settle_queue_end_round(t0 + 2 * WAIT_NS - 1, look);
	ck_assert_uint_eq(n_looked, 1);
	settle_queue_end_round(t0 + 2 * WAIT_NS, look);
	ck_assert_uint_eq(n_looked, 2);
	ck_assert(looked[1] == 2);
}
END_TEST

/* Queued copies not yet settling are due at once (the round that starts
 * their settling comes next); a full queue refuses (the copy is then
 * registered instead). */
START_TEST(queued_copies_start_settling_at_the_next_round_and_room_is_bounded)
{
	for (uint64_t token = 0; token < 16; token++)
		ck_assert(settle_queue_add(token));
	ck_assert(!settle_queue_add(99));
	ck_assert(settle_queue_due_at() == 0);
	settle_queue_forget();
	ck_assert(settle_queue_due_at() == INT64_MAX);
	settle_queue_end_round(NS_PER_SEC, look);
	ck_assert_uint_eq(n_looked, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("settle_queue");
	TCase *tc = tcase_create("timing");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, copies_are_looked_at_once_after_the_wait);
	tcase_add_test(tc, a_copy_queued_meanwhile_waits_for_the_next_look);
	tcase_add_test(tc, queued_copies_start_settling_at_the_next_round_and_room_is_bounded);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
