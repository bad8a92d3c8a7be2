/* trace.c: formats and writes trace lines (text or JSON) with one write()
 * each. Formatting is hand-made (no snprintf) so that it is async-signal-safe. */
#include "trace.h"
#include "address_text.h"
#include "fd_table.h"
#include "monotonic.h"
#include "tcp_probe.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The trace descriptor lives with the library's own, high and O_CLOEXEC, so
 * that the application closing or reusing fd 2 cannot redirect it. */
#define LINE_MAX_BYTES 2048

static _Atomic int trace_fd = -1;
static bool trace_json;

/* getpid()/gettid() once per process and thread (initial-exec TLS: a plain
 * load, fine in a signal handler); the fork child starts over. */
static _Atomic pid_t cached_pid;
static __thread pid_t cached_tid __attribute__((tls_model("initial-exec")));

static pid_t current_pid(void)
{
	pid_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
	if (pid == 0) {
		pid = (pid_t)syscall(SYS_getpid);
		atomic_store_explicit(&cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

static pid_t current_tid(void)
{
	if (cached_tid == 0)
		cached_tid = (pid_t)syscall(SYS_gettid);
	return cached_tid;
}

void trace_after_fork_in_child(void)
{
	atomic_store(&cached_pid, 0);
	cached_tid = 0;
}

bool trace_enabled(void)
{
	return trace_fd >= 0;
}

static void warn_line(const char *text)
{
	syscall(SYS_write, STDERR_FILENO, text, strlen(text));
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
		fd = raw_move_high((int)syscall(SYS_openat, AT_FDCWD, config->trace_target,
						O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
	if (fd < 0) {
		warn_line("libwspclose: cannot open WSPCLOSE_TRACE target (");
		warn_line(strerror(fd == -1 ? errno : -fd));
		warn_line("); running untraced\n");
		return;
	}
	fd_table_set_library_owned(fd);
	trace_fd = fd;
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

/* ---------------------------------------------------------------- line builder */

struct line {
	char text[LINE_MAX_BYTES];
	size_t len;
	bool fields; /* at least one field written */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (n > sizeof l->text - 2 - l->len)
		n = sizeof l->text - 2 - l->len; /* keep room for the newline */
	memcpy(l->text + l->len, s, n);
	l->len += n;
}

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

size_t format_decimal(char *out, uint64_t v)
{
	char reversed[20];
	size_t n = 0;
	do {
		reversed[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = reversed[n - 1 - i];
	return n;
}

static void put_uint(struct line *l, uint64_t v)
{
	char digits[20];
	put(l, digits, format_decimal(digits, v));
}

static void put_int(struct line *l, int64_t v)
{
	if (v < 0) {
		put_str(l, "-");
		put_uint(l, (uint64_t)0 - (uint64_t)v);
	} else {
		put_uint(l, (uint64_t)v);
	}
}

static void put_padded(struct line *l, unsigned v, int width)
{
	char digits[12];
	for (int i = width - 1; i >= 0; i--) {
		digits[i] = (char)('0' + v % 10);
		v /= 10;
	}
	put(l, digits, (size_t)width);
}

/* JSON string body: quotes, backslashes and control characters escaped. */
static void put_json_escaped(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			put(l, esc, 2);
		} else if (c < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			put(l, esc, 6);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
}

static void begin_field(struct line *l, const char *key)
{
	if (trace_json) {
		put_str(l, l->fields ? ",\"" : "\"");
		put_str(l, key);
		put_str(l, "\":");
	} else {
		put_str(l, " ");
		put_str(l, key);
		put_str(l, "=");
	}
	l->fields = true;
}

static void field_str(struct line *l, const char *key, const char *value)
{
	begin_field(l, key);
	if (trace_json) {
		put_str(l, "\"");
		put_json_escaped(l, value);
		put_str(l, "\"");
	} else if (value[0] == '\0' || strchr(value, ' ') != NULL) {
		put_str(l, "\"");
		put_str(l, value);
		put_str(l, "\"");
	} else {
		put_str(l, value);
	}
}

static void field_int(struct line *l, const char *key, int64_t value)
{
	begin_field(l, key);
	put_int(l, value);
}

static void field_bool(struct line *l, const char *key, bool value)
{
	begin_field(l, key);
	put_str(l, trace_json ? (value ? "true" : "false") : (value ? "1" : "0"));
}

/* Milliseconds with three decimals, from nanoseconds. */
static void field_ms(struct line *l, const char *key, int64_t ns)
{
	begin_field(l, key);
	if (ns < 0)
		ns = 0;
	put_uint(l, (uint64_t)(ns / 1000000));
	put_str(l, ".");
	put_padded(l, (unsigned)(ns / 1000 % 1000), 3);
}

/* UTC civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t days, int *year, unsigned *month, unsigned *day)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*day = doy - (153 * mp + 2) / 5 + 1;
	*month = mp < 10 ? mp + 3 : mp - 9;
	*year = (int)(yoe + era * 400 + (*month <= 2));
}

static void put_time(struct line *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int year;
	unsigned month, day;
	civil_from_days(ts.tv_sec / 86400, &year, &month, &day);
	unsigned secs = (unsigned)(ts.tv_sec % 86400);
	put_padded(l, (unsigned)year, 4);
	put_str(l, "-");
	put_padded(l, month, 2);
	put_str(l, "-");
	put_padded(l, day, 2);
	put_str(l, "T");
	put_padded(l, secs / 3600, 2);
	put_str(l, ":");
	put_padded(l, secs / 60 % 60, 2);
	put_str(l, ":");
	put_padded(l, secs % 60, 2);
	put_str(l, ".");
	put_padded(l, (unsigned)(ts.tv_nsec / 1000), 6);
	put_str(l, "Z");
}

static void begin_line(struct line *l, const char *event)
{
	l->len = 0;
	l->fields = false;
	if (trace_json) {
		put_str(l, "{\"time\":\"");
		put_time(l);
		put_str(l, "\"");
		l->fields = true;
	} else {
		put_time(l);
		put_str(l, " libwspclose");
	}
	field_int(l, "pid", current_pid());
	field_int(l, "tid", current_tid());
	field_str(l, "event", event);
}

static void end_line(struct line *l)
{
	if (trace_json)
		put_str(l, "}");
	l->text[l->len++] = '\n';
	int saved = errno;
	syscall(SYS_write, trace_fd, l->text, l->len);
	errno = saved;
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

void trace_describe(int fd, struct trace_socket *out)
{
	int saved = errno;
	struct stat st;
	out->inode = syscall(SYS_fstat, fd, &st) == 0 ? st.st_ino : 0;
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	if (syscall(SYS_getsockname, fd, &sa, &len) == 0)
		format_socket_address(&sa, len, out->local, sizeof out->local);
	else
		out->local[0] = '\0';
	len = sizeof sa;
	if (syscall(SYS_getpeername, fd, &sa, &len) == 0)
		format_socket_address(&sa, len, out->remote, sizeof out->remote);
	else
		out->remote[0] = '\0';
	int state = probe_tcp_state(fd);
	out->tcp_state = state < 0 ? -1 : state;
	errno = saved;
}

static void socket_fields(struct line *l, int fd, const struct trace_socket *s)
{
	field_int(l, "fd", fd);
	field_int(l, "inode", (int64_t)s->inode);
	field_str(l, "local", s->local);
	field_str(l, "remote", s->remote);
	field_str(l, "tcp_state", trace_tcp_state_name(s->tcp_state));
}

static void linger_field(struct line *l, const char *key, bool on, int seconds)
{
	begin_field(l, key);
	if (trace_json) {
		put_str(l, "{\"on\":");
		put_str(l, on ? "true" : "false");
		put_str(l, ",\"seconds\":");
		put_int(l, seconds);
		put_str(l, "}");
	} else {
		put_str(l, on ? "{1," : "{0,");
		put_int(l, seconds);
		put_str(l, "}");
	}
}

static void result_fields(struct line *l, int result, int error)
{
	field_int(l, "result", result);
	if (result >= 0) {
		begin_field(l, "errno");
		put_str(l, trace_json ? "null" : "0");
		return;
	}
	/* Same value on Linux; W1 is specified as EWOULDBLOCK. */
	const char *name = error == EWOULDBLOCK ? "EWOULDBLOCK" : strerrorname_np(error);
	field_str(l, "errno", name ? name : "unknown");
}

/* ---------------------------------------------------------------- events */

void trace_close(const struct trace_close *ev)
{
	if (!trace_enabled())
		return;
	struct line l;
	begin_line(&l, ev->origin == CLOSE_EXPLICIT ? "close"
			: ev->replaced ? "implicit-close-dup2" : "implicit-close");
	socket_fields(&l, ev->fd, ev->socket);
	linger_field(&l, "linger", ev->facts->linger_on, ev->facts->linger_seconds);
	field_bool(&l, "nonblocking", ev->facts->nonblocking);
	field_int(&l, "pending", ev->pending);
	field_str(&l, "row", close_row_name(ev->plan.row));
	field_str(&l, "action", close_action_name(ev->plan.action));
	if (ev->held_fd >= 0)
		field_int(&l, "held_fd", ev->held_fd);
	field_ms(&l, "blocked_ms", ev->blocked_ns);
	result_fields(&l, ev->result, ev->error);
	if (ev->windows != NULL) {
		/* "...; Linux blocked 2.003 s" */
		struct line what = { .len = 0 };
		put_str(&what, ev->windows);
		put_str(&what, "; Linux blocked ");
		put_uint(&what, (uint64_t)(ev->blocked_ns / NS_PER_SEC));
		put_str(&what, ".");
		put_padded(&what, (unsigned)(ev->blocked_ns / NS_PER_MS % 1000), 3);
		put_str(&what, " s");
		what.text[what.len] = '\0';
		field_str(&l, "windows", what.text);
	}
	end_line(&l);
}

void trace_shutdown(int fd, int how, int result, int error)
{
	if (!trace_enabled())
		return;
	struct trace_socket s;
	trace_describe(fd, &s);
	struct line l;
	begin_line(&l, "shutdown");
	socket_fields(&l, fd, &s);
	field_str(&l, "how", how == SHUT_RD ? "SHUT_RD" : how == SHUT_WR ? "SHUT_WR"
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
	trace_describe(fd, &s);
	struct line l;
	begin_line(&l, "linger");
	socket_fields(&l, fd, &s);
	field_str(&l, "option", option);
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
	struct line l;
	begin_line(&l, "release");
	field_int(&l, "fd", fd);
	field_int(&l, "inode", (int64_t)inode);
	field_str(&l, "tcp_state", trace_tcp_state_name(tcp_state));
	field_str(&l, "row", close_row_name(row));
	field_str(&l, "outcome", outcome);
	field_ms(&l, "held_ms", held_ns);
	end_line(&l);
}

/* JSON: "key":{"a":1,"b":2}; text: key.a=1 key.b=2. */
static void count_group(struct line *l, const char *key, const struct trace_count *c, size_t n)
{
	if (trace_json) {
		begin_field(l, key);
		put_str(l, "{");
		for (size_t i = 0; i < n; i++) {
			put_str(l, i ? ",\"" : "\"");
			put_str(l, c[i].name);
			put_str(l, "\":");
			put_uint(l, c[i].count);
		}
		put_str(l, "}");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		put_str(l, " ");
		put_str(l, key);
		put_str(l, ".");
		put_str(l, c[i].name);
		put_str(l, "=");
		put_uint(l, c[i].count);
	}
}

void trace_summary(const struct trace_count *closes, size_t n_closes,
		   const struct trace_count *releases, size_t n_releases,
		   const struct trace_count *findings, size_t n_findings)
{
	if (!trace_enabled())
		return;
	struct line l;
	begin_line(&l, "summary");
	count_group(&l, "closes", closes, n_closes);
	count_group(&l, "releases", releases, n_releases);
	count_group(&l, "findings", findings, n_findings);
	end_line(&l);
}
