/* entry_shutdown.c: the interposed shutdown(): Linux behaviour, recorded for
 * row G2 (linger is ignored after shutdown). */
#include "fd_table.h"
#include "libc_binding.h"

#include <sys/socket.h>

WSPCLOSE_EXPORT int shutdown(int fd, int how)
{
	int rc = libc_shutdown(fd, how);
	if (rc == 0 && (how == SHUT_WR || how == SHUT_RDWR))
		fd_table_note_write_shut(fd);
	return rc;
}
