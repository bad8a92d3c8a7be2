/* entry_scm_rights.c: the interposed sendmsg/recvmsg (and their mmsg forms).
 * A socket sent with SCM_RIGHTS has crossed a process boundary: its close
 * gets kernel semantics (§1). A received socket is learned: it is a
 * socket (the table must say so) that another process may still hold. */
#include "fd_table.h"
#include "libc_binding.h"
#include "tcp_probe.h"
#include "vm_sharing.h"
#include "wine_profile.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>


static void learn_received(int fd)
{
	uint64_t inode = 0;
	uint32_t kind = probe_descriptor_kind(fd, &inode);
	if (kind == FD_KIND_NONE)
		fd_table_forget(fd);
	else
		fd_table_set_socket(fd, kind | FD_SHARED, inode);
}

/* Calls each(fd) for every descriptor carried by msg's SCM_RIGHTS. */
static void for_each_passed_fd(const struct msghdr *msg, void (*each)(int fd))
{
	if (msg == NULL || msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr) ||
	    vm_sharing_in_child())
		return;
	int saved = errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, data + i * sizeof fd, sizeof fd);
			each(fd);
		}
	}
	errno = saved;
}

/* A sent socket is shared from now on; but wineserver lends its sockets to
 * the Windows program's processes and keeps the last word on them (§3.1),
 * while they set its options (SO_LINGER among them) through their copy. */
static void note_sent(const struct msghdr *msg)
{
	for_each_passed_fd(msg, wine_profile_in_wineserver() ? fd_table_forget_linger
							     : fd_table_mark_shared);
}

WSPCLOSE_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t rc = libc_sendmsg(fd, msg, flags);
	if (rc >= 0)
		note_sent(msg);
	return rc;
}

WSPCLOSE_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t rc = libc_recvmsg(fd, msg, flags);
	if (rc >= 0)
		for_each_passed_fd(msg, learn_received);
	return rc;
}

WSPCLOSE_EXPORT int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
	int rc = libc_sendmmsg(fd, msgs, n, flags);
	for (int i = 0; i < rc; i++)
		note_sent(&msgs[i].msg_hdr);
	return rc;
}

WSPCLOSE_EXPORT int recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
			     struct timespec *timeout)
{
	int rc = libc_recvmmsg(fd, msgs, n, flags, timeout);
	for (int i = 0; i < rc; i++)
		for_each_passed_fd(&msgs[i].msg_hdr, learn_received);
	return rc;
}
