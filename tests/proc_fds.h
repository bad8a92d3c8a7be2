/* tests/proc_fds.h: counts a process's own descriptors in /proc/self/fd,
 * for the standalone helper programs of check-apps and check-faults. */
#ifndef WSPCLOSE_TEST_PROC_FDS_H
#define WSPCLOSE_TEST_PROC_FDS_H

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Counts this process's descriptors (`sockets`: those that are sockets);
 * lists the socket numbers into `list` (up to `max`). */
static inline int count_fds(int *sockets, int *list, int max)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	int total = 0, socks = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		total++;
		char link[64];
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
		if (n > 0) {
			link[n] = '\0';
			if (strncmp(link, "socket:", 7) == 0) {
				if (list && socks < max)
					list[socks] = atoi(e->d_name);
				socks++;
			}
		}
	}
	closedir(d);
	if (sockets)
		*sockets = socks;
	return total;
}

#endif
