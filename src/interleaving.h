/* interleaving.h: the points where closers, signal handlers and the reaper
 * interleave. A test build (--enable-interleaving-pauses) pauses at random
 * there; in every other build interleaving_point() is empty. */
#ifndef WSPCLOSE_INTERLEAVING_H
#define WSPCLOSE_INTERLEAVING_H

#ifdef WSPCLOSE_INTERLEAVING_PAUSES
/* One time in four, sleeps up to 200 µs. Async-signal-safe. */
void interleaving_point(void);
#else
static inline void interleaving_point(void)
{
}
#endif

#endif
