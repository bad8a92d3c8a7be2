/* entry_epoll.c: the interposed epoll_ctl(): remembers which epoll sets each
 * socket was added to, so that close() can take it out of every one of them
 * before anything else happens (§4). */
#include "fd_table.h"
#include "libc_binding.h"
#include "vm_sharing.h"

#include <errno.h>
#include <sys/epoll.h>

WSPCLOSE_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	if (fd_table_is_library_owned(epfd) || fd_table_is_library_owned(fd)) {
		errno = EBADF;
		return -1;
	}
	int rc = libc_epoll_ctl(epfd, op, fd, event);
	if (rc != 0 || vm_sharing_in_child())
		return rc;
	if (op == EPOLL_CTL_ADD)
		fd_table_note_epoll_add(epfd, fd);
	else if (op == EPOLL_CTL_DEL)
		fd_table_note_epoll_del(epfd, fd);
	return rc;
}
