/* entry_shutdown.c: the interposed shutdown(): Linux behaviour, recorded for
 * row G2 (linger is ignored after shutdown) and traced. */
#include "fd_table.h"
#include "libc_binding.h"
#include "trace.h"
#include "vm_sharing.h"

#include <errno.h>
#include <sys/socket.h>

WSPCLOSE_EXPORT int shutdown(int fd, int how)
{
	int rc = libc_shutdown(fd, how);
	int error = errno;
	if (vm_sharing_in_child())
		return rc;
	if (rc == 0 && (how == SHUT_WR || how == SHUT_RDWR))
		fd_table_note_write_shut(fd);
	if (trace_enabled()) {
		trace_shutdown(fd, how, rc, error);
		errno = error;
	}
	return rc;
}
