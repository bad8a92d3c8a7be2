/* hold_floor.c: a reference for make bench-nginx and bench-scale's churn, not
 * part of the library.
 * A minimal LD_PRELOAD holder of accepted TCP sockets until their FIN is
 * acknowledged (libwspclose(7), G1), built the way the library was before
 * its nursery: at close() it leaves the epoll set the socket was added to,
 * sends the FIN (shutdown), keeps a copy high up (dup) and closes the
 * number; a thread of its own looks at each copy about 1 ms later with one
 * TCP_INFO and closes it once nothing is left to acknowledge. Everything
 * else the library does (the linger probe, the look for unread data that
 * owes an RST, dup2/fork/signal safety, tracing) is left out. Releasing the
 * copies in that thread, on another CPU, is most of what it costs.
 * Only sockets returned by accept() or accept4() (nginx's, and the churn
 * benchmark's server) are held; it assumes one closing thread and
 * descriptors below HOLD_FLOOR_FDS. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define HOLD_FLOOR_FDS 65536
#define RING 65536    /* copies handed over and not yet taken by the thread */
#define LOOK_NS 1000000

static bool accepted[HOLD_FLOOR_FDS];
static int epoll_set_of[HOLD_FLOOR_FDS]; /* the set it was added to, plus 1 */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handed_over = PTHREAD_COND_INITIALIZER;
static int ring[RING];
static unsigned ring_head, ring_tail;
static bool thread_started, thread_waiting;
static int waiting_copies[RING];

static long raw(long number, long a, long b, long c, long d, long e)
{
	return syscall(number, a, b, c, d, e);
}

/* FIN_WAIT1, CLOSING and LAST_ACK still wait for our FIN's ACK. */
static bool fin_unacknowledged(int copy)
{
	struct tcp_info info;
	socklen_t len = sizeof info;
	if (getsockopt(copy, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
		return false;
	return info.tcpi_state == TCP_FIN_WAIT1 || info.tcpi_state == TCP_CLOSING ||
	       info.tcpi_state == TCP_LAST_ACK;
}

static void *holder(void *unused)
{
	(void)unused;
	int waiting = 0;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (waiting == 0 && ring_head == ring_tail) {
			thread_waiting = true;
			pthread_cond_wait(&handed_over, &lock);
			thread_waiting = false;
		}
		pthread_mutex_unlock(&lock);
		struct timespec pause = { 0, LOOK_NS };
		nanosleep(&pause, NULL);
		pthread_mutex_lock(&lock);
		while (ring_head != ring_tail && waiting < RING)
			waiting_copies[waiting++] = ring[ring_head++ % RING];
		pthread_mutex_unlock(&lock);
		int kept = 0;
		for (int i = 0; i < waiting; i++) {
			if (fin_unacknowledged(waiting_copies[i]))
				waiting_copies[kept++] = waiting_copies[i];
			else
				raw(SYS_close, waiting_copies[i], 0, 0, 0, 0);
		}
		waiting = kept;
	}
	return NULL;
}

/* The thread is not inherited; the copies are the parent's business. */
static void child_after_fork(void)
{
	while (ring_head != ring_tail)
		raw(SYS_close, ring[ring_head++ % RING], 0, 0, 0, 0);
	thread_started = false;
	thread_waiting = false;
}

static void hand_over(int copy)
{
	pthread_mutex_lock(&lock);
	if (!thread_started) {
		pthread_t thread;
		thread_started = pthread_create(&thread, NULL, holder, NULL) == 0;
	}
	if (!thread_started || ring_tail - ring_head >= RING) {
		pthread_mutex_unlock(&lock);
		raw(SYS_close, copy, 0, 0, 0, 0);
		return;
	}
	ring[ring_tail++ % RING] = copy;
	if (thread_waiting)
		pthread_cond_signal(&handed_over);
	pthread_mutex_unlock(&lock);
}

EXPORT int accept4(int listener, struct sockaddr *address, socklen_t *length, int flags)
{
	int fd = (int)raw(SYS_accept4, listener, (long)address, (long)length, flags, 0);
	if (fd >= 0 && fd < HOLD_FLOOR_FDS) {
		accepted[fd] = true;
		epoll_set_of[fd] = 0;
	}
	return fd;
}

EXPORT int accept(int listener, struct sockaddr *address, socklen_t *length)
{
	return accept4(listener, address, length, 0);
}

EXPORT int epoll_ctl(int set, int op, int fd, struct epoll_event *event)
{
	int rc = (int)raw(SYS_epoll_ctl, set, op, fd, (long)event, 0);
	if (rc == 0 && fd >= 0 && fd < HOLD_FLOOR_FDS) {
		if (op == EPOLL_CTL_ADD)
			epoll_set_of[fd] = set + 1;
		else if (op == EPOLL_CTL_DEL)
			epoll_set_of[fd] = 0;
	}
	return rc;
}

EXPORT int close(int fd)
{
	if (fd < 0 || fd >= HOLD_FLOOR_FDS || !accepted[fd])
		return (int)raw(SYS_close, fd, 0, 0, 0, 0);
	accepted[fd] = false;
	if (epoll_set_of[fd] != 0)
		raw(SYS_epoll_ctl, epoll_set_of[fd] - 1, EPOLL_CTL_DEL, fd, 0, 0);
	epoll_set_of[fd] = 0;
	raw(SYS_shutdown, fd, SHUT_RDWR, 0, 0, 0);
	int copy = (int)raw(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 1024, 0, 0);
	int rc = (int)raw(SYS_close, fd, 0, 0, 0, 0);
	if (copy >= 0)
		hand_over(copy);
	return rc;
}

__attribute__((constructor)) static void hold_floor_init(void)
{
	pthread_atfork(NULL, NULL, child_after_fork);
}
