/* entry_stdio.c: the interposed fclose(). glibc closes a stream's
 * descriptor with an internal system call that no interposed close() sees.
 * For a stream on a TCP socket the library knows, fclose() is an implicit
 * close of the socket (libwspclose(7) §2.1: it never blocks and never fails
 * because of the socket): the stream is flushed, one dup2() gives the
 * socket's number to a placeholder (/dev/null) and applies the implicit
 * close's row to the socket, and glibc's fclose() then closes the
 * placeholder with the stream. Every other stream is glibc's own fclose(). */
#include "close_path.h"
#include "libc_binding.h"
#include "raw_syscall.h"
#include "vm_sharing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

WSPCLOSE_EXPORT int fclose(FILE *stream)
{
	int fd = stream != NULL ? fileno(stream) : -1;
	if (fd < 0 || vm_sharing_in_child() || !close_path_is_tcp_socket(fd))
		return libc_fclose(stream);
	int saved = errno;
	/* What glibc's fclose() would write first, written while the number is
	 * still the socket's; its failure is fclose()'s, as in glibc. */
	int flushed = fflush(stream);
	int flush_error = errno;
	int placeholder = (int)raw_syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
	/* Out of descriptors: glibc's own fclose(), Linux semantics. */
	if (placeholder < 0) {
		errno = saved;
		return libc_fclose(stream);
	}
	int replaced = close_path_fclose_socket(placeholder, fd);
	raw_syscall(SYS_close, placeholder);
	errno = saved;
	int rc = libc_fclose(stream);
	if (replaced < 0)
		return rc; /* the number was still the socket: glibc closed it */
	if (flushed != 0) {
		errno = flush_error;
		return EOF;
	}
	if (rc == 0)
		errno = saved;
	return rc;
}
