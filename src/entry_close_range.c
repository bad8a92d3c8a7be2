/* entry_close_range.c: the interposed close_range() and closefrom(). glibc's
 * closefrom() calls the close_range system call directly, so both are
 * interposed. Each known socket in the range gets its implicit-close row;
 * the library's own descriptors are skipped; the kernel closes the rest. */
#include "close_path.h"
#include "fd_table.h"
#include "libc_binding.h"

#include <errno.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

static int kernel_close_range(unsigned int first, unsigned int last, int flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

static int close_range_with_semantics(unsigned int first, unsigned int last)
{
	int saved = errno;
	int top = fd_table_highest();
	unsigned int known_end = top < 0 ? 0 : ((unsigned int)top < last ? (unsigned int)top : last);
	for (unsigned int fd = first; top >= 0 && fd <= known_end; fd++) {
		struct fd_entry *e = fd_table_entry((int)fd);
		if (e == NULL)
			break;
		uint32_t s = atomic_load(&e->state);
		if (s != 0 && !(s & FD_LIBRARY_OWNED))
			close_path_close((int)fd, CLOSE_IMPLICIT);
	}
	/* What is left, around our own descriptors (held copies made just now
	 * included: they may sit inside the range). */
	top = fd_table_highest();
	unsigned int start = first;
	for (unsigned int fd = first; top >= 0 && fd <= last && fd <= (unsigned int)top; fd++) {
		struct fd_entry *e = fd_table_entry((int)fd);
		if (e == NULL)
			break;
		if (atomic_load(&e->state) & FD_LIBRARY_OWNED) {
			if (start < fd)
				kernel_close_range(start, fd - 1, 0);
			start = fd + 1;
		}
	}
	if (start <= last)
		kernel_close_range(start, last, 0);
	errno = saved;
	return 0;
}

WSPCLOSE_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	/* Invalid arguments: the kernel's own error, nothing touched.
	 * CLOSE_RANGE_CLOEXEC closes nothing (ours are O_CLOEXEC already).
	 * CLOSE_RANGE_UNSHARE gives the caller a private table copy while the
	 * reaper runs (it shares the table), so closing in it ends nobody's
	 * last reference: the kernel call as it is. */
	if (first > last || flags != 0) {
		int rc = kernel_close_range(first, last, flags);
		if (rc == 0 && (flags & CLOSE_RANGE_UNSHARE))
			close_path_note_files_unshared();
		return rc;
	}
	return close_range_with_semantics(first, last);
}

WSPCLOSE_EXPORT void closefrom(int lowest)
{
	if (lowest < 0)
		lowest = 0;
	close_range_with_semantics((unsigned int)lowest, ~0u);
}
