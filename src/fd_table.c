/* fd_table.c: the per-descriptor table. One flat array mapped once, updated
 * only with atomics, so close() can consult it from a signal handler. */
#include "fd_table.h"
#include "epoll_sets.h"
#include "fd_state.h"
#include "raw_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux's default fs.nr_open: no descriptor can be above it unless root
 * raised that sysctl; descriptors beyond the table get plain Linux close. */
#define FD_TABLE_MAX_ENTRIES (1u << 20)
#define FD_TABLE_MIN_ENTRIES 1024u

static struct fd_entry *table;
static uint32_t table_size;
static _Atomic int highest_fd = -1;             /* highest fd ever recorded */
static _Atomic uint64_t next_socket_id = 1ull << 63; /* above any inode */

static void *map_entries(uint64_t count)
{
	/* Pages are only touched for descriptor numbers in use. */
	void *p = mmap(NULL, count * sizeof(struct fd_entry), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Sized for every number the kernel can hand out by default, not for the
 * hard RLIMIT_NOFILE of today: root may raise that at run time, and the
 * numbers above the old limit must not silently get plain Linux closes.
 * Only where that much address space is refused (RLIMIT_AS), the table
 * covers the hard limit. */
/* Every unconditional change of an entry's state goes through here (the
 * compare-and-swap ones check the state they replace in place): the
 * transition table of fd_state.h is checked in test builds. */
static void set_state(struct fd_entry *e, uint32_t state, const char *by)
{
#ifdef WSPCLOSE_CHECK_STATES
	fd_state_check(atomic_load(&e->state), state, by);
#else
	(void)by;
#endif
	atomic_store_explicit(&e->state, state, memory_order_release);
}

void fd_table_init(void)
{
	if (table != NULL)
		return;
	uint64_t want = FD_TABLE_MAX_ENTRIES;
	void *p = map_entries(want);
	struct rlimit lim;
	if (p == NULL && getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max < want) {
		want = lim.rlim_max < FD_TABLE_MIN_ENTRIES ? FD_TABLE_MIN_ENTRIES : lim.rlim_max;
		p = map_entries(want);
	}
	if (p == NULL)
		return; /* no table: every close is a plain Linux close */
	table_size = (uint32_t)want;
	__atomic_store_n(&table, (struct fd_entry *)p, __ATOMIC_RELEASE);
}

struct fd_entry *fd_table_entry(int fd)
{
	struct fd_entry *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	if (t == NULL || fd < 0 || (uint32_t)fd >= table_size)
		return NULL;
	return &t[fd];
}

uint32_t fd_table_capacity(void)
{
	return __atomic_load_n(&table, __ATOMIC_ACQUIRE) != NULL ? table_size : 0;
}

bool fd_table_is_library_owned(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	return e != NULL && (atomic_load(&e->state) & FD_LIBRARY_OWNED);
}

static void note_highest(int fd)
{
	int seen = atomic_load_explicit(&highest_fd, memory_order_relaxed);
	while (fd > seen &&
	       !atomic_compare_exchange_weak(&highest_fd, &seen, fd))
		;
}

/* One past the highest number ever recorded: where every scan stops. */
static int scan_end(void)
{
	int end = atomic_load(&highest_fd) + 1;
	return end < (int)table_size ? end : (int)table_size;
}

uint64_t fd_table_new_socket_id(void)
{
	return atomic_fetch_add_explicit(&next_socket_id, 1, memory_order_relaxed);
}

static void clear_epoll_sets(struct fd_entry *e)
{
	for (int i = 0; i < FD_EPOLL_SLOTS; i++)
		atomic_store_explicit(&e->epoll_sets[i], 0, memory_order_relaxed);
}

void fd_table_set_socket(int fd, uint32_t kind_and_flags, uint64_t socket_id)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e == NULL)
		return;
	note_highest(fd);
	clear_epoll_sets(e);
	atomic_store_explicit(&e->socket_id, socket_id, memory_order_relaxed);
	set_state(e, kind_and_flags, "fd_table_set_socket");
}

/* Records a state that close_range() and the fork child must see. */
static void publish(int fd, uint32_t state)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e == NULL)
		return;
	note_highest(fd);
	set_state(e, state, "fd_table_publish (library-owned)");
}

void fd_table_set_library_owned(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e != NULL)
		atomic_store_explicit(&e->socket_id, 0, memory_order_relaxed);
	publish(fd, FD_LIBRARY_OWNED);
}

void fd_table_set_transient(int fd)
{
	publish(fd, FD_LIBRARY_OWNED | FD_TRANSIENT);
}

void fd_table_publish_held(int fd, uint32_t state)
{
	publish(fd, state);
}

void fd_table_forget(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e != NULL)
		set_state(e, 0, "fd_table_forget");
}

void fd_table_note_duplicate(int source, int target)
{
	struct fd_entry *dst = fd_table_entry(target);
	if (dst == NULL)
		return;
	struct fd_entry *src = fd_table_entry(source);
	uint32_t state = src ? atomic_load(&src->state) : 0;
	if (fd_kind(state) == FD_KIND_NONE) {
		set_state(dst, 0, "fd_table_note_duplicate (not a socket)");
		return;
	}
	fd_table_add_flags(src, FD_HAS_DUPS);
	if (fd_kind(state) == FD_KIND_EPOLL)
		epoll_sets_note_duplicate(source, target);
	/* Socket-wide facts travel; epoll membership is per number and stays. */
	uint32_t copied = (state & (FD_KIND_MASK | FD_WRITE_SHUT | FD_SHARED | FD_STALE_EPOLL |
				     FD_CONNECTED | FD_DISCONNECTED | FD_PEEK_OFFSET)) |
			  FD_HAS_DUPS;
	fd_table_set_socket(target, copied, atomic_load(&src->socket_id));
}

static void note_epoll_set(int epfd, const char *by)
{
	struct fd_entry *set = fd_table_entry(epfd);
	/* Its own identity, shared by its dups (its last close matters). A
	 * tombstone is a number reused behind our back. */
	uint32_t seen = set != NULL ? atomic_load(&set->state) : FD_LIBRARY_OWNED;
	if (fd_state_is_unknown(seen) || seen == FD_TOMBSTONE) {
		atomic_store(&set->socket_id, fd_table_new_socket_id());
		fd_state_check(seen, FD_KIND_EPOLL, by);
		atomic_compare_exchange_strong(&set->state, &seen, FD_KIND_EPOLL);
	}
	note_highest(epfd);
}

void fd_table_note_epoll_created(int epfd)
{
	note_epoll_set(epfd, "fd_table_note_epoll_created");
}

void fd_table_note_epoll_add(int epfd, int fd)
{
	note_epoll_set(epfd, "fd_table_note_epoll_add");
	struct fd_entry *e = fd_table_entry(fd);
	/* Only sockets: closing anything else must stay a plain close(). */
	if (e == NULL || !fd_is_socket(atomic_load(&e->state)))
		return;
	for (int i = 0; i < FD_EPOLL_SLOTS; i++) {
		int32_t free_slot = 0;
		if (atomic_compare_exchange_strong(&e->epoll_sets[i], &free_slot, epfd + 1))
			return;
	}
	fd_table_add_flags(e, FD_EPOLL_MANY);
}

void fd_table_forget_epoll_set(int epfd, bool last_descriptor)
{
	for (int fd = 0, end = scan_end(); fd < end; fd++) {
		struct fd_entry *e = &table[fd];
		for (int i = 0; i < FD_EPOLL_SLOTS; i++) {
			int32_t member = epfd + 1;
			if (atomic_compare_exchange_strong(&e->epoll_sets[i], &member, 0) &&
			    !last_descriptor)
				fd_table_add_flags(e, FD_EPOLL_MANY);
		}
	}
}

void fd_table_note_epoll_del(int epfd, int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e == NULL)
		return;
	for (int i = 0; i < FD_EPOLL_SLOTS; i++) {
		int32_t member = epfd + 1;
		atomic_compare_exchange_strong(&e->epoll_sets[i], &member, 0);
	}
}

static void epoll_del(int epfd, int fd)
{
	raw_syscall(SYS_epoll_ctl, epfd, EPOLL_CTL_DEL, fd, NULL);
}

void fd_table_leave_epoll_sets(int fd, struct fd_entry *e)
{
	int saved = errno;
	for (int i = 0; i < FD_EPOLL_SLOTS; i++) {
		int32_t member = atomic_exchange(&e->epoll_sets[i], 0);
		if (member > 0)
			epoll_del(member - 1, fd);
	}
	/* Lost count: try every epoll set we know (ENOENT where absent). */
	if (atomic_fetch_and(&e->state, ~(uint32_t)FD_EPOLL_MANY) & FD_EPOLL_MANY)
		fd_table_leave_every_epoll_set(fd);
	/* And the registrations made where the library cannot see them. */
	epoll_sets_leave_unseen(fd);
	errno = saved;
}

void fd_table_leave_every_epoll_set(int fd)
{
	for (int other = 0, end = scan_end(); other < end; other++) {
		struct fd_entry *o = &table[other];
		if (other != fd && fd_kind(atomic_load(&o->state)) == FD_KIND_EPOLL)
			epoll_del(other, fd);
	}
}

/* Adds flags to every other application number of the socket `id`. */
static void add_flags_to_dups(int fd, uint64_t id, uint32_t flags)
{
	for (int other = 0, end = scan_end(); other < end; other++) {
		struct fd_entry *o = &table[other];
		uint32_t s = atomic_load(&o->state);
		if (other != fd && fd_is_socket(s) && !(s & FD_LIBRARY_OWNED) &&
		    atomic_load(&o->socket_id) == id)
			fd_table_add_flags(o, flags);
	}
}

void fd_table_note_stale_epoll(int fd, struct fd_entry *e)
{
	bool registered = (atomic_load(&e->state) & FD_EPOLL_MANY) != 0;
	for (int i = 0; i < FD_EPOLL_SLOTS; i++)
		registered = registered || atomic_load(&e->epoll_sets[i]) != 0;
	if (registered)
		add_flags_to_dups(fd, atomic_load(&e->socket_id), FD_STALE_EPOLL);
}

void fd_table_note_write_shut(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	uint32_t state = e ? atomic_load(&e->state) : 0;
	if (!fd_is_socket(state))
		return;
	fd_table_add_flags(e, FD_WRITE_SHUT);
	if (!(state & FD_HAS_DUPS))
		return;
	/* shutdown() acts on the socket: every dup of it is shut too. */
	add_flags_to_dups(fd, atomic_load(&e->socket_id), FD_WRITE_SHUT);
}

void fd_table_forget_linger(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e != NULL && fd_is_socket(atomic_load(&e->state)))
		atomic_fetch_and(&e->state, ~(uint32_t)FD_LINGER_DEFAULT);
}

void fd_table_note_connect(int fd, bool dissolved)
{
	struct fd_entry *e = fd_table_entry(fd);
	uint32_t state = e ? atomic_load(&e->state) : 0;
	if (fd_kind(state) != FD_KIND_TCP)
		return;
	uint32_t flag = dissolved ? FD_DISCONNECTED : FD_CONNECTED;
	fd_table_add_flags(e, flag);
	/* A connection belongs to the socket: every dup of it has it too. */
	if (state & FD_HAS_DUPS)
		add_flags_to_dups(fd, atomic_load(&e->socket_id), flag);
}

bool fd_table_add_flags(struct fd_entry *e, uint32_t flags)
{
	uint32_t seen = atomic_load(&e->state);
	do {
		if (fd_kind(seen) == FD_KIND_NONE || (seen & FD_LIBRARY_OWNED))
			return false;
	} while (!atomic_compare_exchange_weak(&e->state, &seen, seen | flags));
	return true;
}

bool fd_table_claim_close(struct fd_entry *e, uint32_t *state)
{
	uint32_t seen = atomic_load(&e->state);
	do {
		if ((seen & (FD_CLOSING | FD_LIBRARY_OWNED)) || fd_kind(seen) == FD_KIND_NONE)
			return false;
		fd_state_check(seen, seen | FD_CLOSING, "fd_table_claim_close");
	} while (!atomic_compare_exchange_weak(&e->state, &seen, seen | FD_CLOSING));
	*state = seen | FD_CLOSING;
	return true;
}

void fd_table_release_claim(struct fd_entry *e, uint32_t flags)
{
	uint32_t seen = atomic_load(&e->state);
	while ((seen & FD_CLOSING) &&
	       !atomic_compare_exchange_weak(&e->state, &seen, (seen & ~(uint32_t)FD_CLOSING) | flags))
		;
}

void fd_table_bury(struct fd_entry *e)
{
	set_state(e, FD_TOMBSTONE, "fd_table_bury");
}

void fd_table_unbury(struct fd_entry *e)
{
	uint32_t tombstone = FD_TOMBSTONE;
	atomic_compare_exchange_strong(&e->state, &tombstone, 0);
}

void fd_table_snapshot(struct fd_entry *e, struct fd_snapshot *out)
{
	out->state = atomic_load(&e->state);
	out->socket_id = atomic_load(&e->socket_id);
	for (int i = 0; i < FD_EPOLL_SLOTS; i++)
		out->epoll_sets[i] = atomic_load(&e->epoll_sets[i]);
}

void fd_table_restore(struct fd_entry *e, const struct fd_snapshot *saved)
{
	for (int i = 0; i < FD_EPOLL_SLOTS; i++)
		atomic_store(&e->epoll_sets[i], saved->epoll_sets[i]);
	atomic_store(&e->socket_id, saved->socket_id);
	set_state(e, saved->state, "fd_table_restore");
}

bool fd_table_is_last_reference(int fd, uint32_t state, uint64_t socket_id)
{
	if (!(state & FD_HAS_DUPS))
		return true;
	/* Rare path (the socket was duplicated): look for another live holder.
	 * A holder that is itself being closed does not count, so that of two
	 * concurrent closes of two dups, one at least applies the semantics. */
	for (int other = 0, end = scan_end(); other < end; other++) {
		if (other == fd)
			continue;
		struct fd_entry *e = &table[other];
		uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
		if (fd_kind(s) == FD_KIND_NONE || (s & (FD_CLOSING | FD_LIBRARY_OWNED)))
			continue;
		if (atomic_load_explicit(&e->socket_id, memory_order_relaxed) == socket_id)
			return false;
	}
	return true;
}

int fd_table_highest(void)
{
	return atomic_load(&highest_fd);
}

void fd_table_mark_shared(int fd)
{
	struct fd_entry *e = fd_table_entry(fd);
	if (e != NULL && fd_is_socket(atomic_load(&e->state)))
		fd_table_add_flags(e, FD_SHARED);
}

void fd_table_mark_all_shared(void)
{
	for (int fd = 0, end = scan_end(); fd < end; fd++) {
		struct fd_entry *e = &table[fd];
		uint32_t s = atomic_load(&e->state);
		if (fd_kind(s) != FD_KIND_NONE && !(s & FD_LIBRARY_OWNED))
			fd_table_add_flags(e, FD_SHARED);
	}
}

void fd_table_drop_claims(void)
{
	for (int fd = 0, end = scan_end(); fd < end; fd++) {
		struct fd_entry *e = &table[fd];
		atomic_fetch_and(&e->state, ~(uint32_t)FD_CLOSING);
	}
}

void fd_table_mark_inherited_shared(bool every_socket)
{
	for (int fd = 0, end = scan_end(); fd < end; fd++) {
		struct fd_entry *e = &table[fd];
		uint32_t s = atomic_load(&e->state);
		if (!fd_is_socket(s) || (s & FD_LIBRARY_OWNED))
			continue;
		long flags = every_socket ? 0 : raw_syscall(SYS_fcntl, fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fd_table_add_flags(e, FD_SHARED);
	}
}

void fd_table_for_each(void (*fn)(int fd, struct fd_entry *e))
{
	for (int fd = 0, end = scan_end(); fd < end; fd++) {
		struct fd_entry *e = &table[fd];
		if (atomic_load(&e->state) != 0)
			fn(fd, e);
	}
}
