/* trace_internal.h: what trace.c and trace_later.c share (not for the
 * rest of the library: it uses trace.h). */
#ifndef WSPCLOSE_TRACE_INTERNAL_H
#define WSPCLOSE_TRACE_INTERNAL_H

#include "trace.h"

#include <stdint.h>
#include <sys/types.h>

/* The calling thread's id, cached (async-signal-safe). */
pid_t trace_current_tid(void);
/* The inode and the local address (two system calls). */
void trace_describe_local(int fd, struct trace_socket *out);
/* A close line about what thread `tid` did at `time_ns` (CLOCK_REALTIME). */
void trace_write_close_line(const struct trace_close *ev, int64_t time_ns, pid_t tid);
/* That close line and the release line of `released_fd` (the number, or
 * its held copy) after it, in one write. */
void trace_write_close_and_release(const struct trace_close *ev, int64_t time_ns, pid_t tid,
				   int released_fd, uint64_t inode, const char *outcome,
				   int tcp_state, int64_t held_ns);
/* Maps the records of trace_later.c (trace_open()). */
void trace_later_open(void);

#endif
