/* w1_situation.h: the W1 situation the --strict test programs start from:
 * a loopback connection whose client has linger {1,2}, O_NONBLOCK and a
 * send queue its peer is not reading. */
#ifndef WSPCLOSE_TEST_W1_SITUATION_H
#define WSPCLOSE_TEST_W1_SITUATION_H

struct w1_situation {
	int listener;
	int client; /* close() of it is W1 under the library */
	int peer;
};

/* Sets it up; on failure prints "PROGRAM: what: error" and exits 1. */
void w1_situation_open(struct w1_situation *s, const char *program);

/* Prints "PROGRAM: what: strerror(errno)" to stderr and exits 1. */
_Noreturn void w1_die(const char *program, const char *what);

#endif
