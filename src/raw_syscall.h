/* raw_syscall.h: the system calls the library makes itself. The
 * application's syscall() is interposed (entry_syscall.c), and a call of
 * syscall() from inside the library would reach that interposer through
 * the dynamic linker; so the library never calls syscall(): it traps into
 * the kernel here. Same contract as syscall(2): -1 and errno on failure.
 * Async-signal-safe, not a cancellation point. */
#ifndef WSPCLOSE_RAW_SYSCALL_H
#define WSPCLOSE_RAW_SYSCALL_H

#include <sys/syscall.h>

/* Arguments are read as six longs, as syscall(2) reads them. */
long raw_syscall(long number, ...);

/* The kernel's answer as it is: a negative errno on failure. */
long raw_syscall6(long number, long a, long b, long c, long d, long e, long f);

#endif
