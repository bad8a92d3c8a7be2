/* bench_scale_util.c: helpers shared by the scale benchmarks (make bench-scale):
 * clocks, statistics, child processes, and /proc readings of threads and memory. */
#include "bench_scale_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void fatal(const char *prog, const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double median_of(double *v, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, compare_doubles);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double percentile_of(double *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, compare_doubles);
	rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

long parse_long(const char *prog, const char *option, const char *text, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < min || v > max) {
		fprintf(stderr, "%s: %s expects a number from %ld to %ld, not \"%s\"\n", prog,
			option, min, max, text);
		exit(2);
	}
	return v;
}

size_t parse_list(const char *prog, const char *option, const char *text, long min, long max,
		  long *out, size_t max_count)
{
	char copy[512];
	size_t n = 0;

	snprintf(copy, sizeof copy, "%s", text);
	for (char *save, *item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		if (n == max_count) {
			fprintf(stderr, "%s: %s takes at most %zu values\n", prog, option, max_count);
			exit(2);
		}
		out[n++] = parse_long(prog, option, item, min, max);
	}
	if (n == 0) {
		fprintf(stderr, "%s: %s needs at least one value\n", prog, option);
		exit(2);
	}
	return n;
}

#define NOFILE_WANTED 262144

long raise_nofile_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
		return -1;
	/* Room for 100,000 held sockets with their peers where we may raise
	 * the hard limit (root, up to fs.nr_open); else the soft one to it. */
	if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < NOFILE_WANTED) {
		struct rlimit more = { NOFILE_WANTED, NOFILE_WANTED };
		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			lim = more;
	}
	lim.rlim_cur = lim.rlim_max;
	setrlimit(RLIMIT_NOFILE, &lim);
	getrlimit(RLIMIT_NOFILE, &lim);
	return lim.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)lim.rlim_cur;
}

char **child_environment(const char *library, const char *const *extra)
{
	size_t count = 0, extras = 0, used = 0;
	char **env;

	while (environ[count])
		count++;
	while (extra && extra[extras])
		extras++;
	env = calloc(count + extras + 2, sizeof *env);
	if (!env)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		/* No inherited preload or library setting skews a measurement. */
		bool replaced = strncmp(environ[i], "LD_PRELOAD=", 11) == 0 ||
				strncmp(environ[i], "WSPCLOSE_", 9) == 0;

		/* Nor one that an extra setting overrides. */
		for (size_t j = 0; j < extras && !replaced; j++) {
			size_t key = strcspn(extra[j], "=") + 1;

			replaced = strncmp(environ[i], extra[j], key) == 0;
		}
		if (!replaced)
			env[used++] = environ[i];
	}
	for (size_t j = 0; j < extras; j++)
		env[used++] = (char *)extra[j];
	if (library) {
		size_t len = strlen(library) + sizeof "LD_PRELOAD=";
		char *entry = malloc(len);

		if (!entry)
			return NULL;
		snprintf(entry, len, "LD_PRELOAD=%s", library);
		env[used++] = entry;
	}
	env[used] = NULL;
	return env;
}

pid_t spawn_self(char *const argv[], char **env, int *to_child, int *from_child)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
	pid_t pid;

	if ((to_child && pipe2(in_pipe, O_CLOEXEC) != 0) ||
	    (from_child && pipe2(out_pipe, O_CLOEXEC) != 0))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (to_child)
			dup2(in_pipe[0], STDIN_FILENO);
		if (from_child)
			dup2(out_pipe[1], STDOUT_FILENO);
		execve("/proc/self/exe", argv, env);
		fprintf(stderr, "execve /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	if (to_child) {
		close(in_pipe[0]);
		*to_child = in_pipe[1];
	}
	if (from_child) {
		close(out_pipe[1]);
		*from_child = out_pipe[0];
	}
	return pid;
}

bool reap_child(const char *prog, pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			fatal(prog, "waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	fprintf(stderr, "%s: child %d %s %d\n", prog, (int)pid,
		WIFEXITED(status) ? "exited with status" : "died of signal",
		WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return false;
}

bool read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t len = 0;
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;

	/* Byte by byte: the pipe may carry more lines we must not swallow. */
	while (len + 1 < size) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - mono_ns()) / 1000000;
		char c;
		ssize_t got;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		got = read(fd, &c, 1);
		if (got <= 0)
			return false;
		if (c == '\n')
			break;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return true;
}

double line_value(const char *line, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = line; (p = strstr(p, key)) != NULL; p += klen) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=')
			return strtod(p + klen + 1, NULL);
	}
	return NAN;
}

bool library_is_mapped(const char *path)
{
	char resolved[PATH_MAX], line[4096];
	bool found = false;
	FILE *maps;

	if (!path || !realpath(path, resolved))
		return false;
	maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return false;
	while (!found && fgets(line, sizeof line, maps))
		found = strstr(line, resolved) != NULL;
	fclose(maps);
	return found;
}

long vmrss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

pid_t other_thread_tid(void)
{
	pid_t self = (pid_t)syscall(SYS_gettid), found = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	if (!d)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid > 0 && tid != self)
			found = tid;
	}
	closedir(d);
	return found;
}

uint64_t thread_cpu_ns(pid_t tid)
{
	/* The kernel's encoding of a thread CPU clock (what glibc's
	 * pthread_getcpuclockid builds): CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED. */
	clockid_t clock = (clockid_t)((~(unsigned)tid) << 3) | 4 | 2;
	struct timespec ts;

	if (tid <= 0 || clock_gettime(clock, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool task_sample(pid_t tid, struct task_sample *out)
{
	char path[64], buf[1024], *p;
	unsigned long utime = 0, stime = 0;
	FILE *f;

	memset(out, 0, sizeof *out);
	if (tid <= 0)
		return false;
	out->cpu_ns = thread_cpu_ns(tid);
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(buf, sizeof buf, f)) {
		fclose(f);
		return false;
	}
	fclose(f);
	/* After "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &utime, &stime) != 2)
		return false;
	out->ticks = utime + stime;
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(buf, sizeof buf, f)) {
		sscanf(buf, "voluntary_ctxt_switches: %lu", &out->voluntary);
		sscanf(buf, "nonvoluntary_ctxt_switches: %lu", &out->involuntary);
	}
	fclose(f);
	return true;
}

void cpu_model(char *out, size_t len, const char *unknown)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, len, "%s", unknown);
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(out, len, "%s", colon + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

void print_machine(const char *prefix)
{
	struct utsname uts;
	char model[256];

	cpu_model(model, sizeof model, "unknown");
	if (uname(&uts) == 0)
		printf("%skernel: %s %s %s\n", prefix, uts.sysname, uts.release, uts.machine);
	printf("%scpu: %s, %ld online\n", prefix, model, sysconf(_SC_NPROCESSORS_ONLN));
}
