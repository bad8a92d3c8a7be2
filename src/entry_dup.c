/* entry_dup.c: the interposed duplicating calls (dup, dup2, dup3, fcntl and
 * fcntl64). A duplicate shares its socket, so closing one of them is not the
 * last reference (§1); dup2/dup3 onto an open socket is an implicit
 * close of it (§2); the library's own descriptors are not there for the
 * application (§1, last row). */
#include "close_path.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "libc_binding.h"
#include "reaper.h"
#include "tcp_probe.h"
#include "vm_sharing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

static int not_open(void)
{
	errno = EBADF;
	return -1;
}

/* In a child on our memory (vfork), the table is the parent's: the one
 * fact recorded there is that a socket of the parent's is being made
 * inheritable for the child's exec (§3: shared from then on). */
static void note_inheritable_in_child(int source, bool inheritable)
{
	if (inheritable)
		fd_table_mark_shared(source);
}

static int noted(int source, int result, bool inheritable)
{
	if (result < 0)
		return result;
	if (vm_sharing_in_child())
		note_inheritable_in_child(source, inheritable);
	else
		fd_table_note_duplicate(source, result);
	return result;
}

WSPCLOSE_EXPORT int dup(int fd)
{
	if (fd_table_is_library_owned(fd))
		return not_open();
	return noted(fd, libc_dup(fd), true);
}

/* A number high up that is not the application's socket or epoll set: a
 * held copy may be made there, or closed, at any moment. */
static bool may_be_changing_hands(int target)
{
	struct fd_entry *e = fd_table_entry(target);
	uint32_t state = e != NULL ? atomic_load(&e->state) : 0;
	return raw_number_may_be_library_high(target) &&
	       (fd_kind(state) == FD_KIND_NONE || (state & FD_LIBRARY_OWNED));
}

static int replace(int fd, int target, bool use_dup3, int flags)
{
	if (vm_sharing_in_child()) {
		int rc = use_dup3 ? libc_dup3(fd, target, flags) : libc_dup2(fd, target);
		if (rc >= 0)
			note_inheritable_in_child(fd, !(use_dup3 && (flags & O_CLOEXEC)));
		return rc;
	}
	for (;;) {
		/* The application may name any number: move ours out of its way. */
		if (fd_table_is_library_owned(target) && !reaper_vacate(target)) {
			errno = EBUSY; /* Linux's answer for a number that is being set up */
			return -1;
		}
		if (!may_be_changing_hands(target))
			return close_path_replace(fd, target, use_dup3, flags);
		/* A closer may be making a copy there right now, or closing one,
		 * before its table entry says so: the kernel gives the number to
		 * the application only while no such window is open. */
		fork_guard_close_windows();
		if (!fd_table_is_library_owned(target)) {
			int rc = close_path_replace(fd, target, use_dup3, flags);
			fork_guard_reopen_windows();
			return rc;
		}
		fork_guard_reopen_windows(); /* a copy got there first */
	}
}

WSPCLOSE_EXPORT int dup2(int fd, int target)
{
	if (fd_table_is_library_owned(fd))
		return not_open();
	if (fd == target)
		return libc_dup2(fd, target);
	return replace(fd, target, false, 0);
}

WSPCLOSE_EXPORT int dup3(int fd, int target, int flags)
{
	if (fd_table_is_library_owned(fd))
		return not_open();
	return replace(fd, target, true, flags);
}

static bool is_duplicating(int cmd)
{
	return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;
}

/* fcntl and fcntl64 (built with _FILE_OFFSET_BITS=64) differ only in the
 * libc function they reach. */
static int fcntl_through(int (*real)(int, int, void *), int fd, int cmd, void *arg)
{
	if (fd_table_is_library_owned(fd))
		return not_open();
	int rc = real(fd, cmd, arg);
	if (is_duplicating(cmd))
		return noted(fd, rc, cmd == F_DUPFD);
	/* F_SETFD without FD_CLOEXEC: how CPython's subprocess passes pass_fds. */
	if (cmd == F_SETFD && rc == 0 && !((intptr_t)arg & FD_CLOEXEC) && vm_sharing_in_child())
		note_inheritable_in_child(fd, true);
	return rc;
}

/* fcntl's third argument is an int or a pointer depending on cmd; like
 * glibc itself, carry it as a pointer-sized value. */
WSPCLOSE_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_through(libc_fcntl, fd, cmd, arg);
}

WSPCLOSE_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_through(libc_fcntl64, fd, cmd, arg);
}
