/* test_own_descriptors.c: §1 last row: the library's own descriptors
 * (held copies, the reaper's epoll and eventfd) are not the application's. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

#define CHILD_MS 14000
#define MAX_FDS 512

static void start_held_case(struct sh_held_case *hc)
{
	ck_assert(sh_held_case_start(hc) == 0);
}

static void finish_held_case(struct sh_held_case *hc)
{
	char why[256];
	ck_assert_msg(sh_held_case_finish(hc, why, sizeof why), "%s", why);
}

enum library_fd_kind { LIB_HELD, LIB_EPOLL, LIB_EVENTFD, LIB_KINDS };

static const char *const lib_kind_names[LIB_KINDS] = {
	"held copy", "reaper's epoll fd", "reaper's eventfd",
};

/* The descriptors open now that the test did not open: not in `before`
 * (taken at the start) nor in `mine`. */
static int library_fds(const int *before, int n_before, const int *mine, int n_mine,
		       int *out, int max)
{
	int now[MAX_FDS];
	int n_now = sh_list_fds(now, MAX_FDS);
	int n = 0;

	for (int i = 0; i < n_now; i++) {
		bool known = sh_fd_in(before, n_before, now[i]);

		for (int j = 0; j < n_mine && !known; j++)
			known = mine[j] == now[i];
		if (!known && n < max)
			out[n++] = now[i];
	}
	return n;
}

/* The library fd of the given kind among `fds`, or -1. */
static int pick(const int *fds, int n, enum library_fd_kind kind, ino_t held_inode)
{
	char want[64], link[128];

	switch (kind) {
	case LIB_HELD:
		snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)held_inode);
		break;
	case LIB_EPOLL:
		snprintf(want, sizeof(want), "anon_inode:[eventpoll]");
		break;
	default:
		snprintf(want, sizeof(want), "anon_inode:[eventfd]");
		break;
	}
	for (int i = 0; i < n; i++) {
		if (sh_fd_link(fds[i], link, sizeof(link)) == 0 && strcmp(link, want) == 0)
			return fds[i];
	}
	return -1;
}

static void describe(const int *fds, int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++) {
		char link[128];

		sh_fd_link(fds[i], link, sizeof(link));
		used += (size_t)snprintf(buf + used, len - used, "%s%d:%s", i ? " " : "", fds[i], link);
	}
}

/* Finds the library's descriptors after a held G1 close; fails unless the
 * held copy, an epoll fd and an eventfd are among them, all >= 1024. */
static int find_library_fds(const int *before, int n_before, struct sh_held_case *hc, int *lib,
			    int max)
{
	int mine[] = { hc->pair.listener, hc->pair.peer };
	int n = library_fds(before, n_before, mine, 2, lib, max);
	char list[1024];

	describe(lib, n, list, sizeof(list));
	for (int k = 0; k < LIB_KINDS; k++)
		ck_assert_msg(pick(lib, n, (enum library_fd_kind)k, hc->inode) >= 0,
			      "no %s among the descriptors the test did not open: [%s]",
			      lib_kind_names[k], list);
	for (int i = 0; i < n; i++)
		ck_assert_msg(lib[i] >= SH_HELD_MIN_FD,
			      "the library's fd %d is below %d (pushes the app's descriptors): [%s]",
			      lib[i], SH_HELD_MIN_FD, list);
	return n;
}

/* close(), dup(), fcntl() and epoll_ctl() on a library descriptor: EBADF,
 * as if it were not open; and it stays open. */
START_TEST(library_descriptors_are_not_open_for_the_app)
{
	int before[MAX_FDS], lib[64];
	int n_before = sh_list_fds(before, MAX_FDS);
	struct sh_held_case hc;

	start_held_case(&hc);
	int n = find_library_fds(before, n_before, &hc, lib, 64);
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert(ep >= 0);

	for (int i = 0; i < n; i++) {
		int fd = lib[i];
		char link[128];
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

		sh_fd_link(fd, link, sizeof(link));
		errno = 0;
		ck_assert_msg(close(fd) == -1 && errno == EBADF,
			      "close(%d) on the library's %s: errno %d (%s), expected -1/EBADF", fd, link,
			      errno, strerror(errno));
		ck_assert_msg(sh_fd_is_open(fd), "close(%d) closed the library's %s", fd, link);
		errno = 0;
		ck_assert_msg(dup(fd) == -1 && errno == EBADF, "dup(%d) on the library's %s: errno %d",
			      fd, link, errno);
		errno = 0;
		ck_assert_msg(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
			      "fcntl(%d, F_GETFD) on the library's %s: errno %d", fd, link, errno);
		errno = 0;
		ck_assert_msg(fcntl(fd, F_DUPFD_CLOEXEC, 0) == -1 && errno == EBADF,
			      "fcntl(%d, F_DUPFD_CLOEXEC) on the library's %s: errno %d", fd, link, errno);
		errno = 0;
		ck_assert_msg(dup2(fd, fd) == -1 && errno == EBADF,
			      "dup2(%d, %d) on the library's %s: errno %d", fd, fd, link, errno);
		errno = 0;
		ck_assert_msg(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1 && errno == EBADF,
			      "epoll_ctl(ADD, %d) of the library's %s: errno %d", fd, link, errno);
		errno = 0;
		ck_assert_msg(epoll_ctl(fd, EPOLL_CTL_ADD, hc.pair.peer, &ev) == -1 && errno == EBADF,
			      "epoll_ctl(%d, ...) with the library's %s as the set: errno %d", fd, link,
			      errno);
		ck_assert_msg(sh_fd_is_open(fd), "fd %d (%s) was closed by the calls above", fd, link);
	}
	close(ep);
	finish_held_case(&hc);
}
END_TEST

/* Loop 0..5: kind = i % 3 (held copy, reaper epoll, reaper eventfd), dup3
 * when i >= 3. The application names one of the library's numbers as its
 * dup2/dup3 target: it gets that number, the library moves its descriptor
 * out of the way and keeps working. */
START_TEST(dup2_onto_a_library_descriptor_moves_it_away)
{
	enum library_fd_kind kind = (enum library_fd_kind)(_i % LIB_KINDS);
	bool use_dup3 = _i >= LIB_KINDS;
	int before[MAX_FDS], lib[64];
	int n_before = sh_list_fds(before, MAX_FDS);
	struct sh_held_case hc;
	char why[512], want[128], got[128];
	int p[2];

	start_held_case(&hc);
	int n = find_library_fds(before, n_before, &hc, lib, 64);
	int target = pick(lib, n, kind, hc.inode);

	ck_assert(pipe(p) == 0);
	int64_t start = lb_now_ms();

	errno = 0;
	int rc = use_dup3 ? dup3(p[0], target, O_CLOEXEC) : dup2(p[0], target);
	int64_t took = lb_now_ms() - start;

	ck_assert_msg(rc == target, "%s(pipe, %d) onto the library's %s returned %d (errno %d, %s)",
		      use_dup3 ? "dup3" : "dup2", target, lib_kind_names[kind], rc, errno,
		      strerror(errno));
	ck_assert_msg(took < SH_QUICK_MS, "%s onto the library's %s took %lld ms",
		      use_dup3 ? "dup3" : "dup2", lib_kind_names[kind], (long long)took);
	sh_fd_link(p[0], want, sizeof(want));
	sh_fd_link(target, got, sizeof(got));
	ck_assert_msg(strcmp(want, got) == 0, "fd %d is %s after the dup, expected the pipe %s",
		      target, got, want);

	/* The library's descriptor lives on elsewhere. */
	int after[64];
	int mine[] = { hc.pair.listener, hc.pair.peer, p[0], p[1], target };
	int n_after = library_fds(before, n_before, mine, 5, after, 64);
	int moved = pick(after, n_after, kind, hc.inode);

	ck_assert_msg(moved >= SH_HELD_MIN_FD && moved != target,
		      "after the dup onto %d the library has no %s any more (found %d)", target,
		      lib_kind_names[kind], moved);

	errno = SH_ERRNO_SENTINEL;
	ck_assert_msg(close(target) == 0 && errno == SH_ERRNO_SENTINEL,
		      "close(%d), now the application's pipe: errno %d", target, errno);
	close(p[0]);
	close(p[1]);
	finish_held_case(&hc);
	ck_assert_msg(sh_check_rows(why, sizeof(why)), "after the dup onto the library's %s: %s",
		      lib_kind_names[kind], why);
}
END_TEST

/* ------------------------------------------------------ daemon-style */

struct daemon_arg {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool use_close_range;
	uint64_t *sent;    /* shared with the parent */
};

/* "tid:state:wchan" for each thread of this process, for a failure message
 * (an ESTABLISHED held copy means the reaper never adopted it). */
static void describe_threads(char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	DIR *dir = opendir("/proc/self/task");
	if (dir == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL && used + 64 < len) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], state[32] = "?", wchan[48] = "?";
		snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");
		if (f != NULL) {
			char line[512];
			if (fgets(line, sizeof line, f) != NULL) {
				char *close_paren = strrchr(line, ')');
				if (close_paren != NULL && close_paren[1] == ' ')
					snprintf(state, sizeof state, "%c", close_paren[2]);
			}
			fclose(f);
		}
		snprintf(path, sizeof path, "/proc/self/task/%s/wchan", de->d_name);
		f = fopen(path, "re");
		if (f != NULL) {
			if (fgets(wchan, sizeof wchan, f) == NULL)
				snprintf(wchan, sizeof wchan, "?");
			fclose(f);
		}
		used += (size_t)snprintf(out + used, len - used, "%s%s:%s:%s", used ? " " : "",
					 de->d_name, state, wchan);
	}
	closedir(dir);
}

static void child_daemonizes(void *p)
{
	struct daemon_arg *a = p;
	struct rlimit lim;
	char why[512], link[128];

	int fd = sh_connect(&a->addr, a->addr_len, 8192);

	SH_REQUIRE(fd >= 0, "connect: %s", strerror(errno));
	SH_REQUIRE(lb_fill_send_queue(fd, a->sent) > 0 && lb_outq(fd) > 0, "fill failed");
	ino_t inode = lb_socket_inode(fd);

	SH_REQUIRE(close(fd) == 0, "G1 close: %s", strerror(errno));
	int held = lb_find_socket_fd(inode, SH_HELD_MIN_FD);

	SH_REQUIRE(held >= 0, "G1 close with data pending: nothing held");
	sh_child_signal_parent(); /* the parent accepts; nobody reads yet */

	SH_REQUIRE(getrlimit(RLIMIT_NOFILE, &lim) == 0, "getrlimit");
	int limit = lim.rlim_cur > 1 << 20 ? 1 << 20 : (int)lim.rlim_cur;
	int library_ebadf = 0;

	if (a->use_close_range) {
		errno = SH_ERRNO_SENTINEL;
		int rc = close_range(3, ~0U, 0);

		SH_REQUIRE(rc == 0 && errno == SH_ERRNO_SENTINEL,
			   "close_range(3, ~0U, 0): %d, errno %d (%s)", rc, errno, strerror(errno));
	} else {
		for (int n = 3; n < limit; n++) {
			bool was_open = sh_fd_is_open(n);

			errno = SH_ERRNO_SENTINEL;
			int rc = close(n);
			int err = errno;

			if (rc == 0)
				continue;
			SH_REQUIRE(err == EBADF, "close(%d) in the daemon loop: %d, errno %d (%s)", n, rc,
				   err, strerror(err));
			if (was_open) {
				sh_fd_link(n, link, sizeof(link));
				SH_REQUIRE(n >= SH_HELD_MIN_FD && sh_fd_is_open(n),
					   "close(%d) (%s) failed with EBADF but fd %d was the application's",
					   n, link, n);
				library_ebadf++;
			}
		}
		SH_REQUIRE(library_ebadf >= 3,
			   "the daemon loop met only %d library descriptors (held copy, epoll, eventfd expected)",
			   library_ebadf);
	}
	int fds[MAX_FDS];
	int n = sh_list_fds(fds, MAX_FDS);

	for (int i = 0; i < n; i++) {
		sh_fd_link(fds[i], link, sizeof(link));
		SH_REQUIRE(fds[i] < 3 || fds[i] >= SH_HELD_MIN_FD,
			   "fd %d (%s) is still open after closing every descriptor", fds[i], link);
	}
	SH_REQUIRE(lb_find_socket_fd(inode, SH_HELD_MIN_FD) >= 0,
		   "closing every descriptor (%s) closed the library's held copy of socket:[%lu] while its peer had not read anything",
		   a->use_close_range ? "close_range(3, ~0U, 0)" : "close() loop 3..RLIMIT_NOFILE-1",
		   (unsigned long)inode);

	sh_child_signal_parent(); /* the parent drains the held connection */
	SH_REQUIRE(sh_child_await_parent(CHILD_MS), "the parent never drained");
	if (!lb_wait_socket_gone(inode, SH_HELD_MIN_FD, 2000)) {
		int copy = lb_find_socket_fd(inode, SH_HELD_MIN_FD);
		char threads[512];
		describe_threads(threads, sizeof threads);
		sh_fail("the held copy (fd %d) was not released within 2 s after the peer read everything: "
			"its TCP state %d, %d bytes unacknowledged; threads: %s", copy, lb_tcp_state(copy),
			lb_outq(copy), threads);
	}
	SH_REQUIRE(sh_check_rows(why, sizeof(why)), "after closing every descriptor: %s", why);

	/* Back to exactly the application's descriptors (0..2) plus the
	 * reaper's two, once the last teardowns are over. */
	int64_t deadline = lb_now_ms() + 2000;

	while (lb_count_socket_fds_from(0) > 0 && lb_now_ms() < deadline)
		sh_sleep_ms(10);
	n = sh_list_fds(fds, MAX_FDS);
	for (int i = 0; i < n; i++) {
		sh_fd_link(fds[i], link, sizeof(link));
		SH_REQUIRE(fds[i] < 3 || (fds[i] >= SH_HELD_MIN_FD && strncmp(link, "anon_inode:", 11) == 0),
			   "after every teardown fd %d (%s) is still open", fds[i], link);
	}
}

/* Loop: 0 = a close() loop over 3..RLIMIT_NOFILE-1; 1 = close_range(3,
 * ~0U, 0). The held connection survives it; every row works afterwards. */
START_TEST(closing_every_descriptor_keeps_the_library_working)
{
	struct daemon_arg a;
	struct sh_child child;
	struct lb_drain_result r = { .end = LB_END_TIMEOUT };
	char why[1024];

	a.use_close_range = _i == 1;
	a.sent = sh_shared_alloc(sizeof(uint64_t));
	ck_assert(a.sent != NULL);
	int listener = sh_listener_open(AF_INET, 4096, 4, &a.addr, &a.addr_len);

	ck_assert(listener >= 0);
	ck_assert(sh_child_start(&child, child_daemonizes, &a) == 0);
	int peer = sh_accept(listener, 5000);
	bool closed_all = peer >= 0 && sh_parent_await_child(&child, CHILD_MS) &&
			  sh_parent_await_child(&child, CHILD_MS);

	if (closed_all)
		lb_drain_now(peer, SH_DRAIN_MS, &r);
	sh_parent_signal_child(&child);
	bool child_ok = sh_child_finish(&child, CHILD_MS, why, sizeof(why));

	ck_assert_msg(child_ok, "%s", why);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == *a.sent && r.pattern_ok,
		      "the connection held across the close-everything: the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)*a.sent, lb_end_name(r.end));
	close(peer);
	close(listener);
	sh_shared_free(a.sent, sizeof(uint64_t));
}
END_TEST

static Suite *own_descriptors_suite(void)
{
	Suite *s = suite_create("own_descriptors");
	TCase *own = tcase_create("own");
	TCase *daemon = tcase_create("close_everything");

	tcase_add_test(own, library_descriptors_are_not_open_for_the_app);
	tcase_add_loop_test(own, dup2_onto_a_library_descriptor_moves_it_away, 0, 2 * LIB_KINDS);
	tcase_set_timeout(own, 30);
	suite_add_tcase(s, own);

	tcase_add_loop_test(daemon, closing_every_descriptor_keeps_the_library_working, 0, 2);
	tcase_set_timeout(daemon, 30);
	suite_add_tcase(s, daemon);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(own_descriptors_suite());

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
