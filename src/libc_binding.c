/* libc_binding.c: finds the next definition of each interposed function with
 * dlsym(RTLD_NEXT) and refuses to bind to our own. Until binding is done (a
 * call from another library's constructor), raw system calls stand in. */
#include "libc_binding.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct {
	int (*close)(int);
	int (*shutdown)(int, int);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			   const posix_spawnattr_t *, char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
			    const posix_spawnattr_t *, char *const[], char *const[]);
	int (*system)(const char *);
	FILE *(*popen)(const char *, const char *);
} real;

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void self_marker(void) {}

/* The next definition, or NULL when there is none or it is in this very
 * library (a broken link order must not make close() call itself). */
static void *find_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);
	if (fn == NULL)
		return NULL;
	Dl_info found, self;
	if (dladdr(fn, &found) && dladdr((void *)self_marker, &self) &&
	    found.dli_fbase == self.dli_fbase)
		return NULL;
	return fn;
}

/* Stores with release order so that a thread that sees a pointer sees a
 * fully resolved one; the loads below are acquire. */
#define BIND(field, name) \
	__atomic_store_n(&real.field, (__typeof__(real.field))find_next(name), __ATOMIC_RELEASE)

static void bind_all(void)
{
	int saved = errno;
	BIND(close, "close");
	BIND(shutdown, "shutdown");
	BIND(setsockopt, "setsockopt");
	BIND(getsockopt, "getsockopt");
	BIND(socket, "socket");
	BIND(socketpair, "socketpair");
	BIND(accept, "accept");
	BIND(accept4, "accept4");
	BIND(dup, "dup");
	BIND(dup2, "dup2");
	BIND(dup3, "dup3");
	BIND(fcntl, "fcntl");
	BIND(fcntl64, "fcntl64");
	BIND(epoll_ctl, "epoll_ctl");
	BIND(sendmsg, "sendmsg");
	BIND(recvmsg, "recvmsg");
	BIND(sendmmsg, "sendmmsg");
	BIND(recvmmsg, "recvmmsg");
	BIND(posix_spawn, "posix_spawn");
	BIND(posix_spawnp, "posix_spawnp");
	BIND(system, "system");
	BIND(popen, "popen");
	errno = saved;
}

void libc_bind(void)
{
	pthread_once(&bind_once, bind_all);
}

#define LOAD(field) __atomic_load_n(&real.field, __ATOMIC_ACQUIRE)

int libc_close(int fd)
{
	int (*fn)(int) = LOAD(close);
	return fn ? fn(fd) : (int)syscall(SYS_close, fd);
}

int libc_shutdown(int fd, int how)
{
	int (*fn)(int, int) = LOAD(shutdown);
	return fn ? fn(fd, how) : (int)syscall(SYS_shutdown, fd, how);
}

int libc_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	int (*fn)(int, int, int, const void *, socklen_t) = LOAD(setsockopt);
	return fn ? fn(fd, level, name, value, len)
		  : (int)syscall(SYS_setsockopt, fd, level, name, value, len);
}

int libc_getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	int (*fn)(int, int, int, void *, socklen_t *) = LOAD(getsockopt);
	return fn ? fn(fd, level, name, value, len)
		  : (int)syscall(SYS_getsockopt, fd, level, name, value, len);
}

int libc_socket(int domain, int type, int protocol)
{
	int (*fn)(int, int, int) = LOAD(socket);
	return fn ? fn(domain, type, protocol)
		  : (int)syscall(SYS_socket, domain, type, protocol);
}

int libc_socketpair(int domain, int type, int protocol, int fds[2])
{
	int (*fn)(int, int, int, int[2]) = LOAD(socketpair);
	return fn ? fn(domain, type, protocol, fds)
		  : (int)syscall(SYS_socketpair, domain, type, protocol, fds);
}

int libc_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int (*fn)(int, struct sockaddr *, socklen_t *) = LOAD(accept);
	return fn ? fn(fd, addr, len) : (int)syscall(SYS_accept4, fd, addr, len, 0);
}

int libc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int (*fn)(int, struct sockaddr *, socklen_t *, int) = LOAD(accept4);
	return fn ? fn(fd, addr, len, flags)
		  : (int)syscall(SYS_accept4, fd, addr, len, flags);
}

int libc_dup(int fd)
{
	int (*fn)(int) = LOAD(dup);
	return fn ? fn(fd) : (int)syscall(SYS_dup, fd);
}

int libc_dup2(int fd, int target)
{
	int (*fn)(int, int) = LOAD(dup2);
	if (fn)
		return fn(fd, target);
	/* dup3 refuses fd == target; dup2 then only checks that fd is open. */
	if (fd == target)
		return syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -1 : target;
	return (int)syscall(SYS_dup3, fd, target, 0);
}

int libc_dup3(int fd, int target, int flags)
{
	int (*fn)(int, int, int) = LOAD(dup3);
	return fn ? fn(fd, target, flags) : (int)syscall(SYS_dup3, fd, target, flags);
}

int libc_fcntl(int fd, int cmd, void *arg)
{
	int (*fn)(int, int, ...) = LOAD(fcntl);
	return fn ? fn(fd, cmd, arg) : (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int libc_fcntl64(int fd, int cmd, void *arg)
{
	int (*fn)(int, int, ...) = LOAD(fcntl64);
	if (fn == NULL)
		fn = LOAD(fcntl);
	return fn ? fn(fd, cmd, arg) : (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int libc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	int (*fn)(int, int, int, struct epoll_event *) = LOAD(epoll_ctl);
	return fn ? fn(epfd, op, fd, event) : (int)syscall(SYS_epoll_ctl, epfd, op, fd, event);
}

ssize_t libc_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, const struct msghdr *, int) = LOAD(sendmsg);
	return fn ? fn(fd, msg, flags) : syscall(SYS_sendmsg, fd, msg, flags);
}

ssize_t libc_recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, struct msghdr *, int) = LOAD(recvmsg);
	return fn ? fn(fd, msg, flags) : syscall(SYS_recvmsg, fd, msg, flags);
}

int libc_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
	int (*fn)(int, struct mmsghdr *, unsigned int, int) = LOAD(sendmmsg);
	return fn ? fn(fd, msgs, n, flags) : (int)syscall(SYS_sendmmsg, fd, msgs, n, flags);
}

int libc_recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
		  struct timespec *timeout)
{
	int (*fn)(int, struct mmsghdr *, unsigned int, int, struct timespec *) = LOAD(recvmmsg);
	return fn ? fn(fd, msgs, n, flags, timeout)
		  : (int)syscall(SYS_recvmmsg, fd, msgs, n, flags, timeout);
}

/* No system-call fallback for these: they are never called before the
 * constructor has bound them, and without libc they cannot be emulated. */
int libc_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	libc_bind();
	return LOAD(posix_spawn)(pid, path, actions, attr, argv, envp);
}

int libc_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
		      const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	libc_bind();
	return LOAD(posix_spawnp)(pid, file, actions, attr, argv, envp);
}

int libc_system(const char *command)
{
	libc_bind();
	return LOAD(system)(command);
}

FILE *libc_popen(const char *command, const char *type)
{
	libc_bind();
	return LOAD(popen)(command, type);
}
