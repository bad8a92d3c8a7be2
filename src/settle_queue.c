/* settle_queue.c: the two rounds of settle_queue.h, as two arrays of event
 * tokens that swap roles at the end of every round. A token outlives its
 * copy harmlessly: look() checks its generation, as for an epoll event. */
#include "settle_queue.h"

#include <stdlib.h>

static struct {
	uint64_t *rounds[2];
	size_t len[2];
	size_t cap;
	int fresh; /* index of the round being filled; the other one is due */
} queue;

bool settle_queue_init(size_t capacity)
{
	if (queue.cap != capacity) {
		for (int i = 0; i < 2; i++) {
			free(queue.rounds[i]);
			queue.rounds[i] = calloc(capacity ? capacity : 1, sizeof *queue.rounds[i]);
		}
		queue.cap = queue.rounds[0] && queue.rounds[1] ? capacity : 0;
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
	queue.rounds[fresh][queue.len[fresh]++] = token;
	return true;
}

void settle_queue_end_round(void (*look)(uint64_t token))
{
	int due = 1 - queue.fresh;
	/* look() may queue nothing here (a copy it looks at is registered or
	 * released), so the due array is stable while it runs. */
	for (size_t i = 0; i < queue.len[due]; i++)
		look(queue.rounds[due][i]);
	queue.len[due] = 0;
	queue.fresh = due;
}

bool settle_queue_has_due(void)
{
	return queue.len[1 - queue.fresh] > 0;
}

void settle_queue_forget(void)
{
	queue.len[0] = queue.len[1] = 0;
	queue.fresh = 0;
}
