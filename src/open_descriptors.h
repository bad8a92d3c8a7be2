/* open_descriptors.h: the process's open descriptor numbers, read from
 * /proc/self/fd with raw system calls (no malloc, no stdio: usable in a
 * vfork child and by the constructor). */
#ifndef WSPCLOSE_OPEN_DESCRIPTORS_H
#define WSPCLOSE_OPEN_DESCRIPTORS_H

#include <stdbool.h>

/* Calls each(fd, context) for every open number except the directory's
 * own; closing numbers meanwhile is fine. False when /proc/self/fd cannot
 * be opened (not mounted, or no descriptor to spare). */
bool open_descriptors_each(void (*each)(int fd, void *context), void *context);

#endif
