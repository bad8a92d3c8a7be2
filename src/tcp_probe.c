/* tcp_probe.c: the kernel queries behind the close decision and the reaper
 * (SO_LINGER, O_NONBLOCK, SIOCOUTQ/SIOCINQ, a peek, TCP_INFO), as raw system
 * calls. */
#include "tcp_probe.h"
#include "fd_table.h"
#include "raw_syscall.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* raw_syscall() returns -1 and sets errno; the probes return -errno instead, so
 * the caller can keep the application's errno untouched. */
static int result(long rc)
{
	return rc < 0 ? -errno : (int)rc;
}

static int get_int_option(int fd, int level, int name)
{
	int value = 0;
	socklen_t len = sizeof value;
	int rc = result(raw_syscall(SYS_getsockopt, fd, level, name, &value, &len));
	return rc < 0 ? rc : value;
}

int probe_linger(int fd, struct linger *out)
{
	socklen_t len = sizeof *out;
	return result(raw_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_LINGER, out, &len));
}

int set_linger(int fd, bool on, int seconds)
{
	struct linger l = { .l_onoff = on, .l_linger = seconds };
	return result(raw_syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_LINGER, &l, sizeof l));
}

int probe_nonblocking(int fd)
{
	int flags = result(raw_syscall(SYS_fcntl, fd, F_GETFL));
	return flags < 0 ? flags : (flags & O_NONBLOCK) != 0;
}

static int queue_size(int fd, unsigned long request)
{
	int bytes = 0;
	int rc = result(raw_syscall(SYS_ioctl, fd, request, &bytes));
	return rc < 0 ? rc : bytes;
}

int probe_send_queue(int fd) { return queue_size(fd, SIOCOUTQ); }
int probe_receive_queue(int fd) { return queue_size(fd, SIOCINQ); }
int probe_socket_error(int fd) { return get_int_option(fd, SOL_SOCKET, SO_ERROR); }

int probe_unread(int fd)
{
	char byte;
	return result(raw_syscall(SYS_recvfrom, fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL));
}

int probe_tcp_snapshot(int fd, struct tcp_snapshot *out)
{
	struct tcp_info info;
	socklen_t len = sizeof info;
	int rc = result(raw_syscall(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, &info, &len));
	if (rc < 0)
		return rc;
	out->state = info.tcpi_state;
	out->data_segs_in = len >= offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof(uint32_t)
			    ? info.tcpi_data_segs_in : 0;
	out->segs_out = len >= offsetof(struct tcp_info, tcpi_segs_out) + sizeof(uint32_t)
			? info.tcpi_segs_out : 1;
	/* Nothing unsent and no segment in flight leave SIOCOUTQ (write_seq -
	 * snd_una) at 0. Only in ESTABLISHED and CLOSE_WAIT, where both counts
	 * are live and no FIN of ours is queued: a reset clears them but not
	 * SIOCOUTQ, and a listener's tcpi_unacked is its accept queue. */
	bool live = info.tcpi_state == TCP_STATE_ESTABLISHED ||
		    info.tcpi_state == TCP_STATE_CLOSE_WAIT;
	out->send_queue_empty =
		live && info.tcpi_unacked == 0 &&
		len >= offsetof(struct tcp_info, tcpi_notsent_bytes) + sizeof(uint32_t) &&
		info.tcpi_notsent_bytes == 0;
	return 0;
}

int probe_send_queue_known(int fd, const struct tcp_snapshot *snap)
{
	return snap->send_queue_empty ? 0 : probe_send_queue(fd);
}

int probe_tcp_state(int fd)
{
	struct tcp_snapshot snap;
	int rc = probe_tcp_snapshot(fd, &snap);
	return rc < 0 ? rc : snap.state;
}

uint32_t probe_descriptor_kind(int fd, uint64_t *inode)
{
	struct stat st;
	if (raw_syscall(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode))
		return FD_KIND_NONE;
	*inode = st.st_ino;
	int domain = get_int_option(fd, SOL_SOCKET, SO_DOMAIN);
	int type = get_int_option(fd, SOL_SOCKET, SO_TYPE);
	int protocol = get_int_option(fd, SOL_SOCKET, SO_PROTOCOL);
	bool inet = domain == AF_INET || domain == AF_INET6;
	if (inet && type == SOCK_STREAM && protocol == IPPROTO_TCP)
		return FD_KIND_TCP;
	return FD_KIND_OTHER_SOCKET;
}

bool tcp_state_is_draining(int state)
{
	switch (state) {
	case TCP_STATE_ESTABLISHED:
	case TCP_STATE_SYN_SENT:
	case TCP_STATE_SYN_RECV:
	case TCP_STATE_CLOSE_WAIT:
	case TCP_STATE_FIN_WAIT1:
	case TCP_STATE_CLOSING:
	case TCP_STATE_LAST_ACK:
		return true;
	default:
		return false;
	}
}

bool tcp_state_nothing_to_tear_down(int state)
{
	switch (state) {
	case TCP_STATE_LISTEN:
	case TCP_STATE_CLOSE:
	case TCP_STATE_SYN_SENT:
	case TCP_STATE_FIN_WAIT2:
	case TCP_STATE_TIME_WAIT:
		return true;
	default:
		return false;
	}
}

bool tcp_state_write_shut(int state)
{
	switch (state) {
	case TCP_STATE_FIN_WAIT1:
	case TCP_STATE_FIN_WAIT2:
	case TCP_STATE_CLOSING:
	case TCP_STATE_TIME_WAIT:
	case TCP_STATE_LAST_ACK:
		return true;
	default:
		return false;
	}
}

int raw_close(int fd) { return result(raw_syscall(SYS_close, fd)); }
int raw_shutdown(int fd, int how) { return result(raw_syscall(SYS_shutdown, fd, how)); }

int raw_abort_connection(int fd)
{
	/* connect(AF_UNSPEC) runs tcp_disconnect(): RST now, queues dropped,
	 * blocked callers woken, even while another thread holds the file. */
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	set_linger(fd, true, 0);
	return result(raw_syscall(SYS_connect, fd, &unspec, sizeof unspec));
}

/* F_DUPFD_CLOEXEC at or above `lowest`. */
static int raw_dup_at_or_above(int fd, int lowest)
{
	return result(raw_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, lowest));
}

#define LIBRARY_FD_FLOOR 1024

/* prlimit64 takes 64-bit limits on every architecture (a 32-bit struct
 * rlimit is half that size). */
struct limit64 {
	uint64_t soft, hard;
};

uint64_t probe_descriptor_limit(void)
{
	struct limit64 lim;
	int saved = errno;
	long rc = raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &lim);
	errno = saved;
	if (rc != 0 || lim.soft == ~(uint64_t)0)
		return 0;
	return lim.soft;
}

static int upper_half_floor(void)
{
	uint64_t soft = probe_descriptor_limit();
	if (soft == 0 || soft / 2 > INT32_MAX)
		return -1;
	int half = (int)(soft / 2);
	return half > 2 ? half : -1;
}

/* The lowest number raw_dup_high() has asked for: lowered before the dup
 * that uses it, so that a dup2() checking it sees it first. */
static _Atomic int lowest_floor = LIBRARY_FD_FLOOR;

int raw_dup_high(int fd)
{
	int copy = raw_dup_at_or_above(fd, LIBRARY_FD_FLOOR);
	if (copy == -EINVAL || copy == -EMFILE) {
		int floor = upper_half_floor();
		if (floor >= 0 && floor < LIBRARY_FD_FLOOR) {
			int known = atomic_load(&lowest_floor);
			while (floor < known &&
			       !atomic_compare_exchange_weak(&lowest_floor, &known, floor))
				;
			copy = raw_dup_at_or_above(fd, floor);
		}
	}
	return copy;
}

bool raw_number_may_be_library_high(int fd)
{
	return fd >= atomic_load(&lowest_floor);
}

int raw_move_high(int fd)
{
	if (fd < 0)
		return fd;
	int high = raw_dup_high(fd);
	if (high < 0)
		return fd;
	raw_close(fd);
	return high;
}
