/* libc_binding.c: finds the next definition of each interposed function with
 * dlsym(RTLD_NEXT) and refuses to bind to our own. Until binding is done (a
 * call from another library's constructor), raw system calls stand in. */
#include "libc_binding.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "interposed_names.h"
#include "raw_syscall.h"

/* The real functions, indexed by src/interposed.list's order; NULL until
 * bound, or for good when there is none (then the forwarders below fall
 * back to the system call, or fail with ENOSYS). */
static void *real[BOUND_COUNT];

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static void self_marker(void) {}

static bool in_this_library(void *fn)
{
	Dl_info found, self;
	return dladdr(fn, &found) && dladdr((void *)self_marker, &self) &&
	       found.dli_fbase == self.dli_fbase;
}

/* The next definition, or NULL when there is none or it is in this very
 * library (a broken link order must not make close() call itself). */
static void *find_next(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);
	return fn == NULL || in_this_library(fn) ? NULL : fn;
}

static void say(const char *text)
{
	raw_syscall(SYS_write, STDERR_FILENO, text, strlen(text));
}

/* Said once, at binding time, for each function that has no real one. */
static void say_not_found(const char *name)
{
	say("libwspclose: cannot find the real ");
	say(name);
	say("(); the library makes the system call itself, or fails with ENOSYS where none exists\n");
}

static void bind_all(void)
{
	int saved = errno;
	for (int f = 0; f < BOUND_COUNT; f++) {
		void *fn = find_next(bound_names[f]);
		if (fn == NULL)
			say_not_found(bound_names[f]);
		/* Release: a thread that sees the pointer sees a resolved one. */
		__atomic_store_n(&real[f], fn, __ATOMIC_RELEASE);
	}
	errno = saved;
}

void libc_bind(void)
{
	pthread_once(&bind_once, bind_all);
}

void *libc_function(enum bound_function f)
{
	return __atomic_load_n(&real[f], __ATOMIC_ACQUIRE);
}

/* Marks every copy of the library in its PT_NOTE segment, so that a copy
 * can be told from any other object whatever its file name, and from
 * another interposer of close() (a sanitizer runtime, libfaketime). */
#define COPY_NOTE_NAME "libwspclose"
struct copy_note {
	uint32_t name_size, desc_size, type;
	char name[sizeof COPY_NOTE_NAME];
};
__attribute__((used, section(".note.libwspclose"), aligned(4)))
static const struct copy_note copy_marker = { sizeof COPY_NOTE_NAME, 0, 1, COPY_NOTE_NAME };

static size_t note_align(size_t n) { return (n + 3) & ~(size_t)3; }

/* dl_iterate_phdr() goes through the objects in the order in which symbols
 * are looked up: the first one that carries the note is the copy whose
 * close() the process calls. */
static int find_first_copy(struct dl_phdr_info *info, size_t size, void *first)
{
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *at = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = at + ph->p_memsz;
		while (at + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)(const void *)at;
			const char *name = at + sizeof *note;
			if (note->n_namesz == sizeof COPY_NOTE_NAME &&
			    name + sizeof COPY_NOTE_NAME <= end &&
			    memcmp(name, COPY_NOTE_NAME, sizeof COPY_NOTE_NAME) == 0) {
				*(const void **)first = at;
				return 1;
			}
			at = name + note_align(note->n_namesz) + note_align(note->n_descsz);
		}
	}
	return 0;
}

bool libc_binding_is_first_copy(void)
{
	const void *first = NULL;
	dl_iterate_phdr(find_first_copy, &first);
	/* No note found at all (a loader that hides it): assume the first. */
	return first == NULL || first == (const void *)&copy_marker;
}

int libc_close(int fd)
{
	int (*fn)(int) = libc_function(BOUND_close);
	return fn ? fn(fd) : (int)raw_syscall(SYS_close, fd);
}

int libc_shutdown(int fd, int how)
{
	int (*fn)(int, int) = libc_function(BOUND_shutdown);
	return fn ? fn(fd, how) : (int)raw_syscall(SYS_shutdown, fd, how);
}

int libc_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
	int (*fn)(int, int, int, const void *, socklen_t) = libc_function(BOUND_setsockopt);
	return fn ? fn(fd, level, name, value, len)
		  : (int)raw_syscall(SYS_setsockopt, fd, level, name, value, len);
}

int libc_getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	int (*fn)(int, int, int, void *, socklen_t *) = libc_function(BOUND_getsockopt);
	return fn ? fn(fd, level, name, value, len)
		  : (int)raw_syscall(SYS_getsockopt, fd, level, name, value, len);
}

int libc_socket(int domain, int type, int protocol)
{
	int (*fn)(int, int, int) = libc_function(BOUND_socket);
	return fn ? fn(domain, type, protocol)
		  : (int)raw_syscall(SYS_socket, domain, type, protocol);
}

int libc_socketpair(int domain, int type, int protocol, int fds[2])
{
	int (*fn)(int, int, int, int[2]) = libc_function(BOUND_socketpair);
	return fn ? fn(domain, type, protocol, fds)
		  : (int)raw_syscall(SYS_socketpair, domain, type, protocol, fds);
}

int libc_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int (*fn)(int, struct sockaddr *, socklen_t *) = libc_function(BOUND_accept);
	return fn ? fn(fd, addr, len) : (int)raw_syscall(SYS_accept4, fd, addr, len, 0);
}

int libc_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int (*fn)(int, const struct sockaddr *, socklen_t) = libc_function(BOUND_connect);
	return fn ? fn(fd, addr, len) : (int)raw_syscall(SYS_connect, fd, addr, len);
}

int libc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int (*fn)(int, struct sockaddr *, socklen_t *, int) = libc_function(BOUND_accept4);
	return fn ? fn(fd, addr, len, flags)
		  : (int)raw_syscall(SYS_accept4, fd, addr, len, flags);
}

int libc_dup(int fd)
{
	int (*fn)(int) = libc_function(BOUND_dup);
	return fn ? fn(fd) : (int)raw_syscall(SYS_dup, fd);
}

int libc_dup2(int fd, int target)
{
	int (*fn)(int, int) = libc_function(BOUND_dup2);
	if (fn)
		return fn(fd, target);
	/* dup3 refuses fd == target; dup2 then only checks that fd is open. */
	if (fd == target)
		return raw_syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -1 : target;
	return (int)raw_syscall(SYS_dup3, fd, target, 0);
}

int libc_dup3(int fd, int target, int flags)
{
	int (*fn)(int, int, int) = libc_function(BOUND_dup3);
	return fn ? fn(fd, target, flags) : (int)raw_syscall(SYS_dup3, fd, target, flags);
}

int libc_fcntl(int fd, int cmd, void *arg)
{
	int (*fn)(int, int, ...) = libc_function(BOUND_fcntl);
	return fn ? fn(fd, cmd, arg) : (int)raw_syscall(SYS_fcntl, fd, cmd, arg);
}

int libc_fcntl64(int fd, int cmd, void *arg)
{
	int (*fn)(int, int, ...) = libc_function(BOUND_fcntl64);
	if (fn == NULL)
		fn = libc_function(BOUND_fcntl);
	return fn ? fn(fd, cmd, arg) : (int)raw_syscall(SYS_fcntl, fd, cmd, arg);
}

int libc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	int (*fn)(int, int, int, struct epoll_event *) = libc_function(BOUND_epoll_ctl);
	return fn ? fn(epfd, op, fd, event) : (int)raw_syscall(SYS_epoll_ctl, epfd, op, fd, event);
}

int libc_epoll_create(int size)
{
	int (*fn)(int) = libc_function(BOUND_epoll_create);
#ifdef SYS_epoll_create
	return fn ? fn(size) : (int)raw_syscall(SYS_epoll_create, size);
#else
	return fn ? fn(size) : (size <= 0 ? (errno = EINVAL, -1) : (int)raw_syscall(SYS_epoll_create1, 0));
#endif
}

int libc_epoll_create1(int flags)
{
	int (*fn)(int) = libc_function(BOUND_epoll_create1);
	return fn ? fn(flags) : (int)raw_syscall(SYS_epoll_create1, flags);
}

long libc_syscall(long number, long a, long b, long c, long d, long e, long f)
{
	long (*fn)(long, ...) = (long (*)(long, ...))libc_function(BOUND_syscall);
	return fn ? fn(number, a, b, c, d, e, f) : raw_syscall(number, a, b, c, d, e, f);
}

ssize_t libc_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, const struct msghdr *, int) = libc_function(BOUND_sendmsg);
	return fn ? fn(fd, msg, flags) : raw_syscall(SYS_sendmsg, fd, msg, flags);
}

ssize_t libc_recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t (*fn)(int, struct msghdr *, int) = libc_function(BOUND_recvmsg);
	return fn ? fn(fd, msg, flags) : raw_syscall(SYS_recvmsg, fd, msg, flags);
}

int libc_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
	int (*fn)(int, struct mmsghdr *, unsigned int, int) = libc_function(BOUND_sendmmsg);
	return fn ? fn(fd, msgs, n, flags) : (int)raw_syscall(SYS_sendmmsg, fd, msgs, n, flags);
}

int libc_recvmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags,
		  struct timespec *timeout)
{
	int (*fn)(int, struct mmsghdr *, unsigned int, int, struct timespec *) = libc_function(BOUND_recvmmsg);
	return fn ? fn(fd, msgs, n, flags, timeout)
		  : (int)raw_syscall(SYS_recvmmsg, fd, msgs, n, flags, timeout);
}

/* No system-call fallback for these: they are never called before the
 * constructor has bound them, and without libc they cannot be emulated. */
typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *,
		     const posix_spawnattr_t *, char *const[], char *const[]);

int libc_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	libc_bind();
	spawn_fn *fn = (spawn_fn *)libc_function(BOUND_posix_spawn);
	return fn ? fn(pid, path, actions, attr, argv, envp) : ENOSYS; /* an error number */
}

int libc_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
		      const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	libc_bind();
	spawn_fn *fn = (spawn_fn *)libc_function(BOUND_posix_spawnp);
	return fn ? fn(pid, file, actions, attr, argv, envp) : ENOSYS;
}

int libc_system(const char *command)
{
	libc_bind();
	int (*fn)(const char *) = (int (*)(const char *))libc_function(BOUND_system);
	if (fn == NULL) {
		errno = ENOSYS;
		return command == NULL ? 0 : -1; /* no shell can be run */
	}
	return fn(command);
}

int libc_fclose(FILE *stream)
{
	libc_bind();
	int (*fn)(FILE *) = (int (*)(FILE *))libc_function(BOUND_fclose);
	if (fn == NULL) {
		errno = ENOSYS;
		return EOF;
	}
	return fn(stream);
}

FILE *libc_popen(const char *command, const char *type)
{
	libc_bind();
	FILE *(*fn)(const char *, const char *) =
		(FILE * (*)(const char *, const char *))libc_function(BOUND_popen);
	if (fn == NULL) {
		errno = ENOSYS;
		return NULL;
	}
	return fn(command, type);
}
