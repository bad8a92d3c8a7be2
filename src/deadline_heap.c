/* deadline_heap.c: an indexed binary min-heap on deadline_ns. */
#include "deadline_heap.h"

#include <stdlib.h>

static void place(struct deadline_heap *h, size_t i, struct deadline_item item)
{
	h->items[i] = item;
	h->placed(item.fd, (uint32_t)i, h->context);
}

static void sift_up(struct deadline_heap *h, size_t i)
{
	struct deadline_item item = h->items[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h->items[parent].deadline_ns <= item.deadline_ns)
			break;
		place(h, i, h->items[parent]);
		i = parent;
	}
	place(h, i, item);
}

static void sift_down(struct deadline_heap *h, size_t i)
{
	struct deadline_item item = h->items[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= h->len)
			break;
		if (child + 1 < h->len && h->items[child + 1].deadline_ns < h->items[child].deadline_ns)
			child++;
		if (item.deadline_ns <= h->items[child].deadline_ns)
			break;
		place(h, i, h->items[child]);
		i = child;
	}
	place(h, i, item);
}

bool deadline_heap_init(struct deadline_heap *h, size_t capacity,
			void (*placed)(int fd, uint32_t index, void *context), void *context)
{
	h->items = calloc(capacity, sizeof *h->items);
	h->len = 0;
	h->cap = h->items ? capacity : 0;
	h->placed = placed;
	h->context = context;
	return h->items != NULL;
}

void deadline_heap_free(struct deadline_heap *h)
{
	free(h->items);
	h->items = NULL;
	h->len = h->cap = 0;
}

bool deadline_heap_push(struct deadline_heap *h, int fd, int64_t deadline_ns)
{
	if (h->len == h->cap)
		return false;
	h->items[h->len] = (struct deadline_item){ deadline_ns, fd };
	sift_up(h, h->len++);
	return true;
}

void deadline_heap_remove(struct deadline_heap *h, uint32_t index)
{
	if (index >= h->len)
		return;
	h->len--;
	if (index == h->len)
		return;
	place(h, index, h->items[h->len]);
	if (index > 0 && h->items[(index - 1) / 2].deadline_ns > h->items[index].deadline_ns)
		sift_up(h, index);
	else
		sift_down(h, index);
}

const struct deadline_item *deadline_heap_first(const struct deadline_heap *h)
{
	return h->len > 0 ? &h->items[0] : NULL;
}
