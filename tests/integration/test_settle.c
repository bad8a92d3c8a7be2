/* test_settle.c: the ways a graceful close learns that its teardown is
 * over (libwspclose(7), "The reaper"): in close() itself when the peer had
 * closed first, a look once the copy has settled, and events for a copy
 * still draining then. Whatever the way, our FIN leaves inside close(),
 * the copy is released when the peer acknowledges it, and not before: the
 * peer sees all the data and EOF, and the copy is gone long before the
 * peer closes. A reaper that wakes by itself soon is not woken. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

#define WAIT_MS 5000
/* A peer that has not closed acknowledges our FIN by its delayed-ACK timer
 * (40-200 ms on Linux): the copy goes well before this. */
#define RELEASE_MS 2000
/* More than the reaper's misses before it stops looking at the next round
 * (8): the later connections take the registration path at once. */
#define CONNECTIONS 12
#define PAYLOAD 4096

/* Reads until EOF; the byte count, or -1. */
static long read_to_eof(int fd)
{
	char buf[1024];
	long total = 0;
	for (;;) {
		if (lb_poll(fd, POLLIN, WAIT_MS) <= 0)
			return -1;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return total;
		total += n;
	}
}

/* The client sends PAYLOAD bytes and closes while the peer is still open
 * (so the peer holds back its ACK of our FIN); the peer reads them and EOF;
 * the copy must go while the peer is still open. */
static void close_before_peer(int round)
{
	struct lb_pair pair;
	uint64_t offset = 0;
	ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
	ck_assert_int_eq(lb_send_pattern(pair.client, &offset, PAYLOAD), 0);
	ino_t inode = lb_socket_inode(pair.client);
	ck_assert_int_eq(close(pair.client), 0);
	pair.client = -1;
	ck_assert_int_eq(read_to_eof(pair.peer), PAYLOAD);
	int64_t start = lb_now_ms();
	ck_assert_msg(lb_wait_socket_gone(inode, 1024, RELEASE_MS),
		      "round %d: the held copy is still there %d ms after EOF, the peer still open",
		      round, RELEASE_MS);
	ck_assert_msg(lb_now_ms() - start < RELEASE_MS, "round %d: released late", round);
	lb_pair_close(&pair);
}

START_TEST(copy_goes_on_the_peers_ack_while_the_peer_is_open)
{
	for (int round = 0; round < CONNECTIONS; round++)
		close_before_peer(round);
}
END_TEST

/* The TCP state of the loopback connection from local port `port` to
 * `remote`, or -1: one exact sock_diag lookup (no dump, so it takes the
 * same few microseconds however many sockets the machine has; it also
 * finds the connection after its last descriptor is gone, an orphan). */
static int tcp_state_of(unsigned port, unsigned remote)
{
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -1;
	struct {
		struct nlmsghdr header;
		struct inet_diag_req_v2 request;
	} ask = {
		.header = { .nlmsg_len = sizeof ask, .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			    .nlmsg_flags = NLM_F_REQUEST },
		.request = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP,
			     .idiag_states = ~0u,
			     .id = { .idiag_sport = htons((uint16_t)port),
				     .idiag_dport = htons((uint16_t)remote),
				     .idiag_src = { htonl(INADDR_LOOPBACK) },
				     .idiag_dst = { htonl(INADDR_LOOPBACK) },
				     .idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE } } },
	};
	int state = -1;
	char answer[1024];
	if (send(nl, &ask, sizeof ask, 0) == (ssize_t)sizeof ask) {
		ssize_t n = recv(nl, answer, sizeof answer, 0);
		struct nlmsghdr *h = (struct nlmsghdr *)answer;
		if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct inet_diag_msg)) &&
		    h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
			state = ((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_state;
	}
	close(nl);
	return state;
}

static unsigned port_of(int fd, bool peer)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int rc = peer ? getpeername(fd, (struct sockaddr *)&a, &len)
		      : getsockname(fd, (struct sockaddr *)&a, &len);
	ck_assert_int_eq(rc, 0);
	return ntohs(a.sin_port);
}

/* Rounds until a few have shown a copy held in FIN_WAIT1 (a loaded machine
 * may keep this thread off the CPU through the whole window of some). */
#define FIN_ONLY_SHOWN 5
#define FIN_ONLY_MAX_ROUNDS 300

/* Nothing sent but our FIN, and the peer, still open, acknowledges it by
 * its delayed-ACK timer (a few ms over loopback): while only the FIN waits
 * for its ACK the copy stays. A copy found gone while the connection is
 * still in FIN_WAIT1 was released too early (the state is read after the
 * copy was seen gone, and it never returns to FIN_WAIT1). */
START_TEST(copy_stays_while_only_the_fin_is_unacknowledged)
{
	int shown = 0;
	for (int round = 0; round < FIN_ONLY_MAX_ROUNDS && shown < FIN_ONLY_SHOWN; round++) {
		struct lb_pair pair;
		ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
		unsigned port = port_of(pair.client, false);
		unsigned remote = port_of(pair.client, true);
		ino_t inode = lb_socket_inode(pair.client);
		ck_assert_msg(tcp_state_of(port, remote) == TCP_ESTABLISHED,
			      "sock_diag does not find the open connection (state %d)",
			      tcp_state_of(port, remote));
		ck_assert_int_eq(close(pair.client), 0);
		pair.client = -1;
		int64_t until = lb_now_ms() + RELEASE_MS;
		bool waiting_seen = false;
		for (;;) {
			bool gone = lb_find_socket_fd(inode, 1024) < 0;
			int state = tcp_state_of(port, remote);
			ck_assert_msg(!(gone && state == TCP_FIN_WAIT1),
				      "round %d: the copy was released while our FIN was unacknowledged (FIN_WAIT1)",
				      round);
			if (gone)
				break;
			waiting_seen = waiting_seen || state == TCP_FIN_WAIT1;
			ck_assert_msg(lb_now_ms() < until, "round %d: the copy is still there after %d ms",
				      round, RELEASE_MS);
			struct timespec pause = { 0, 50 * 1000 };
			nanosleep(&pause, NULL);
		}
		shown += waiting_seen;
		lb_pair_close(&pair);
	}
	/* Otherwise every FIN was acknowledged at once, and nothing was shown. */
	ck_assert_msg(shown > 0, "no round of %d held a copy in FIN_WAIT1: the test showed nothing",
		      FIN_ONLY_MAX_ROUNDS);
}
END_TEST

/* The peer closes first; our close then finds its FIN. Over loopback the
 * peer acknowledges our FIN at once, so close() itself finishes the
 * teardown: when it returns, the half-closed peer already has its EOF and
 * no copy is held. */
START_TEST(teardown_ends_in_close_when_the_peer_closed_first)
{
	for (int round = 0; round < CONNECTIONS; round++) {
		struct lb_pair pair;
		uint64_t offset = 0;
		ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
		ck_assert_int_eq(lb_send_pattern(pair.peer, &offset, PAYLOAD), 0);
		ck_assert_int_eq(shutdown(pair.peer, SHUT_WR), 0);
		ck_assert_int_eq(read_to_eof(pair.client), PAYLOAD);
		ck_assert_int_eq(close(pair.client), 0);
		pair.client = -1;
		ck_assert_msg(lb_poll(pair.peer, POLLIN, 0) > 0,
			      "round %d: no EOF at the peer when close() returned", round);
		ck_assert_msg(lb_count_socket_fds_from(1024) == 0,
			      "round %d: a copy is held after close() returned", round);
		/* The peer half-closed and still reads: our FIN is its EOF. */
		ck_assert_int_eq(read_to_eof(pair.peer), 0);
		lb_pair_close(&pair);
	}
}
END_TEST

/* The peer is still open: close() sends our FIN itself, as the kernel's
 * close() does, so the data and EOF are at the peer when it returns (not
 * when a reaper thread gets to it). */
START_TEST(fin_leaves_inside_close_while_the_peer_is_open)
{
	for (int round = 0; round < CONNECTIONS; round++) {
		struct lb_pair pair;
		uint64_t offset = 0;
		ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
		ck_assert_int_eq(lb_send_pattern(pair.client, &offset, PAYLOAD), 0);
		ck_assert_int_eq(lb_tcp_state(pair.client), TCP_ESTABLISHED);
		ck_assert_int_eq(close(pair.client), 0);
		pair.client = -1;
		char buf[PAYLOAD];
		long got = 0;
		ssize_t n;
		while ((n = recv(pair.peer, buf, sizeof buf, MSG_DONTWAIT)) > 0)
			got += n;
		ck_assert_msg(n == 0 && got == PAYLOAD,
			      "round %d: when close() returned the peer had %ld of %d bytes and %s",
			      round, got, PAYLOAD, n == 0 ? "EOF" : "no EOF");
		lb_pair_close(&pair);
	}
}
END_TEST

/* Wake-ups sent to the reaper so far: its channel's eventfd is never read
 * (every write is one edge-triggered event), so the count it shows in
 * /proc/self/fdinfo is the sum of all wake-ups. -1: no channel (no
 * library). */
static long reaper_wake_ups(void)
{
	DIR *dir = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(dir);
	long count = -1;
	struct dirent *d;
	while (count < 0 && (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || atoi(d->d_name) < 1024)
			continue;
		char path[300], target[64], line[128];
		snprintf(path, sizeof path, "/proc/self/fd/%s", d->d_name);
		ssize_t n = readlink(path, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[eventfd]") != 0)
			continue;
		snprintf(path, sizeof path, "/proc/self/fdinfo/%s", d->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		while (fgets(line, sizeof line, f) != NULL)
			if (strncmp(line, "eventfd-count:", 14) == 0)
				count = strtol(line + 14, NULL, 16);
		fclose(f);
	}
	closedir(dir);
	return count;
}

#define BURST_CLOSES 100
#define BURST_GAP_US 100

/* Connections closed one after another, well within the reaper's own timed
 * rounds while their copies settle: the closers shut their sockets down
 * themselves and do not wake it; it takes them in its rounds, which come
 * about once per millisecond. Waking it for every close would be
 * BURST_CLOSES wake-ups. */
START_TEST(a_reaper_that_wakes_soon_is_not_woken)
{
	struct lb_pair warm;
	ck_assert_int_eq(lb_pair_open(&warm, AF_INET, 0, 0), 0); /* the channel exists */
	lb_pair_close(&warm);
	long before = reaper_wake_ups();
	for (int round = 0; round < BURST_CLOSES; round++) {
		struct lb_pair pair;
		ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
		ck_assert_int_eq(close(pair.client), 0);
		pair.client = -1;
		ck_assert_int_eq(read_to_eof(pair.peer), 0);
		lb_pair_close(&pair); /* its FIN acknowledges ours */
		struct timespec gap = { 0, BURST_GAP_US * 1000 };
		nanosleep(&gap, NULL);
	}
	long after = reaper_wake_ups();
	if (before >= 0) /* without the library there is no reaper to wake */
		ck_assert_msg(after >= before && after - before <= BURST_CLOSES / 10,
			      "%ld wake-ups sent to the reaper for %d closes %d us apart",
			      after - before, BURST_CLOSES, BURST_GAP_US);
	int64_t until = lb_now_ms() + RELEASE_MS;
	while (lb_count_socket_fds_from(1024) > 0 && lb_now_ms() < until)
		usleep(1000);
	ck_assert_msg(lb_count_socket_fds_from(1024) == 0,
		      "copies still held %d ms after the burst", RELEASE_MS);
}
END_TEST

/* Received data left unread is still found (the same look tells unread
 * data from the peer's FIN): RST, not EOF, at the peer. */
START_TEST(unread_data_still_resets)
{
	struct lb_pair pair;
	ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
	ck_assert_int_eq(send(pair.peer, "unread", 6, 0), 6);
	ck_assert_int_eq(shutdown(pair.peer, SHUT_WR), 0); /* data and FIN both wait */
	ck_assert_int_gt(lb_poll(pair.client, POLLIN, WAIT_MS), 0);
	usleep(20 * 1000);
	ck_assert_int_eq(close(pair.client), 0);
	pair.client = -1;
	char byte;
	ck_assert_int_gt(lb_poll(pair.peer, POLLIN, WAIT_MS), 0);
	errno = 0;
	ck_assert_msg(recv(pair.peer, &byte, 1, 0) < 0 && errno == ECONNRESET,
		      "the peer did not see a reset (errno %d)", errno);
	lb_pair_close(&pair);
}
END_TEST

/* With SO_PEEK_OFF set, a peek starts where the application's last peek
 * ended: data it peeked at but never read is still unread, and still an
 * RST at its close. */
START_TEST(unread_data_behind_a_peek_offset_still_resets)
{
	struct lb_pair pair;
	ck_assert_int_eq(lb_pair_open(&pair, AF_INET, 0, 0), 0);
	int offset = 0;
	if (setsockopt(pair.client, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof offset) != 0) {
		/* Kernels before 6.10 have no SO_PEEK_OFF for TCP: nothing to test. */
		ck_assert_int_eq(errno, EOPNOTSUPP);
		lb_pair_close(&pair);
		return;
	}
	ck_assert_int_eq(send(pair.peer, "peeked", 6, 0), 6);
	ck_assert_int_gt(lb_poll(pair.client, POLLIN, WAIT_MS), 0);
	char buf[16];
	ck_assert_int_eq(recv(pair.client, buf, sizeof buf, MSG_PEEK), 6);
	ck_assert_int_eq(close(pair.client), 0);
	pair.client = -1;
	ck_assert_int_gt(lb_poll(pair.peer, POLLIN, WAIT_MS), 0);
	errno = 0;
	ck_assert_msg(recv(pair.peer, buf, 1, 0) < 0 && errno == ECONNRESET,
		      "the peer did not see a reset (errno %d)", errno);
	lb_pair_close(&pair);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("settle");
	TCase *tc = tcase_create("teardown_looks");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, copy_goes_on_the_peers_ack_while_the_peer_is_open);
	tcase_add_test(tc, copy_stays_while_only_the_fin_is_unacknowledged);
	tcase_add_test(tc, teardown_ends_in_close_when_the_peer_closed_first);
	tcase_add_test(tc, fin_leaves_inside_close_while_the_peer_is_open);
	tcase_add_test(tc, a_reaper_that_wakes_soon_is_not_woken);
	tcase_add_test(tc, unread_data_still_resets);
	tcase_add_test(tc, unread_data_behind_a_peek_offset_still_resets);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
