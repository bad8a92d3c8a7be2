/* test_release_outcomes.c: how a held socket's teardown ended, as the
 * statistics report it (§7): a reset by the peer and data the peer sent
 * after the close (which the kernel answers with a reset) end alike on the
 * wire and are told apart by the data segments counted since the close.
 * The closing end is connected by connect(), so its close reads no
 * TCP_INFO: the count starts when the reaper adopts the copy. Each case
 * runs in a child with WSPCLOSE_STATS=1 and reads its exit summary. A reset
 * that came before the close must count as the peer's too. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback.h"

#define WAIT_MS 5000
#define FIN_WAIT1 4 /* the kernel's TCP_FIN_WAIT1 */

enum peer_action { PEER_RESETS, PEER_SENDS_DATA };

#define TCP_CLOSED 7 /* the kernel's TCP_CLOSE */

/* In the child: the peer resets the connection before the client closes
 * it. The client's close hands the socket off all the same (it was
 * connected, and its close reads no TCP_INFO); the reaper's first look at
 * it takes the pending ECONNRESET, which must still count as the peer's. */
static int run_reset_before_close(void)
{
	struct lb_pair pair;
	if (lb_pair_open(&pair, AF_INET, 0, 0) != 0 || lb_set_linger(pair.peer, 1, 0) != 0 ||
	    close(pair.peer) != 0)
		return 10;
	int64_t until = lb_now_ms() + WAIT_MS;
	while (lb_tcp_state(pair.client) != TCP_CLOSED && lb_now_ms() < until)
		usleep(1000);
	if (lb_tcp_state(pair.client) != TCP_CLOSED)
		return 11;
	ino_t inode = lb_socket_inode(pair.client);
	if (close(pair.client) != 0)
		return 12;
	return lb_wait_socket_gone(inode, 1024, WAIT_MS) ? 0 : 14;
}

/* In the child: the client end closes with its FIN stuck behind a full
 * send queue (the peer does not read), so its held copy waits in
 * FIN_WAIT1; then the peer acts, and the child exits once the copy is
 * released (the summary is written at exit). */
static int run_scenario(enum peer_action action)
{
	struct lb_pair pair;
	uint64_t offset = 0;
	char byte = 'p';
	if (lb_pair_open_small(&pair, AF_INET) != 0 || send(pair.peer, &byte, 1, 0) != 1 ||
	    recv(pair.client, &byte, 1, 0) != 1 || lb_fill_send_queue(pair.client, &offset) <= 0)
		return 10;
	ino_t inode = lb_socket_inode(pair.client);
	if (close(pair.client) != 0)
		return 11;
	int copy = -1;
	for (int64_t until = lb_now_ms() + WAIT_MS; lb_now_ms() < until; usleep(1000)) {
		copy = lb_find_socket_fd(inode, 1024);
		if (copy >= 0 && lb_tcp_state(copy) == FIN_WAIT1)
			break; /* adopted: shut down, FIN queued */
	}
	if (copy < 0 || lb_tcp_state(copy) != FIN_WAIT1)
		return 12;
	if (action == PEER_RESETS) {
		if (lb_set_linger(pair.peer, 1, 0) != 0 || close(pair.peer) != 0)
			return 13;
	} else if (send(pair.peer, "late", 4, 0) != 4) {
		return 13;
	}
	return lb_wait_socket_gone(inode, 1024, WAIT_MS) ? 0 : 14;
}

/* Runs the scenario in a child of this program; returns its stderr. */
static char *summary_of(const char *scenario)
{
	char path[] = "/tmp/wspclose-outcomes-XXXXXX";
	int err = mkstemp(path);
	ck_assert(err >= 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		dup2(err, STDERR_FILENO);
		setenv("WSPCLOSE_STATS", "1", 1);
		execl("/proc/self/exe", "test_release_outcomes", scenario, (char *)NULL);
		_exit(127);
	}
	int status;
	ck_assert(waitpid(pid, &status, 0) == pid);
	static char text[8192];
	ssize_t n = pread(err, text, sizeof text - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(err);
	unlink(path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "scenario %s failed (status 0x%x): %s", scenario, status, text);
	return text;
}

/* The count of one outcome in the summary's release line (0 if absent). */
static long outcome_count(const char *summary, const char *outcome)
{
	const char *line = strstr(summary, "held sockets released:");
	ck_assert_msg(line != NULL, "no release line in: %s", summary);
	char key[64];
	snprintf(key, sizeof key, "%s=", outcome);
	const char *end = strchr(line, '\n');
	const char *at = strstr(line, key);
	return at != NULL && (end == NULL || at < end) ? strtol(at + strlen(key), NULL, 10) : 0;
}

/* The scenario's held socket ended as `expected`, never as `other`. */
static void assert_outcome(const char *scenario, const char *expected, const char *other)
{
	const char *summary = summary_of(scenario);
	ck_assert_msg(outcome_count(summary, expected) == 1 && outcome_count(summary, other) == 0,
		      "%s: expected one %s release and no %s; summary: %s", scenario, expected,
		      other, summary);
}

START_TEST(peer_reset_is_told_from_data_after_close)
{
	assert_outcome("peer-resets", "peer-reset", "data-after-close");
}
END_TEST

START_TEST(reset_before_the_close_is_the_peers)
{
	assert_outcome("reset-before-close", "peer-reset", "fin-acked");
}
END_TEST

START_TEST(data_after_close_is_told_from_peer_reset)
{
	assert_outcome("peer-sends-data", "data-after-close", "peer-reset");
}
END_TEST

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "peer-resets") == 0)
		return run_scenario(PEER_RESETS);
	if (argc == 2 && strcmp(argv[1], "peer-sends-data") == 0)
		return run_scenario(PEER_SENDS_DATA);
	if (argc == 2 && strcmp(argv[1], "reset-before-close") == 0)
		return run_reset_before_close();
	Suite *s = suite_create("release_outcomes");
	TCase *tc = tcase_create("outcomes_in_the_summary");
	tcase_add_test(tc, peer_reset_is_told_from_data_after_close);
	tcase_add_test(tc, data_after_close_is_told_from_peer_reset);
	tcase_add_test(tc, reset_before_the_close_is_the_peers);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
