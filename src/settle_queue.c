/* settle_queue.c: the settling of settle_queue.h, as two arrays of event
 * tokens: the copies settling since the last look, and those queued after
 * it. A token outlives its copy harmlessly: look() checks its generation,
 * as for an epoll event. */
#include "settle_queue.h"
#include "monotonic.h"

#include <stdlib.h>

static struct {
	uint64_t *sets[2];
	size_t len[2];
	size_t cap;
	int fresh;            /* index of the set being filled; the other settles */
	int64_t settling_since; /* when the settling set was closed */
} queue;

bool settle_queue_init(size_t capacity)
{
	if (queue.cap != capacity) {
		for (int i = 0; i < 2; i++) {
			free(queue.sets[i]);
			queue.sets[i] = calloc(capacity ? capacity : 1, sizeof *queue.sets[i]);
		}
		queue.cap = queue.sets[0] && queue.sets[1] ? capacity : 0;
		if (queue.cap != capacity)
			return false;
	}
	settle_queue_forget();
	return true;
}

bool settle_queue_add(uint64_t token)
{
	int fresh = queue.fresh;
	if (queue.len[fresh] >= queue.cap)
		return false;
	queue.sets[fresh][queue.len[fresh]++] = token;
	return true;
}

void settle_queue_end_round(int64_t now, void (*look)(uint64_t token))
{
	int settling = 1 - queue.fresh;
	if (queue.len[settling] > 0) {
		if (now - queue.settling_since < SETTLE_QUEUE_WAIT_MS * NS_PER_MS)
			return;
		/* look() queues nothing (a copy it looks at is registered or
		 * released), so the set is stable while it runs. */
		for (size_t i = 0; i < queue.len[settling]; i++)
			look(queue.sets[settling][i]);
		queue.len[settling] = 0;
	}
	if (queue.len[queue.fresh] > 0) {
		queue.fresh = settling;
		queue.settling_since = now;
	}
}

int64_t settle_queue_due_at(void)
{
	if (queue.len[1 - queue.fresh] > 0)
		return queue.settling_since + SETTLE_QUEUE_WAIT_MS * NS_PER_MS;
	/* Copies queued but not settling yet start at the end of this round. */
	return queue.len[queue.fresh] > 0 ? 0 : INT64_MAX;
}

void settle_queue_forget(void)
{
	queue.len[0] = queue.len[1] = 0;
	queue.fresh = 0;
	queue.settling_since = 0;
}
