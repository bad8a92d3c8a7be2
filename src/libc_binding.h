/* libc_binding.h: the real libc functions behind the interposed ones, bound
 * once with dlsym(RTLD_NEXT), with raw system-call fallbacks before that. */
#ifndef WSPCLOSE_LIBC_BINDING_H
#define WSPCLOSE_LIBC_BINDING_H

#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <stdbool.h>
#include <time.h>

#include "interposed_names.h"

/* Marks the interposed entry points: everything else is hidden, and the
 * version script exports exactly these names. */
#define WSPCLOSE_EXPORT __attribute__((visibility("default")))

/* Resolves every real function of src/interposed.list once (pthread_once);
 * called by the constructor, safe to call again. A function that has no
 * real definition is said once on stderr, and never called. */
void libc_bind(void);
/* The real function (cast it to its type), or NULL before binding or when
 * there is none. */
void *libc_function(enum bound_function f);
/* True when this copy of the library is the one whose close() the process
 * resolves first: a second copy in the same process stays inert. */
bool libc_binding_is_first_copy(void);

/* The application's own calls are forwarded through these, so that libc's
 * behaviour (cancellation points, errno) is kept. */
int libc_close(int fd);
int libc_shutdown(int fd, int how);
int libc_setsockopt(int fd, int level, int name, const void *value, socklen_t len);
int libc_getsockopt(int fd, int level, int name, void *value, socklen_t *len);
int libc_socket(int domain, int type, int protocol);
int libc_socketpair(int domain, int type, int protocol, int fds[2]);
int libc_accept(int fd, struct sockaddr *addr, socklen_t *len);
int libc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int libc_connect(int fd, const struct sockaddr *addr, socklen_t len);
int libc_dup(int fd);
int libc_dup2(int fd, int target);
int libc_dup3(int fd, int target, int flags);
int libc_fcntl(int fd, int cmd, void *arg);
int libc_fcntl64(int fd, int cmd, void *arg);
int libc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int libc_epoll_create(int size);
int libc_epoll_create1(int flags);
/* The C library's syscall() with six arguments (as it reads them). */
long libc_syscall(long number, long a, long b, long c, long d, long e, long f);
ssize_t libc_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t libc_recvmsg(int fd, struct msghdr *msg, int flags);
int libc_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags);
int libc_recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
		  struct timespec *timeout);
/* Process creation without fork handlers (see entry_spawn.c). */
int libc_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		     const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int libc_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
		      const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
int libc_system(const char *command);
FILE *libc_popen(const char *command, const char *type);
int libc_fclose(FILE *stream);

#endif
