/* lib_init.c: the constructor (binding, settings, descriptor table, sockets
 * that already exist) and the fork handlers. */
#include "close_path.h"
#include "config.h"
#include "fd_table.h"
#include "fork_guard.h"
#include "libc_binding.h"
#include "monotonic.h"
#include "open_descriptors.h"
#include "reaper.h"
#include "stats.h"
#include "tcp_probe.h"
#include "vm_sharing.h"
#include "wine_profile.h"
#include "trace.h"

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

static void learn_descriptor(int fd, void *unused)
{
	(void)unused;
	uint64_t inode = 0;
	uint32_t kind = probe_descriptor_kind(fd, &inode);
	/* Present before we were loaded: inherited at exec (another process may
	 * hold it) or made behind our back, so kernel semantics for it. */
	if (kind != FD_KIND_NONE)
		fd_table_set_socket(fd, kind | FD_SHARED, inode);
}

/* Sockets that exist before the first interposed call: inherited at exec or
 * created by an earlier constructor. */
static void learn_existing_descriptors(void)
{
	if (open_descriptors_each(learn_descriptor, NULL))
		return;
	for (int fd = 0; fd < SCAN_FALLBACK_LIMIT; fd++)
		learn_descriptor(fd, NULL);
}

__attribute__((constructor)) static void libwspclose_init(void)
{
	libc_bind();
	vm_sharing_note_owner();
	/* A second copy of the library in this process (two paths in
	 * LD_PRELOAD, or a dlopen()) stays inert: no table, so every call of
	 * it is the plain libc call; no reaper, trace or fork handlers. The
	 * first copy's binding reaches libc through it. */
	if (!libc_binding_is_first_copy())
		return;
	config_load(&wspclose_settings, environment, STDERR_FILENO);
	/* A Windows program's own processes under Wine only borrow copies of
	 * wineserver's sockets: the library stays inert there (§3.1). */
	if (wine_profile_detect(wspclose_settings.wine) == ROLE_WINE_CLIENT) {
		wspclose_settings = (struct wspclose_config){ .wine = wspclose_settings.wine };
		return; /* nor an exit report */
	}
	fd_table_init();
	learn_existing_descriptors();
	trace_open(&wspclose_settings);
	stats_open(&wspclose_settings);
	pthread_atfork(fork_guard_prepare, fork_handlers_parent, fork_handlers_child);
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
