/* entry_process.c: the process-creating calls and what each means for the
 * library: vfork() (an assembly trampoline), clone(), _Fork(), and the
 * fork() handlers. A socket a child inherits has crossed a process boundary
 * (§1); a child that shares our memory must find the library inert there
 * (§3, vm_sharing.h); a fork child closes what the reaper held. */
#include "fd_table.h"
#include "fork_guard.h"
#include "libc_binding.h"
#include "raw_syscall.h"
#include "reaper.h"
#include "trace.h"
#include "vm_sharing.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread int vm_sharing_vfork_child __attribute__((tls_model("initial-exec")));
_Atomic bool vm_sharing_needs_pid_check;
static _Atomic long owner_pid;

void vm_sharing_note_owner(void)
{
	atomic_store(&owner_pid, raw_syscall(SYS_getpid));
}

bool vm_sharing_pid_differs(void)
{
	return raw_syscall(SYS_getpid) != atomic_load(&owner_pid);
}

/* Sockets without FD_CLOEXEC go to a child that may exec: shared from now
 * on, so that the parent's close of its own copy is the kernel's. */
static void mark_inherited_sockets(void)
{
	int saved = errno;
	fd_table_mark_inherited_shared(false);
	errno = saved;
}

/* ---------------------------------------------------------------- vfork */

/* Called from the trampoline below (hidden: never interposable). */
void wspclose_before_vfork(void);
long wspclose_vfork_failed(long negative_errno);

/* The parent's half, before the system call. */
__attribute__((used, visibility("hidden"))) void wspclose_before_vfork(void)
{
	if (!vm_sharing_in_child())
		mark_inherited_sockets();
}

__attribute__((used, visibility("hidden"))) long wspclose_vfork_failed(long negative_errno)
{
	errno = (int)-negative_errno;
	return -1;
}

#if defined(__x86_64__)
/* vfork() cannot be wrapped by a C function: the child would return
 * through the wrapper's frame, which the parent still needs. Like glibc's
 * own, this keeps the return address in a register across the call (rdi;
 * rsi holds the flag's TLS offset: the kernel preserves both), and only
 * the parent lowers the flag. */
__asm__(
	"	.text\n"
	"	.globl vfork\n"
	"	.type vfork, @function\n"
	"vfork:\n"
	"	subq $8, %rsp\n"
	"	call wspclose_before_vfork\n"
	"	addq $8, %rsp\n"
	"	movq vm_sharing_vfork_child@gottpoff(%rip), %rsi\n"
	"	movl $1, %fs:(%rsi)\n"
	"	popq %rdi\n"
	"	movl $58, %eax\n" /* SYS_vfork */
	"	syscall\n"
	"	pushq %rdi\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	movl $0, %fs:(%rsi)\n"
	"	cmpq $-4095, %rax\n"
	"	jae 2f\n"
	"1:	ret\n"
	"2:	movq %rax, %rdi\n"
	"	jmp wspclose_vfork_failed\n"
	"	.size vfork, .-vfork\n");
#else
/* No trampoline on this architecture: vfork() is libc's, and a child that
 * shares our memory is told apart by its process ID on every call that
 * would change the library's state. */
__attribute__((constructor)) static void no_vfork_trampoline(void)
{
	atomic_store(&vm_sharing_needs_pid_check, true);
}
#endif

/* ---------------------------------------------------------------- clone */

/* glibc reads parent_tid, tls and child_tid only when flags ask for them;
 * forwarding all three as pointers is what its own callers may pass. */
WSPCLOSE_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	void *parent_tid = va_arg(ap, void *);
	void *tls = va_arg(ap, void *);
	void *child_tid = va_arg(ap, void *);
	va_end(ap);
	if (!vm_sharing_in_child()) {
		if (flags & CLONE_VM)
			atomic_store(&vm_sharing_needs_pid_check, true);
		if (!(flags & CLONE_FILES))
			mark_inherited_sockets();
	}
	int (*real_clone)(int (*)(void *), void *, int, void *, ...) =
		(int (*)(int (*)(void *), void *, int, void *, ...))libc_function(BOUND_clone);
	if (real_clone == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return real_clone(fn, stack, flags, arg, parent_tid, tls, child_tid);
}

/* ---------------------------------------------------------------- fork */


void fork_handlers_parent(void)
{
	int saved = errno;
	fd_table_mark_all_shared();
	fork_guard_done();
	errno = saved;
}

/* Single-threaded, async-signal-safe: what the parent's other threads were
 * doing is not going on here. */
void fork_handlers_child(void)
{
	vm_sharing_note_owner();
	trace_after_fork_in_child();
	fd_table_drop_claims();
	/* First: the clean-up below closes descriptors inside windows, and
	 * the parent's pending fork() is this one. */
	fork_guard_reset_in_child();
	reaper_forget_after_fork();
	fd_table_mark_all_shared();
}

/* _Fork() (glibc 2.34) runs no fork handlers: the same clean-up, here. */
WSPCLOSE_EXPORT pid_t _Fork(void)
{
	pid_t (*real_fork_without_handlers)(void) = (pid_t (*)(void))libc_function(BOUND__Fork);
	if (real_fork_without_handlers == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (vm_sharing_in_child())
		return real_fork_without_handlers();
	fork_guard_prepare();
	pid_t pid = real_fork_without_handlers();
	if (pid == 0)
		fork_handlers_child();
	else
		fork_handlers_parent();
	return pid;
}
