/* test_injected_failures.c: §6 under failing system calls and limits: a
 * system call the library uses refused by a seccomp policy (epoll_create1,
 * eventfd2, fcntl(F_DUPFD_CLOEXEC), getsockopt(IPPROTO_TCP)), no descriptor
 * to spare (EMFILE), and RLIMIT_NOFILE lowered or raised at run time. Every case must end with the
 * kernel's result for the application's call and exactly the application's
 * descriptors, and a graceful close stays graceful (every byte, then EOF).
 * Check forks each case, so a filter or a limit stays in its case. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

/* How long the library may take to let go of its own descriptors. */
#define SETTLE_MS 1500

/* Installs a filter answering `error` to system call `nr`; with `arg1` >= 0,
 * only when its second argument is `arg1` (fcntl's command). */
static void refuse(int nr, long arg1, int error)
{
	struct sock_filter with_arg[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)arg1, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter any[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = arg1 >= 0
		? (struct sock_fprog){ sizeof with_arg / sizeof with_arg[0], with_arg }
		: (struct sock_fprog){ sizeof any / sizeof any[0], any };
	ck_assert(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	ck_assert(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

/* A connected pair with a send queue the peer has not read yet. */
static void open_loaded_pair(struct lb_pair *pair, uint64_t *sent)
{
	ck_assert_msg(lb_pair_open(pair, AF_INET, 0, 0) == 0, "loopback pair: %s", strerror(errno));
	*sent = 0;
	ck_assert(lb_send_pattern(pair->client, sent, 200000) == 0);
}

/* close() returns 0 with errno untouched, the peer gets every byte and
 * then EOF, and the process is back to `baseline` descriptors. */
static void assert_graceful_close(struct lb_pair *pair, uint64_t sent, int baseline,
				  const char *what)
{
	errno = SH_ERRNO_SENTINEL;
	int rc = close(pair->client);
	int err = errno;
	pair->client = -1;
	ck_assert_msg(rc == 0 && err == SH_ERRNO_SENTINEL, "%s: close() = %d, errno %d (%s)", what, rc,
		      err, strerror(err));
	struct lb_drain_result r;
	lb_drain_now(pair->peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent && r.pattern_ok,
		      "%s: the peer got %llu of %llu bytes, then %s", what,
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	lb_pair_close(pair);
	int now = lb_wait_fd_count(baseline, SETTLE_MS);
	ck_assert_msg(now == baseline, "%s: %d descriptors open, %d before", what, now, baseline);
}

/* Loop 0..3: epoll_create1 or eventfd2 refused, with ENOSYS or EPERM: the
 * reaper's channel cannot be made, so the close degrades to the kernel's
 * graceful close. */
START_TEST(no_channel_means_the_kernels_graceful_close)
{
	int nr = _i < 2 ? __NR_epoll_create1 : __NR_eventfd2;
	int error = _i % 2 ? EPERM : ENOSYS;
	struct lb_pair pair;
	uint64_t sent;
	int baseline = lb_count_fds();
	open_loaded_pair(&pair, &sent);
	refuse(nr, -1, error);
	assert_graceful_close(&pair, sent, baseline, _i < 2 ? "epoll_create1 refused" : "eventfd2 refused");
}
END_TEST

/* Loop 0..1: fcntl(F_DUPFD_CLOEXEC) refused (ENOSYS, EPERM): no copy can be
 * held. */
START_TEST(no_copy_means_the_kernels_graceful_close)
{
	struct lb_pair pair;
	uint64_t sent;
	int baseline = lb_count_fds();
	open_loaded_pair(&pair, &sent);
	refuse(__NR_fcntl, F_DUPFD_CLOEXEC, _i == 0 ? ENOSYS : EPERM);
	assert_graceful_close(&pair, sent, baseline, "F_DUPFD_CLOEXEC refused");
}
END_TEST

/* The peer closed first, and getsockopt(IPPROTO_TCP) is refused: the
 * close sends the FIN itself but cannot see it acknowledged, so it hands
 * the socket, already shut down, to the reaper, which cannot see it either
 * and lets the kernel finish. The half-closed peer still gets EOF, and no
 * descriptor stays behind. */
START_TEST(teardown_unseen_after_the_peers_fin_is_still_graceful)
{
	struct lb_pair pair;
	int baseline = lb_count_fds();
	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	ck_assert(shutdown(pair.peer, SHUT_WR) == 0);
	char byte;
	ck_assert(lb_poll(pair.client, POLLIN, SH_DRAIN_MS) > 0 && recv(pair.client, &byte, 1, 0) == 0);
	refuse(__NR_getsockopt, IPPROTO_TCP, EPERM);
	errno = SH_ERRNO_SENTINEL;
	int rc = close(pair.client);
	ck_assert_msg(rc == 0 && errno == SH_ERRNO_SENTINEL, "close(): %d, errno %d", rc, errno);
	pair.client = -1;
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == 0, "the half-closed peer got %llu bytes, then %s",
		      (unsigned long long)r.bytes, lb_end_name(r.end));
	lb_pair_close(&pair);
	int now = lb_wait_fd_count(baseline, SETTLE_MS);
	ck_assert_msg(now == baseline, "%d descriptors open, %d before", now, baseline);
}
END_TEST

/* Every number up to the limit taken: no copy can be made (EMFILE). */
START_TEST(no_descriptor_to_spare_means_the_kernels_graceful_close)
{
	struct lb_pair pair;
	uint64_t sent;
	open_loaded_pair(&pair, &sent);
	int baseline_without_pair = lb_count_fds() - 3;
	struct rlimit lim = { 64, 64 };
	ck_assert(setrlimit(RLIMIT_NOFILE, &lim) == 0);
	int fillers[64], n = 0;
	while (n < 64 && (fillers[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	ck_assert_msg(n < 64 && errno == EMFILE, "could not reach the descriptor limit");
	errno = SH_ERRNO_SENTINEL;
	int rc = close(pair.client);
	ck_assert_msg(rc == 0 && errno == SH_ERRNO_SENTINEL, "close() at the limit: %d, errno %d", rc,
		      errno);
	pair.client = -1;
	for (int i = 0; i < n; i++)
		close(fillers[i]);
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	ck_assert_msg(r.end == LB_END_EOF && r.bytes == sent,
		      "close() at the limit: the peer got %llu of %llu bytes, then %s",
		      (unsigned long long)r.bytes, (unsigned long long)sent, lb_end_name(r.end));
	lb_pair_close(&pair);
	ck_assert_int_eq(lb_wait_fd_count(baseline_without_pair, SETTLE_MS), baseline_without_pair);
}
END_TEST

/* The soft limit lowered below a socket's number, then raised again (hard
 * limit too): closes stay graceful, copies go where the limit allows, and
 * nothing leaks. */
START_TEST(limit_changed_at_run_time)
{
	struct rlimit lim;
	ck_assert(getrlimit(RLIMIT_NOFILE, &lim) == 0);
	int baseline = lb_count_fds();
	struct lb_pair pair;
	uint64_t sent;
	open_loaded_pair(&pair, &sent);
	int high = fcntl(pair.client, F_DUPFD, 600);
	ck_assert(high >= 600);
	close(pair.client);
	pair.client = high;
	struct rlimit low = { 100, lim.rlim_max };
	ck_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);
	assert_graceful_close(&pair, sent, baseline, "soft limit lowered below the socket's number");

	struct rlimit raised = { 8192, lim.rlim_max > 8192 ? lim.rlim_max : 8192 };
	if (raised.rlim_max > lim.rlim_max && getuid() != 0)
		raised.rlim_max = lim.rlim_max;
	if (raised.rlim_cur > raised.rlim_max)
		raised.rlim_cur = raised.rlim_max;
	ck_assert(setrlimit(RLIMIT_NOFILE, &raised) == 0);
	/* A G1 close with data unacknowledged: its copy goes at 1024 or above
	 * now that the limit allows it. */
	struct sh_held_case hc;
	ck_assert(sh_held_case_start(&hc) == 0);
	ck_assert_msg(raised.rlim_cur <= 1024 || lb_find_socket_fd(hc.inode, SH_HELD_MIN_FD) >= 0,
		      "after the limit was raised to %llu, no copy is held at >= %d",
		      (unsigned long long)raised.rlim_cur, SH_HELD_MIN_FD);
	char why[256];
	ck_assert_msg(sh_held_case_finish(&hc, why, sizeof why), "limit raised: %s", why);
	ck_assert_int_eq(lb_wait_fd_count(baseline, SETTLE_MS), baseline);
}
END_TEST

static Suite *injected_failures_suite(void)
{
	Suite *s = suite_create("injected_failures");
	TCase *refused = tcase_create("refused_system_calls");
	tcase_add_loop_test(refused, no_channel_means_the_kernels_graceful_close, 0, 4);
	tcase_add_loop_test(refused, no_copy_means_the_kernels_graceful_close, 0, 2);
	tcase_add_test(refused, teardown_unseen_after_the_peers_fin_is_still_graceful);
	suite_add_tcase(s, refused);
	TCase *limits = tcase_create("descriptor_limits");
	tcase_add_test(limits, no_descriptor_to_spare_means_the_kernels_graceful_close);
	tcase_add_test(limits, limit_changed_at_run_time);
	suite_add_tcase(s, limits);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(injected_failures_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
