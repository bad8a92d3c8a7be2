/* trace.c: what each trace event says, and where its line goes: one write()
 * per line, or the reaper's lines collected into a few writes. Lines are
 * built by trace_line.c (hand-made, async-signal-safe); a hand-off's close
 * line waits in trace_later.c until the reaper writes it. */
#include "trace.h"
#include "trace_internal.h"
#include "trace_line.h"
#include "address_text.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "monotonic.h"
#include "raw_syscall.h"
#include "tcp_probe.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The trace descriptor lives with the library's own, high and O_CLOEXEC, so
 * that the application closing or reusing fd 2 cannot redirect it. */
_Static_assert(TRACE_LINE_MAX_BYTES <= PIPE_BUF, "a collected line must fit one write()");

static _Atomic int trace_fd = -1;
static bool trace_json;

/* The reaper's lines, collected until it has nothing else to do. Only the
 * thread that asked for it (one reaper per process) writes here. */
static char collected[PIPE_BUF];
static size_t collected_len;
static int64_t collected_since_ns; /* CLOCK_MONOTONIC of the oldest; 0: none */
static __thread bool collecting_here __attribute__((tls_model("initial-exec")));

/* getpid()/gettid() once per process and thread (initial-exec TLS: a plain
 * load, fine in a signal handler); the fork child starts over. */
static _Atomic pid_t cached_pid;
static __thread pid_t cached_tid __attribute__((tls_model("initial-exec")));

static pid_t current_pid(void)
{
	pid_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
	if (pid == 0) {
		pid = (pid_t)raw_syscall(SYS_getpid);
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

pid_t trace_current_tid(void)
{
	if (cached_tid == 0)
		cached_tid = (pid_t)raw_syscall(SYS_gettid);
	return cached_tid;
}

void trace_after_fork_in_child(void)
{
	atomic_store(&cached_pid, 0);
	cached_tid = 0;
	/* The parent's reaper writes its own lines; this child's starts empty. */
	collected_len = 0;
	collected_since_ns = 0;
	collecting_here = false;
}

bool trace_enabled(void)
{
	return trace_fd >= 0;
}

static void warn_line(const char *text)
{
	raw_syscall(SYS_write, STDERR_FILENO, text, strlen(text));
}

void trace_open(const struct wspclose_config *config)
{
	if (config->trace_target == NULL)
		return;
	trace_json = config->trace_format == TRACE_JSON;
	/* High and O_CLOEXEC (the upper half of RLIMIT_NOFILE when 1024 is
	 * not allowed), out of the application's way. */
	int fd;
	if (strcmp(config->trace_target, "stderr") == 0)
		fd = raw_dup_high(STDERR_FILENO);
	else
		fd = raw_move_high((int)raw_syscall(SYS_openat, AT_FDCWD, config->trace_target,
						O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
	if (fd < 0) {
		warn_line("libwspclose: cannot open WSPCLOSE_TRACE target (");
		warn_line(strerror(fd == -1 ? errno : -fd));
		warn_line("); running untraced\n");
		return;
	}
	fd_table_set_library_owned(fd);
	trace_fd = fd;
	trace_later_open();
}

bool trace_move_descriptor(int fd)
{
	if (fd < 0 || fd != atomic_load(&trace_fd))
		return false;
	int moved = fork_guard_dup_own_high(fd);
	if (moved < 0)
		return false;
	atomic_store(&trace_fd, moved);
	fork_guard_forget_and_close(fd);
	return true;
}

/* A line about something that thread `tid` did at `time_ns`. */
static void begin_line_of(struct trace_line *l, const char *event, int64_t time_ns, pid_t tid)
{
	line_begin(l, trace_json, event, time_ns, current_pid(), tid);
}

static void begin_line(struct trace_line *l, const char *event)
{
	begin_line_of(l, event, line_realtime_ns(), trace_current_tid());
}

static void write_out(const char *text, size_t len)
{
	int saved = errno;
	raw_syscall(SYS_write, trace_fd, text, len);
	errno = saved;
}

void trace_collect_this_thread(void)
{
	collecting_here = true;
}

int64_t trace_collected_since(void)
{
	return collected_since_ns;
}

bool trace_room_for_a_line(void)
{
	return sizeof collected - collected_len >= TRACE_LINE_MAX_BYTES;
}

void trace_flush(void)
{
	if (collected_len > 0)
		write_out(collected, collected_len);
	collected_len = 0;
	collected_since_ns = 0;
}

static void terminate_line(struct trace_line *l)
{
	if (l->json)
		line_put_str(l, "}");
	l->text[l->len++] = '\n';
}

static void collect_line(const struct trace_line *l)
{
	if (l->len > sizeof collected - collected_len)
		trace_flush();
	if (collected_len == 0)
		collected_since_ns = monotonic_ns();
	memcpy(collected + collected_len, l->text, l->len); /* a line is < PIPE_BUF */
	collected_len += l->len;
}

static void end_line(struct trace_line *l)
{
	terminate_line(l);
	if (collecting_here)
		collect_line(l);
	else
		write_out(l->text, l->len);
}

/* ---------------------------------------------------------------- sockets */

const char *trace_tcp_state_name(int state)
{
	switch (state) {
	case TCP_STATE_ESTABLISHED: return "ESTABLISHED";
	case TCP_STATE_SYN_SENT: return "SYN_SENT";
	case TCP_STATE_SYN_RECV: return "SYN_RECV";
	case TCP_STATE_FIN_WAIT1: return "FIN_WAIT1";
	case TCP_STATE_FIN_WAIT2: return "FIN_WAIT2";
	case TCP_STATE_TIME_WAIT: return "TIME_WAIT";
	case TCP_STATE_CLOSE: return "CLOSE";
	case TCP_STATE_CLOSE_WAIT: return "CLOSE_WAIT";
	case TCP_STATE_LAST_ACK: return "LAST_ACK";
	case TCP_STATE_LISTEN: return "LISTEN";
	case TCP_STATE_CLOSING: return "CLOSING";
	default: return "-";
	}
}

/* getsockname() or getpeername(), as text ("" when it fails). */
static void read_address(long call, int fd, char *out, size_t size)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	if (raw_syscall(call, fd, &sa, &len) == 0)
		format_socket_address(&sa, len, out, size);
	else
		out[0] = '\0';
}

void trace_describe_peer(int fd, struct trace_socket *out)
{
	read_address(SYS_getpeername, fd, out->remote, sizeof out->remote);
}

/* The inode and the local address. */
void trace_describe_local(int fd, struct trace_socket *out)
{
	struct stat st;
	out->inode = raw_syscall(SYS_fstat, fd, &st) == 0 ? st.st_ino : 0;
	read_address(SYS_getsockname, fd, out->local, sizeof out->local);
}

void trace_describe_identity(int fd, struct trace_socket *out)
{
	int saved = errno;
	trace_describe_local(fd, out);
	trace_describe_peer(fd, out);
	errno = saved;
}

static void describe(int fd, struct trace_socket *out)
{
	trace_describe_identity(fd, out);
	int state = probe_tcp_state(fd);
	out->tcp_state = state < 0 ? -1 : state;
}

static void socket_fields(struct trace_line *l, int fd, const struct trace_socket *s)
{
	line_field_int(l, "fd", fd);
	line_field_int(l, "inode", (int64_t)s->inode);
	line_field_str(l, "local", s->local);
	line_field_str(l, "remote", s->remote);
	line_field_str(l, "tcp_state", trace_tcp_state_name(s->tcp_state));
}

static void linger_field(struct trace_line *l, const char *key, bool on, int seconds)
{
	line_begin_field(l, key);
	if (trace_json) {
		line_put_str(l, "{\"on\":");
		line_put_str(l, on ? "true" : "false");
		line_put_str(l, ",\"seconds\":");
		line_put_int(l, seconds);
		line_put_str(l, "}");
	} else {
		line_put_str(l, on ? "{1," : "{0,");
		line_put_int(l, seconds);
		line_put_str(l, "}");
	}
}

static void result_fields(struct trace_line *l, int result, int error)
{
	line_field_int(l, "result", result);
	if (result >= 0) {
		line_begin_field(l, "errno");
		line_put_str(l, trace_json ? "null" : "0");
		return;
	}
	/* Same value on Linux; W1 is specified as EWOULDBLOCK. */
	const char *name = error == EWOULDBLOCK ? "EWOULDBLOCK" : strerrorname_np(error);
	line_field_str(l, "errno", name ? name : "unknown");
}

/* ---------------------------------------------------------------- events */

static void build_close_line(struct trace_line *l, const struct trace_close *ev,
			     int64_t time_ns, pid_t tid)
{
	begin_line_of(l, ev->origin == CLOSE_EXPLICIT ? "close"
			: ev->by_fclose ? "implicit-close-fclose"
			: ev->replaced ? "implicit-close-dup2" : "implicit-close", time_ns, tid);
	socket_fields(l, ev->fd, ev->socket);
	linger_field(l, "linger", ev->facts->linger_on, ev->facts->linger_seconds);
	line_field_bool(l, "nonblocking", ev->facts->nonblocking);
	line_field_int(l, "pending", ev->pending);
	line_field_str(l, "row", close_row_name(ev->plan.row));
	line_field_str(l, "action", close_action_name(ev->plan.action));
	if (ev->held_fd >= 0)
		line_field_int(l, "held_fd", ev->held_fd);
	line_field_ms(l, "blocked_ms", ev->blocked_ns);
	result_fields(l, ev->result, ev->error);
	if (ev->windows != NULL) {
		/* "...; Linux blocked 2.003 s" */
		struct trace_line what = { .len = 0 };
		line_put_str(&what, ev->windows);
		line_put_str(&what, "; Linux blocked ");
		line_put_uint(&what, (uint64_t)(ev->blocked_ns / NS_PER_SEC));
		line_put_str(&what, ".");
		line_put_padded(&what, (unsigned)(ev->blocked_ns / NS_PER_MS % 1000), 3);
		line_put_str(&what, " s");
		what.text[what.len] = '\0';
		line_field_str(l, "windows", what.text);
	}
	}

void trace_write_close_line(const struct trace_close *ev, int64_t time_ns, pid_t tid)
{
	struct trace_line l;
	build_close_line(&l, ev, time_ns, tid);
	end_line(&l);
}

void trace_close(const struct trace_close *ev)
{
	if (trace_enabled())
		trace_write_close_line(ev, line_realtime_ns(), trace_current_tid());
}

void trace_shutdown(int fd, int how, int result, int error)
{
	if (!trace_enabled())
		return;
	struct trace_socket s;
	describe(fd, &s);
	struct trace_line l;
	begin_line(&l, "shutdown");
	socket_fields(&l, fd, &s);
	line_field_str(&l, "how", how == SHUT_RD ? "SHUT_RD" : how == SHUT_WR ? "SHUT_WR"
			     : how == SHUT_RDWR ? "SHUT_RDWR" : "invalid");
	result_fields(&l, result, error);
	end_line(&l);
}

void trace_linger(int fd, const char *option, const struct linger *before,
		  const struct linger *after, int result, int error)
{
	if (!trace_enabled())
		return;
	struct trace_socket s;
	describe(fd, &s);
	struct trace_line l;
	begin_line(&l, "linger");
	socket_fields(&l, fd, &s);
	line_field_str(&l, "option", option);
	linger_field(&l, "before", before->l_onoff != 0, before->l_linger);
	linger_field(&l, "after", after->l_onoff != 0, after->l_linger);
	result_fields(&l, result, error);
	end_line(&l);
}

static void build_release_line(struct trace_line *l, int fd, uint64_t inode, enum close_row row,
			       const char *outcome, int tcp_state, int64_t held_ns)
{
	begin_line(l, "release");
	line_field_int(l, "fd", fd);
	line_field_int(l, "inode", (int64_t)inode);
	line_field_str(l, "tcp_state", trace_tcp_state_name(tcp_state));
	line_field_str(l, "row", close_row_name(row));
	line_field_str(l, "outcome", outcome);
	line_field_ms(l, "held_ms", held_ns);
}

void trace_release(int fd, uint64_t inode, enum close_row row, const char *outcome,
		   int tcp_state, int64_t held_ns)
{
	if (!trace_enabled())
		return;
	struct trace_line l;
	build_release_line(&l, fd, inode, row, outcome, tcp_state, held_ns);
	end_line(&l);
}

void trace_close_and_release(const struct trace_close *ev, uint64_t inode, const char *outcome,
			     int tcp_state, int64_t held_ns)
{
	if (trace_enabled())
		trace_write_close_and_release(ev, line_realtime_ns(), trace_current_tid(), ev->fd,
					      inode, outcome, tcp_state, held_ns);
}

void trace_write_close_and_release(const struct trace_close *ev, int64_t time_ns, pid_t tid,
				   int released_fd, uint64_t inode, const char *outcome,
				   int tcp_state, int64_t held_ns)
{
	struct trace_line lines[2];
	build_close_line(&lines[0], ev, time_ns, tid);
	build_release_line(&lines[1], released_fd, inode, ev->plan.row, outcome, tcp_state,
			   held_ns);
	terminate_line(&lines[0]);
	terminate_line(&lines[1]);
	if (collecting_here) {
		collect_line(&lines[0]);
		collect_line(&lines[1]);
		return;
	}
	/* One system call, and one append: nothing can come between them. */
	struct iovec iov[2] = { { lines[0].text, lines[0].len }, { lines[1].text, lines[1].len } };
	int saved = errno;
	raw_syscall(SYS_writev, trace_fd, iov, 2);
	errno = saved;
}

/* JSON: "key":{"a":1,"b":2}; text: key.a=1 key.b=2. */
static void count_group(struct trace_line *l, const char *key, const struct trace_count *c, size_t n)
{
	if (trace_json) {
		line_begin_field(l, key);
		line_put_str(l, "{");
		for (size_t i = 0; i < n; i++) {
			line_put_str(l, i ? ",\"" : "\"");
			line_put_str(l, c[i].name);
			line_put_str(l, "\":");
			line_put_uint(l, c[i].count);
		}
		line_put_str(l, "}");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		line_put_str(l, " ");
		line_put_str(l, key);
		line_put_str(l, ".");
		line_put_str(l, c[i].name);
		line_put_str(l, "=");
		line_put_uint(l, c[i].count);
	}
}

void trace_summary(const struct trace_count *closes, size_t n_closes,
		   const struct trace_count *releases, size_t n_releases,
		   const struct trace_count *findings, size_t n_findings)
{
	if (!trace_enabled())
		return;
	struct trace_line l;
	begin_line(&l, "summary");
	count_group(&l, "closes", closes, n_closes);
	count_group(&l, "releases", releases, n_releases);
	count_group(&l, "findings", findings, n_findings);
	end_line(&l);
}
