/* deadline_heap.h: the reaper's deadlines, an indexed binary min-heap of
 * (deadline, fd): O(log n) insert, removal from anywhere, and earliest. */
#ifndef WSPCLOSE_DEADLINE_HEAP_H
#define WSPCLOSE_DEADLINE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEADLINE_HEAP_NOWHERE UINT32_MAX

struct deadline_item {
	int64_t deadline_ns;
	int fd;
};

struct deadline_heap {
	struct deadline_item *items;
	size_t len, cap;
	/* Told every time an item lands at a new index, so that its owner can
	 * remove it later in O(log n). */
	void (*placed)(int fd, uint32_t index, void *context);
	void *context;
};

/* Fixed capacity (WSPCLOSE_MAX_HELD): allocated once, never on a hot path. */
bool deadline_heap_init(struct deadline_heap *h, size_t capacity,
			void (*placed)(int fd, uint32_t index, void *context), void *context);
void deadline_heap_free(struct deadline_heap *h);
bool deadline_heap_push(struct deadline_heap *h, int fd, int64_t deadline_ns);
void deadline_heap_remove(struct deadline_heap *h, uint32_t index);
/* The earliest item, or NULL when empty. */
const struct deadline_item *deadline_heap_first(const struct deadline_heap *h);

#endif
