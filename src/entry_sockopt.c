/* entry_sockopt.c: the interposed setsockopt()/getsockopt(): Linux behaviour
 * for every option, plus Winsock's SO_DONTLINGER emulated on SO_LINGER
 * (§5), with the kernel's own errors. */
#include "fd_table.h"
#include "libc_binding.h"
#include "raw_syscall.h"
#include "tcp_probe.h"
#include "trace.h"
#include "vm_sharing.h"
#include "wspclose.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Copies between the application's buffers and ours the way the kernel
 * does: a bad pointer is EFAULT, not a crash. */
static int copy_with_kernel(void *local, const void *remote, size_t len, bool to_app)
{
	if (remote == NULL && len > 0)
		return -EFAULT;
	struct iovec ours = { local, len };
	struct iovec theirs = { (void *)remote, len };
	long n = raw_syscall(to_app ? SYS_process_vm_writev : SYS_process_vm_readv,
			 getpid(), &ours, 1, &theirs, 1, 0);
	if (n == (long)len)
		return 0;
	if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
		/* Forbidden here (seccomp): trust the pointer. */
		if (to_app)
			memcpy((void *)remote, local, len);
		else
			memcpy(local, remote, len);
		return 0;
	}
	return -EFAULT;
}

static int fail(int negative_errno)
{
	errno = -negative_errno;
	return -1;
}

static bool is_dontlinger(int level, int name)
{
	return level == SOL_SOCKET && name == SO_DONTLINGER;
}

/* setsockopt(SO_DONTLINGER, v): l_onoff = !v, l_linger kept (Wine forces 0). */
static int set_dontlinger(int fd, const void *value, socklen_t len)
{
	if ((int)len < 0)
		return fail(-EINVAL);
	struct linger current;
	int rc = probe_linger(fd, &current); /* EBADF, ENOTSOCK first, as the kernel */
	if (rc < 0)
		return fail(rc);
	if (len < sizeof(int))
		return fail(-EINVAL);
	int dont_linger;
	rc = copy_with_kernel(&dont_linger, value, sizeof dont_linger, false);
	if (rc < 0)
		return fail(rc);
	struct linger wanted = { .l_onoff = !dont_linger, .l_linger = current.l_linger };
	return libc_setsockopt(fd, SOL_SOCKET, SO_LINGER, &wanted, sizeof wanted);
}

/* getsockopt(SO_DONTLINGER): !l_onoff as an int, truncated like any int
 * option to the caller's length. */
static int get_dontlinger(int fd, void *value, socklen_t *len)
{
	struct linger current;
	int rc = probe_linger(fd, &current);
	if (rc < 0)
		return fail(rc);
	int room;
	rc = copy_with_kernel(&room, len, sizeof room, false);
	if (rc < 0)
		return fail(rc);
	if (room < 0)
		return fail(-EINVAL);
	int dont_linger = !current.l_onoff;
	socklen_t used = room < (int)sizeof dont_linger ? (socklen_t)room : sizeof dont_linger;
	rc = copy_with_kernel(&dont_linger, value, used, true);
	if (rc < 0)
		return fail(rc);
	rc = copy_with_kernel(&used, len, sizeof used, true);
	return rc < 0 ? fail(rc) : 0;
}

static bool is_linger(int level, int name)
{
	return level == SOL_SOCKET && name == SO_LINGER;
}

WSPCLOSE_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	bool linger_change = (is_linger(level, name) || is_dontlinger(level, name)) &&
			     !vm_sharing_in_child();
	bool traced = linger_change && trace_enabled();
	if (linger_change)
		fd_table_forget_linger(fd);
	/* Before the call: a close racing with it must not trust a peek. */
	struct fd_entry *e = fd_table_entry(fd);
	if (level == SOL_SOCKET && name == SO_PEEK_OFF && e != NULL && !vm_sharing_in_child())
		fd_table_add_flags(e, FD_PEEK_OFFSET);
	int saved = errno;
	struct linger before = { 0, 0 };
	if (traced)
		probe_linger(fd, &before);
	int rc = is_dontlinger(level, name) ? set_dontlinger(fd, value, len)
					    : libc_setsockopt(fd, level, name, value, len);
	int error = errno;
	if (traced) {
		struct linger after = before;
		probe_linger(fd, &after);
		trace_linger(fd, is_dontlinger(level, name) ? "SO_DONTLINGER" : "SO_LINGER",
			     &before, &after, rc, error);
	}
	errno = rc == 0 && (traced || is_dontlinger(level, name)) ? saved : error;
	return rc;
}

WSPCLOSE_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	if (is_dontlinger(level, name)) {
		int saved = errno;
		int rc = get_dontlinger(fd, value, len);
		if (rc == 0)
			errno = saved;
		return rc;
	}
	return libc_getsockopt(fd, level, name, value, len);
}
