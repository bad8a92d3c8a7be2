/* bench_churn_scale.c: connection churn at scale (make bench-scale): a server
 * child accepts, sends 1 KiB and closes, without and with libwspclose, and
 * optionally with a reference preload (hold_floor.so: a minimal holder with
 * a release thread), in one run. */
#include "bench_scale_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "bench_churn_scale"
#define PAYLOAD 1024
#define MAX_RUNS 51
#define LINE_TIMEOUT_MS 120000

enum mode { WITHOUT, WITH, REFERENCE, MODES };
static const char *const mode_name[MODES] = { "without", "with", "ref" };

struct run_result {
	double conn_per_s;
	double server_cpu_us;   /* server process CPU per connection (all threads) */
	double other_cpu_us;    /* of which threads other than the accepting one (the reaper) */
	double client_cpu_us;   /* the client's CPU per timed connection */
	double busy;            /* machine CPU busy during the timed part, in CPUs (0..nproc) */
	long errors;            /* client-side failures: short payload, reset, ... */
	bool ok;
};

/* ------------------------------------------------------------ server child */

static double rusage_us(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec * 1e6 + (double)ru->ru_utime.tv_usec +
	       (double)ru->ru_stime.tv_sec * 1e6 + (double)ru->ru_stime.tv_usec;
}

static int serve(long total)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof addr;
	char payload[PAYLOAD];
	struct rusage ru;
	long failures = 0;
	int one = 1, listener;
	const char *preload = getenv("LD_PRELOAD");

	memset(payload, 'x', sizeof payload);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    bind(listener, (struct sockaddr *)&addr, sizeof addr) ||
	    listen(listener, 4096) || getsockname(listener, (struct sockaddr *)&addr, &len))
		fatal(PROG, "server listener");
	printf("port=%d library_mapped=%d\n", ntohs(addr.sin_port),
	       preload && *preload ? library_is_mapped(preload) : 0);
	fflush(stdout);
	for (long i = 0; i < total; i++) {
		int c = accept(listener, NULL, NULL);
		size_t sent = 0;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				i--;
				continue;
			}
			fatal(PROG, "accept");
		}
		while (sent < PAYLOAD) {
			ssize_t n = write(c, payload + sent, PAYLOAD - sent);

			if (n <= 0) {
				failures++;
				break;
			}
			sent += (size_t)n;
		}
		if (close(c) != 0)
			failures++;
	}
	/* The process (every thread, the reaper included) and the accepting
	 * thread alone. */
	getrusage(RUSAGE_SELF, &ru);
	printf("cpu_us=%.0f main_cpu_us=%.0f failures=%ld\n", rusage_us(&ru),
	       (double)clock_ns(CLOCK_THREAD_CPUTIME_ID) / 1e3, failures);
	fflush(stdout);
	return failures ? 1 : 0;
}

/* ------------------------------------------------------------ client (driver) */

/* Busy ticks of the whole machine (all CPUs) from /proc/stat; *total gets
 * all ticks, idle included. */
static double machine_busy_ticks(unsigned long long *total)
{
	unsigned long long f[8] = { 0 };
	FILE *st = fopen("/proc/stat", "r");

	*total = 0;
	if (!st)
		return 0;
	if (fscanf(st, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2],
		   &f[3], &f[4], &f[5], &f[6], &f[7]) != 8)
		memset(f, 0, sizeof f);
	fclose(st);
	for (int i = 0; i < 8; i++)
		*total += f[i];
	return (double)(*total - f[3] - f[4]); /* all but idle and iowait */
}

struct client {
	int ep;
	struct sockaddr_in server;
	long started, completed, errors;
	long total;
	int *received;          /* bytes received so far, by fd */
	int max_fd;
};

static void client_start_one(struct client *c)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };

	if (s < 0 || s >= c->max_fd)
		fatal(PROG, "client socket");
	if (connect(s, (struct sockaddr *)&c->server, sizeof c->server) != 0 &&
	    errno != EINPROGRESS)
		fatal(PROG, "client connect");
	c->received[s] = 0;
	ev.data.fd = s;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, s, &ev) != 0)
		fatal(PROG, "epoll_ctl");
	c->started++;
}

/* Reads what is there; true when the connection is over (EOF or error). */
static bool client_read(struct client *c, int s)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(s, buf, sizeof buf);

		if (n > 0) {
			c->received[s] += (int)n;
			continue;
		}
		if (n == 0) {
			if (c->received[s] != PAYLOAD)
				c->errors++;
			return true;
		}
		if (errno == EAGAIN)
			return false;
		if (errno == EINTR)
			continue;
		c->errors++;
		return true;
	}
}

/* Runs connections until `until` have completed; returns the time taken. */
static uint64_t client_run(struct client *c, long until, int concurrency)
{
	struct epoll_event events[256];
	uint64_t start = mono_ns();

	while (c->started < c->total && c->started - c->completed < concurrency)
		client_start_one(c);
	while (c->completed < until) {
		int n = epoll_wait(c->ep, events, 256, 10000);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, PROG ": client stalled (%ld of %ld done)\n", c->completed,
				c->total);
			return 0;
		}
		for (int i = 0; i < n; i++) {
			int s = events[i].data.fd;

			if (!client_read(c, s))
				continue;
			epoll_ctl(c->ep, EPOLL_CTL_DEL, s, NULL);
			close(s);
			c->completed++;
			if (c->started < c->total)
				client_start_one(c);
		}
	}
	return mono_ns() - start;
}

static struct run_result run_once(char **env, bool with_library, long connections, long warmup,
				  int concurrency)
{
	struct run_result r = { 0 };
	char total_arg[32], line[256];
	char *argv[] = { PROG, "--serve", total_arg, NULL };
	struct client c = { .total = warmup + connections };
	int from_server;
	uint64_t elapsed, client_cpu;
	unsigned long long total_ticks = 0, total_ticks2 = 0;
	double busy;
	pid_t pid;

	snprintf(total_arg, sizeof total_arg, "%ld", warmup + connections);
	pid = spawn_self(argv, env, NULL, &from_server);
	if (pid < 0)
		fatal(PROG, "spawn server");
	if (!read_line(from_server, line, sizeof line, LINE_TIMEOUT_MS)) {
		fprintf(stderr, PROG ": the server did not start\n");
		kill(pid, SIGKILL);
		reap_child(PROG, pid);
		close(from_server);
		return r;
	}
	if (with_library && line_value(line, "library_mapped") != 1) {
		fprintf(stderr, PROG ": the library is not mapped in the server\n");
		kill(pid, SIGKILL);
		reap_child(PROG, pid);
		close(from_server);
		return r;
	}
	c.server.sin_family = AF_INET;
	c.server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.server.sin_port = htons((uint16_t)line_value(line, "port"));
	c.max_fd = (int)raise_nofile_limit();
	c.received = calloc((size_t)c.max_fd, sizeof *c.received);
	c.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!c.received || c.ep < 0)
		fatal(PROG, "client setup");
	/* Warm-up (not timed): caches, the server's reaper, descriptor tables. */
	if (warmup > 0 && client_run(&c, warmup, concurrency) == 0)
		goto out;
	client_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	busy = machine_busy_ticks(&total_ticks);
	elapsed = client_run(&c, c.total, concurrency);
	client_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - client_cpu;
	busy = machine_busy_ticks(&total_ticks2) - busy;
	if (elapsed == 0)
		goto out;
	if (!read_line(from_server, line, sizeof line, LINE_TIMEOUT_MS))
		goto out;
	r.conn_per_s = (double)connections / ((double)elapsed / 1e9);
	r.client_cpu_us = (double)client_cpu / 1e3 / (double)connections;
	r.busy = total_ticks2 > total_ticks
		 ? busy / (double)(total_ticks2 - total_ticks) * (double)sysconf(_SC_NPROCESSORS_ONLN)
		 : NAN;
	r.server_cpu_us = line_value(line, "cpu_us") / (double)c.total;
	r.other_cpu_us = r.server_cpu_us - line_value(line, "main_cpu_us") / (double)c.total;
	if (r.other_cpu_us < 0)
		r.other_cpu_us = 0;
	r.errors = c.errors + (long)line_value(line, "failures");
	r.ok = true;
out:
	close(c.ep);
	free(c.received);
	close(from_server);
	if (!r.ok)
		kill(pid, SIGKILL);
	if (!reap_child(PROG, pid))
		r.ok = false;
	return r;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: " PROG " --library PATH [--reference PATH] [--connections N] [--runs R]\n"
		"                         [--concurrency C] [--warmup W]\n"
		"  Loopback churn: a server child accepts, writes 1 KiB and closes; this\n"
		"  process connects, reads to EOF and closes, C connections in flight.\n"
		"  Runs rotate without/with LD_PRELOAD=PATH (and with the --reference\n"
		"  preload, tests/bench/hold_floor.so); medians of R runs each.\n"
		"  defaults: --connections 20000 --runs 5 --concurrency 16 --warmup 2000\n");
}

/* The median over a mode's runs of the double at `offset` in each result. */
static double median_field(struct run_result *runs_of_mode, long runs, size_t offset)
{
	double values[MAX_RUNS];

	for (long r = 0; r < runs; r++)
		values[r] = *(const double *)((const char *)&runs_of_mode[r] + offset);
	return median_of(values, (size_t)runs);
}

/* The median of the per-run ratios a/b of throughput, over runs where both ran. */
static double paired_ratio(struct run_result *a, struct run_result *b, long runs)
{
	double ratios[MAX_RUNS];
	size_t n = 0;

	for (long r = 0; r < runs; r++)
		if (a[r].ok && b[r].ok)
			ratios[n++] = a[r].conn_per_s / b[r].conn_per_s;
	return median_of(ratios, n);
}

int main(int argc, char **argv)
{
	const char *library = NULL, *reference = NULL;
	long connections = 20000, runs = 5, concurrency = 16, warmup = 2000;
	struct run_result results[MODES][MAX_RUNS];
	char **env[MODES];
	bool all_ok = true;
	long errors = 0;
	int modes;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "--serve") == 0)
		return serve(parse_long(PROG, "--serve", argv[2], 1, 100000000));
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (!val) {
			usage(stderr);
			return 2;
		}
		if (strcmp(opt, "--library") == 0)
			library = val;
		else if (strcmp(opt, "--reference") == 0)
			reference = val;
		else if (strcmp(opt, "--connections") == 0)
			connections = parse_long(PROG, opt, val, 1, 10000000);
		else if (strcmp(opt, "--runs") == 0)
			runs = parse_long(PROG, opt, val, 1, MAX_RUNS);
		else if (strcmp(opt, "--concurrency") == 0)
			concurrency = parse_long(PROG, opt, val, 1, 4096);
		else if (strcmp(opt, "--warmup") == 0)
			warmup = parse_long(PROG, opt, val, 0, 10000000);
		else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (!library) {
		usage(stderr);
		return 2;
	}
	modes = reference ? MODES : REFERENCE;
	env[WITHOUT] = child_environment(NULL, NULL);
	env[WITH] = child_environment(library, NULL);
	env[REFERENCE] = reference ? child_environment(reference, NULL) : NULL;
	if (!env[WITHOUT] || !env[WITH] || (reference && !env[REFERENCE]))
		fatal(PROG, "environment");

	printf("== churn: accept -> write 1 KiB -> close, over loopback ==\n");
	print_machine("   ");
	printf("   %ld timed connections per run (+%ld warm-up), %ld in flight, %ld runs per mode,\n"
	       "   the order of the modes rotates every run so drift hits all alike\n",
	       connections, warmup, concurrency, runs);
	if (reference)
		printf("   ref: the reference preload %s\n", reference);
	printf("   %-4s %-8s %9s %18s %14s %18s %10s %7s\n", "run", "library", "conn/s",
	       "server CPU us/conn", "(reaper part)", "client CPU us/conn", "CPUs busy",
	       "errors");
	for (long r = 0; r < runs; r++) {
		for (int k = 0; k < modes; k++) {
			enum mode m = (enum mode)((k + r) % modes);
			struct run_result *res = &results[m][r];

			*res = run_once(env[m], m != WITHOUT, connections, warmup, (int)concurrency);
			all_ok &= res->ok;
			errors += res->errors;
			if (res->ok)
				printf("   %-4ld %-8s %9.0f %18.2f %14.2f %18.2f %10.2f %7ld\n",
				       r + 1, mode_name[m], res->conn_per_s, res->server_cpu_us,
				       res->other_cpu_us, res->client_cpu_us, res->busy,
				       res->errors);
			else
				printf("   %-4ld %-8s FAILED\n", r + 1, mode_name[m]);
		}
	}
	if (!all_ok) {
		printf("churn: FAILED (a run did not complete)\n");
		return 1;
	}
	{
		double tput[MODES], cpu[MODES], other[MODES], client[MODES], busy[MODES];
		double ratio, pair_ratio, cpu_bound;

		for (int m = 0; m < modes; m++) {
			tput[m] = median_field(results[m], runs, offsetof(struct run_result, conn_per_s));
			cpu[m] = median_field(results[m], runs, offsetof(struct run_result, server_cpu_us));
			other[m] = median_field(results[m], runs, offsetof(struct run_result, other_cpu_us));
			client[m] = median_field(results[m], runs,
						 offsetof(struct run_result, client_cpu_us));
			busy[m] = median_field(results[m], runs, offsetof(struct run_result, busy));
		}
		ratio = tput[WITH] / tput[WITHOUT];
		pair_ratio = paired_ratio(results[WITH], results[WITHOUT], runs);
		printf("\n   %-34s %12s %12s %8s\n", "churn (medians)", "without", "with", "ratio");
		printf("   %-34s %12.0f %12.0f %8.3f\n", "throughput, connections/s", tput[WITHOUT],
		       tput[WITH], ratio);
		printf("   %-34s %12.2f %12.2f %8.3f\n", "server CPU per connection, us",
		       cpu[WITHOUT], cpu[WITH], cpu[WITH] / cpu[WITHOUT]);
		printf("   %-34s %12.2f %12.2f\n", "  of which other threads (reaper), us",
		       other[WITHOUT], other[WITH]);
		printf("   %-34s %12.2f %12.2f %8.3f\n", "client CPU per connection, us",
		       client[WITHOUT], client[WITH], client[WITH] / client[WITHOUT]);
		printf("   %-34s %12.2f %12.2f\n", "CPUs busy (whole machine)", busy[WITHOUT],
		       busy[WITH]);
		printf("   %-34s %25s %8.3f\n", "median of per-run ratios", "", pair_ratio);
		/* Were both CPUs saturated, throughput would follow the CPU per
		 * connection of both ends together. */
		cpu_bound = (cpu[WITHOUT] + client[WITHOUT]) / (cpu[WITH] + client[WITH]);
		printf("   %-34s %25s %8.3f\n", "CPU-bound ratio (client+server CPU)", "", cpu_bound);
		if (reference) {
			printf("   reference: %.0f connections/s, server CPU %.2f us/conn"
			       " (holder thread %.2f)\n", tput[REFERENCE], cpu[REFERENCE],
			       other[REFERENCE]);
			printf("RESULT churn-reference in_flight=%ld reference/plain=%.3f"
			       " libwspclose/reference=%.3f (medians of per-run ratios)\n",
			       concurrency, paired_ratio(results[REFERENCE], results[WITHOUT], runs),
			       paired_ratio(results[WITH], results[REFERENCE], runs));
		}
		printf("   client errors (short payload, reset, refused): %ld\n", errors);
		/* Issue 12's target: the median of the per-run ratios. */
		printf("RESULT churn connections=%ld in_flight=%ld throughput_ratio=%.3f"
		       " per_run_ratio=%.3f (target>=0.95 %s) server_cpu_us=%.2f/%.2f"
		       " cpu_bound_ratio=%.3f\n", connections, concurrency, ratio, pair_ratio,
		       pair_ratio >= 0.95 ? "met" : "MISSED", cpu[WITHOUT], cpu[WITH], cpu_bound);
	}
	return errors ? 1 : 0;
}
