/* bench_close.c: measures what libwspclose adds to the cost of close() for
 * non-socket descriptors and for loopback TCP sockets (the `make bench` target). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_scale_util.h"

#define PROG "bench_close"

extern char **environ;

/* Defaults: small enough for a whole `make bench` to take a few seconds, big
 * enough that each per-round median rests on hundreds of samples. */
#define DEFAULT_ROUNDS 7
#define DEFAULT_FILE_CLOSES 2000     /* per non-socket kind, per round */
#define DEFAULT_TCP_CLOSES 500       /* connected pairs, per round */
#define DEFAULT_SOCKET_CLOSES 2000   /* unconnected socket()+close() */
#define MAX_ROUNDS 101

/* Descriptors open at once stay far below a default RLIMIT_NOFILE of 1024, so
 * the library can keep its held copies in the upper descriptor range. */
#define FILE_BATCH 200
#define TCP_BATCH 100
#define WARMUP_OPS 50

#define CHILD_TIMEOUT_MS 60000       /* one measuring child, generous */
#define TEARDOWN_WAIT_MS 5000        /* per child, all batches together */

/* ------------------------------------------------------------ measure mode */

/* Samples of one benchmark, in ns per operation. */
struct samples {
	double *ns;
	size_t count;
	size_t capacity;
};

static void samples_add(struct samples *s, double ns)
{
	if (s->count == s->capacity) {
		s->capacity = s->capacity ? 2 * s->capacity : 1024;
		s->ns = realloc(s->ns, s->capacity * sizeof *s->ns);
		if (!s->ns)
			fatal(PROG, "realloc");
	}
	s->ns[s->count++] = ns;
}

static double samples_median(struct samples *s)
{
	return median_of(s->ns, s->count);
}

/* The result line the driver parses: "result <name> <median ns> <samples>". */
static void report(const char *name, struct samples *s)
{
	printf("result\t%s\t%.1f\t%zu\n", name, samples_median(s), s->count);
	free(s->ns);
	s->ns = NULL;
	s->count = s->capacity = 0;
}

/* Times close() of each group of `group` descriptors (1: each on its own; a
 * vDSO clock read costs a few tens of ns here, against 1 us for the cheapest
 * close) and records the time per close. */
static void timed_close_groups(const int *fds, int count, int group, struct samples *out)
{
	for (int i = 0; i + group <= count; i += group) {
		uint64_t start = mono_ns(), stop;
		int failed = 0;

		for (int j = i; j < i + group; j++)
			failed |= close(fds[j]);
		stop = mono_ns();

		if (failed)
			fatal(PROG, "close");
		if (out)
			samples_add(out, (double)(stop - start) / group);
	}
}

static void timed_close_all(const int *fds, int count, struct samples *out)
{
	timed_close_groups(fds, count, 1, out);
}

static void close_all(const int *fds, int count)
{
	timed_close_all(fds, count, NULL);
}

enum nonsocket_kind { KIND_FILE, KIND_PIPE, KIND_EVENTFD };

/* Fills fds[0..count) with fresh descriptors of one kind (count even for pipes). */
static void open_kind(enum nonsocket_kind kind, const char *file_path, int *fds, int count)
{
	for (int i = 0; i < count; i++) {
		switch (kind) {
		case KIND_FILE:
			fds[i] = open(file_path, O_RDONLY);
			break;
		case KIND_PIPE:
			if (pipe(&fds[i]) != 0)
				fatal(PROG, "pipe");
			i++;
			break;
		case KIND_EVENTFD:
			fds[i] = eventfd(0, 0);
			break;
		}
		if (fds[i] < 0)
			fatal(PROG, "open descriptor");
	}
}

/* (a) close() of regular files, pipe ends and eventfds. The two ends of a
 * pipe are timed together (the second close frees the pipe and costs more;
 * the median of such a two-humped mix would jump between the humps). The
 * overall figure is the mean of the three kind medians. */
static void measure_nonsocket(int closes_per_kind)
{
	static const struct {
		enum nonsocket_kind kind;
		const char *name;
	} kinds[] = {
		{ KIND_FILE, "close-file" },
		{ KIND_PIPE, "close-pipe" },
		{ KIND_EVENTFD, "close-eventfd" },
	};
	char temp_path[] = "/tmp/bench_close.XXXXXX", file_path[64];
	int fds[FILE_BATCH];
	int temp = mkstemp(temp_path);
	double overall = 0.0;

	if (temp < 0)
		fatal(PROG, "mkstemp");
	/* Unlinked at once, reopened through /proc: nothing is left behind,
	 * whatever happens. */
	unlink(temp_path);
	snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", temp);

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		struct samples s = { 0 };

		/* Warm up: page faults, lazy binding, the library's first-call set-up. */
		open_kind(kinds[k].kind, file_path, fds, WARMUP_OPS);
		close_all(fds, WARMUP_OPS);

		for (int done = 0; done < closes_per_kind; done += FILE_BATCH) {
			int batch = closes_per_kind - done < FILE_BATCH ? closes_per_kind - done : FILE_BATCH;

			batch &= ~1; /* pipes come in pairs */
			if (batch == 0)
				break;
			open_kind(kinds[k].kind, file_path, fds, batch);
			timed_close_groups(fds, batch, kinds[k].kind == KIND_PIPE ? 2 : 1, &s);
		}
		overall += samples_median(&s);
		report(kinds[k].name, &s);
	}
	close(temp);
	printf("result\tclose-nonsocket\t%.1f\t%zu\n",
	       overall / (double)(sizeof kinds / sizeof kinds[0]),
	       sizeof kinds / sizeof kinds[0]);
}

/* Counts this process's open sockets, held copies included (they are real
 * descriptors even though the library hides them from the application). */
static int count_open_sockets(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	int sockets = 0;

	if (!dir)
		return -1;
	while ((entry = readdir(dir)) != NULL) {
		char target[64];
		ssize_t len;

		if (entry->d_name[0] == '.')
			continue;
		len = readlinkat(dirfd(dir), entry->d_name, target, sizeof target - 1);
		if (len > 0) {
			target[len] = '\0';
			if (strncmp(target, "socket:", 7) == 0)
				sockets++;
		}
	}
	closedir(dir);
	return sockets;
}

/* Waits until only `expected` sockets are open; false on timeout. All waits
 * of a child share one budget, so a library that never releases its held
 * copies costs the benchmark seconds, not minutes. */
static bool wait_for_socket_count(int expected)
{
	static long budget_ms = TEARDOWN_WAIT_MS;
	uint64_t started = mono_ns();
	int open_now;

	while ((open_now = count_open_sockets()) > expected) {
		long waited_ms = (long)((mono_ns() - started) / 1000000u);

		if (waited_ms >= budget_ms) {
			if (budget_ms > 0) /* say it once */
				fprintf(stderr, "bench_close: %d sockets open, expected %d: "
					"teardown not finished within %d ms in total\n",
					open_now, expected, TEARDOWN_WAIT_MS);
			budget_ms = 0;
			return false;
		}
		sleep_ms(1);
	}
	budget_ms -= (long)((mono_ns() - started) / 1000000u);
	if (budget_ms < 0)
		budget_ms = 0;
	return true;
}

static int make_listener(struct sockaddr_in *bound)
{
	socklen_t len = sizeof *bound;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fatal(PROG, "socket");
	memset(bound, 0, sizeof *bound);
	bound->sin_family = AF_INET;
	bound->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)bound, sizeof *bound) != 0 ||
	    listen(fd, TCP_BATCH * 2) != 0 ||
	    getsockname(fd, (struct sockaddr *)bound, &len) != 0)
		fatal(PROG, "listener");
	return fd;
}

/* One batch of connected pairs: closes the client sides (timed when
 * `out` is set), then the accepted peers, then waits until every socket of
 * the batch is really gone, so batches do not pile up held copies. */
static bool tcp_batch(int listener, const struct sockaddr_in *addr, int pairs,
		      struct samples *out)
{
	int clients[TCP_BATCH], peers[TCP_BATCH];

	for (int i = 0; i < pairs; i++) {
		clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (clients[i] < 0 ||
		    connect(clients[i], (const struct sockaddr *)addr, sizeof *addr) != 0)
			fatal(PROG, "connect");
		peers[i] = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (peers[i] < 0)
			fatal(PROG, "accept");
	}
	timed_close_all(clients, pairs, out);
	/* The peers have our FIN; their close answers it, which lets the
	 * library release its held copies at once. */
	close_all(peers, pairs);
	return wait_for_socket_count(1);
}

/* (b) close() of connected loopback TCP sockets, default linger; (f) the
 * same in a process that set up an io_uring instance through syscall(), as
 * libuv does, and has an epoll set: the library then deletes each closing
 * socket from every epoll set it knows before holding it. */
static bool measure_tcp_connected(int closes, const char *name)
{
	struct sockaddr_in addr;
	int listener = make_listener(&addr);
	struct samples s = { 0 };
	bool clean = tcp_batch(listener, &addr, WARMUP_OPS, NULL);

	for (int done = 0; done < closes; done += TCP_BATCH) {
		int batch = closes - done < TCP_BATCH ? closes - done : TCP_BATCH;

		clean &= tcp_batch(listener, &addr, batch, &s);
	}
	close(listener);
	clean &= wait_for_socket_count(0);
	report(name, &s);
	return clean;
}

static bool measure_tcp_connected_with_io_uring(int closes)
{
	struct io_uring_params params;
	memset(&params, 0, sizeof params);
	int ring = (int)syscall(SYS_io_uring_setup, 4, &params);
	int set = epoll_create1(EPOLL_CLOEXEC);
	if (ring < 0 || set < 0)
		fatal(PROG, "io_uring_setup or epoll_create1");
	bool clean = measure_tcp_connected(closes, "close-tcp-connected-io-uring");
	close(set);
	close(ring);
	return clean;
}

/* (c) socket() + close() of an unconnected TCP socket, timed together. */
static void measure_socket_close(int operations)
{
	struct samples s = { 0 };

	for (int i = 0; i < operations + WARMUP_OPS; i++) {
		uint64_t start = mono_ns();
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || close(fd) != 0)
			fatal(PROG, "socket+close");
		if (i >= WARMUP_OPS)
			samples_add(&s, (double)(mono_ns() - start));
	}
	report("socket-close-unconnected", &s);
}

/* (d) syscall(SYS_getpid), a number the library passes on, timed in groups
 * of 16; (e) syscall(SYS_close) of an eventfd, a descriptor it does not
 * know. libuv makes every close this way. */
static void measure_syscall(int operations)
{
	struct samples getpid_ns = { 0 }, close_ns = { 0 };
	int fds[FILE_BATCH];

	for (int i = 0; i < operations / 16 + WARMUP_OPS; i++) {
		uint64_t start = mono_ns();
		for (int j = 0; j < 16; j++)
			if (syscall(SYS_getpid) <= 0)
				fatal(PROG, "syscall(SYS_getpid)");
		if (i >= WARMUP_OPS)
			samples_add(&getpid_ns, (double)(mono_ns() - start) / 16);
	}
	report("syscall-getpid", &getpid_ns);
	for (int done = 0; done < operations + WARMUP_OPS; done += FILE_BATCH) {
		open_kind(KIND_EVENTFD, NULL, fds, FILE_BATCH);
		for (int i = 0; i < FILE_BATCH; i++) {
			uint64_t start = mono_ns();
			if (syscall(SYS_close, fds[i]) != 0)
				fatal(PROG, "syscall(SYS_close)");
			if (done >= WARMUP_OPS)
				samples_add(&close_ns, (double)(mono_ns() - start));
		}
	}
	report("syscall-close-nonsocket", &close_ns);
}

/* Cost of the timer itself, reported so readers can judge the numbers. */
static double clock_read_ns(void)
{
	double values[1001];

	for (int i = 0; i < 1001; i++) {
		uint64_t start = mono_ns();

		values[i] = (double)(mono_ns() - start);
	}
	return median_of(values, 1001);
}

/* True when every LD_PRELOAD entry shows up in our own memory map, i.e. the
 * dynamic loader really loaded it (it only warns when it cannot). */
static bool preload_is_mapped(const char *preload)
{
	char list[4096], line[4096];
	bool all_found = true;
	FILE *maps;

	if (!preload || !*preload)
		return false;
	snprintf(list, sizeof list, "%s", preload);
	maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return false;
	for (char *save, *entry = strtok_r(list, ": ", &save); entry;
	     entry = strtok_r(NULL, ": ", &save)) {
		char resolved[PATH_MAX];
		bool found = false;

		if (!realpath(entry, resolved))
			snprintf(resolved, sizeof resolved, "%s", entry);
		rewind(maps);
		while (!found && fgets(line, sizeof line, maps))
			found = strstr(line, resolved) != NULL;
		all_found &= found;
	}
	fclose(maps);
	return all_found;
}

static int run_measure(int file_closes, int tcp_closes, int socket_closes)
{
	const char *preload = getenv("LD_PRELOAD");
	bool clean;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("info\tpid\t%d\n", (int)getpid());
	printf("info\tpreload\t%s\n", preload && *preload ? preload : "-");
	printf("info\tpreload_mapped\t%s\n", preload_is_mapped(preload) ? "yes" : "no");
	printf("info\tclock_read_ns\t%.1f\n", clock_read_ns());

	measure_nonsocket(file_closes);
	clean = measure_tcp_connected(tcp_closes, "close-tcp-connected");
	measure_socket_close(socket_closes);
	measure_syscall(file_closes);
	clean &= measure_tcp_connected_with_io_uring(tcp_closes);
	clean &= wait_for_socket_count(0); /* closed sockets may be held too */
	printf("info\tsockets_left\t%d\n", count_open_sockets());
	return clean ? 0 : 1;
}

/* ------------------------------------------------------------ driver mode */

enum config { WITHOUT, WITH, CONFIGS };

/* What the driver tabulates, in print order. */
static const struct benchmark {
	const char *key;           /* name on the child's result lines */
	const char *label;
	double target_ratio;       /* 0: informational only */
} benchmarks[] = {
	{ "close-file", "close() regular file", 0 },
	{ "close-pipe", "close() pipe end", 0 },
	{ "close-eventfd", "close() eventfd", 0 },
	{ "close-nonsocket", "(a) close() non-socket, all kinds", 1.05 },
	{ "close-tcp-connected", "(b) close() connected TCP, linger off", 1.5 },
	{ "socket-close-unconnected", "(c) socket()+close() unconnected TCP", 0 },
	{ "syscall-getpid", "(d) syscall(SYS_getpid), passed on", 1.05 },
	{ "syscall-close-nonsocket", "(e) syscall(SYS_close) of an eventfd", 1.05 },
	{ "close-tcp-connected-io-uring", "(f) as (b), in a process using io_uring", 1.5 },
};
#define BENCHMARKS (sizeof benchmarks / sizeof benchmarks[0])

struct round_results {
	double value[BENCHMARKS];  /* median ns/op of that child; < 0 when missing */
	double clock_read_ns;
	bool preload_mapped;
	bool clean;                /* child exited 0: no socket left behind */
};

/* The environment for a child: ours without LD_PRELOAD, plus the library
 * for the WITH configuration (alone, so nothing else skews the comparison). */
static char **preload_environment(const char *preload_entry)
{
	size_t count = 0, used = 0;
	char **env;

	while (environ[count])
		count++;
	env = calloc(count + 2, sizeof *env);
	if (!env)
		fatal(PROG, "calloc");
	for (size_t i = 0; i < count; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
			env[used++] = environ[i];
	if (preload_entry)
		env[used++] = (char *)preload_entry;
	env[used] = NULL;
	return env;
}

static void parse_child_line(char *line, struct round_results *out)
{
	char *fields[4] = { 0 };
	int n = 0;

	for (char *save, *f = strtok_r(line, "\t\n", &save); f && n < 4;
	     f = strtok_r(NULL, "\t\n", &save))
		fields[n++] = f;
	if (n >= 3 && strcmp(fields[0], "result") == 0) {
		for (size_t b = 0; b < BENCHMARKS; b++)
			if (strcmp(fields[1], benchmarks[b].key) == 0)
				out->value[b] = strtod(fields[2], NULL);
	} else if (n >= 3 && strcmp(fields[0], "info") == 0) {
		if (strcmp(fields[1], "preload_mapped") == 0)
			out->preload_mapped = strcmp(fields[2], "yes") == 0;
		else if (strcmp(fields[1], "clock_read_ns") == 0)
			out->clock_read_ns = strtod(fields[2], NULL);
	}
}

/* Runs one measuring child and collects its result lines; false on failure. */
static bool run_child(char *const child_argv[], char **env, struct round_results *out)
{
	int out_pipe[2];
	pid_t pid;
	FILE *from_child;
	char line[512];
	int status;
	struct pollfd pfd;

	for (size_t b = 0; b < BENCHMARKS; b++)
		out->value[b] = -1.0;
	out->preload_mapped = false;
	out->clock_read_ns = 0;
	if (pipe2(out_pipe, O_CLOEXEC) != 0)
		fatal(PROG, "pipe");
	pid = fork();
	if (pid < 0)
		fatal(PROG, "fork");
	if (pid == 0) {
		dup2(out_pipe[1], STDOUT_FILENO);
		execve("/proc/self/exe", child_argv, env);
		fprintf(stderr, "bench_close: execve /proc/self/exe: %s\n", strerror(errno));
		_exit(127);
	}
	close(out_pipe[1]);
	from_child = fdopen(out_pipe[0], "r");
	if (!from_child)
		fatal(PROG, "fdopen");
	pfd.fd = out_pipe[0];
	pfd.events = POLLIN;
	for (;;) {
		/* A stuck child must not hang `make bench`. */
		if (poll(&pfd, 1, CHILD_TIMEOUT_MS) == 0) {
			fprintf(stderr, "bench_close: child %d silent for %d s, killing it\n",
				(int)pid, CHILD_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			break;
		}
		if (!fgets(line, sizeof line, from_child))
			break;
		parse_child_line(line, out);
	}
	fclose(from_child);
	if (waitpid(pid, &status, 0) != pid)
		fatal(PROG, "waitpid");
	out->clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (!out->clean)
		fprintf(stderr, "bench_close: measuring child %d %s %d\n", (int)pid,
			WIFEXITED(status) ? "exited with status" : "died of signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return out->clean;
}

static void print_machine_line(void)
{
	struct utsname uts;
	char cpu[256];

	cpu_model(cpu, sizeof cpu, "unknown CPU");
	if (uname(&uts) == 0)
		printf("  machine : %s %s %s, %ld CPUs online, %s\n", uts.sysname, uts.release,
		       uts.machine, sysconf(_SC_NPROCESSORS_ONLN), cpu);
}

/* One table row per benchmark. The ratio is the median of the per-round
 * ratios: the two children of a round ran back to back, so their ratio is
 * free of the slow drift this shared VM shows (whole runs 25 % faster or
 * slower), which a ratio of two overall medians would carry. */
static void print_table(struct round_results results[CONFIGS][MAX_ROUNDS], int rounds)
{
	printf("%-40s %15s %13s %6s %11s %8s  %s\n", "benchmark", "without (ns/op)",
	       "with (ns/op)", "ratio", "ratio IQR", "target", "result");
	for (size_t b = 0; b < BENCHMARKS; b++) {
		double per_round[CONFIGS][MAX_ROUNDS], ratios[MAX_ROUNDS], median[CONFIGS], ratio;
		size_t valid[CONFIGS] = { 0, 0 }, paired = 0;
		char target[16] = "-", spread[24];
		const char *verdict = "info";

		for (int r = 0; r < rounds; r++) {
			double without = results[WITHOUT][r].value[b], with = results[WITH][r].value[b];

			if (without > 0)
				per_round[WITHOUT][valid[WITHOUT]++] = without;
			if (with > 0)
				per_round[WITH][valid[WITH]++] = with;
			if (without > 0 && with > 0)
				ratios[paired++] = with / without;
		}
		if (paired == 0) {
			printf("%-40s %15s %13s %6s %11s %8s  %s\n", benchmarks[b].label, "n/a",
			       "n/a", "n/a", "n/a", "-", "no data");
			continue;
		}
		for (int c = 0; c < CONFIGS; c++)
			median[c] = median_of(per_round[c], valid[c]);
		ratio = median_of(ratios, paired); /* sorts ratios */
		snprintf(spread, sizeof spread, "%.2f-%.2f", ratios[paired / 4],
			 ratios[(3 * paired + 3) / 4 - 1]);
		if (benchmarks[b].target_ratio > 0) {
			snprintf(target, sizeof target, "<= %.2f", benchmarks[b].target_ratio);
			verdict = ratio <= benchmarks[b].target_ratio ? "PASS" : "MISS";
		}
		printf("%-40s %15.0f %13.0f %6.2f %11s %8s  %s\n", benchmarks[b].label,
		       median[WITHOUT], median[WITH], ratio, spread, target, verdict);
	}
}

static int run_driver(const char *self, const char *library, int rounds, int file_closes,
		      int tcp_closes, int socket_closes, bool verbose)
{
	static struct round_results results[CONFIGS][MAX_ROUNDS];
	static const char *const config_names[CONFIGS] = { "without", "with" };
	char file_arg[16], tcp_arg[16], socket_arg[16];
	char *child_argv[] = {
		(char *)self, "--measure", "--file-closes", file_arg, "--tcp-closes", tcp_arg,
		"--socket-closes", socket_arg, NULL
	};
	char preload_entry[PATH_MAX + 16];
	char **env[CONFIGS];
	char resolved[PATH_MAX];
	bool all_clean = true, preload_ok = true;
	uint64_t started = mono_ns();

	if (!realpath(library, resolved)) {
		fprintf(stderr, "bench_close: --library %s: %s\n", library, strerror(errno));
		return 2;
	}
	snprintf(file_arg, sizeof file_arg, "%d", file_closes);
	snprintf(tcp_arg, sizeof tcp_arg, "%d", tcp_closes);
	snprintf(socket_arg, sizeof socket_arg, "%d", socket_closes);
	snprintf(preload_entry, sizeof preload_entry, "LD_PRELOAD=%s", resolved);
	env[WITHOUT] = preload_environment(NULL);
	env[WITH] = preload_environment(preload_entry);

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bench_close: cost of close() without and with LD_PRELOAD=libwspclose\n");
	printf("  library : %s\n", resolved);
	printf("  method  : %d rounds; each round runs one fresh child process per configuration,\n"
	       "            the order alternating every round to cancel drift. Per child: %d closes\n"
	       "            of each non-socket kind, %d closes of connected loopback TCP clients\n"
	       "            (peers closed afterwards, held copies drained between batches of %d),\n"
	       "            %d socket()+close() pairs. Every operation is timed on its own\n"
	       "            (both ends of a pipe together) with CLOCK_MONOTONIC; a child\n"
	       "            reports the median per benchmark. Table:\n"
	       "            median over rounds of those medians (ns per operation); ratio =\n"
	       "            median over rounds of with/without of the same round, and its\n"
	       "            interquartile range across rounds (the run-to-run noise).\n",
	       rounds, file_closes, tcp_closes, TCP_BATCH, socket_closes);
	print_machine_line();
	fflush(stdout);

	for (int r = 0; r < rounds; r++) {
		for (int step = 0; step < CONFIGS; step++) {
			enum config c = (enum config)(r % 2 ? CONFIGS - 1 - step : step);
			struct round_results *res = &results[c][r];

			all_clean &= run_child(child_argv, env[c], res);
			if (c == WITH && !res->preload_mapped)
				preload_ok = false;
			if (verbose) {
				fprintf(stderr, "round %d %-7s:", r + 1, config_names[c]);
				for (size_t b = 0; b < BENCHMARKS; b++)
					fprintf(stderr, " %s=%.0f", benchmarks[b].key, res->value[b]);
				fprintf(stderr, "\n");
			}
		}
	}

	printf("  clock   : one CLOCK_MONOTONIC read costs ~%.0f ns here (not subtracted)\n\n",
	       results[WITHOUT][0].clock_read_ns);
	if (!preload_ok)
		printf("WARNING: the library did not show up in the memory map of every WITH child;\n"
		       "         the dynamic loader may have refused it (see its message above).\n\n");

	print_table(results, rounds);
	printf("\n(a) is the mean of the three non-socket kind medians; (b) is the time the\n"
	       "calling thread spends in close(), not the teardown the reaper finishes later.\n");
	if (!all_clean)
		printf("WARNING: a measuring child failed or left sockets open (see stderr).\n");
	printf("total time: %.1f s\n", (double)(mono_ns() - started) / 1e9);
	free(env[WITHOUT]);
	free(env[WITH]);
	return 0; /* benchmarks inform, they do not gate */
}

/* ------------------------------------------------------------ entry */

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: bench_close --library PATH [--rounds N] [--verbose] [counts]\n"
		"       bench_close --measure [counts]\n"
		"  --library PATH       compare close() costs without and with LD_PRELOAD=PATH\n"
		"  --rounds N           rounds of one child per configuration (default %d)\n"
		"  --verbose            print every child's medians on stderr\n"
		"  --measure            measure in this process and print result lines\n"
		"counts: --file-closes N (default %d), --tcp-closes N (default %d),\n"
		"        --socket-closes N (default %d)\n",
		DEFAULT_ROUNDS, DEFAULT_FILE_CLOSES, DEFAULT_TCP_CLOSES, DEFAULT_SOCKET_CLOSES);
}

int main(int argc, char **argv)
{
	const char *library = NULL;
	bool measure = false, verbose = false;
	int rounds = DEFAULT_ROUNDS, file_closes = DEFAULT_FILE_CLOSES;
	int tcp_closes = DEFAULT_TCP_CLOSES, socket_closes = DEFAULT_SOCKET_CLOSES;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes_value = strcmp(arg, "--library") == 0 || strcmp(arg, "--rounds") == 0 ||
				   strcmp(arg, "--file-closes") == 0 ||
				   strcmp(arg, "--tcp-closes") == 0 ||
				   strcmp(arg, "--socket-closes") == 0;

		if (takes_value && !value) {
			fprintf(stderr, "bench_close: %s needs a value\n", arg);
			usage(stderr);
			return 2;
		}
		if (strcmp(arg, "--measure") == 0)
			measure = true;
		else if (strcmp(arg, "--verbose") == 0)
			verbose = true;
		else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(arg, "--library") == 0)
			library = value;
		else if (strcmp(arg, "--rounds") == 0)
			rounds = (int)parse_long(PROG, arg, value, 1, MAX_ROUNDS);
		else if (strcmp(arg, "--file-closes") == 0)
			file_closes = (int)parse_long(PROG, arg, value, 2, 1000000);
		else if (strcmp(arg, "--tcp-closes") == 0)
			tcp_closes = (int)parse_long(PROG, arg, value, 1, 100000);
		else if (strcmp(arg, "--socket-closes") == 0)
			socket_closes = (int)parse_long(PROG, arg, value, 1, 1000000);
		else {
			fprintf(stderr, "bench_close: unknown argument '%s'\n", arg);
			usage(stderr);
			return 2;
		}
		i += takes_value;
	}
	if (measure)
		return run_measure(file_closes, tcp_closes, socket_closes);
	if (!library) {
		usage(stderr);
		return 2;
	}
	return run_driver(argv[0], library, rounds, file_closes, tcp_closes, socket_closes,
			  verbose);
}
