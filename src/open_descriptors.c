/* open_descriptors.c: walks /proc/self/fd with getdents64. */
#include "open_descriptors.h"
#include "raw_syscall.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

bool open_descriptors_each(void (*each)(int fd, void *context), void *context)
{
	int dir = (int)raw_syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return false;
	char buf[4096];
	long n;
	/* getdents64 goes on from its offset even when entries go away. */
	while ((n = raw_syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			char *end;
			long fd = strtol(d->d_name, &end, 10);
			if (*end == '\0' && end != d->d_name && fd != dir)
				each((int)fd, context);
		}
	}
	raw_syscall(SYS_close, dir);
	return true;
}
