/* stats.c: the exit summary and divergence report. Counters are atomics
 * (bumped from the close path, maybe in a signal handler); the report is
 * built once, at exit, where stdio is fine. */
#include "stats.h"
#include "address_text.h"
#include "config.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "raw_syscall.h"
#include "trace.h"

#include "tcp_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ROW_COUNT (ROW_L2 + 1)

static _Atomic unsigned long closes_by_row[ROW_COUNT];
static _Atomic unsigned long releases_by_outcome[OUTCOME_COUNT];
static _Atomic unsigned long double_closes;
static _Atomic unsigned long w1_abandoned;
static _Atomic unsigned long linger_resets;

static _Atomic int report_fd = -1;   /* copy of stderr, WSPCLOSE_STATS=1 only */
static _Atomic int findings_fd = -1; /* WSPCLOSE_FINDINGS_FILE */

static bool move_if(_Atomic int *which, int fd)
{
	if (fd < 0 || fd != atomic_load(which))
		return false;
	int moved = fork_guard_dup_own_high(fd);
	if (moved < 0)
		return false;
	atomic_store(which, moved);
	fork_guard_forget_and_close(fd);
	return true;
}

bool stats_move_descriptor(int fd)
{
	return move_if(&report_fd, fd) || move_if(&findings_fd, fd);
}

void stats_open(const struct wspclose_config *config)
{
	if (config->stats) {
		int fd = raw_dup_high(STDERR_FILENO);
		if (fd >= 0)
			fd_table_set_library_owned(fd);
		report_fd = fd;
	}
	if (config->findings_file != NULL) {
		int fd = raw_move_high((int)raw_syscall(SYS_openat, AT_FDCWD, config->findings_file,
						    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
		if (fd < 0) {
			static const char warning[] = "libwspclose: cannot open "
				"WSPCLOSE_FINDINGS_FILE; findings are not recorded\n";
			raw_syscall(SYS_write, STDERR_FILENO, warning, sizeof warning - 1);
			return;
		}
		fd_table_set_library_owned(fd);
		findings_fd = fd;
	}
}

bool stats_report_wanted(void)
{
	return wspclose_settings.stats || trace_enabled() || atomic_load(&findings_fd) >= 0;
}

static size_t append_text(char *line, size_t len, const char *text)
{
	size_t n = strlen(text);
	memcpy(line + len, text, n);
	return len + n;
}

static size_t append_number(char *line, size_t len, unsigned long v)
{
	return len + format_decimal(line + len, v);
}

/* "PID KIND COUNT\n" with one write() on the O_APPEND file: whole lines,
 * whatever the other processes write. Async-signal-safe (no snprintf). */
static void append_finding(const char *kind, unsigned long count)
{
	if (atomic_load(&findings_fd) < 0 || count == 0)
		return;
	char line[96]; /* 20 + 1 + a short kind + 1 + 20 + 1 */
	size_t len = append_number(line, 0, (unsigned long)raw_syscall(SYS_getpid));
	len = append_text(line, len, " ");
	len = append_text(line, len, kind);
	len = append_text(line, len, " ");
	len = append_number(line, len, count);
	len = append_text(line, len, "\n");
	int saved = errno;
	raw_syscall(SYS_write, atomic_load(&findings_fd), line, len);
	errno = saved;
}

const char *held_outcome_name(enum held_outcome outcome)
{
	switch (outcome) {
	case OUTCOME_FIN_ACKED: return "fin-acked";
	case OUTCOME_PEER_RESET: return "peer-reset";
	case OUTCOME_DATA_AFTER_CLOSE: return "data-after-close";
	case OUTCOME_UNREAD_DATA: return "unread-data-reset";
	case OUTCOME_GRACE_TIMEOUT: return "grace-timeout";
	case OUTCOME_LINGER_TIMEOUT: return "linger-timeout";
	case OUTCOME_NOT_CONNECTED: return "not-connected";
	case OUTCOME_NO_ROOM: return "kernel-finishes";
	case OUTCOME_COUNT: break;
	}
	return "unknown";
}

void stats_count_close(enum close_row row)
{
	if ((unsigned)row < ROW_COUNT)
		atomic_fetch_add_explicit(&closes_by_row[row], 1, memory_order_relaxed);
}

void stats_count_release(enum held_outcome outcome)
{
	if ((unsigned)outcome < OUTCOME_COUNT)
		atomic_fetch_add_explicit(&releases_by_outcome[outcome], 1, memory_order_relaxed);
}

void stats_note_double_close(void)
{
	atomic_fetch_add_explicit(&double_closes, 1, memory_order_relaxed);
	append_finding("double-close", 1);
}

void stats_note_linger_reset(void)
{
	atomic_fetch_add_explicit(&linger_resets, 1, memory_order_relaxed);
	append_finding("linger-reset", 1);
}

void stats_note_w1_abandoned(void)
{
	atomic_fetch_add_explicit(&w1_abandoned, 1, memory_order_relaxed);
	append_finding("w1-unresolved", 1);
}

static unsigned long w1_still_open;

static void count_w1_open(int fd, struct fd_entry *e)
{
	(void)fd;
	if (atomic_load(&e->state) & FD_W1_REFUSED)
		w1_still_open++;
}

struct findings {
	unsigned long w1_unresolved, double_close, linger_resets, held_at_exit;
};

static unsigned long total(const struct findings *f)
{
	return f->w1_unresolved + f->double_close + f->linger_resets + f->held_at_exit;
}

/* Appends "name=count " to buf. */
static size_t append_count(char *buf, size_t len, size_t cap, const char *name,
			   unsigned long count)
{
	if (len >= cap)
		return len;
	int n = snprintf(buf + len, cap - len, "%s=%lu ", name, count);
	return n < 0 ? len : len + (size_t)n;
}

/* One line: "G1=3 A1=1 ... fin-acked=3 ...". */
static size_t format_counts(char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int row = 0; row < ROW_COUNT; row++) {
		unsigned long n = atomic_load(&closes_by_row[row]);
		if (n != 0)
			len = append_count(buf, len, cap, close_row_name((enum close_row)row), n);
	}
	return len;
}

static void trim_trailing_space(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

static void print_report(const struct findings *f, long still_held)
{
	char rows[512], line[1024];
	format_counts(rows, sizeof rows);
	size_t len = 0;
	unsigned long held = 0;
	char outcomes[512];
	outcomes[0] = '\0';
	for (int o = 0; o < OUTCOME_COUNT; o++) {
		unsigned long n = atomic_load(&releases_by_outcome[o]);
		held += n;
		if (n != 0)
			len = append_count(outcomes, len, sizeof outcomes,
					   held_outcome_name((enum held_outcome)o), n);
	}
	trim_trailing_space(rows);
	trim_trailing_space(outcomes);
	int n = snprintf(line, sizeof line,
		"libwspclose: summary for pid %ld\n"
		"libwspclose:   closes by row: %s\n"
		"libwspclose:   held sockets released: %lu (%s); still held at exit: %ld\n"
		"libwspclose:   findings (would differ on Windows): %lu\n"
		"libwspclose:     W1 (WSAEWOULDBLOCK) never followed by a successful close: %lu\n"
		"libwspclose:     double close of a number not reused: %lu\n"
		"libwspclose:     linger timeouts that reset the connection (data lost): %lu\n"
		"libwspclose:     sockets still held at exit: %lu\n",
		(long)getpid(), rows[0] ? rows : "none", held,
		outcomes[0] ? outcomes : "none", still_held, total(f), f->w1_unresolved,
		f->double_close, f->linger_resets, f->held_at_exit);
	if (n > 0 && atomic_load(&report_fd) >= 0)
		raw_syscall(SYS_write, atomic_load(&report_fd), line,
			(size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void trace_report(const struct findings *f)
{
	struct trace_count closes[ROW_COUNT], releases[OUTCOME_COUNT];
	size_t n_closes = 0, n_releases = 0;
	for (int row = 0; row < ROW_COUNT; row++) {
		unsigned long n = atomic_load(&closes_by_row[row]);
		if (n != 0)
			closes[n_closes++] = (struct trace_count){
				close_row_name((enum close_row)row), n };
	}
	for (int o = 0; o < OUTCOME_COUNT; o++) {
		unsigned long n = atomic_load(&releases_by_outcome[o]);
		if (n != 0)
			releases[n_releases++] = (struct trace_count){
				held_outcome_name((enum held_outcome)o), n };
	}
	struct trace_count findings[] = {
		{ "total", total(f) },
		{ "w1_unresolved", f->w1_unresolved },
		{ "double_close", f->double_close },
		{ "linger_resets", f->linger_resets },
		{ "held_at_exit", f->held_at_exit },
	};
	trace_summary(closes, n_closes, releases, n_releases, findings,
		      sizeof findings / sizeof findings[0]);
}

void stats_report_at_exit(long still_held)
{
	w1_still_open = 0;
	fd_table_for_each(count_w1_open);
	struct findings f = {
		.w1_unresolved = w1_still_open + atomic_load(&w1_abandoned),
		.double_close = atomic_load(&double_closes),
		.linger_resets = atomic_load(&linger_resets),
		.held_at_exit = still_held > 0 ? (unsigned long)still_held : 0,
	};
	if (wspclose_settings.stats)
		print_report(&f, still_held);
	trace_report(&f);
	/* The other kinds were appended as they happened. */
	append_finding("w1-unresolved", w1_still_open);
	append_finding("held-at-exit", f.held_at_exit);
}
