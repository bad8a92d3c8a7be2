/* entry_epoll.c: the interposed epoll calls. epoll_ctl() remembers which
 * epoll sets each socket was added to, so that close() can take it out of
 * every one of them before anything else happens (§4); epoll_create() and
 * epoll_create1() make each set known from its first moment, for the
 * registrations the library cannot see (epoll_sets.h). */
#include "entry_notes.h"
#include "epoll_sets.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "vm_sharing.h"

#include <errno.h>
#include <sys/epoll.h>

bool entry_epoll_ctl_refused(int epfd, int fd)
{
	if (fd_table_is_library_owned(epfd) || fd_table_is_library_owned(fd)) {
		errno = EBADF;
		return true;
	}
	return false;
}

void entry_note_epoll_ctl(int epfd, int op, int fd)
{
	if (vm_sharing_in_child())
		return;
	if (op == EPOLL_CTL_ADD) {
		fd_table_note_epoll_add(epfd, fd);
		epoll_sets_note_add_seen(epfd);
	} else if (op == EPOLL_CTL_DEL) {
		fd_table_note_epoll_del(epfd, fd);
	}
}

void entry_note_epoll_created(int epfd)
{
	if (epfd < 0 || vm_sharing_in_child())
		return;
	fd_table_note_epoll_created(epfd);
	epoll_sets_note_created(epfd);
}

WSPCLOSE_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	if (entry_epoll_ctl_refused(epfd, fd))
		return -1;
	int rc = libc_epoll_ctl(epfd, op, fd, event);
	if (rc == 0)
		entry_note_epoll_ctl(epfd, op, fd);
	return rc;
}

WSPCLOSE_EXPORT int epoll_create(int size)
{
	int epfd = libc_epoll_create(size);
	entry_note_epoll_created(epfd);
	return epfd;
}

WSPCLOSE_EXPORT int epoll_create1(int flags)
{
	int epfd = libc_epoll_create1(flags);
	entry_note_epoll_created(epfd);
	return epfd;
}
