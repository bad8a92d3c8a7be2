/* strict_w1_ignored.c: a program that relies on Linux close(): it ignores
 * the W1 EWOULDBLOCK of a lingering non-blocking close and exits 0. */
#include "w1_situation.h"

#include <unistd.h>

int main(void)
{
	struct w1_situation s;
	w1_situation_open(&s, "strict_w1_ignored");
	/* The bug under test: Windows refuses this close (WSAEWOULDBLOCK) and
	 * the socket stays open, but the program does not look. */
	(void)close(s.client);
	return 0;
}
