/* lib_init.c: the constructor (binding, settings, descriptor table, sockets
 * that already exist) and the fork handlers. */
#include "close_path.h"
#include "config.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "libc_binding.h"
#include "monotonic.h"
#include "reaper.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Used when /proc is not mounted. */
#define SCAN_FALLBACK_LIMIT 4096

static const char *environment(const char *name)
{
	return secure_getenv(name);
}

static void learn_descriptor(int fd)
{
	uint64_t inode = 0;
	uint32_t kind = probe_descriptor_kind(fd, &inode);
	/* Present before we were loaded: inherited at exec (another process may
	 * hold it) or made behind our back, so kernel semantics for it. */
	if (kind != FD_KIND_NONE)
		fd_table_set_socket(fd, kind | FD_SHARED, inode);
}

/* Sockets that exist before the first interposed call: inherited at exec or
 * created by an earlier constructor. Raw getdents64: no malloc. */
static void learn_existing_descriptors(void)
{
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		for (int fd = 0; fd < SCAN_FALLBACK_LIMIT; fd++)
			learn_descriptor(fd);
		return;
	}
	char buf[4096];
	long n;
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			char *end;
			long fd = strtol(d->d_name, &end, 10);
			if (*end == '\0' && end != d->d_name && fd != dir)
				learn_descriptor((int)fd);
		}
	}
	raw_close(dir);
}

static void after_fork_in_parent(void)
{
	fd_table_mark_all_shared();
	fork_guard_done();
}

static void after_fork_in_child(void)
{
	trace_after_fork_in_child();
	fd_table_drop_claims();
	reaper_forget_after_fork();
	fork_guard_done();
	fd_table_mark_all_shared();
}

__attribute__((constructor)) static void libwspclose_init(void)
{
	libc_bind();
	config_load(&wspclose_settings, environment, STDERR_FILENO);
	fd_table_init();
	learn_existing_descriptors();
	trace_open(&wspclose_settings);
	stats_open(&wspclose_settings);
	pthread_atfork(fork_guard_prepare, after_fork_in_parent, after_fork_in_child);
}

/* How long the exit report waits for teardowns that are about to finish
 * (a loopback FIN is acknowledged in microseconds), so that a program that
 * closes and exits at once is not reported as exiting with held sockets. */
#define EXIT_REPORT_SETTLE_MS 200

__attribute__((destructor)) static void libwspclose_fini(void)
{
	if (!stats_report_wanted())
		return;
	int64_t until = monotonic_ns() + EXIT_REPORT_SETTLE_MS * NS_PER_MS;
	while (reaper_settling() && monotonic_ns() < until) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	stats_report_at_exit(reaper_held_count());
}
