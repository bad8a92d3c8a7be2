/* entry_close_range.c: the interposed close_range() and closefrom(). glibc's
 * closefrom() calls the close_range system call directly, so both are
 * interposed. Each known socket in the range gets its implicit-close row,
 * the library's own descriptors are skipped, and the kernel closes the rest
 * in the gaps between them. */
#include "close_path.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int kernel_close_range(unsigned int first, unsigned int last, int flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

/* Walks the range upwards. A socket gets its row through close_path and a
 * library descriptor is skipped; only the numbers in between go to the
 * kernel, so a number freed here is never in a kernel range while another
 * thread may already have reused it. */
static void close_range_with_semantics(unsigned int first, unsigned int last)
{
	int saved = errno;
	unsigned int gap_start = first;
	for (unsigned int fd = first; fd <= last; fd++) {
		int top = fd_table_highest(); /* held copies made here raise it */
		struct fd_entry *e = fd_table_entry((int)fd);
		if (top < 0 || fd > (unsigned int)top || e == NULL)
			break;
		uint32_t state = atomic_load(&e->state);
		if (state == 0)
			continue;
		if (gap_start < fd)
			kernel_close_range(gap_start, fd - 1, 0);
		gap_start = fd + 1;
		if (!(state & FD_LIBRARY_OWNED))
			close_path_close((int)fd, CLOSE_IMPLICIT);
	}
	if (gap_start <= last)
		kernel_close_range(gap_start, last, 0);
	errno = saved;
}

/* Threads in this process, from /proc (raw system calls, no stdio). */
static int thread_count(void)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[1024];
	long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
	syscall(SYS_close, fd);
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
	/* Invalid arguments: the kernel's own error, nothing touched.
	 * CLOSE_RANGE_CLOEXEC closes nothing now (ours are O_CLOEXEC already). */
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) ||
	    (flags & CLOSE_RANGE_CLOEXEC)) {
		int rc = kernel_close_range(first, last, flags);
		if (rc == 0 && (flags & CLOSE_RANGE_UNSHARE))
			close_path_note_files_unshared();
		return rc;
	}
	if (flags & CLOSE_RANGE_UNSHARE) {
		/* The reaper thread shares the table, so UNSHARE gives this thread
		 * a private copy and the real closes would never happen. When the
		 * application itself has no other thread, close in the shared
		 * table first, as a single-threaded process would. */
		int others = thread_count() - 1 - (reaper_is_running() ? 1 : 0);
		if (others == 0)
			close_range_with_semantics(first, last);
		int rc = kernel_close_range(first, last, flags);
		if (rc == 0)
			close_path_note_files_unshared();
		return rc;
	}
	close_range_with_semantics(first, last);
	return 0;
}

WSPCLOSE_EXPORT void closefrom(int lowest)
{
	if (lowest < 0)
		lowest = 0;
	close_range_with_semantics((unsigned int)lowest, ~0u);
}
