/* vm_sharing.h: children that run on the library's own memory. A vfork()
 * child (CPython's subprocess, most spawn helpers) and a clone(CLONE_VM)
 * child share the parent's memory: anything the library wrote there would
 * change the parent's table, reaper and sockets (§3). There the library
 * changes nothing and every interposed call is the plain libc call. */
#ifndef WSPCLOSE_VM_SHARING_H
#define WSPCLOSE_VM_SHARING_H

#include <stdatomic.h>
#include <stdbool.h>

/* Raised by the vfork() trampoline in the calling thread before the system
 * call, lowered in the parent when the call returns: the child, which runs
 * on that thread's memory, sees it raised until it execs or exits. */
extern __thread int vm_sharing_vfork_child __attribute__((tls_model("initial-exec")));

/* True once the program made a clone(CLONE_VM) child other than through
 * vfork(), or where no vfork() trampoline exists: from then on, telling
 * the processes apart takes a getpid(). */
extern _Atomic bool vm_sharing_needs_pid_check;

/* The process whose memory this is: set by the constructor and in every
 * fork child. */
void vm_sharing_note_owner(void);
bool vm_sharing_pid_differs(void);

/* True when this code runs in a child that shares the library's memory
 * with its parent. One TLS load in the common case: async-signal-safe. */
static inline bool vm_sharing_in_child(void)
{
	if (vm_sharing_vfork_child)
		return true;
	if (!atomic_load_explicit(&vm_sharing_needs_pid_check, memory_order_relaxed))
		return false;
	return vm_sharing_pid_differs();
}

#endif
