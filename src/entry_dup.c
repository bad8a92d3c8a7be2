/* entry_dup.c: the interposed duplicating calls (dup, dup2, dup3, fcntl and
 * fcntl64 with F_DUPFD/F_DUPFD_CLOEXEC): a duplicate shares its socket, so
 * closing one of them is not the last reference (SPEC §1). */
#include "fd_table.h"
#include "libc_binding.h"

#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

static int noted(int source, int result)
{
	if (result >= 0)
		fd_table_note_duplicate(source, result);
	return result;
}

WSPCLOSE_EXPORT int dup(int fd)
{
	return noted(fd, libc_dup(fd));
}

WSPCLOSE_EXPORT int dup2(int fd, int target)
{
	if (fd == target)
		return libc_dup2(fd, target);
	return noted(fd, libc_dup2(fd, target));
}

WSPCLOSE_EXPORT int dup3(int fd, int target, int flags)
{
	return noted(fd, libc_dup3(fd, target, flags));
}

static bool is_duplicating(int cmd)
{
	return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;
}

/* fcntl's third argument is an int or a pointer depending on cmd; like
 * glibc itself, carry it as a pointer-sized value. */
WSPCLOSE_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rc = libc_fcntl(fd, cmd, arg);
	return is_duplicating(cmd) ? noted(fd, rc) : rc;
}

WSPCLOSE_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int rc = libc_fcntl64(fd, cmd, arg);
	return is_duplicating(cmd) ? noted(fd, rc) : rc;
}
