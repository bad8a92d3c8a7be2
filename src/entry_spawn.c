/* entry_spawn.c: the interposed posix_spawn(), posix_spawnp(), system() and
 * popen(). They create processes without running fork handlers, so the
 * sockets their child inherits are marked shared here (§1: a socket
 * that crossed a process boundary gets kernel semantics): a shutdown on
 * the parent's behalf would cut off the child (the inetd pattern). */
#include "fd_table.h"
#include "libc_binding.h"
#include "vm_sharing.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>

static void mark_inherited(bool every_socket)
{
	if (vm_sharing_in_child())
		return;
	int saved = errno;
	fd_table_mark_inherited_shared(every_socket);
	errno = saved;
}

/* File actions may dup2() any descriptor into the child: then every socket
 * counts as inherited; otherwise those without FD_CLOEXEC. */
WSPCLOSE_EXPORT int posix_spawn(pid_t *pid, const char *path,
				const posix_spawn_file_actions_t *actions,
				const posix_spawnattr_t *attr, char *const argv[],
				char *const envp[])
{
	mark_inherited(actions != NULL);
	return libc_posix_spawn(pid, path, actions, attr, argv, envp);
}

WSPCLOSE_EXPORT int posix_spawnp(pid_t *pid, const char *file,
				 const posix_spawn_file_actions_t *actions,
				 const posix_spawnattr_t *attr, char *const argv[],
				 char *const envp[])
{
	mark_inherited(actions != NULL);
	return libc_posix_spawnp(pid, file, actions, attr, argv, envp);
}

WSPCLOSE_EXPORT int system(const char *command)
{
	if (command != NULL)
		mark_inherited(false);
	return libc_system(command);
}

WSPCLOSE_EXPORT FILE *popen(const char *command, const char *type)
{
	mark_inherited(false);
	return libc_popen(command, type);
}
