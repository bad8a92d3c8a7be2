/* entry_dup.c: the interposed duplicating calls (dup, dup2, dup3, fcntl and
 * fcntl64). A duplicate shares its socket, so closing one of them is not the
 * last reference (SPEC §1); dup2/dup3 onto an open socket is an implicit
 * close of it (SPEC §2); the library's own descriptors are not there for the
 * application (SPEC §1, last row). */
#include "close_path.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

static int not_open(void)
{
	errno = EBADF;
	return -1;
}

static int noted(int source, int result)
{
	if (result >= 0)
		fd_table_note_duplicate(source, result);
	return result;
}

WSPCLOSE_EXPORT int dup(int fd)
{
	if (fd_table_is_library_owned(fd))
		return not_open();
	return noted(fd, libc_dup(fd));
}

static int replace(int fd, int target, bool use_dup3, int flags)
{
	/* The application may name any number: move ours out of its way. */
	if (fd_table_is_library_owned(target) && !fd_table_is_library_owned(fd))
		reaper_vacate(target);
	return close_path_replace(fd, target, use_dup3, flags);
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
	return is_duplicating(cmd) ? noted(fd, rc) : rc;
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
