/* entry_socket.c: the interposed socket-creating calls (socket, socketpair,
 * accept, accept4) and connect(). They fill the descriptor table so that
 * close() knows a socket, and whether it is connected, without asking the
 * kernel, and start the reaper before any close() could need it. */
#include "entry_notes.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "reaper.h"
#include "tcp_probe.h"
#include "vm_sharing.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

static uint32_t kind_of(int domain, int type, int protocol)
{
	bool inet = domain == AF_INET || domain == AF_INET6;
	int base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (inet && base_type == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP))
		return FD_KIND_TCP;
	return FD_KIND_OTHER_SOCKET;
}

static void note_new_socket(int fd, uint32_t kind, uint64_t id)
{
	if (vm_sharing_in_child())
		return; /* the parent's table is not this process's */
	fd_table_set_socket(fd, kind, id);
	if (fd_kind(kind) == FD_KIND_TCP)
		reaper_start_once();
}

void entry_note_socket(int fd, int domain, int type, int protocol)
{
	uint32_t kind = kind_of(domain, type, protocol);
	if (kind == FD_KIND_TCP)
		kind |= FD_LINGER_DEFAULT; /* a new socket does not linger */
	if (fd >= 0)
		note_new_socket(fd, kind, fd_table_new_socket_id());
}

void entry_note_socketpair(const int fds[2], int domain, int type, int protocol)
{
	uint32_t kind = kind_of(domain, type, protocol);
	note_new_socket(fds[0], kind, fd_table_new_socket_id());
	note_new_socket(fds[1], kind, fd_table_new_socket_id());
}

/* An accepted socket has its listener's kind, and its linger (the kernel
 * copies it); a listener we never saw created (inherited, raw system call)
 * is asked once. */
void entry_note_accepted(int listener, int fd)
{
	if (fd < 0)
		return;
	struct fd_entry *e = fd_table_entry(listener);
	uint32_t state = e ? atomic_load(&e->state) : 0;
	uint32_t kind = fd_kind(state);
	if (kind == FD_KIND_NONE) {
		int saved = errno;
		uint64_t inode;
		kind = probe_descriptor_kind(fd, &inode);
		errno = saved;
	}
	if (kind == FD_KIND_TCP)
		kind |= FD_CONNECTED | (fd_linger_is_default(state) ? FD_LINGER_DEFAULT : 0);
	if (kind != FD_KIND_NONE)
		note_new_socket(fd, kind, fd_table_new_socket_id());
}

/* A connect() that returned 0 made an established connection (a
 * non-blocking one in progress returns EINPROGRESS and is asked at its
 * close); connect(AF_UNSPEC) dissolves one. */
void entry_note_connected(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (vm_sharing_in_child())
		return;
	bool dissolved = addr != NULL && len >= (socklen_t)sizeof addr->sa_family &&
			 addr->sa_family == AF_UNSPEC;
	fd_table_note_connect(fd, dissolved);
}

WSPCLOSE_EXPORT int socket(int domain, int type, int protocol)
{
	int fd = libc_socket(domain, type, protocol);
	entry_note_socket(fd, domain, type, protocol);
	return fd;
}

WSPCLOSE_EXPORT int socketpair(int domain, int type, int protocol, int fds[2])
{
	int rc = libc_socketpair(domain, type, protocol, fds);
	if (rc == 0)
		entry_note_socketpair(fds, domain, type, protocol);
	return rc;
}

WSPCLOSE_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int conn = libc_accept(fd, addr, len);
	entry_note_accepted(fd, conn);
	return conn;
}

WSPCLOSE_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int conn = libc_accept4(fd, addr, len, flags);
	entry_note_accepted(fd, conn);
	return conn;
}

/* Nothing else changes: the kernel's result and errno are the application's. */
WSPCLOSE_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int rc = libc_connect(fd, addr, len);
	if (rc == 0)
		entry_note_connected(fd, addr, len);
	return rc;
}
