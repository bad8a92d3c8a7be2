/* test_sockopt.c: §5: the emulated SO_DONTLINGER option, and SO_LINGER
 * keeping its Linux behaviour, checked against the kernel's own answers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loopback.h"
#include "wspclose.h"

/* Any value a successful call must leave in errno untouched. */
#define ERRNO_SENTINEL EDOM

static int get_dontlinger(int fd)
{
	int value = -1;
	socklen_t len = sizeof(value);

	errno = ERRNO_SENTINEL;
	int rc = getsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &value, &len);

	ck_assert_msg(rc == 0, "getsockopt(SO_DONTLINGER) failed: errno %d (%s)",
		      errno, strerror(errno));
	ck_assert_msg(errno == ERRNO_SENTINEL,
		      "a successful getsockopt(SO_DONTLINGER) changed errno to %d", errno);
	ck_assert_msg(len == sizeof(int), "getsockopt(SO_DONTLINGER) gave optlen %u",
		      (unsigned)len);
	return value;
}

static void set_dontlinger(int fd, int value)
{
	errno = ERRNO_SENTINEL;
	int rc = setsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &value, sizeof(value));

	ck_assert_msg(rc == 0, "setsockopt(SO_DONTLINGER, %d) failed: errno %d (%s)",
		      value, errno, strerror(errno));
	ck_assert_msg(errno == ERRNO_SENTINEL,
		      "a successful setsockopt(SO_DONTLINGER) changed errno to %d", errno);
}

static struct linger get_linger(int fd)
{
	struct linger l = { -1, -1 };
	socklen_t len = sizeof(l);

	ck_assert_msg(getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0,
		      "getsockopt(SO_LINGER): %s", strerror(errno));
	return l;
}

static void assert_linger(int fd, int onoff, int seconds, const char *after)
{
	struct linger l = get_linger(fd);

	ck_assert_msg((l.l_onoff != 0) == (onoff != 0) && l.l_linger == seconds,
		      "after %s: SO_LINGER reads {%d,%d}, expected {%d,%d}",
		      after, l.l_onoff, l.l_linger, onoff, seconds);
}

/* The whole SO_DONTLINGER <-> SO_LINGER relation on one socket. */
static void check_dontlinger_roundtrip(int fd, const char *kind)
{
	ck_assert_msg(get_dontlinger(fd) == 1,
		      "%s: SO_DONTLINGER of a new socket is not 1", kind);

	ck_assert(lb_set_linger(fd, 1, 7) == 0);
	ck_assert_msg(get_dontlinger(fd) == 0,
		      "%s: SO_DONTLINGER is not 0 after SO_LINGER {1,7}", kind);
	assert_linger(fd, 1, 7, "SO_LINGER {1,7}");

	/* l_linger is kept (Wine forces it to 0). */
	set_dontlinger(fd, 1);
	assert_linger(fd, 0, 7, "SO_DONTLINGER = 1");
	ck_assert_int_eq(get_dontlinger(fd), 1);

	set_dontlinger(fd, 0);
	assert_linger(fd, 1, 7, "SO_DONTLINGER = 0");
	ck_assert_int_eq(get_dontlinger(fd), 0);

	/* A Winsock BOOL: any nonzero value is TRUE. */
	set_dontlinger(fd, 5);
	assert_linger(fd, 0, 7, "SO_DONTLINGER = 5");
	ck_assert_int_eq(get_dontlinger(fd), 1);
}

START_TEST(dontlinger_tcp)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(fd >= 0);
	check_dontlinger_roundtrip(fd, "TCP");
	close(fd);
}
END_TEST

START_TEST(dontlinger_tcp_ipv6)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	ck_assert_msg(fd >= 0, "socket(AF_INET6): %s", strerror(errno));
	check_dontlinger_roundtrip(fd, "TCP over IPv6");
	close(fd);
}
END_TEST

START_TEST(dontlinger_connected_tcp)
{
	struct lb_pair pair;

	ck_assert(lb_pair_open(&pair, AF_INET, 0, 0) == 0);
	check_dontlinger_roundtrip(pair.client, "connected TCP");
	check_dontlinger_roundtrip(pair.peer, "accepted TCP");
	lb_pair_close(&pair);
}
END_TEST

/* On non-TCP sockets SO_LINGER is accepted and stored by Linux; the
 * emulated option behaves the same way there. */
START_TEST(dontlinger_udp)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert(fd >= 0);
	check_dontlinger_roundtrip(fd, "UDP");
	close(fd);
}
END_TEST

START_TEST(dontlinger_unix)
{
	int sv[2];

	ck_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	check_dontlinger_roundtrip(sv[0], "AF_UNIX stream");
	close(sv[0]);
	close(sv[1]);
	ck_assert(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	check_dontlinger_roundtrip(sv[0], "AF_UNIX datagram");
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* ------------------------------------------------------------- errors */

static void assert_fails(int rc, int expected_errno, const char *call)
{
	int err = errno;

	ck_assert_msg(rc == -1 && err == expected_errno,
		      "%s returned %d (errno %d, %s), expected -1/%s", call, rc, err,
		      strerror(err), strerror(expected_errno));
}

START_TEST(dontlinger_short_optlen_is_einval)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int value = 0;

	ck_assert(fd >= 0);
	ck_assert(lb_set_linger(fd, 1, 3) == 0);
	errno = 0;
	assert_fails(setsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &value, sizeof(int) - 1),
		     EINVAL, "setsockopt(SO_DONTLINGER, optlen 3)");
	errno = 0;
	assert_fails(setsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &value, 0),
		     EINVAL, "setsockopt(SO_DONTLINGER, optlen 0)");
	/* A failed call changes nothing. */
	assert_linger(fd, 1, 3, "failed setsockopt(SO_DONTLINGER)");
	close(fd);
}
END_TEST

/* Same as the kernel gives for SO_LINGER with a NULL pointer. */
START_TEST(dontlinger_null_optval_is_efault)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof(int);

	ck_assert(fd >= 0);
	errno = 0;
	assert_fails(setsockopt(fd, SOL_SOCKET, SO_DONTLINGER, NULL, sizeof(int)),
		     EFAULT, "setsockopt(SO_DONTLINGER, NULL)");
	errno = 0;
	assert_fails(getsockopt(fd, SOL_SOCKET, SO_DONTLINGER, NULL, &len),
		     EFAULT, "getsockopt(SO_DONTLINGER, NULL optval)");
	errno = 0;
	int value;

	assert_fails(getsockopt(fd, SOL_SOCKET, SO_DONTLINGER, &value, NULL),
		     EFAULT, "getsockopt(SO_DONTLINGER, NULL optlen)");
	assert_linger(fd, 0, 0, "failed SO_DONTLINGER calls");
	close(fd);
}
END_TEST

START_TEST(dontlinger_bad_fd_is_ebadf)
{
	int value = 1;
	socklen_t len = sizeof(value);
	int closed = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert(closed >= 0);
	close(closed);
	int fds[] = { -1, closed, 100000 };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		errno = 0;
		assert_fails(setsockopt(fds[i], SOL_SOCKET, SO_DONTLINGER, &value, sizeof(value)),
			     EBADF, "setsockopt(bad fd, SO_DONTLINGER)");
		errno = 0;
		assert_fails(getsockopt(fds[i], SOL_SOCKET, SO_DONTLINGER, &value, &len),
			     EBADF, "getsockopt(bad fd, SO_DONTLINGER)");
	}
}
END_TEST

START_TEST(dontlinger_not_a_socket_is_enotsock)
{
	int fds[2];
	int value = 1;
	socklen_t len = sizeof(value);

	ck_assert(pipe(fds) == 0);
	errno = 0;
	assert_fails(setsockopt(fds[0], SOL_SOCKET, SO_DONTLINGER, &value, sizeof(value)),
		     ENOTSOCK, "setsockopt(pipe, SO_DONTLINGER)");
	errno = 0;
	assert_fails(getsockopt(fds[0], SOL_SOCKET, SO_DONTLINGER, &value, &len),
		     ENOTSOCK, "getsockopt(pipe, SO_DONTLINGER)");
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* Like the kernel for int options: a longer buffer is accepted and optlen
 * comes back as sizeof(int). */
START_TEST(dontlinger_get_long_optlen_returns_int_size)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int buf[4] = { -1, -1, -1, -1 };
	socklen_t len = sizeof(buf);

	ck_assert(fd >= 0);
	errno = ERRNO_SENTINEL;
	ck_assert_msg(getsockopt(fd, SOL_SOCKET, SO_DONTLINGER, buf, &len) == 0,
		      "getsockopt(SO_DONTLINGER, optlen 16): %s", strerror(errno));
	ck_assert_int_eq(errno, ERRNO_SENTINEL);
	ck_assert_msg(len == sizeof(int), "optlen came back as %u, expected %zu",
		      (unsigned)len, sizeof(int));
	ck_assert_int_eq(buf[0], 1);
	close(fd);
}
END_TEST

START_TEST(successful_calls_keep_errno)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct linger l = { 1, 2 };
	socklen_t len = sizeof(l);

	ck_assert(fd >= 0);
	/* get_dontlinger / set_dontlinger check errno themselves. */
	set_dontlinger(fd, 0);
	ck_assert_int_eq(get_dontlinger(fd), 0);
	errno = ERRNO_SENTINEL;
	ck_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) == 0);
	ck_assert_int_eq(errno, ERRNO_SENTINEL);
	ck_assert(getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0);
	ck_assert_int_eq(errno, ERRNO_SENTINEL);
	close(fd);
}
END_TEST

/* --------------------------------------------------- SO_LINGER unchanged */

struct raw_result {
	int rc;
	int err;
};

/* The kernel's own answer: the C library's syscall(), found in libc itself,
 * because the library interposes syscall() too (SYS_setsockopt takes the
 * path of setsockopt()). */
static long kernel_syscall(long number, long a, long b, long c, long d, long e)
{
	static long (*libc_syscall)(long, ...);
	if (libc_syscall == NULL) {
		void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
		ck_assert_msg(libc != NULL, "libc.so.6 is not loaded: %s", dlerror());
		libc_syscall = (long (*)(long, ...))dlsym(libc, "syscall");
		ck_assert(libc_syscall != NULL);
	}
	return libc_syscall(number, a, b, c, d, e);
}

static struct raw_result raw_setsockopt(int fd, int level, int name,
					const void *val, socklen_t len)
{
	struct raw_result r;

	errno = 0;
	r.rc = (int)kernel_syscall(SYS_setsockopt, fd, level, name, (long)val, len);
	r.err = r.rc < 0 ? errno : 0;
	return r;
}

static struct raw_result raw_getsockopt(int fd, int level, int name, void *val,
					socklen_t *len)
{
	struct raw_result r;

	errno = 0;
	r.rc = (int)kernel_syscall(SYS_getsockopt, fd, level, name, (long)val, (long)len);
	r.err = r.rc < 0 ? errno : 0;
	return r;
}

static struct raw_result lib_setsockopt(int fd, int level, int name,
					const void *val, socklen_t len)
{
	struct raw_result r;

	errno = 0;
	r.rc = setsockopt(fd, level, name, val, len);
	r.err = r.rc < 0 ? errno : 0;
	return r;
}

static struct raw_result lib_getsockopt(int fd, int level, int name, void *val,
					socklen_t *len)
{
	struct raw_result r;

	errno = 0;
	r.rc = getsockopt(fd, level, name, val, len);
	r.err = r.rc < 0 ? errno : 0;
	return r;
}

static void assert_same_as_kernel(struct raw_result lib, struct raw_result kernel,
				  const char *call)
{
	ck_assert_msg(lib.rc == kernel.rc && lib.err == kernel.err,
		      "%s: got %d (errno %d, %s); the kernel answers %d (errno %d, %s)",
		      call, lib.rc, lib.err, strerror(lib.err), kernel.rc,
		      kernel.err, strerror(kernel.err));
}

START_TEST(so_linger_validation_is_the_kernels)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct linger l = { 1, 4 };

	ck_assert(fd >= 0);
	/* Too short for a struct linger. */
	struct raw_result lib = lib_setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(int));
	struct raw_result kernel = raw_setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(int));

	ck_assert_msg(kernel.rc == -1 && kernel.err == EINVAL,
		      "the kernel accepted a short SO_LINGER (errno %d)", kernel.err);
	assert_same_as_kernel(lib, kernel, "setsockopt(SO_LINGER, optlen 4)");

	lib = lib_setsockopt(fd, SOL_SOCKET, SO_LINGER, NULL, sizeof(l));
	kernel = raw_setsockopt(fd, SOL_SOCKET, SO_LINGER, NULL, sizeof(l));
	assert_same_as_kernel(lib, kernel, "setsockopt(SO_LINGER, NULL)");

	socklen_t len = sizeof(l);

	lib = lib_getsockopt(fd, SOL_SOCKET, SO_LINGER, NULL, &len);
	len = sizeof(l);
	kernel = raw_getsockopt(fd, SOL_SOCKET, SO_LINGER, NULL, &len);
	assert_same_as_kernel(lib, kernel, "getsockopt(SO_LINGER, NULL)");

	/* Nothing was changed by the failures; a valid call works. */
	assert_linger(fd, 0, 0, "failed SO_LINGER calls");
	ck_assert(lb_set_linger(fd, 1, 4) == 0);
	assert_linger(fd, 1, 4, "SO_LINGER {1,4}");
	close(fd);
}
END_TEST

/* Accepted sockets inherit the listener's linger setting, including one
 * made through SO_DONTLINGER. */
static void check_inherited_linger(bool through_dontlinger)
{
	struct lb_pair pair;
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	ck_assert(listener >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* Linux stores l_linger only with l_onoff = 1: {1,6} then off. */
	ck_assert(lb_set_linger(listener, 1, 6) == 0);
	ck_assert(lb_set_linger(listener, 0, 0) == 0);
	if (through_dontlinger)
		set_dontlinger(listener, 0);
	else
		ck_assert(lb_set_linger(listener, 1, 6) == 0);
	ck_assert(bind(listener, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	ck_assert(listen(listener, 1) == 0);
	ck_assert(getsockname(listener, (struct sockaddr *)&sin, &len) == 0);

	pair.family = AF_INET;
	pair.listener = listener;
	pair.client = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert(pair.client >= 0);
	ck_assert(connect(pair.client, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	pair.peer = accept(listener, NULL, NULL);
	ck_assert(pair.peer >= 0);

	assert_linger(pair.peer, 1, 6, "accept() from a listener with linger {1,6}");
	assert_linger(pair.client, 0, 0, "a new client socket");
	if (through_dontlinger) {
		ck_assert_int_eq(get_dontlinger(pair.peer), 0);
		ck_assert_int_eq(get_dontlinger(pair.client), 1);
	}

	/* Abortive closes, so the test leaves nothing to tear down. */
	ck_assert(lb_set_linger(pair.peer, 1, 0) == 0);
	ck_assert(lb_set_linger(pair.client, 1, 0) == 0);
	lb_pair_close(&pair);
}

START_TEST(so_linger_inherited_by_accept)
{
	check_inherited_linger(false);
}
END_TEST

START_TEST(dontlinger_inherited_by_accept)
{
	check_inherited_linger(true);
}
END_TEST

/* Options the library does not emulate get exactly the kernel's answer. */
START_TEST(unknown_options_are_the_kernels)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct {
		int level;
		int name;
	} cases[] = {
		{ SOL_SOCKET, 12345 },
		{ SOL_SOCKET, -1 },
		{ SOL_SOCKET, (int)~SO_KEEPALIVE },
		{ SOL_SOCKET, (int)~SO_REUSEADDR },
		{ SOL_SOCKET, 0x7fffffff },
		/* The Winsock number only means SO_DONTLINGER at SOL_SOCKET. */
		{ IPPROTO_TCP, SO_DONTLINGER },
		{ IPPROTO_IP, SO_DONTLINGER },
		{ 12345, SO_DONTLINGER },
	};

	ck_assert(fd >= 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char call[96];
		int value = 1;
		socklen_t len = sizeof(value);

		snprintf(call, sizeof(call), "setsockopt(level %d, option %d)",
			 cases[i].level, cases[i].name);
		assert_same_as_kernel(
			lib_setsockopt(fd, cases[i].level, cases[i].name, &value, sizeof(value)),
			raw_setsockopt(fd, cases[i].level, cases[i].name, &value, sizeof(value)),
			call);

		snprintf(call, sizeof(call), "getsockopt(level %d, option %d)",
			 cases[i].level, cases[i].name);
		struct raw_result lib = lib_getsockopt(fd, cases[i].level, cases[i].name,
						       &value, &len);

		len = sizeof(value);
		assert_same_as_kernel(lib,
			raw_getsockopt(fd, cases[i].level, cases[i].name, &value, &len),
			call);
	}
	close(fd);
}
END_TEST

static Suite *sockopt_suite(bool with_ipv6)
{
	Suite *s = suite_create("sockopt");
	TCase *dont = tcase_create("so_dontlinger");
	TCase *errors = tcase_create("so_dontlinger_errors");
	TCase *linger = tcase_create("so_linger_kept");

	tcase_add_test(dont, dontlinger_tcp);
	if (with_ipv6)
		tcase_add_test(dont, dontlinger_tcp_ipv6);
	tcase_add_test(dont, dontlinger_connected_tcp);
	tcase_add_test(dont, dontlinger_udp);
	tcase_add_test(dont, dontlinger_unix);
	tcase_add_test(dont, dontlinger_get_long_optlen_returns_int_size);
	tcase_add_test(dont, successful_calls_keep_errno);
	suite_add_tcase(s, dont);

	tcase_add_test(errors, dontlinger_short_optlen_is_einval);
	tcase_add_test(errors, dontlinger_null_optval_is_efault);
	tcase_add_test(errors, dontlinger_bad_fd_is_ebadf);
	tcase_add_test(errors, dontlinger_not_a_socket_is_enotsock);
	suite_add_tcase(s, errors);

	tcase_add_test(linger, so_linger_validation_is_the_kernels);
	tcase_add_test(linger, so_linger_inherited_by_accept);
	tcase_add_test(linger, dontlinger_inherited_by_accept);
	tcase_add_test(linger, unknown_options_are_the_kernels);
	suite_add_tcase(s, linger);
	return s;
}

int main(void)
{
	char why[256];
	bool with_ipv6 = lb_ipv6_available(why, sizeof(why));

	if (!with_ipv6)
		fprintf(stderr, "SKIP: IPv6 variant not run: %s\n", why);

	SRunner *sr = srunner_create(sockopt_suite(with_ipv6));

	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
