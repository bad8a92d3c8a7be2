/* raw_syscall.c: the library's own way into the kernel (see raw_syscall.h):
 * the system call instruction on x86-64 and AArch64; elsewhere the C
 * library's syscall(), found once with dlsym(RTLD_NEXT) so that it is never
 * the library's own interposer. */
#include "raw_syscall.h"

#include <errno.h>
#include <stdarg.h>

#if defined(__x86_64__)
long raw_syscall6(long number, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
long raw_syscall6(long number, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = number;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#include <dlfcn.h>
#include <pthread.h>

static long (*libc_syscall_function)(long, ...);
static pthread_once_t libc_syscall_once = PTHREAD_ONCE_INIT;

static void find_libc_syscall(void)
{
	libc_syscall_function = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
}

long raw_syscall6(long number, long a, long b, long c, long d, long e, long f)
{
	/* Bound by the constructor; before it, only other constructors run. */
	pthread_once(&libc_syscall_once, find_libc_syscall);
	if (libc_syscall_function == NULL)
		return -ENOSYS;
	int saved = errno;
	long ret = libc_syscall_function(number, a, b, c, d, e, f);
	if (ret == -1)
		ret = -errno;
	errno = saved;
	return ret;
}
#endif

/* Six argument slots are read whatever the call passed, as syscall(2)
 * reads them: past the last argument that reads the caller's stack, which
 * AddressSanitizer would report, so it does not instrument this function. */
__attribute__((no_sanitize_address)) long raw_syscall(long number, ...)
{
	va_list args;
	va_start(args, number);
	long a = va_arg(args, long), b = va_arg(args, long), c = va_arg(args, long);
	long d = va_arg(args, long), e = va_arg(args, long), f = va_arg(args, long);
	va_end(args);
	long ret = raw_syscall6(number, a, b, c, d, e, f);
	if ((unsigned long)ret > -4096UL) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}
