/* test_binding.c: owns src/libc_binding.c when nothing can be bound: every
 * missing real function is said once on stderr, and no forwarder calls
 * NULL: each falls back to the system call, or fails with ENOSYS. The
 * binding is compiled here with dlsym() renamed to fake_dlsym(), which
 * finds nothing. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libc_binding.h"

void *fake_dlsym(void *handle, const char *name);

void *fake_dlsym(void *handle, const char *name)
{
	(void)handle;
	(void)name;
	return NULL;
}

/* Binds with stderr captured; returns what was written. */
static size_t bind_capturing_stderr(char *buf, size_t len)
{
	int p[2];
	ck_assert(pipe2(p, O_NONBLOCK) == 0);
	int saved = dup(STDERR_FILENO);
	ck_assert(dup2(p[1], STDERR_FILENO) == STDERR_FILENO);
	libc_bind();
	libc_bind(); /* once only */
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	ssize_t n = read(p[0], buf, len - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

START_TEST(each_missing_function_is_said_once_and_never_called)
{
	static char said[1 << 15];
	bind_capturing_stderr(said, sizeof said);
	for (int f = 0; f < BOUND_COUNT; f++) {
		char line[128];
		snprintf(line, sizeof line, "cannot find the real %s()", bound_names[f]);
		char *at = strstr(said, line);
		ck_assert_msg(at != NULL, "nothing said about %s:\n%s", bound_names[f], said);
		ck_assert_msg(strstr(at + 1, line) == NULL, "%s said twice", bound_names[f]);
	}
	/* The forwarders: system calls where they exist. */
	int fd = libc_socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_msg(fd >= 0, "socket() without a binding: %s", strerror(errno));
	int copy = libc_dup(fd);
	ck_assert(copy >= 0);
	ck_assert(libc_dup2(fd, copy) == copy);
	ck_assert(libc_fcntl(copy, F_GETFD, NULL) >= 0);
	ck_assert(libc_close(copy) == 0);
	ck_assert(libc_close(fd) == 0);
	/* No system call behind them: their documented failure, not a crash. */
	errno = 0;
	ck_assert(libc_popen("true", "r") == NULL && errno == ENOSYS);
	errno = 0;
	ck_assert(libc_system("true") == -1 && errno == ENOSYS);
	ck_assert_int_eq(libc_system(NULL), 0); /* "no shell available" */
	pid_t pid;
	char *argv[] = { "true", NULL };
	ck_assert_int_eq(libc_posix_spawn(&pid, "/bin/true", NULL, NULL, argv, NULL), ENOSYS);
	ck_assert_int_eq(libc_posix_spawnp(&pid, "true", NULL, NULL, argv, NULL), ENOSYS);
	errno = 0;
	ck_assert(libc_fclose(stdin) == EOF && errno == ENOSYS);
	/* syscall() without a binding: the library's own system call. */
	ck_assert_int_eq(libc_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0), getpid());
	errno = 0;
	ck_assert(libc_syscall(SYS_close, -1, 0, 0, 0, 0, 0) == -1 && errno == EBADF);
	/* The copy is told by its ELF note, not by dlsym(): this program
	 * carries the binding, so it is the first (and only) copy. */
	ck_assert(libc_binding_is_first_copy());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("binding");
	TCase *tc = tcase_create("nothing_bound");
	tcase_add_test(tc, each_missing_function_is_said_once_and_never_called);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
