/* trace_later.c: a hand-off's close line between close() and the reaper
 * (trace.h, trace_close_later): one record per descriptor number, mapped
 * with the trace and touched only where held copies live. The closer
 * fills the record of its copy's number; the reaper writes the line when
 * it adopts the copy, or a later close() that releases the copy from the
 * nursery writes it with the release line. */
#include "trace.h"
#include "trace_internal.h"
#include "trace_line.h"
#include "fd_table.h"
#include "tcp_probe.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* What only close() knows. */
struct later_close {
	int64_t time_ns;       /* CLOCK_REALTIME when close() decided */
	int64_t blocked_ns;
	int32_t tid;
	int32_t fd;
	int32_t linger_seconds;
	int32_t pending;       /* SIOCOUTQ in close() */
	int32_t result;        /* 0, or the number dup2()/dup3() returned */
	char remote[64];       /* the peer's address, when close() read it */
	int8_t tcp_state;      /* in close() */
	uint8_t origin;        /* enum close_origin */
	uint8_t row;           /* enum close_row */
	uint8_t action;        /* enum close_action */
	bool replaced;
	bool by_fclose;
	bool linger_on;
	_Atomic bool recorded; /* set by the closer, cleared by the reaper */
};
static struct later_close *later_closes;
static uint32_t later_closes_size;

void trace_later_open(void)
{
	/* Without room for records, hand-off closes are traced at once. */
	size_t size = fd_table_capacity();
	void *p = size == 0 ? MAP_FAILED
		  : mmap(NULL, size * sizeof(struct later_close), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED) {
		later_closes = p;
		later_closes_size = (uint32_t)size;
	}
}

static struct later_close *later_record(int fd)
{
	if (later_closes == NULL || fd < 0 || (uint32_t)fd >= later_closes_size)
		return NULL;
	return &later_closes[fd];
}

bool trace_close_later(int copy_fd, const struct trace_close *ev)
{
	struct later_close *rec = later_record(copy_fd);
	if (rec == NULL || !trace_enabled())
		return false;
	rec->time_ns = line_realtime_ns();
	rec->blocked_ns = ev->blocked_ns;
	rec->tid = trace_current_tid();
	rec->fd = ev->fd;
	rec->linger_seconds = ev->facts->linger_seconds;
	rec->linger_on = ev->facts->linger_on;
	rec->pending = ev->pending;
	rec->result = ev->result;
	rec->tcp_state = (int8_t)ev->socket->tcp_state;
	memcpy(rec->remote, ev->socket->remote, sizeof rec->remote);
	rec->origin = (uint8_t)ev->origin;
	rec->replaced = ev->replaced;
	rec->by_fclose = ev->by_fclose;
	rec->row = (uint8_t)ev->plan.row;
	rec->action = (uint8_t)ev->plan.action;
	/* Release: the reaper finds the copy on the hand-off stack later. */
	atomic_store_explicit(&rec->recorded, true, memory_order_release);
	return true;
}

/* A release line to write after the close line. */
struct later_release {
	enum close_row row;
	const char *outcome;
	int tcp_state;
	int64_t held_ns;
};

/* Writes copy_fd's recorded close line, and the release line with it in
 * one write when there is one; returns the socket's inode. */
static uint64_t write_recorded(int copy_fd, const struct later_release *release)
{
	int saved = errno;
	struct trace_socket s;
	trace_describe_local(copy_fd, &s);
	struct later_close *rec = later_record(copy_fd);
	if (rec == NULL || !atomic_exchange_explicit(&rec->recorded, false, memory_order_acquire)) {
		if (release != NULL)
			trace_release(copy_fd, s.inode, release->row, release->outcome,
				      release->tcp_state, release->held_ns);
		errno = saved;
		return s.inode; /* for the release line */
	}
	s.tcp_state = rec->tcp_state;
	if (rec->remote[0] != '\0')
		memcpy(s.remote, rec->remote, sizeof s.remote);
	else
		trace_describe_peer(copy_fd, &s);
	/* The copy shares the application's open file description: the same
	 * O_NONBLOCK. */
	struct close_facts facts = {
		.linger_on = rec->linger_on,
		.linger_seconds = rec->linger_seconds,
		.nonblocking = probe_nonblocking(copy_fd) == 1,
	};
	struct trace_close ev = {
		.fd = rec->fd, .origin = (enum close_origin)rec->origin,
		.replaced = rec->replaced, .by_fclose = rec->by_fclose,
		.socket = &s, .facts = &facts,
		.pending = rec->pending,
		.plan = { (enum close_row)rec->row, (enum close_action)rec->action },
		.held_fd = copy_fd, .blocked_ns = rec->blocked_ns, .result = rec->result,
	};
	if (release != NULL)
		trace_write_close_and_release(&ev, rec->time_ns, rec->tid, copy_fd, s.inode,
					      release->outcome, release->tcp_state, release->held_ns);
	else
		trace_write_close_line(&ev, rec->time_ns, rec->tid);
	errno = saved;
	return s.inode;
}

uint64_t trace_close_adopted(int copy_fd)
{
	return trace_enabled() ? write_recorded(copy_fd, NULL) : 0;
}

void trace_close_adopted_and_released(int copy_fd, enum close_row row, const char *outcome,
				      int tcp_state, int64_t held_ns)
{
	struct later_release release = { row, outcome, tcp_state, held_ns };
	if (trace_enabled())
		write_recorded(copy_fd, &release);
}
