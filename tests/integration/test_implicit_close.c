/* test_implicit_close.c: §2 last paragraph: dup2()/dup3() onto a socket,
 * close_range() (every flag, bad arguments) and closefrom() as implicit closes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

#define CHILD_MS 12000
#define QUIET_MS 300
/* §2: an implicit close never blocks the caller. */
#define IMPLICIT_QUICK_MS 300

static void open_pair(struct lb_pair *pair)
{
	ck_assert_msg(lb_pair_open(pair, AF_INET, 0, 0) == 0,
		      "cannot connect a loopback pair: %s", strerror(errno));
}

static bool is_socket_fd(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* dup2 (i = 0) or dup3 (i = 1) of `source` onto `target`, timed. */
static int replace_timed(int use_dup3, int source, int target, int64_t *took_ms, int *err)
{
	int64_t start = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	int rc = use_dup3 ? dup3(source, target, O_CLOEXEC) : dup2(source, target);

	*err = errno;
	*took_ms = lb_now_ms() - start;
	return rc;
}

static const char *replace_name(int use_dup3)
{
	return use_dup3 ? "dup3(O_CLOEXEC)" : "dup2()";
}

/* ------------------------------------------------------ dup2 / dup3 */

/* Loop: dup2, dup3. Replacing a socket with linger {1,0}: A1, the peer gets
 * ECONNRESET; the call returns the target at once. */
START_TEST(dup_onto_abortive_socket_resets_peer)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;
	int64_t took;
	int err;

	open_pair(&pair);
	ck_assert(lb_send_pattern(pair.client, &sent, 3000) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	int null_fd = open("/dev/null", O_RDONLY);

	ck_assert(null_fd >= 0);
	int rc = replace_timed(_i, null_fd, pair.client, &took, &err);

	ck_assert_msg(rc == pair.client && err == SH_ERRNO_SENTINEL,
		      "%s onto a socket with linger {1,0} returned %d (errno %d, %s), expected %d",
		      replace_name(_i), rc, err, strerror(err), pair.client);
	ck_assert_msg(took < IMPLICIT_QUICK_MS, "%s took %lld ms", replace_name(_i), (long long)took);
	ck_assert_msg(!is_socket_fd(pair.client), "fd %d is still a socket after %s",
		      pair.client, replace_name(_i));
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET,
		      "%s onto a socket with linger {1,0}: the peer's stream ended with %s; expected ECONNRESET (A1)",
		      replace_name(_i), lb_end_name(r.end));
	close(null_fd);
	lb_pair_close(&pair);
}
END_TEST

/* Loop: dup2, dup3. Replacing a blocking socket with linger {1,2} and data
 * the peer never reads: the call returns at once (Linux lingers 2 s inside
 * dup2), and the reaper resets the connection at the 2 s deadline (Linux
 * never resets on a linger timeout). */
START_TEST(dup_onto_lingering_socket_returns_at_once_and_resets_at_deadline)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	uint64_t sent = 0;
	int64_t took;
	int err;

	ck_assert(lb_pair_open_small(&pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair.client, &sent) > 0);
	ck_assert(lb_outq(pair.client) > 0);
	ck_assert(lb_set_linger(pair.client, 1, 2) == 0);
	int null_fd = open("/dev/null", O_RDONLY);

	ck_assert(null_fd >= 0);
	int64_t replaced_at = lb_now_ms();
	int rc = replace_timed(_i, null_fd, pair.client, &took, &err);

	ck_assert_msg(rc == pair.client && err == SH_ERRNO_SENTINEL,
		      "%s onto a lingering socket returned %d (errno %d, %s), expected %d",
		      replace_name(_i), rc, err, strerror(err), pair.client);
	ck_assert_msg(took < IMPLICIT_QUICK_MS,
		      "%s onto a socket with linger {1,2} and data pending blocked for %lld ms; an implicit close must never block",
		      replace_name(_i), (long long)took);

	int rev = lb_poll(pair.peer, 0, 6000);
	int64_t reset_after = lb_now_ms() - replaced_at;

	ck_assert_msg(rev > 0 && (rev & (POLLERR | POLLHUP)),
		      "%s: the peer (never reading) was not reset within 6 s (revents 0x%x); expected a reset at the 2 s linger deadline",
		      replace_name(_i), rev);
	ck_assert_msg(reset_after >= 1500 && reset_after <= 4000,
		      "%s: the peer was reset %lld ms after the implicit close; expected at the 2 s linger deadline (1.5 .. 4 s)",
		      replace_name(_i), (long long)reset_after);
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET && r.bytes < sent,
		      "%s: the peer's stream ended with %s after %llu of %llu bytes; expected ECONNRESET with data lost",
		      replace_name(_i), lb_end_name(r.end), (unsigned long long)r.bytes,
		      (unsigned long long)sent);
	close(null_fd);
	lb_pair_close(&pair);
}
END_TEST

/* ------------------------------------------------------ close_range(3, ~0U, 0) */

enum { CR_G1_PENDING, CR_A1, CR_G1_ACKED, CR_LINGER_2S, CR_SOCKETS };

struct close_range_report {
	uint64_t sent[CR_SOCKETS];
	int64_t closed_at_ms;
};

struct close_range_arg {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct close_range_report *report;
};

/* Every descriptor >= 3 still open must be the library's (>= 1024). */
static void child_require_only_library_fds_from(int lowest, const char *after)
{
	int fds[256];
	int n = sh_list_fds(fds, 256);

	for (int i = 0; i < n; i++) {
		char link[128];

		sh_fd_link(fds[i], link, sizeof(link));
		SH_REQUIRE(fds[i] < lowest || fds[i] >= SH_HELD_MIN_FD,
			   "after %s, fd %d (%s) is still open", after, fds[i], link);
	}
}

/* The child: four connections to the parent's listener, each in its own
 * state, then one close_range(3, ~0U, 0). */
static void child_close_range_everything(void *p)
{
	struct close_range_arg *a = p;
	struct close_range_report *rep = a->report;
	int fds[CR_SOCKETS];

	for (int i = 0; i < CR_SOCKETS; i++) {
		fds[i] = sh_connect(&a->addr, a->addr_len, 8192);
		SH_REQUIRE(fds[i] >= 0, "child: connect %d: %s", i, strerror(errno));
	}
	SH_REQUIRE(lb_fill_send_queue(fds[CR_G1_PENDING], &rep->sent[CR_G1_PENDING]) > 0 &&
		   lb_outq(fds[CR_G1_PENDING]) > 0, "child: could not make G1 pending");
	SH_REQUIRE(lb_send_pattern(fds[CR_A1], &rep->sent[CR_A1], 1000) == 0 &&
		   lb_set_linger(fds[CR_A1], 1, 0) == 0, "child: A1 setup: %s", strerror(errno));
	SH_REQUIRE(lb_send_pattern(fds[CR_G1_ACKED], &rep->sent[CR_G1_ACKED], 2000) == 0 &&
		   lb_wait_outq_empty(fds[CR_G1_ACKED], 2000), "child: G1 (acked) setup failed");
	SH_REQUIRE(lb_fill_send_queue(fds[CR_LINGER_2S], &rep->sent[CR_LINGER_2S]) > 0 &&
		   lb_set_linger(fds[CR_LINGER_2S], 1, 2) == 0, "child: linger setup failed");

	sh_child_signal_parent();
	SH_REQUIRE(sh_child_await_parent(CHILD_MS), "child: the parent did not accept");

	int64_t start = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	int rc = close_range(3, ~0U, 0);
	int err = errno;
	int64_t took = lb_now_ms() - start;

	rep->closed_at_ms = start;
	SH_REQUIRE(rc == 0 && err == SH_ERRNO_SENTINEL,
		   "close_range(3, ~0U, 0) returned %d, errno %d (%s)", rc, err, strerror(err));
	SH_REQUIRE(took < IMPLICIT_QUICK_MS,
		   "close_range(3, ~0U, 0) took %lld ms (a socket with linger {1,2} and data pending was in the range); it must never block",
		   (long long)took);
	for (int i = 0; i < CR_SOCKETS; i++)
		SH_REQUIRE(!sh_fd_is_open(fds[i]) || fds[i] >= SH_HELD_MIN_FD,
			   "fd %d is still open after close_range", fds[i]);
	child_require_only_library_fds_from(3, "close_range(3, ~0U, 0)");
	sh_child_signal_parent();
	/* Stay alive (the reaper with us) until the parent has seen the ends. */
	SH_REQUIRE(sh_child_await_parent(CHILD_MS), "child: the parent never finished");
}

/* Peers live in this process, so the child can close every descriptor. */
START_TEST(close_range_everything_gives_each_socket_its_row)
{
	struct close_range_arg a;
	struct sh_child child;
	struct lb_drain_result r;
	char why[1024];
	int peers[CR_SOCKETS];

	a.report = sh_shared_alloc(sizeof(*a.report));
	ck_assert(a.report != NULL);
	int listener = sh_listener_open(AF_INET, 4096, 8, &a.addr, &a.addr_len);

	ck_assert(listener >= 0);
	ck_assert(sh_child_start(&child, child_close_range_everything, &a) == 0);
	if (!sh_parent_await_child(&child, CHILD_MS)) {
		sh_child_finish(&child, 1000, why, sizeof(why));
		ck_abort_msg("child setup: %s", why);
	}
	for (int i = 0; i < CR_SOCKETS; i++) {
		peers[i] = sh_accept(listener, 5000);
		ck_assert_msg(peers[i] >= 0, "accept %d: %s", i, strerror(errno));
	}
	sh_parent_signal_child(&child);
	if (!sh_parent_await_child(&child, CHILD_MS)) {
		sh_child_finish(&child, 1000, why, sizeof(why));
		ck_abort_msg("%s", why);
	}
	struct close_range_report *rep = a.report;

	/* Linger {1,2}, data pending: reset by the reaper at the deadline. */
	int rev = lb_poll(peers[CR_LINGER_2S], 0, 6000);
	int64_t reset_after = lb_now_ms() - rep->closed_at_ms;

	ck_assert_msg(rev > 0 && (rev & (POLLERR | POLLHUP)) && reset_after >= 1500 &&
		      reset_after <= 4000,
		      "close_range, linger {1,2}, pending: the peer saw revents 0x%x after %lld ms; expected a reset at the 2 s deadline (1.5 .. 4 s)",
		      rev, (long long)reset_after);

	lb_drain_now(peers[CR_G1_PENDING], SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == rep->sent[CR_G1_PENDING] && r.pattern_ok,
		      "close_range, G1 with data pending: the peer got %llu of %llu bytes, then %s; expected all then EOF",
		      (unsigned long long)r.bytes, (unsigned long long)rep->sent[CR_G1_PENDING],
		      lb_end_name(r.end));
	lb_drain_now(peers[CR_A1], SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET,
		      "close_range, linger {1,0}: the peer's stream ended with %s; expected ECONNRESET",
		      lb_end_name(r.end));
	lb_drain_now(peers[CR_G1_ACKED], SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == rep->sent[CR_G1_ACKED] && r.pattern_ok,
		      "close_range, G1: the peer got %llu of %llu bytes, then %s; expected all then EOF",
		      (unsigned long long)r.bytes, (unsigned long long)rep->sent[CR_G1_ACKED],
		      lb_end_name(r.end));
	lb_drain_now(peers[CR_LINGER_2S], SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET,
		      "close_range, linger {1,2} not drained: the peer's stream ended with %s; expected ECONNRESET",
		      lb_end_name(r.end));

	sh_parent_signal_child(&child);
	ck_assert_msg(sh_child_finish(&child, CHILD_MS, why, sizeof(why)), "%s", why);
	for (int i = 0; i < CR_SOCKETS; i++)
		close(peers[i]);
	close(listener);
	sh_shared_free(a.report, sizeof(*a.report));
}
END_TEST

/* ------------------------------------------------------ close_range flags */

static void lowest_and_highest(const int *fds, int n, int *lo, int *hi)
{
	*lo = *hi = fds[0];
	for (int i = 1; i < n; i++) {
		if (fds[i] < *lo)
			*lo = fds[i];
		if (fds[i] > *hi)
			*hi = fds[i];
	}
}

/* CLOSE_RANGE_CLOEXEC marks every descriptor close-on-exec and closes
 * nothing: no socket gets a row. */
START_TEST(close_range_cloexec_closes_nothing)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	char why[256];
	uint64_t offset = 0, expect = 0;
	int p[2];

	open_pair(&pair);
	ck_assert(pipe(p) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	int fds[] = { pair.listener, pair.client, pair.peer, p[0], p[1] };
	int n = (int)(sizeof(fds) / sizeof(fds[0]));
	int lo, hi;

	lowest_and_highest(fds, n, &lo, &hi);
	errno = SH_ERRNO_SENTINEL;
	int rc = close_range((unsigned)lo, (unsigned)hi, CLOSE_RANGE_CLOEXEC);

	ck_assert_msg(rc == 0 && errno == SH_ERRNO_SENTINEL,
		      "close_range(%d, %d, CLOSE_RANGE_CLOEXEC) returned %d, errno %d (%s)", lo, hi,
		      rc, errno, strerror(errno));
	for (int i = 0; i < n; i++) {
		int flags = fcntl(fds[i], F_GETFD);

		ck_assert_msg(flags >= 0 && (flags & FD_CLOEXEC),
			      "fd %d after CLOSE_RANGE_CLOEXEC: F_GETFD %d (%s); expected open with FD_CLOEXEC",
			      fds[i], flags, strerror(errno));
	}
	ck_assert_msg(sh_peer_quiet(pair.peer, QUIET_MS),
		      "CLOSE_RANGE_CLOEXEC on a socket with linger {1,0} reached the peer");
	ck_assert(lb_send_pattern(pair.client, &offset, 4000) == 0);
	ck_assert_msg(sh_expect_pattern(pair.peer, &expect, 4000, SH_DRAIN_MS, why, sizeof(why)) == 0,
		      "the socket does not work after CLOSE_RANGE_CLOEXEC: %s", why);
	ck_assert(close(pair.client) == 0);
	pair.client = -1;
	sh_drain_inline(pair.peer, expect, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET, "A1 after CLOSE_RANGE_CLOEXEC: the peer saw %s",
		      lb_end_name(r.end));
	close(p[0]);
	close(p[1]);
	lb_pair_close(&pair);
}
END_TEST

struct bad_range {
	unsigned int first, last;
	unsigned int flags;
	const char *what;
};

/* Invalid arguments: exactly the kernel's EINVAL, nothing closed or
 * marked, and the next operations (rows included) still work. */
START_TEST(close_range_bad_arguments_fail_with_einval_and_change_nothing)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	char why[512];
	uint64_t offset = 0, expect = 0;

	open_pair(&pair);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	unsigned int lo = (unsigned)pair.listener, hi = (unsigned)pair.peer;

	if (lo > hi) {
		unsigned int t = lo;

		lo = hi;
		hi = t;
	}
	const struct bad_range cases[] = {
		{ hi, lo, 0, "first > last" },
		{ hi + 1, hi, CLOSE_RANGE_CLOEXEC, "first > last with CLOSE_RANGE_CLOEXEC" },
		{ lo, hi, 1u << 0, "unknown flag 0x1" },
		{ lo, hi, 1u << 7, "unknown flag 0x80" },
		{ lo, hi, CLOSE_RANGE_CLOEXEC | (1u << 8), "CLOSE_RANGE_CLOEXEC with unknown flag 0x100" },
		{ 3, ~0U, 1u << 30, "(3, ~0U) with unknown flag 1<<30" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		errno = 0;
		int rc = close_range(cases[i].first, cases[i].last, (int)cases[i].flags);

		ck_assert_msg(rc == -1 && errno == EINVAL,
			      "close_range(%u, %u, 0x%x) [%s] returned %d, errno %d (%s); expected -1/EINVAL",
			      cases[i].first, cases[i].last, cases[i].flags, cases[i].what, rc, errno,
			      strerror(errno));
	}
	int fds[] = { pair.listener, pair.client, pair.peer };

	for (size_t i = 0; i < 3; i++) {
		int flags = fcntl(fds[i], F_GETFD);

		ck_assert_msg(flags == 0, "fd %d after failed close_range calls: F_GETFD %d (%s)",
			      fds[i], flags, strerror(errno));
	}
	ck_assert_msg(sh_peer_quiet(pair.peer, QUIET_MS), "a failed close_range reached the peer");
	ck_assert(lb_send_pattern(pair.client, &offset, 4000) == 0);
	ck_assert_msg(sh_expect_pattern(pair.peer, &expect, 4000, SH_DRAIN_MS, why, sizeof(why)) == 0,
		      "%s", why);

	/* A one-descriptor range is still an implicit close with its row. */
	errno = SH_ERRNO_SENTINEL;
	int rc = close_range((unsigned)pair.client, (unsigned)pair.client, 0);

	ck_assert_msg(rc == 0 && errno == SH_ERRNO_SENTINEL, "close_range(client, client, 0): %d (%s)",
		      rc, strerror(errno));
	pair.client = -1;
	sh_drain_inline(pair.peer, expect, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_RESET,
		      "close_range of one socket with linger {1,0}: the peer saw %s; expected ECONNRESET",
		      lb_end_name(r.end));
	ck_assert_msg(sh_check_w1(why, sizeof(why)), "after the failed close_range calls: %s", why);
	lb_pair_close(&pair);
}
END_TEST

/* Descriptors beyond RLIMIT_NOFILE and negative ones: the kernel's errors,
 * and the library's table stays consistent. */
START_TEST(descriptors_beyond_the_limit_give_the_kernel_errors)
{
	struct rlimit lim;
	struct lb_pair pair;
	char why[512];

	ck_assert(getrlimit(RLIMIT_NOFILE, &lim) == 0);
	int beyond = lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > 1000000
		     ? 1 << 30 : (int)lim.rlim_cur + 5;

	open_pair(&pair);
	errno = 0;
	ck_assert_msg(close(-1) == -1 && errno == EBADF, "close(-1): errno %d", errno);
	errno = 0;
	ck_assert_msg(close(beyond) == -1 && errno == EBADF, "close(%d): errno %d", beyond, errno);
	errno = 0;
	ck_assert_msg(dup2(pair.client, beyond) == -1 && errno == EBADF,
		      "dup2(socket, %d) beyond the limit: errno %d (%s), expected EBADF", beyond,
		      errno, strerror(errno));
	errno = 0;
	ck_assert_msg(dup3(pair.client, beyond, 0) == -1 && errno == EBADF,
		      "dup3(socket, %d): errno %d (%s), expected EBADF", beyond, errno, strerror(errno));
	errno = 0;
	ck_assert_msg(fcntl(pair.client, F_DUPFD, beyond) == -1 && errno == EINVAL,
		      "fcntl(F_DUPFD, %d): errno %d (%s), expected EINVAL", beyond, errno,
		      strerror(errno));
	errno = 0;
	ck_assert_msg(dup2(-1, pair.client) == -1 && errno == EBADF,
		      "dup2(-1, socket): errno %d (%s)", errno, strerror(errno));
	ck_assert_msg(is_socket_fd(pair.client), "dup2(-1, socket) closed the socket");
	errno = 0;
	ck_assert_msg(dup3(pair.client, pair.client, 0) == -1 && errno == EINVAL,
		      "dup3(fd, fd): errno %d (%s), expected EINVAL", errno, strerror(errno));
	errno = 0;
	ck_assert_msg(dup3(pair.peer, pair.client, 0x4000) == -1 && errno == EINVAL,
		      "dup3 with a bad flag: errno %d (%s), expected EINVAL", errno, strerror(errno));
	ck_assert_msg(is_socket_fd(pair.client) && sh_peer_quiet(pair.peer, QUIET_MS),
		      "a failing dup3 onto the socket touched it");
	errno = SH_ERRNO_SENTINEL;
	ck_assert_msg(close_range((unsigned)beyond, (unsigned)beyond + 10, 0) == 0 &&
		      errno == SH_ERRNO_SENTINEL, "close_range beyond the limit: errno %d", errno);
	lb_pair_close(&pair);
	ck_assert_msg(sh_check_rows(why, sizeof(why)), "after the bad calls: %s", why);
}
END_TEST

/* ------------------------------------------------------ close_range and threads */

struct bystander {
	pthread_t thread;
	_Atomic bool stop;
	long opened;
	long corrupted;      /* own descriptor closed or replaced behind its back */
	char first[160];
};

/* Opens eventfds (they take the lowest free numbers: those close_range just
 * freed), checks that each is still itself, closes it. */
static void *bystander_main(void *arg)
{
	struct bystander *b = arg;

	while (!atomic_load(&b->stop)) {
		int fd = eventfd(0, EFD_CLOEXEC);
		struct stat before, after;

		if (fd < 0 || fstat(fd, &before) != 0)
			continue;
		b->opened++;
		for (int i = 0; i < 20; i++)
			sched_yield();
		bool same = fstat(fd, &after) == 0 && after.st_ino == before.st_ino &&
			    after.st_dev == before.st_dev;
		int rc = same ? close(fd) : 0;

		if ((!same || rc != 0) && b->corrupted++ == 0)
			snprintf(b->first, sizeof(b->first),
				 "its eventfd %d was %s while it was open", fd,
				 same ? "closed by someone else (close: EBADF)" : "closed or replaced by someone else");
	}
	return NULL;
}

/* close_range(lo, hi, 0) closes exactly the descriptors in the range at
 * the time of the call: the kernel's does. A number it frees may be
 * reused at once by another thread, and must not then be closed under it. */
START_TEST(close_range_never_closes_another_threads_new_descriptors)
{
	struct bystander b = { .stop = false };
	long ranges = 0;

	ck_assert(pthread_create(&b.thread, NULL, bystander_main, &b) == 0);
	int64_t end = lb_now_ms() + 2000;

	while (lb_now_ms() < end && b.corrupted == 0) {
		int fds[4];
		int lo = INT32_MAX, hi = -1;

		for (int i = 0; i < 4; i++) {
			fds[i] = socket(AF_INET, SOCK_STREAM, 0);
			ck_assert(fds[i] >= 0);
			lo = fds[i] < lo ? fds[i] : lo;
			hi = fds[i] > hi ? fds[i] : hi;
		}
		/* Only a range that is all ours (the bystander holds at most
		 * one number, maybe inside it). */
		bool ours = hi - lo == 3;

		if (ours) {
			ck_assert(close_range((unsigned)lo, (unsigned)hi, 0) == 0);
			ranges++;
		} else {
			for (int i = 0; i < 4; i++)
				close(fds[i]);
		}
	}
	atomic_store(&b.stop, true);
	pthread_join(b.thread, NULL);
	fprintf(stderr, "close_range race: %ld ranges closed, %ld eventfds opened meanwhile\n",
		ranges, b.opened);
	ck_assert_msg(b.corrupted == 0,
		      "close_range() in one thread closed a descriptor another thread had just opened: %s (%ld times)",
		      b.first, b.corrupted);
	ck_assert_msg(ranges > 100 && b.opened > 100, "too little happened to tell");
}
END_TEST

/* ------------------------------------------------------ closefrom */

static void child_closefrom(void *unused)
{
	char why[512];
	int before[256];
	struct lb_pair pair, held;
	struct lb_drain_result r;
	uint64_t sent = 0;
	int p[2];

	(void)unused;
	/* A copy held by the library before closefrom(); its peer stays below
	 * lowfd, so the copy has every reason to survive closefrom(). */
	SH_REQUIRE(lb_pair_open_small(&held, AF_INET) == 0, "pair: %s", strerror(errno));
	SH_REQUIRE(lb_fill_send_queue(held.client, &sent) > 0, "fill failed");
	ino_t held_inode = lb_socket_inode(held.client);

	SH_REQUIRE(close(held.client) == 0, "G1 close: %s", strerror(errno));
	held.client = -1;
	SH_REQUIRE(lb_find_socket_fd(held_inode, SH_HELD_MIN_FD) >= 0,
		   "G1 close with data pending: nothing held");
	/* Fills the number just freed, so every new descriptor is above. */
	int placeholder = open("/dev/null", O_RDONLY);

	SH_REQUIRE(placeholder >= 0, "open /dev/null: %s", strerror(errno));
	int n_before = sh_list_fds(before, 256);

	SH_REQUIRE(pipe(p) == 0, "pipe: %s", strerror(errno));
	int ev = eventfd(0, 0);
	int udp = socket(AF_INET, SOCK_DGRAM, 0);

	SH_REQUIRE(ev >= 0 && udp >= 0, "eventfd/socket: %s", strerror(errno));
	SH_REQUIRE(lb_pair_open(&pair, AF_INET, 0, 0) == 0, "pair: %s", strerror(errno));

	int mine[] = { p[0], p[1], ev, udp, pair.listener, pair.client, pair.peer };
	int n_mine = (int)(sizeof(mine) / sizeof(mine[0]));
	int lowfd = mine[0];

	for (int i = 1; i < n_mine; i++)
		lowfd = mine[i] < lowfd ? mine[i] : lowfd;
	SH_REQUIRE(lowfd > held.peer && lowfd > held.listener && lowfd > placeholder, "setup: lowfd %d is not above the held pair", lowfd);

	int64_t start = lb_now_ms();

	errno = SH_ERRNO_SENTINEL;
	closefrom(lowfd);
	int err = errno;
	int64_t took = lb_now_ms() - start;

	SH_REQUIRE(err == SH_ERRNO_SENTINEL, "closefrom(%d) changed errno to %d", lowfd, err);
	SH_REQUIRE(took < IMPLICIT_QUICK_MS, "closefrom(%d) took %lld ms", lowfd, (long long)took);
	for (int i = 0; i < n_mine; i++)
		SH_REQUIRE(!sh_fd_is_open(mine[i]), "fd %d >= %d is still open after closefrom",
			   mine[i], lowfd);
	for (int i = 0; i < n_before; i++)
		SH_REQUIRE(before[i] >= lowfd || sh_fd_is_open(before[i]),
			   "fd %d < %d was closed by closefrom(%d)", before[i], lowfd, lowfd);
	child_require_only_library_fds_from(lowfd, "closefrom");
	SH_REQUIRE(lb_find_socket_fd(held_inode, SH_HELD_MIN_FD) >= 0,
		   "closefrom(%d) closed the library's held copy of socket:[%lu] (its peer has not read anything yet)",
		   lowfd, (unsigned long)held_inode);
	lb_drain_now(held.peer, SH_DRAIN_MS, &r);
	SH_REQUIRE(r.end == LB_END_EOF && r.bytes == sent,
		   "the connection held across closefrom: the peer got %llu of %llu bytes, then %s",
		   (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	SH_REQUIRE(lb_wait_socket_gone(held_inode, SH_HELD_MIN_FD, 2000),
		   "the held copy was not released after the peer read everything");
	lb_pair_close(&held);
	SH_REQUIRE(sh_check_rows(why, sizeof(why)), "after closefrom(%d): %s", lowfd, why);
}

START_TEST(closefrom_closes_app_descriptors_and_library_keeps_working)
{
	char why[1024];

	ck_assert_msg(sh_run_in_child(child_closefrom, NULL, CHILD_MS, why, sizeof(why)), "%s", why);
}
END_TEST

/* ------------------------------------------------------ CLOSE_RANGE_UNSHARE */

/* Makes this process's reaper run with a copy held (a G1 close, data
 * pending); returns the pair whose peer still has to drain. */
static uint64_t hold_one_copy(struct lb_pair *pair)
{
	uint64_t sent = 0;

	ck_assert(lb_pair_open_small(pair, AF_INET) == 0);
	ck_assert(lb_fill_send_queue(pair->client, &sent) > 0);
	ck_assert(close(pair->client) == 0);
	pair->client = -1;
	return sent;
}

/* Loop: 0 = the child only inherits; 1 = the child starts its own reaper
 * (a TCP connection) first. Then close_range(3, ~0U, CLOSE_RANGE_UNSHARE)
 * and exec, as a spawning library does: no crash, the exec'd program runs. */
START_TEST(close_range_unshare_in_forked_child_before_exec)
{
	struct lb_pair pair;
	struct lb_drain_result r;
	int status = 0;
	uint64_t sent = hold_one_copy(&pair);
	pid_t pid = fork();

	ck_assert(pid >= 0);
	if (pid == 0) {
		if (_i == 1) {
			struct lb_pair own;
			uint64_t own_sent = 0;

			if (lb_pair_open(&own, AF_INET, 0, 0) < 0 ||
			    lb_send_pattern(own.client, &own_sent, 1000) < 0 || close(own.client) < 0)
				_exit(90);
		}
		if (close_range(3, ~0U, CLOSE_RANGE_UNSHARE) != 0)
			_exit(91);
		execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
		_exit(92);
	}
	bool ended = sh_wait_pid(pid, CHILD_MS, &status);

	if (!ended) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ck_assert_msg(ended, "the child hung in close_range(CLOSE_RANGE_UNSHARE) or exec");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7,
		      "child status 0x%x (90: setup, 91: close_range failed, 92: exec failed, signal: crash); expected the exec'd sh's exit 7",
		      status);
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent,
		      "the parent's held connection: the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	lb_pair_close(&pair);
}
END_TEST

struct unshare_arg {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint64_t *sent;   /* shared with the parent */
};

static void child_close_range_unshare(void *p)
{
	struct unshare_arg *a = p;
	int fd = sh_connect(&a->addr, a->addr_len, 0);

	SH_REQUIRE(fd >= 0, "child: connect: %s", strerror(errno));
	SH_REQUIRE(lb_send_pattern(fd, a->sent, 20000) == 0, "child: send: %s", strerror(errno));
	sh_child_signal_parent();
	errno = SH_ERRNO_SENTINEL;
	int rc = close_range(3, ~0U, CLOSE_RANGE_UNSHARE);

	SH_REQUIRE(rc == 0, "close_range(3, ~0U, CLOSE_RANGE_UNSHARE): %d (%s)", rc, strerror(errno));
	SH_REQUIRE(!sh_fd_is_open(fd), "fd %d is open after close_range UNSHARE", fd);
	SH_REQUIRE(sh_child_await_parent(CHILD_MS), "child: the parent never finished");
}

/* close_range(3, ~0U, CLOSE_RANGE_UNSHARE) closes the caller's sockets:
 * they get their row (G1: the peer gets every byte, then EOF). In a
 * single-threaded program Linux closes them; the library's reaper thread
 * must not keep them alive in the table it still shares. */
START_TEST(close_range_unshare_still_closes_the_sockets)
{
	struct unshare_arg a;
	struct sh_child child;
	struct lb_drain_result r;
	char why[1024];

	a.sent = sh_shared_alloc(sizeof(uint64_t));
	ck_assert(a.sent != NULL);
	int listener = sh_listener_open(AF_INET, 0, 4, &a.addr, &a.addr_len);

	ck_assert(listener >= 0);
	ck_assert(sh_child_start(&child, child_close_range_unshare, &a) == 0);
	int peer = sh_accept(listener, 5000);

	ck_assert(peer >= 0);
	bool started = sh_parent_await_child(&child, CHILD_MS);

	lb_drain_now(peer, SH_DRAIN_MS, &r);
	sh_parent_signal_child(&child);
	bool child_ok = sh_child_finish(&child, CHILD_MS, why, sizeof(why));

	ck_assert_msg(started && child_ok, "%s", why);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == *a.sent && r.pattern_ok,
		      "after close_range(3, ~0U, CLOSE_RANGE_UNSHARE) in the child the peer got %llu of %llu bytes, then %s; expected all then EOF (the socket was closed)",
		      (unsigned long long)r.bytes, (unsigned long long)*a.sent, lb_end_name(r.end));
	close(peer);
	close(listener);
	sh_shared_free(a.sent, sizeof(uint64_t));
}
END_TEST

static Suite *implicit_close_suite(void)
{
	Suite *s = suite_create("implicit_close");
	TCase *dups = tcase_create("dup2_dup3");
	TCase *ranges = tcase_create("close_range_closefrom");

	tcase_add_loop_test(dups, dup_onto_abortive_socket_resets_peer, 0, 2);
	tcase_add_loop_test(dups, dup_onto_lingering_socket_returns_at_once_and_resets_at_deadline, 0, 2);
	tcase_add_test(dups, descriptors_beyond_the_limit_give_the_kernel_errors);
	tcase_set_timeout(dups, 30);
	suite_add_tcase(s, dups);

	tcase_add_test(ranges, close_range_everything_gives_each_socket_its_row);
	tcase_add_test(ranges, close_range_cloexec_closes_nothing);
	tcase_add_test(ranges, close_range_bad_arguments_fail_with_einval_and_change_nothing);
	tcase_add_test(ranges, close_range_never_closes_another_threads_new_descriptors);
	tcase_add_test(ranges, closefrom_closes_app_descriptors_and_library_keeps_working);
	tcase_add_loop_test(ranges, close_range_unshare_in_forked_child_before_exec, 0, 2);
	tcase_add_test(ranges, close_range_unshare_still_closes_the_sockets);
	tcase_set_timeout(ranges, 30);
	suite_add_tcase(s, ranges);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(implicit_close_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
