/* bench_scale_util.h: helpers shared by the scale benchmarks (make bench-scale):
 * clocks, statistics, child processes, and /proc readings of threads and memory. */
#ifndef BENCH_SCALE_UTIL_H
#define BENCH_SCALE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

uint64_t clock_ns(clockid_t clock);
static inline uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t real_ns(void) { return clock_ns(CLOCK_REALTIME); }
void sleep_ms(long ms);
void fatal(const char *prog, const char *what) __attribute__((noreturn));

/* Statistics over doubles; both sort `v` in place. */
double median_of(double *v, size_t n);
/* Nearest-rank percentile, p in [0, 100]. */
double percentile_of(double *v, size_t n, double p);

long parse_long(const char *prog, const char *option, const char *text, long min, long max);
/* "1000,2000,5000": up to `max` values; returns how many. */
size_t parse_list(const char *prog, const char *option, const char *text, long min, long max,
		  long *out, size_t max_count);

/* Raises RLIMIT_NOFILE: both limits to 262,144 where allowed (root), else
 * the soft one to the hard one; returns the new soft limit. */
long raise_nofile_limit(void);

/* Our environment without LD_PRELOAD and WSPCLOSE_*, plus "LD_PRELOAD=library" when library
 * is not NULL, plus the NAME=VALUE strings in extra (NULL-terminated, may be
 * NULL). The result stays allocated. */
char **child_environment(const char *library, const char *const *extra);

/* Forks and execs /proc/self/exe with argv and env; the child's stdin reads
 * *to_child and its stdout writes *from_child (both may be NULL: not piped). */
pid_t spawn_self(char *const argv[], char **env, int *to_child, int *from_child);
/* Waits for pid; true when it exited with status 0. */
bool reap_child(const char *prog, pid_t pid);

/* Reads one line (without the newline) from fd, waiting at most timeout_ms;
 * false on EOF, error or timeout. */
bool read_line(int fd, char *buf, size_t size, int timeout_ms);
/* Finds "key=" in a "k1=v1 k2=v2" line; NAN when absent. */
double line_value(const char *line, const char *key);

/* True when `path` (resolved) appears in /proc/self/maps. */
bool library_is_mapped(const char *path);

/* Memory and threads of this process. */
long vmrss_kib(void);
int count_open_fds(void);
/* The first thread of this process other than the calling one, 0 if none. */
pid_t other_thread_tid(void);
/* CPU time of thread tid of this process, in ns (thread CPU clock). */
uint64_t thread_cpu_ns(pid_t tid);

struct task_sample {
	uint64_t cpu_ns;          /* thread CPU clock */
	unsigned long ticks;      /* utime + stime from /proc/self/task/TID/stat */
	unsigned long voluntary;  /* voluntary_ctxt_switches */
	unsigned long involuntary;
};
bool task_sample(pid_t tid, struct task_sample *out);

/* The CPU's "model name" from /proc/cpuinfo, or `unknown`. */
void cpu_model(char *out, size_t len, const char *unknown);
/* uname, CPU model and count: one line each, prefixed by `prefix`. */
void print_machine(const char *prefix);

#endif
