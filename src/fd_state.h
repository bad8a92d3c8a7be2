/* fd_state.h: the legal states of a descriptor's table entry and the legal
 * transitions between them, in one table. fd_table.c owns every change of
 * an entry's state and names the function that makes each transition; in
 * test builds (sanitizers, interleaving pauses) every change is checked
 * against the table and an illegal one aborts with both states.
 *
 *   class       state bits                         meaning
 *   UNKNOWN     kind NONE, no LIBRARY_OWNED, not   not a socket we know: close() is
 *               exactly TOMBSTONE (flags ignored)  the real close, one table load
 *   SOCKET      kind TCP or OTHER_SOCKET [+flags]  an application socket
 *   EPOLL       kind EPOLL [+flags]                an application epoll set
 *   CLAIMED     SOCKET or EPOLL + CLOSING          one close owns it
 *   TOMBSTONE   exactly TOMBSTONE                  closed by the application and
 *                                                  not reused through a call we see
 *   LIBRARY     LIBRARY_OWNED [+HELD|TRANSIENT]    one of the library's descriptors
 *
 *   from        to          by
 *   UNKNOWN     SOCKET      fd_table_set_socket (socket, accept, dup, learned)
 *   TOMBSTONE   SOCKET      fd_table_set_socket (the number was reused)
 *   SOCKET      SOCKET      fd_table_set_socket, fd_table_add_flags
 *   EPOLL       SOCKET      fd_table_set_socket (a stale set's number reused)
 *   UNKNOWN     EPOLL       fd_table_note_epoll_add, fd_table_note_epoll_created
 *   TOMBSTONE   EPOLL       fd_table_note_epoll_add, fd_table_note_epoll_created
 *   EPOLL       EPOLL       fd_table_add_flags
 *   SOCKET      CLAIMED     fd_table_claim_close
 *   EPOLL       CLAIMED     fd_table_claim_close
 *   CLAIMED     CLAIMED     fd_table_add_flags (fork marks it shared)
 *   CLAIMED     SOCKET      fd_table_release_claim (W1), fd_table_drop_claims,
 *                           fd_table_set_socket (dup2 onto it: the new socket)
 *   CLAIMED     EPOLL       fd_table_release_claim, fd_table_drop_claims
 *   CLAIMED     UNKNOWN     fd_table_set_socket (dup2 of a non-socket onto it)
 *   CLAIMED     TOMBSTONE   fd_table_bury (before the real close)
 *   SOCKET/UNKNOWN/CLAIMED  CLAIMED  fd_table_restore (a failed dup2 onto it)
 *   TOMBSTONE   UNKNOWN     fd_table_unbury
 *   any but CLAIMED  UNKNOWN  fd_table_forget (closed behind our back, released)
 *   UNKNOWN     LIBRARY     fd_table_set_library_owned, _set_transient,
 *   TOMBSTONE   LIBRARY     _publish_held (a number the kernel just gave us)
 *   SOCKET      LIBRARY     (the same: that socket was closed behind our back)
 *   LIBRARY     LIBRARY     fd_table_publish_held (a moved copy)
 *   LIBRARY     UNKNOWN     fd_table_forget (before the library closes its own)
 *   LIBRARY     SOCKET/EPOLL  fd_table_set_socket, _note_epoll_add (the kernel
 *                           handed out a library number closed behind its back)
 *
 * A claim is never left behind: the one exit of a socket's close either
 * buries the entry (CLAIMED -> TOMBSTONE, before the number is free) or
 * releases the claim. There is no "releasing" state: once the kernel may
 * hand the number out again, the entry no longer names the closer, so no
 * owner (generation) is needed to tell whose it is. */
#ifndef WSPCLOSE_FD_STATE_H
#define WSPCLOSE_FD_STATE_H

#include <stdbool.h>
#include <stdint.h>

enum fd_class {
	FD_CLASS_UNKNOWN,
	FD_CLASS_SOCKET,
	FD_CLASS_EPOLL,
	FD_CLASS_CLAIMED,
	FD_CLASS_TOMBSTONE,
	FD_CLASS_LIBRARY,
	FD_CLASS_COUNT
};

enum fd_class fd_state_class(uint32_t state);
const char *fd_class_name(enum fd_class c);
/* Whether the table above allows from -> to. */
bool fd_transition_is_legal(enum fd_class from, enum fd_class to);

/* Writes both states and what made the change, then aborts. */
void fd_state_violation(uint32_t from, uint32_t to, const char *by);

/* Called by fd_table.c for every change: a check in test builds, nothing
 * (not even the load of `from`) otherwise. */
static inline void fd_state_check(uint32_t from, uint32_t to, const char *by)
{
#ifdef WSPCLOSE_CHECK_STATES
	if (!fd_transition_is_legal(fd_state_class(from), fd_state_class(to)))
		fd_state_violation(from, to, by);
#else
	(void)from;
	(void)to;
	(void)by;
#endif
}

#endif
