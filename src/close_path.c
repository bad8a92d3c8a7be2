/* close_path.c: the close of a descriptor the library may care about,
 * explicit (close) or implicit (dup2/dup3 onto it, close_range, closefrom).
 * The common case (not a socket we know of) costs one table load; a socket
 * is claimed, its facts gathered, close_decide() asked for the row (§2), the
 * action carried out (close_actions.c), and the claim ended at one exit:
 * either the number was given up or the entry is as it was before. */
#include "close_path.h"
#include "close_request.h"
#include "config.h"
#include "epoll_sets.h"
#include "fd_table.h"
#include "libc_binding.h"
#include "monotonic.h"
#include "raw_syscall.h"
#include "stats.h"
#include "tcp_probe.h"
#include "trace.h"
#include "vm_sharing.h"
#include "wine_profile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Winsock's l_linger is an unsigned short: the longest linger it knows. */
#define WINSOCK_MAX_LINGER_SECONDS 65535

/* Initial-exec TLS: reading it is a plain load, safe in a signal handler. */
static __thread bool files_unshared __attribute__((tls_model("initial-exec")));

void close_path_note_files_unshared(void)
{
	files_unshared = true;
}

/* ---------------------------------------------------------------- facts */

/* {1,N} with N beyond the kernel's range reads back negative (Linux then
 * lingers without limit), and N above Winsock's range cannot be said on
 * Windows: both are the Winsock maximum, never {1,0} (§8). */
static int linger_seconds(int kernel_value)
{
	if (kernel_value < 0 || kernel_value > WINSOCK_MAX_LINGER_SECONDS)
		return WINSOCK_MAX_LINGER_SECONDS;
	return kernel_value;
}

/* The table knows the linger of a socket made here and never given a
 * SO_LINGER (FD_LINGER_DEFAULT), unless io_uring, which can set options
 * the library does not see, is in use. */
static bool linger_known_default(uint32_t state)
{
	return fd_linger_is_default(state) && !epoll_sets_io_uring_seen();
}

/* Probes in order of cost: SO_LINGER unless the table knows it; one TCP_INFO, except for a connected
 * socket (accepted, or connect() returned 0) with linger off: it has
 * something to tear down unless it was reset, which the reaper sees at
 * once, and G1 and G2 act alike there;
 * O_NONBLOCK and SIOCOUTQ only for the W and L rows. Tracing adds none:
 * what a trace line shows beyond them is read afterwards. */
int close_gather_facts(struct close_request *r)
{
	if (linger_known_default(r->state)) {
		r->linger = (struct linger){ 0, 0 };
	} else {
		int rc = probe_linger(r->fd, &r->linger);
		if (rc < 0)
			return rc;
	}
	struct close_facts *f = &r->facts;
	f->linger_on = r->linger.l_onoff != 0;
	f->linger_seconds = f->linger_on ? linger_seconds(r->linger.l_linger) : r->linger.l_linger;
	struct tcp_snapshot snap;
	bool known_connected = (r->state & (FD_CONNECTED | FD_DISCONNECTED)) == FD_CONNECTED;
	bool needs_state = f->is_tcp && (f->linger_on || !known_connected);
	if (needs_state && probe_tcp_snapshot(r->fd, &snap) == 0) {
		r->tcp_state = snap.state;
		r->data_segs_in = snap.data_segs_in;
		r->data_segs_read = true;
		/* A FIN already sent also means shutdown(SHUT_WR), even one made
		 * behind our back (a dup, a raw system call). */
		f->write_shut = f->write_shut || tcp_state_write_shut(snap.state);
		f->nothing_to_tear_down = tcp_state_nothing_to_tear_down(snap.state);
	}
	if (close_needs_drain_facts(f)) {
		f->nonblocking = probe_nonblocking(r->fd) == 1;
		f->pending = probe_send_queue(r->fd) > 0;
		/* After a reset SIOCOUTQ stays high while nothing will ever be
		 * acknowledged again: not pending (W1 would never end). */
		if (r->tcp_state == TCP_STATE_CLOSE || r->tcp_state == TCP_STATE_LISTEN)
			f->pending = false;
	}
	return 0;
}

/* ---------------------------------------------------------------- a socket */

static int act(struct close_request *r, const struct close_plan *plan)
{
	switch (plan->action) {
	case ACTION_REAL_CLOSE:
		return close_action_plain(r);
	case ACTION_CLOSE_NOW:
		return close_action_now(r);
	case ACTION_FAIL_WOULDBLOCK:
		errno = EWOULDBLOCK; /* W1: nothing changes, the fd stays usable */
		return -1;
	case ACTION_HAND_OFF:
	case ACTION_HAND_OFF_LINGER:
		return close_action_hand_off(r, plan);
	case ACTION_ABORT:
		return close_action_abort(r);
	case ACTION_LINGER_WAIT:
	default:
		return close_action_linger_wait(r);
	}
}

static void start_request(struct close_request *r)
{
	r->started_ns = monotonic_ns();
	r->socket_id = atomic_load(&r->entry->socket_id);
	r->held_fd = -1;
	r->tcp_state = -1;
	/* Inside wineserver only its TCP sockets are closesocket()s; the rest
	 * are its own plumbing (the Windows processes' request sockets). */
	r->tracing = trace_enabled() &&
		     (fd_kind(r->state) == FD_KIND_TCP || !wine_profile_in_wineserver());
	r->facts = (struct close_facts){
		.is_socket = true,
		.is_tcp = fd_kind(r->state) == FD_KIND_TCP,
		.shared_with_process = (r->state & FD_SHARED) != 0,
		.last_reference = fd_table_is_last_reference(r->fd, r->state, r->socket_id),
		.write_shut = (r->state & FD_WRITE_SHUT) != 0,
		.origin = r->origin,
		.passthrough = wspclose_settings.passthrough,
		.never_block = wine_profile_in_wineserver(),
	};
}

static int close_socket(struct close_request *r)
{
	if (!fd_table_claim_close(r->entry, &r->state)) {
		errno = EBADF; /* another thread is closing this very descriptor */
		return -1;
	}
	int saved_errno = errno;
	start_request(r);
	if (r->state & FD_W1_REFUSED && r->origin == CLOSE_IMPLICIT)
		stats_note_w1_abandoned(); /* Windows would have kept it open */

	/* §1 rows first: they need no probe at all (unless traced). */
	struct close_plan plan = close_decide(&r->facts);
	bool probe = plan.action != ACTION_REAL_CLOSE || r->tracing;
	if (probe && close_gather_facts(r) < 0) {
		/* Stale entry: the number no longer holds a socket. */
		int rc = close_give_up_number(r);
		if (rc >= 0)
			errno = saved_errno;
		return rc;
	}
	plan = close_decide(&r->facts);
	r->final_row = plan.row;
	if (plan.row == ROW_W1 && plan.action != ACTION_FAIL_WOULDBLOCK)
		stats_note_w1_abandoned(); /* wineserver: W1 can never be returned */
	int rc;
	if (plan.row == ROW_PASSTHROUGH && r->facts.is_tcp) {
		rc = close_passthrough(r);
	} else {
		close_trace_prepare(r, &plan);
		rc = act(r, &plan);
	}
	int error = errno;

	/* The one exit: the number is given up, or the claim is released. */
	if (!r->number_given_up)
		fd_table_release_claim(r->entry,
				       plan.action == ACTION_FAIL_WOULDBLOCK ? FD_W1_REFUSED : 0);
	stats_count_close(r->final_row);
	close_trace_finish(r, &plan, rc, error);
	errno = rc >= 0 ? saved_errno : error;
	return rc;
}

/* ---------------------------------------------------------------- other kinds */

/* The real close of a number the library does not hold a claim on: libc's
 * close() (a cancellation point) for close(), the bare system call for
 * syscall(SYS_close) and the implicit closes, which are none. */
static int unclaimed_close(const struct close_request *r)
{
	return r->cancellation_point ? libc_close(r->fd) : (int)raw_syscall(SYS_close, r->fd);
}

/* A number the application closed before: close it again, and report a
 * double close when the kernel says it was not open (not reused since). */
static int close_buried(struct close_request *r)
{
	fd_table_unbury(r->entry);
	if (r->replacing) {
		int rc = r->use_dup3 ? libc_dup3(r->replacement, r->fd, r->dup3_flags)
				     : libc_dup2(r->replacement, r->fd);
		if (rc >= 0)
			fd_table_note_duplicate(r->replacement, rc);
		return rc;
	}
	int rc = unclaimed_close(r);
	if (rc < 0 && errno == EBADF && r->origin == CLOSE_EXPLICIT)
		stats_note_double_close();
	return rc;
}

/* An application epoll set: its last descriptor takes its members with it. */
static int close_epoll_set(struct close_request *r)
{
	if (!fd_table_claim_close(r->entry, &r->state)) {
		errno = EBADF;
		return -1;
	}
	fd_table_forget_epoll_set(r->fd, fd_table_is_last_reference(
		r->fd, r->state, atomic_load(&r->entry->socket_id)));
	epoll_sets_note_closed(r->fd);
	int rc = close_give_up_number(r);
	if (!r->number_given_up)
		fd_table_release_claim(r->entry, 0);
	return rc;
}

static int close_unknown(struct close_request *r)
{
	if (!r->replacing)
		return unclaimed_close(r);
	int rc = r->use_dup3 ? libc_dup3(r->replacement, r->fd, r->dup3_flags)
			     : libc_dup2(r->replacement, r->fd);
	if (rc >= 0)
		fd_table_note_duplicate(r->replacement, rc);
	return rc;
}

/* The common case: not a socket we know of. Its close is one table load
 * and the real close(), nothing else (not even a table write). */
static bool unknown_to_the_library(int fd)
{
	struct fd_entry *e = files_unshared ? NULL : fd_table_entry(fd);
	return e == NULL || fd_state_is_unknown(atomic_load_explicit(&e->state,
								      memory_order_acquire));
}

static int close_request_run(struct close_request *r)
{
	struct fd_entry *e = files_unshared ? NULL : fd_table_entry(r->fd);
	uint32_t state = e ? atomic_load_explicit(&e->state, memory_order_acquire) : 0;
	r->entry = e;
	if (fd_state_is_unknown(state))
		return close_unknown(r);
	if (state == FD_TOMBSTONE)
		return close_buried(r);
	if (state & FD_LIBRARY_OWNED) {
		errno = EBADF; /* the application never opened it */
		return -1;
	}
	if (fd_kind(state) == FD_KIND_EPOLL)
		return close_epoll_set(r);
	return close_socket(r);
}

struct close_outcome {
	int rc;
	bool lingered;
};

/* The request lives in this frame only, never in one a cancellation
 * unwinds (a sanitizer's poisoned stack would outlive the thread). */
static __attribute__((noinline)) struct close_outcome close_one(int fd, enum close_origin origin,
								       bool cancellation_point)
{
	struct close_request r = { .fd = fd, .origin = origin,
				   .cancellation_point = cancellation_point };
	int rc = close_request_run(&r);
	return (struct close_outcome){ .rc = rc, .lingered = r.final_row >= ROW_L1 };
}

int close_path_close(int fd, enum close_origin origin)
{
	bool cancellation_point = origin == CLOSE_EXPLICIT;
	/* Before a close_request is even set up. closefrom()'s one-by-one
	 * closes are no cancellation point, as glibc's are not. */
	if (unknown_to_the_library(fd) || vm_sharing_in_child())
		return cancellation_point ? libc_close(fd) : (int)raw_syscall(SYS_close, fd);
	/* close() is a cancellation point: it acts here, before anything is
	 * claimed, and nowhere while a claim is held (§6). */
	if (cancellation_point)
		pthread_testcancel();
	struct close_outcome done = close_one(fd, origin, cancellation_point);
	/* A linger wait that a cancel request interrupted ends here, with the
	 * close complete, as Linux's lingering close() would. */
	if (cancellation_point && done.lingered)
		pthread_testcancel();
	return done.rc;
}

int close_path_close_syscall(int fd)
{
	if (unknown_to_the_library(fd) || vm_sharing_in_child())
		return (int)raw_syscall(SYS_close, fd);
	return close_one(fd, CLOSE_EXPLICIT, false).rc;
}


/* The kernel fails an invalid source, flags or target (closed, or at or
 * above RLIMIT_NOFILE) without touching target: so does the library,
 * before any row is applied to target. */
static bool kernel_would_refuse(int source, int target, bool use_dup3, int flags)
{
	if (raw_syscall(SYS_fcntl, source, F_GETFD) < 0 || raw_syscall(SYS_fcntl, target, F_GETFD) < 0)
		return true;
	if (use_dup3 && (source == target || (flags & ~O_CLOEXEC)))
		return true;
	uint64_t limit = probe_descriptor_limit();
	return limit != 0 && (uint64_t)target >= limit;
}

static int replace(int source, int target, bool use_dup3, int flags, bool by_fclose)
{
	struct close_request r = {
		.fd = target, .origin = CLOSE_IMPLICIT,
		.replacing = true, .replacement = source, .use_dup3 = use_dup3, .dup3_flags = flags,
		.by_fclose = by_fclose,
	};
	struct fd_entry *src = fd_table_entry(source);
	if (src && (atomic_load(&src->state) & FD_LIBRARY_OWNED)) {
		errno = EBADF;
		return -1;
	}
	int saved = errno;
	bool plain = unknown_to_the_library(target) ||
		     kernel_would_refuse(source, target, use_dup3, flags);
	errno = saved;
	if (plain)
		return close_unknown(&r);
	return close_request_run(&r);
}

int close_path_replace(int source, int target, bool use_dup3, int flags)
{
	return replace(source, target, use_dup3, flags, false);
}

int close_path_fclose_socket(int placeholder, int fd)
{
	return replace(placeholder, fd, false, 0, true);
}

bool close_path_is_tcp_socket(int fd)
{
	struct fd_entry *e = files_unshared ? NULL : fd_table_entry(fd);
	uint32_t state = e != NULL ? atomic_load(&e->state) : 0;
	return fd_kind(state) == FD_KIND_TCP && !(state & FD_LIBRARY_OWNED);
}
