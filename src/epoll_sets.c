/* epoll_sets.c: the registry of the application's epoll sets (see
 * epoll_sets.h): a fixed array of slots, each holding a set's number and
 * whether an EPOLL_CTL_ADD was seen in it; beyond the array, every epoll set
 * the descriptor table knows is tried. */
#include "epoll_sets.h"
#include "fd_table.h"
#include "raw_syscall.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#define EPOLL_SET_SLOTS 64
/* A slot: 0 (free), or the set's number + 1, with ADD_SEEN. */
#define SLOT_ADD_SEEN (1u << 30)
#define SLOT_NUMBER_MASK (SLOT_ADD_SEEN - 1)

static _Atomic uint32_t slots[EPOLL_SET_SLOTS];
/* Slots without ADD_SEEN: sets that may hold only unseen registrations. */
static atomic_int silent_sets;
/* More sets than slots were known at once: the table is tried as well. */
static atomic_bool overflowed;
static atomic_bool io_uring_seen;

static uint32_t slot_number(uint32_t slot) { return slot & SLOT_NUMBER_MASK; }

static _Atomic uint32_t *find_slot(int epfd)
{
	for (int i = 0; i < EPOLL_SET_SLOTS; i++)
		if (slot_number(atomic_load(&slots[i])) == (uint32_t)epfd + 1)
			return &slots[i];
	return NULL;
}

static void add_slot(int epfd, bool add_seen)
{
	if (epfd < 0 || (uint32_t)epfd >= SLOT_NUMBER_MASK - 1)
		return;
	uint32_t value = ((uint32_t)epfd + 1) | (add_seen ? SLOT_ADD_SEEN : 0);
	if (!add_seen)
		atomic_fetch_add(&silent_sets, 1);
	for (int i = 0; i < EPOLL_SET_SLOTS; i++) {
		uint32_t free_slot = 0;
		if (atomic_compare_exchange_strong(&slots[i], &free_slot, value))
			return;
	}
	if (!add_seen)
		atomic_fetch_sub(&silent_sets, 1);
	atomic_store(&overflowed, true);
}

static void drop_slot(_Atomic uint32_t *slot)
{
	uint32_t old = atomic_exchange(slot, 0);
	if (old != 0 && !(old & SLOT_ADD_SEEN))
		atomic_fetch_sub(&silent_sets, 1);
}

void epoll_sets_note_created(int epfd)
{
	/* A number we still list was closed behind our back: a new set now. */
	_Atomic uint32_t *old = find_slot(epfd);
	if (old != NULL)
		drop_slot(old);
	add_slot(epfd, false);
}

void epoll_sets_note_add_seen(int epfd)
{
	_Atomic uint32_t *slot = find_slot(epfd);
	if (slot == NULL) {
		add_slot(epfd, true); /* made before us, or behind our back */
		return;
	}
	uint32_t old = atomic_fetch_or(slot, SLOT_ADD_SEEN);
	if (old != 0 && !(old & SLOT_ADD_SEEN))
		atomic_fetch_sub(&silent_sets, 1);
}

void epoll_sets_note_duplicate(int source, int target)
{
	_Atomic uint32_t *slot = find_slot(source);
	if (slot != NULL)
		add_slot(target, (atomic_load(slot) & SLOT_ADD_SEEN) != 0);
}

void epoll_sets_note_closed(int epfd)
{
	_Atomic uint32_t *slot = find_slot(epfd);
	if (slot != NULL)
		drop_slot(slot);
}

void epoll_sets_note_io_uring(void)
{
	atomic_store(&io_uring_seen, true);
}

bool epoll_sets_io_uring_seen(void)
{
	return atomic_load_explicit(&io_uring_seen, memory_order_relaxed);
}

static void delete_from(int epfd, int fd)
{
	if (epfd != fd)
		raw_syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_DEL, fd, NULL);
}

void epoll_sets_leave_unseen(int fd)
{
	bool every_set = atomic_load_explicit(&io_uring_seen, memory_order_relaxed);
	if (!every_set && atomic_load_explicit(&silent_sets, memory_order_relaxed) == 0)
		return;
	int saved = errno;
	for (int i = 0; i < EPOLL_SET_SLOTS; i++) {
		uint32_t slot = atomic_load(&slots[i]);
		if (slot != 0 && (every_set || !(slot & SLOT_ADD_SEEN)))
			delete_from((int)slot_number(slot) - 1, fd);
	}
	if (every_set && atomic_load(&overflowed))
		fd_table_leave_every_epoll_set(fd);
	errno = saved;
}
