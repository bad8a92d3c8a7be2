/* trace.c: what each trace event says, and where its line goes: one write()
 * per line, or the reaper's lines collected into a few writes. Lines are
 * built by trace_line.c (hand-made, async-signal-safe). */
#include "trace.h"
#include "trace_line.h"
#include "address_text.h"
#include "fd_table.h"
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
#include <time.h>
#include <unistd.h>

/* The trace descriptor lives with the library's own, high and O_CLOEXEC, so
 * that the application closing or reusing fd 2 cannot redirect it. */
_Static_assert(TRACE_LINE_MAX_BYTES <= PIPE_BUF, "a collected line must fit one write()");

static _Atomic int trace_fd = -1;
static bool trace_json;

/* A hand-off's close line until the reaper writes it (trace_close_later):
 * what only close() knows. One per descriptor number, mapped with the
 * trace and touched only where held copies live. */
struct later_close {
	int64_t time_ns;       /* CLOCK_REALTIME when close() decided */
	int64_t blocked_ns;
	int32_t tid;
	int32_t fd;
	int32_t linger_seconds;
	int32_t pending;       /* SIOCOUTQ in close() */
	int32_t result;        /* 0, or the number dup2()/dup3() returned */
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

static pid_t current_tid(void)
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

bool trace_move_descriptor(int fd)
{
	if (fd < 0 || fd != atomic_load(&trace_fd))
		return false;
	int moved = raw_dup_high(fd);
	if (moved < 0)
		return false;
	fd_table_set_library_owned(moved);
	atomic_store(&trace_fd, moved);
	fd_table_forget(fd);
	raw_close(fd);
	return true;
}

/* A line about something that thread `tid` did at `time_ns`. */
static void begin_line_of(struct trace_line *l, const char *event, int64_t time_ns, pid_t tid)
{
	line_begin(l, trace_json, event, time_ns, current_pid(), tid);
}

static void begin_line(struct trace_line *l, const char *event)
{
	begin_line_of(l, event, line_realtime_ns(), current_tid());
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

static void end_line(struct trace_line *l)
{
	if (l->json)
		line_put_str(l, "}");
	l->text[l->len++] = '\n';
	if (!collecting_here) {
		write_out(l->text, l->len);
		return;
	}
	if (l->len > sizeof collected - collected_len)
		trace_flush();
	if (collected_len == 0)
		collected_since_ns = monotonic_ns();
	memcpy(collected + collected_len, l->text, l->len); /* a line is < PIPE_BUF */
	collected_len += l->len;
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

void trace_describe_identity(int fd, struct trace_socket *out)
{
	int saved = errno;
	struct stat st;
	out->inode = raw_syscall(SYS_fstat, fd, &st) == 0 ? st.st_ino : 0;
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	if (raw_syscall(SYS_getsockname, fd, &sa, &len) == 0)
		format_socket_address(&sa, len, out->local, sizeof out->local);
	else
		out->local[0] = '\0';
	len = sizeof sa;
	if (raw_syscall(SYS_getpeername, fd, &sa, &len) == 0)
		format_socket_address(&sa, len, out->remote, sizeof out->remote);
	else
		out->remote[0] = '\0';
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

static void write_close_line(const struct trace_close *ev, int64_t time_ns, pid_t tid)
{
	struct trace_line l;
	begin_line_of(&l, ev->origin == CLOSE_EXPLICIT ? "close"
			: ev->by_fclose ? "implicit-close-fclose"
			: ev->replaced ? "implicit-close-dup2" : "implicit-close", time_ns, tid);
	socket_fields(&l, ev->fd, ev->socket);
	linger_field(&l, "linger", ev->facts->linger_on, ev->facts->linger_seconds);
	line_field_bool(&l, "nonblocking", ev->facts->nonblocking);
	line_field_int(&l, "pending", ev->pending);
	line_field_str(&l, "row", close_row_name(ev->plan.row));
	line_field_str(&l, "action", close_action_name(ev->plan.action));
	if (ev->held_fd >= 0)
		line_field_int(&l, "held_fd", ev->held_fd);
	line_field_ms(&l, "blocked_ms", ev->blocked_ns);
	result_fields(&l, ev->result, ev->error);
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
		line_field_str(&l, "windows", what.text);
	}
	end_line(&l);
}

void trace_close(const struct trace_close *ev)
{
	if (trace_enabled())
		write_close_line(ev, line_realtime_ns(), current_tid());
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
	rec->tid = current_tid();
	rec->fd = ev->fd;
	rec->linger_seconds = ev->facts->linger_seconds;
	rec->linger_on = ev->facts->linger_on;
	rec->pending = ev->pending;
	rec->result = ev->result;
	rec->tcp_state = (int8_t)ev->socket->tcp_state;
	rec->origin = (uint8_t)ev->origin;
	rec->replaced = ev->replaced;
	rec->by_fclose = ev->by_fclose;
	rec->row = (uint8_t)ev->plan.row;
	rec->action = (uint8_t)ev->plan.action;
	/* Release: the reaper finds the copy on the hand-off stack later. */
	atomic_store_explicit(&rec->recorded, true, memory_order_release);
	return true;
}

uint64_t trace_close_adopted(int copy_fd)
{
	if (!trace_enabled())
		return 0;
	int saved = errno;
	struct trace_socket s;
	trace_describe_identity(copy_fd, &s);
	struct later_close *rec = later_record(copy_fd);
	if (rec != NULL && atomic_exchange_explicit(&rec->recorded, false, memory_order_acquire)) {
		s.tcp_state = rec->tcp_state;
		/* The copy shares the application's open file description:
		 * the same O_NONBLOCK. */
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
		write_close_line(&ev, rec->time_ns, rec->tid);
	}
	errno = saved;
	return s.inode;
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

void trace_release(int fd, uint64_t inode, enum close_row row, const char *outcome,
		   int tcp_state, int64_t held_ns)
{
	if (!trace_enabled())
		return;
	struct trace_line l;
	begin_line(&l, "release");
	line_field_int(&l, "fd", fd);
	line_field_int(&l, "inode", (int64_t)inode);
	line_field_str(&l, "tcp_state", trace_tcp_state_name(tcp_state));
	line_field_str(&l, "row", close_row_name(row));
	line_field_str(&l, "outcome", outcome);
	line_field_ms(&l, "held_ms", held_ns);
	end_line(&l);
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
