/* test_two_copies.c: two copies of the library in one process
 * (LD_PRELOAD="libwspclose.so:copy/libwspclose.so"): only the first applies
 * the semantics and runs a reaper; the second forwards every call to libc.
 * The test re-executes itself with both copies preloaded; the scenario
 * exits 0 when: one reaper thread (two threads in all), a graceful close
 * gives the peer every byte then EOF, and W1 (O_NONBLOCK, linger {1,5},
 * data unacknowledged) fails once with EWOULDBLOCK and leaves the socket
 * usable. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"
#include "sharing_helpers.h"

extern char **environ;

static int threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (d == NULL)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The re-executed image ("--two-copies"): plain C, no Check. */
static int two_copies_scenario(void)
{
	struct lb_pair pair;
	if (lb_pair_open_small(&pair, AF_INET) != 0)
		return 10;
	uint64_t sent = 0;
	if (lb_fill_send_queue(pair.client, &sent) <= 0 || lb_set_nonblocking(pair.client, true) != 0 ||
	    lb_set_linger(pair.client, 1, 5) != 0)
		return 11;
	errno = 0;
	if (close(pair.client) != -1 || errno != EWOULDBLOCK)
		return 2; /* W1 not applied (or applied by neither copy) */
	if (!sh_fd_is_open(pair.client))
		return 3; /* the socket went away: W1 applied twice */
	if (lb_set_linger(pair.client, 0, 0) != 0 || close(pair.client) != 0)
		return 4;
	struct lb_drain_result r;
	lb_drain_now(pair.peer, SH_DRAIN_MS, &r);
	if (r.end != LB_END_EOF || r.bytes != sent)
		return 5; /* the graceful close lost data */
	int threads = threads_now();
	if (threads != 2)
		return 20 + (threads > 9 ? 9 : threads); /* 2 expected: main and one reaper */
	lb_pair_close(&pair);
	return 0;
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(in >= 0, "cannot open %s", from);
	struct stat st;
	ck_assert(fstat(in, &st) == 0);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ck_assert(out >= 0);
	for (off_t off = 0; off < st.st_size;)
		ck_assert(sendfile(out, in, &off, (size_t)(st.st_size - off)) > 0);
	close(in);
	close(out);
}

START_TEST(second_copy_of_the_library_stays_inert)
{
	const char *library = getenv("WSPCLOSE_LIBRARY");
	ck_assert_msg(library != NULL, "WSPCLOSE_LIBRARY is not set (run by make check)");
	char dir[] = "/tmp/wspclose-two-copies.XXXXXX";
	ck_assert(mkdtemp(dir) != NULL);
	char copy[128], preload[1024];
	snprintf(copy, sizeof copy, "%s/libwspclose.so", dir);
	copy_file(library, copy);
	/* In a sanitizer build its runtime must come first. */
	const char *runtime = getenv("WSPCLOSE_SANITIZER_RUNTIME");
	snprintf(preload, sizeof preload, "%s%s%s:%s", runtime && *runtime ? runtime : "",
		 runtime && *runtime ? ":" : "", library, copy);
	char *argv[] = { "test_two_copies", "--two-copies", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		setenv("LD_PRELOAD", preload, 1);
		execve("/proc/self/exe", argv, environ);
		_exit(127);
	}
	ck_assert(pid > 0);
	int status = 0;
	ck_assert(sh_wait_pid(pid, 20000, &status));
	unlink(copy);
	rmdir(dir);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "two copies preloaded: exit %d (2: no W1; 3: W1 closed the socket; 4: close after W1 failed; 5: data lost; 2N: N threads, not 2; 1x: setup)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
END_TEST

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--two-copies") == 0)
		return two_copies_scenario();
	Suite *s = suite_create("two_copies");
	TCase *tc = tcase_create("two_copies");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, second_copy_of_the_library_stays_inert);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
