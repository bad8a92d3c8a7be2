/* monotonic.h: the one clock the library uses (CLOCK_MONOTONIC, in ns);
 * clock_gettime is async-signal-safe. */
#ifndef WSPCLOSE_MONOTONIC_H
#define WSPCLOSE_MONOTONIC_H

#include <stdint.h>
#include <time.h>

#define NS_PER_MS 1000000LL
#define NS_PER_SEC 1000000000LL

static inline int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

#endif
