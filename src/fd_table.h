/* fd_table.h: what the library knows about each descriptor number, in a flat
 * table of atomics indexed by fd: lock-free, async-signal-safe, no malloc. */
#ifndef WSPCLOSE_FD_TABLE_H
#define WSPCLOSE_FD_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* fd_entry.state: the kind in the low bits, flags above. A zero state means
 * "not a socket we know of": close() then makes no extra system call. */
enum fd_state_bits {
	FD_KIND_MASK = 0x3,
	FD_KIND_NONE = 0x0,
	FD_KIND_TCP = 0x1,          /* TCP over IPv4/IPv6 */
	FD_KIND_OTHER_SOCKET = 0x2, /* UDP, AF_UNIX, raw, netlink, ... */
	FD_KIND_EPOLL = 0x3,        /* an epoll set the application uses */

	FD_WRITE_SHUT = 1u << 2,    /* shutdown(SHUT_WR/SHUT_RDWR) seen */
	FD_SHARED = 1u << 3,        /* crossed a process boundary */
	FD_HAS_DUPS = 1u << 4,      /* another fd may hold the same socket */
	FD_CLOSING = 1u << 5,       /* a close() owns this entry right now */
	FD_LIBRARY_OWNED = 1u << 6, /* ours: held copy or reaper descriptor */
	FD_HELD = 1u << 7,          /* a held copy (with FD_LIBRARY_OWNED) */
	FD_EPOLL_MANY = 1u << 8,    /* in more epoll sets than epoll_sets[] holds */
	FD_W1_REFUSED = 1u << 9,    /* close() answered W1 (EWOULDBLOCK) */
	/* Alone: the application closed this socket number and it was not
	 * reused through a call we see. A second close() that the kernel
	 * answers EBADF is a double close (divergence report). */
	FD_TOMBSTONE = 1u << 10,
	/* Another number of this socket was closed while registered in an
	 * epoll set (kernel semantics left the registration, §4): that
	 * registration can no longer be deleted, and it lives as long as the
	 * file, so the last close must hold no copy. */
	FD_STALE_EPOLL = 1u << 11,
	/* With FD_LIBRARY_OWNED: a linger wait's private copy or epoll set,
	 * owned by the thread that waits (a fork child closes it). */
	FD_TRANSIENT = 1u << 12,
	/* Connected: accepted, or a connect() returned 0. Never a listener or a
	 * bound-only socket since, so its close needs no TCP_INFO to tell (§3). */
	FD_CONNECTED = 1u << 13,
	/* A connect(AF_UNSPEC) dissolved its connection: it may be anything
	 * now (even a listener), FD_CONNECTED no longer says so. */
	FD_DISCONNECTED = 1u << 14,
	/* SO_LINGER is the kernel's default {0,0}: a TCP socket made here by
	 * socket(), or accepted from such a listener, with no SO_LINGER set
	 * on it since. Not copied to a dup; trusted only while the socket has
	 * no dup and never crossed a process boundary, so close() then needs
	 * no getsockopt() to know it. */
	FD_LINGER_DEFAULT = 1u << 15,
	/* SO_PEEK_OFF was set: a MSG_PEEK starts at the peek offset, so the
	 * reaper looks for unread data with SIOCINQ instead. Travels to dups. */
	FD_PEEK_OFFSET = 1u << 16,
};

/* How many epoll sets a socket is remembered in before FD_EPOLL_MANY. */
#define FD_EPOLL_SLOTS 2

/* How a held copy ends when its deadline passes. */
enum held_deadline { DEADLINE_GRACE, DEADLINE_LINGER };

/* What the closing thread learnt about a copy's teardown before handing it
 * off (close_actions.c), so that the reaper does not ask again. */
enum teardown_start {
	START_PEER_OPEN,   /* nothing unread, no FIN (or SIOCINQ: FIN unknown) */
	START_PEER_CLOSED, /* a peek found the peer's FIN and nothing unread */
	START_UNREAD,      /* a peek found unread data: RST */
	START_PEER_RESET,  /* a peek took a pending reset */
	START_SHUT_DOWN,   /* peer closed, and the closer called shutdown() */
};

/* Bookkeeping of a held copy, in the copy's own entry: written by the
 * closing thread before it registers the copy with the reaper's epoll set,
 * then the reaper's. */
struct held_info {
	int64_t since_ns;
	int64_t deadline_ns;
	_Atomic uint32_t generation; /* tells a stale epoll event from a live one */
	uint32_t heap_index;   /* position in the reaper's deadline heap */
	uint32_t data_segs_in; /* TCP_INFO at close: later data means data-after-close */
	uint8_t row;           /* enum close_row that handed it off */
	uint8_t start;         /* enum teardown_start */
	/* The reaper has it (from the stack or the nursery). Atomic: the
	 * reaper reads it for a dup2() onto the number while a closer may be
	 * filling in a new copy there (handoff.h, I6). */
	_Atomic bool adopted;
	uint8_t deadline_kind : 1; /* enum held_deadline */
	bool linger_on : 1;    /* SO_LINGER must be cleared before the real close */
	bool data_segs_known : 1; /* data_segs_in was read (by the closer) */
};

struct fd_entry {
	_Atomic uint32_t state;
	_Atomic int32_t next_handoff; /* link in the reaper's hand-off stack */
	_Atomic uint64_t socket_id;   /* same value for every dup of a socket */
	_Atomic int32_t epoll_sets[FD_EPOLL_SLOTS]; /* epoll fd + 1, 0 = free */
	struct held_info held;
};

/* Maps the table (sized by the hard RLIMIT_NOFILE, capped). Constructor only. */
void fd_table_init(void);

/* The entry for fd, or NULL when fd is outside the table (or before init). */
struct fd_entry *fd_table_entry(int fd);
/* How many numbers the table covers (0 before init or without a table). */
uint32_t fd_table_capacity(void);

static inline uint32_t fd_kind(uint32_t state) { return state & FD_KIND_MASK; }
/* One of the library's own descriptors: not there for the application. */
bool fd_table_is_library_owned(int fd);
static inline bool fd_is_socket(uint32_t state)
{
	return fd_kind(state) == FD_KIND_TCP || fd_kind(state) == FD_KIND_OTHER_SOCKET;
}

/* An identity for a socket created in this process (inherited ones use
 * their inode). */
uint64_t fd_table_new_socket_id(void);

/* Records a socket that was just created, accepted or found. */
void fd_table_set_socket(int fd, uint32_t kind_and_flags, uint64_t socket_id);
/* Records one of the library's own descriptors. */
void fd_table_set_library_owned(int fd);
/* The same, for a descriptor one closing thread uses for a while. */
void fd_table_set_transient(int fd);
/* Publishes a held copy whose held_info is filled in (release order). */
void fd_table_publish_held(int fd, uint32_t state);
/* Forgets fd: it is about to be closed (or was, behind our back). */
void fd_table_forget(int fd);
/* `target` now refers to what `source` refers to (dup, dup2, F_DUPFD). */
void fd_table_note_duplicate(int source, int target);
void fd_table_note_write_shut(int fd);
/* FD_LINGER_DEFAULT is gone: a SO_LINGER or SO_DONTLINGER was set on fd,
 * or fd was lent to a process that may set one (wineserver's clients). */
void fd_table_forget_linger(int fd);
/* What FD_LINGER_DEFAULT says, where it can be trusted (see there). */
static inline bool fd_linger_is_default(uint32_t state)
{
	return (state & (FD_LINGER_DEFAULT | FD_HAS_DUPS | FD_SHARED)) == FD_LINGER_DEFAULT;
}
/* connect() returned 0 on a TCP socket: it is connected, or, for
 * connect(AF_UNSPEC), its connection was dissolved. */
void fd_table_note_connect(int fd, bool dissolved);
/* fd, registered in an epoll set, is being closed while other numbers of
 * its socket stay open: they carry FD_STALE_EPOLL from now on. */
void fd_table_note_stale_epoll(int fd, struct fd_entry *e);
/* epoll_create()/epoll_create1() made epfd. */
void fd_table_note_epoll_created(int epfd);
/* epoll_ctl() succeeded: remember which sets a socket is in (§4). */
void fd_table_note_epoll_add(int epfd, int fd);
void fd_table_note_epoll_del(int epfd, int fd);
/* An epoll descriptor is being closed. When it was the last descriptor of
 * its set, no socket is in that set any more; otherwise the sockets that
 * were added through it are looked for in every known set at their close. */
void fd_table_forget_epoll_set(int epfd, bool last_descriptor);
/* Removes fd from every epoll set it was added to, while it is still open,
 * so that no event is ever reported for it after close(). */
void fd_table_leave_epoll_sets(int fd, struct fd_entry *e);
/* Deletes fd from every epoll set the table knows (ENOENT where absent). */
void fd_table_leave_every_epoll_set(int fd);

/* Not a socket or epoll set the library knows, nor one of its own, nor a
 * tombstone: close() is the real close. A state without a kind but with
 * flags is unknown too (a flag is never trusted without its kind). */
static inline bool fd_state_is_unknown(uint32_t state)
{
	return fd_kind(state) == FD_KIND_NONE && state != FD_TOMBSTONE &&
	       !(state & FD_LIBRARY_OWNED);
}

/* Adds flags to an entry that describes an application socket or epoll
 * set; false (nothing written) for any other entry. */
bool fd_table_add_flags(struct fd_entry *e, uint32_t flags);

/* Takes the right to close fd; false when another close holds it. On success
 * *state gets the entry's state (with FD_CLOSING). */
bool fd_table_claim_close(struct fd_entry *e, uint32_t *state);
/* Ends a claim without giving the number up (W1, a failed replacement),
 * adding `flags` (FD_W1_REFUSED). */
void fd_table_release_claim(struct fd_entry *e, uint32_t flags);
/* Ends a claim because the number is about to be closed: the entry becomes
 * a tombstone before the kernel can hand the number out again. */
void fd_table_bury(struct fd_entry *e);
/* A tombstone's number is being closed or reused: forget it. */
void fd_table_unbury(struct fd_entry *e);

/* An entry as it is, to put back when a replacement of its number fails. */
struct fd_snapshot {
	uint32_t state;
	uint64_t socket_id;
	int32_t epoll_sets[FD_EPOLL_SLOTS];
};
void fd_table_snapshot(struct fd_entry *e, struct fd_snapshot *out);
void fd_table_restore(struct fd_entry *e, const struct fd_snapshot *saved);

/* True when no other descriptor of this process holds the socket. */
bool fd_table_is_last_reference(int fd, uint32_t state, uint64_t socket_id);

/* The highest descriptor number ever recorded (-1: none). */
int fd_table_highest(void);

/* fd's socket crossed (or is about to cross) a process boundary: sent with
 * SCM_RIGHTS, or made inheritable by a vfork() child before its exec. */
void fd_table_mark_shared(int fd);
/* After fork(): every socket crossed a process boundary. */
void fd_table_mark_all_shared(void);
/* In the fork child: closes in progress in the parent's other threads are
 * not going on here. */
void fd_table_drop_claims(void);
/* Before posix_spawn()/system()/popen() (no fork handlers run): the sockets
 * the child inherits (all of them when the spawn has file actions, which
 * may dup2 any descriptor into it; otherwise those without FD_CLOEXEC). */
void fd_table_mark_inherited_shared(bool every_socket);
/* Calls fn(fd, entry) for every entry that has a nonzero state. */
void fd_table_for_each(void (*fn)(int fd, struct fd_entry *e));

#endif
