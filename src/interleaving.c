/* interleaving.c: random pauses for the interleaving-pauses test build
 * (compiled only there). They stretch the windows between the atomic steps
 * of the hand-off protocol to the scale of a whole close() in another
 * thread or a signal handler. */
#include "interleaving.h"
#include "raw_syscall.h"

#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAUSE_NS 200000

/* Per thread, so that no thread waits for another to draw a number;
 * initial-exec TLS is a plain access, fine in a signal handler. */
static __thread uint32_t random_state __attribute__((tls_model("initial-exec")));

static uint32_t next_random(void)
{
	uint32_t x = random_state;
	if (x == 0) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		x = (uint32_t)now.tv_nsec ^ (uint32_t)(uintptr_t)&random_state;
		x |= 1;
	}
	/* xorshift32 */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	random_state = x;
	return x;
}

void interleaving_point(void)
{
	uint32_t r = next_random();
	if ((r & 3) != 0)
		return;
	struct timespec pause = { 0, (long)((r >> 2) % MAX_PAUSE_NS) };
	raw_syscall(SYS_nanosleep, &pause, NULL);
}
