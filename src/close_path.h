/* close_path.h: carries out close() of one descriptor: gathers the facts,
 * asks close_decide() for the row, and executes it. */
#ifndef WSPCLOSE_CLOSE_PATH_H
#define WSPCLOSE_CLOSE_PATH_H

#include "close_decision.h"

/* Same contract as close(2) (plus W1's EWOULDBLOCK for explicit closes).
 * Async-signal-safe: atomics and system calls only. */
int close_path_close(int fd, enum close_origin origin);

#endif
