/* entry_syscall.c: the interposed syscall(). libuv closes every descriptor
 * with syscall(SYS_close, fd), and a program may make any of the calls the
 * library interposes this way: those numbers take the same paths as the C
 * library's functions (libwspclose(7) §8.1); every other number goes to the
 * C library's syscall() untouched, with the kernel's result and errno.
 * Like that syscall(), this is never a cancellation point: a call that is
 * one in the C library (close, accept, accept4, connect) is made here as the
 * bare system call, and recorded as the function would record it. */
#include "close_path.h"
#include "entry_notes.h"
#include "epoll_sets.h"
#include "libc_binding.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* <unistd.h> declares syscall() variadic, and is left out on purpose: see
 * syscall() below. These are the interposed functions it would declare. */
int dup(int fd);
int dup2(int fd, int target);
int dup3(int fd, int target, int flags);
int close_range(unsigned int first, unsigned int last, int flags);

/* What the functions would do for these numbers, minus the cancellation
 * point. */
static long accepted(long listener, long rc)
{
	if (rc >= 0)
		entry_note_accepted((int)listener, (int)rc);
	return rc;
}

static long fcntl_call(long a, long b, long c, long d, long e, long f)
{
	int cmd = (int)b;
	/* The commands the library records; F_SETLKW, a cancellation point in
	 * fcntl(), is not one of them. */
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC || cmd == F_SETFD)
		return fcntl((int)a, cmd, (void *)c);
	return libc_syscall(SYS_fcntl, a, b, c, d, e, f);
}

static long epoll_ctl_call(long a, long b, long c, long d)
{
	if (entry_epoll_ctl_refused((int)a, (int)c))
		return -1;
	long rc = libc_syscall(SYS_epoll_ctl, a, b, c, d, 0, 0);
	if (rc == 0)
		entry_note_epoll_ctl((int)a, (int)b, (int)c);
	return rc;
}

static long epoll_created(long rc)
{
	entry_note_epoll_created((int)rc);
	return rc;
}

/* Called as the variadic syscall(long, ...). On the Linux ABIs below a
 * variadic call passes the number and six long arguments exactly where a
 * call of this seven-argument function takes them, so it is defined so:
 * reading them with va_arg cost a tenth of a cheap system call (12 ns of
 * 140 for getpid, make bench-close (d)). Elsewhere it must be variadic. */
#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__) && !defined(__arm__) && \
	!defined(__riscv)
#error "syscall(): check that variadic long arguments are passed as fixed ones on this ABI"
#endif
long syscall(long number, long a, long b, long c, long d, long e, long f);
WSPCLOSE_EXPORT long syscall(long number, long a, long b, long c, long d, long e, long f)
{
	switch (number) {
	case SYS_close:
		return close_path_close_syscall((int)a);
	case SYS_close_range:
		return close_range((unsigned int)a, (unsigned int)b, (int)c);
	case SYS_dup:
		return dup((int)a);
#ifdef SYS_dup2
	case SYS_dup2:
		return dup2((int)a, (int)b);
#endif
	case SYS_dup3:
		return dup3((int)a, (int)b, (int)c);
	case SYS_fcntl:
		return fcntl_call(a, b, c, d, e, f);
	case SYS_shutdown:
		return shutdown((int)a, (int)b);
	case SYS_setsockopt:
		return setsockopt((int)a, (int)b, (int)c, (const void *)d, (socklen_t)e);
	case SYS_getsockopt:
		return getsockopt((int)a, (int)b, (int)c, (void *)d, (socklen_t *)e);
	case SYS_socket:
		return socket((int)a, (int)b, (int)c);
	case SYS_socketpair:
		return socketpair((int)a, (int)b, (int)c, (int *)d);
#ifdef SYS_accept
	case SYS_accept:
		return accepted(a, libc_syscall(SYS_accept, a, b, c, d, e, f));
#endif
	case SYS_accept4:
		return accepted(a, libc_syscall(SYS_accept4, a, b, c, d, e, f));
	case SYS_connect: {
		long rc = libc_syscall(SYS_connect, a, b, c, d, e, f);
		if (rc == 0)
			entry_note_connected((int)a, (const struct sockaddr *)b, (socklen_t)c);
		return rc;
	}
	case SYS_epoll_ctl:
		return epoll_ctl_call(a, b, c, d);
#ifdef SYS_epoll_create
	case SYS_epoll_create:
		return epoll_created(libc_syscall(SYS_epoll_create, a, b, c, d, e, f));
#endif
	case SYS_epoll_create1:
		return epoll_created(libc_syscall(SYS_epoll_create1, a, b, c, d, e, f));
	case SYS_io_uring_setup: {
		long rc = libc_syscall(SYS_io_uring_setup, a, b, c, d, e, f);
		if (rc >= 0)
			epoll_sets_note_io_uring();
		return rc;
	}
	default:
		return libc_syscall(number, a, b, c, d, e, f);
	}
}
