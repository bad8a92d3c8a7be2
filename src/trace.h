/* trace.h: WSPCLOSE_TRACE lines (§7): one per close decision, shutdown,
 * linger change and reaper outcome, as text or JSON. Each line is built on
 * the stack and written with one write() to an O_APPEND descriptor, so
 * threads and processes sharing a file never interleave; no stdio, no malloc:
 * the close path may trace from a signal handler. */
#ifndef WSPCLOSE_TRACE_H
#define WSPCLOSE_TRACE_H

#include "close_decision.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What a line says about the socket, read while the descriptor is open. */
struct trace_socket {
	uint64_t inode;
	int tcp_state;           /* -1: not TCP or unknown */
	char local[64];          /* "127.0.0.1:8080", "[::1]:8080" or "" */
	char remote[64];
};

struct trace_close {
	int fd;
	enum close_origin origin;
	bool replaced;           /* the number was taken over by dup2/dup3 */
	bool by_fclose;          /* ... by the library, for fclose() of a stream */
	const struct trace_socket *socket;
	const struct close_facts *facts;
	int pending;             /* SIOCOUTQ bytes, -1 when not read */
	struct close_plan plan;
	int held_fd;             /* the held copy, -1 for none */
	int64_t blocked_ns;      /* time spent inside close() */
	int result;
	int error;               /* errno when result < 0 */
	const char *windows;     /* what-if mode: what Windows would have done */
};

/* Opens the trace target. Constructor only; an unusable target writes one
 * warning to stderr and leaves tracing off. */
void trace_open(const struct wspclose_config *config);
bool trace_enabled(void);
/* Reads what cannot change while the socket lives: inode and addresses
 * (three system calls). tcp_state is left to the caller. */
void trace_describe_identity(int fd, struct trace_socket *out);
/* Only the peer's address (one system call), into out->remote. */
void trace_describe_peer(int fd, struct trace_socket *out);

void trace_close(const struct trace_close *event);

/* A hand-off's close line (G1, G2, W2, implicit linger closes) is recorded
 * under the held copy's number, with what close() saw that the network may
 * change (TCP state, pending bytes), and written by the reaper when it
 * adopts the copy, up to a few milliseconds later. The reaper describes the
 * socket from the copy (inode, addresses, O_NONBLOCK: they cannot change
 * any more), except the peer's address when the closer read it (the
 * closer's shutdown may end the connection before the reaper comes, and
 * a closed socket has no peer address), so the closing thread saves those
 * system calls and the write. False when there is nowhere to record it:
 * then trace it at once. */
bool trace_close_later(int copy_fd, const struct trace_close *event);
/* The reaper, adopting copy_fd: writes the recorded close line; returns the
 * socket's inode for the release line. */
uint64_t trace_close_adopted(int copy_fd);
/* A closer releasing copy_fd from the nursery (nursery.h): its recorded
 * close line and its release line, in one write. */
void trace_close_adopted_and_released(int copy_fd, enum close_row row, const char *outcome,
				      int tcp_state, int64_t held_ns);
/* The calling thread's lines are collected and written together by
 * trace_flush() (or when the next line would not fit): whole lines, at most
 * PIPE_BUF bytes per write(), so they still never interleave with other
 * writers. For the reaper thread. */
void trace_collect_this_thread(void);
/* CLOCK_MONOTONIC ns when the oldest line still collected was; 0: none. */
int64_t trace_collected_since(void);
/* True when one more line of any length can be collected without a write
 * (a collector that must know when its lines are out flushes first). */
bool trace_room_for_a_line(void);
void trace_flush(void);
void trace_shutdown(int fd, int how, int result, int error);
void trace_linger(int fd, const char *option, const struct linger *before,
		  const struct linger *after, int result, int error);
void trace_release(int fd, uint64_t inode, enum close_row row, const char *outcome,
		   int tcp_state, int64_t held_ns);
/* A teardown that ended inside close(): its close line and its release
 * line right after it, in one write. */
void trace_close_and_release(const struct trace_close *ev, uint64_t inode, const char *outcome,
			     int tcp_state, int64_t held_ns);
/* One named counter of the exit summary. */
struct trace_count {
	const char *name;
	unsigned long count;
};

/* The exit summary: closes by row, releases by outcome, findings. */
void trace_summary(const struct trace_count *closes, size_t n_closes,
		   const struct trace_count *releases, size_t n_releases,
		   const struct trace_count *findings, size_t n_findings);

/* dup2() onto the trace descriptor's number: moves it; false if fd is not
 * the trace descriptor (or cannot be moved). */
bool trace_move_descriptor(int fd);

/* fork() child: the cached pid and tid are the parent's. */
void trace_after_fork_in_child(void);

/* Names of TCP states for traces ("ESTABLISHED", ...). */
const char *trace_tcp_state_name(int state);

#endif
