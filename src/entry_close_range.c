/* entry_close_range.c: the interposed close_range() and closefrom(). glibc's
 * closefrom() calls the close_range system call directly, so both are
 * interposed. Each known socket in the range gets its implicit-close row,
 * the library's own descriptors are skipped, and the kernel closes the rest
 * in the gaps between them. */
#include "close_path.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "open_descriptors.h"
#include "raw_syscall.h"
#include "reaper.h"
#include "tcp_probe.h"
#include "vm_sharing.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int kernel_close_range(unsigned int first, unsigned int last, int flags)
{
	return (int)raw_syscall(SYS_close_range, first, last, flags);
}

/* True when the range holds a number the library knows: otherwise the
 * kernel alone closes the range, with its own result. */
static bool range_has_known_numbers(unsigned int first, unsigned int last)
{
	int top = fd_table_highest();
	for (unsigned int fd = first; top >= 0 && fd <= last && fd <= (unsigned int)top; fd++) {
		struct fd_entry *e = fd_table_entry((int)fd);
		if (e == NULL)
			break;
		if (!fd_state_is_unknown(atomic_load(&e->state)))
			return true;
	}
	return false;
}

/* Whether the close_range system call works here (not ENOSYS on an old
 * kernel, nor refused by a seccomp policy), asked with a range that holds
 * no descriptor. */
static int kernel_close_range_works(void)
{
	int saved = errno;
	int rc = kernel_close_range(~0u, ~0u, 0);
	int error = errno;
	errno = saved;
	return rc == 0 ? 0 : -error;
}

/* Walks the range upwards. A socket gets its row through close_path and a
 * library descriptor is skipped; a tombstone is only forgotten (the number
 * was closed before: no double close, §7). Only the numbers in between go
 * to the kernel, so a number freed here is never in a kernel range while
 * another thread may already have reused it. */
static void close_range_with_semantics(unsigned int first, unsigned int last,
				       int (*close_gap)(unsigned int, unsigned int))
{
	int saved = errno;
	unsigned int gap_start = first;
	for (unsigned int fd = first; fd <= last; fd++) {
		int top = fd_table_highest(); /* held copies made here raise it */
		struct fd_entry *e = fd_table_entry((int)fd);
		if (top < 0 || fd > (unsigned int)top || e == NULL)
			break;
		uint32_t state = atomic_load(&e->state);
		if (fd_state_is_unknown(state))
			continue;
		if (state == FD_TOMBSTONE) {
			fd_table_unbury(e);
			continue;
		}
		if (gap_start < fd)
			close_gap(gap_start, fd - 1);
		gap_start = fd + 1;
		if (!(state & FD_LIBRARY_OWNED))
			close_path_close((int)fd, CLOSE_IMPLICIT);
		if (fd == ~0u)
			break;
	}
	if (gap_start <= last)
		close_gap(gap_start, last);
	errno = saved;
}

static int close_gap_in_kernel(unsigned int first, unsigned int last)
{
	return kernel_close_range(first, last, 0);
}

struct gap {
	unsigned int first, last;
};

static void close_if_in_gap(int fd, void *context)
{
	const struct gap *gap = context;
	if ((unsigned int)fd >= gap->first && (unsigned int)fd <= gap->last &&
	    !fd_table_is_library_owned(fd))
		raw_syscall(SYS_close, fd);
}

/* Without the close_range system call: each open number of the gap, as
 * glibc's closefrom() falls back to /proc/self/fd; without /proc, every
 * number up to the descriptor limit. */
static int close_gap_one_by_one(unsigned int first, unsigned int last)
{
	struct gap gap = { first, last };
	if (open_descriptors_each(close_if_in_gap, &gap))
		return 0;
	uint64_t limit = probe_descriptor_limit();
	unsigned int end = limit == 0 || limit > (1u << 20) ? (1u << 20) : (unsigned int)limit;
	for (unsigned int fd = first; fd <= last && fd < end; fd++)
		close_if_in_gap((int)fd, &gap);
	return 0;
}

/* Threads in this process, from /proc (raw system calls, no stdio). */
static int thread_count(void)
{
	int fd = (int)raw_syscall(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[1024];
	long n = raw_syscall(SYS_read, fd, buf, sizeof buf - 1);
	raw_syscall(SYS_close, fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Field 20 (num_threads) counts from after the ")" closing comm. */
	char *p = buf;
	for (char *q = buf; *q; q++)
		if (*q == ')')
			p = q;
	int field = 2;
	for (; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	return atoi(p);
}

WSPCLOSE_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	/* Invalid arguments, a child on our memory, or nothing we know in the
	 * range: the kernel's own call and result, nothing else touched.
	 * CLOSE_RANGE_CLOEXEC closes nothing now (ours are O_CLOEXEC already). */
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) ||
	    (flags & CLOSE_RANGE_CLOEXEC) || vm_sharing_in_child() ||
	    !range_has_known_numbers(first, last)) {
		int rc = kernel_close_range(first, last, flags);
		if (rc == 0 && (flags & CLOSE_RANGE_UNSHARE) && !vm_sharing_in_child())
			close_path_note_files_unshared();
		return rc;
	}
	/* Ask first: a call the kernel fails must close nothing (§6). */
	int works = kernel_close_range_works();
	if (works < 0) {
		errno = -works;
		return -1;
	}
	if (flags & CLOSE_RANGE_UNSHARE) {
		/* The reaper thread shares the table, so UNSHARE gives this thread
		 * a private copy and the real closes would never happen. When the
		 * application itself has no other thread, close in the shared
		 * table first, as a single-threaded process would. */
		int others = thread_count() - 1 - (reaper_is_running() ? 1 : 0);
		if (others == 0)
			close_range_with_semantics(first, last, close_gap_in_kernel);
		int rc = kernel_close_range(first, last, flags);
		if (rc == 0)
			close_path_note_files_unshared();
		return rc;
	}
	close_range_with_semantics(first, last, close_gap_in_kernel);
	return 0;
}

/* glibc's closefrom() cannot fail: without the system call it closes the
 * numbers one by one (and so does this one). */
WSPCLOSE_EXPORT void closefrom(int lowest)
{
	if (lowest < 0)
		lowest = 0;
	int saved = errno;
	int works = kernel_close_range_works();
	int (*close_gap)(unsigned int, unsigned int) =
		works == 0 ? close_gap_in_kernel : close_gap_one_by_one;
	if (vm_sharing_in_child())
		close_gap((unsigned int)lowest, ~0u);
	else
		close_range_with_semantics((unsigned int)lowest, ~0u, close_gap);
	errno = saved;
}
