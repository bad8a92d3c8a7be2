/* reaper.h: the background thread that owns held copies until their
 * teardown finishes (§3). */
#ifndef WSPCLOSE_REAPER_H
#define WSPCLOSE_REAPER_H

#include <stdbool.h>

/* Starts the thread if it is not running yet, and waits (at most 1 s) until
 * it runs: closes hand copies off only once it does (they degrade before).
 * Not async-signal-safe (it creates a thread): called where a TCP socket is
 * created or accepted, so that close() itself never has to. */
void reaper_start_once(void);

/* close() path, async-signal-safe: */
bool reaper_is_running(void);
/* Counts one more held copy against WSPCLOSE_MAX_HELD; false when full. */
bool reaper_reserve(void);
void reaper_unreserve(void);
/* Held copies right now (reserved ones included). */
long reaper_held_count(void);
/* Copies still held, or released with their trace lines not yet written. */
bool reaper_settling(void);
/* Gives the reaper a held copy whose entry is filled in. */
void reaper_hand_off(int copy_fd, bool urgent);

/* dup2()/dup3() onto one of the library's numbers: moves the library's
 * descriptor elsewhere and returns once fd is free for the application.
 * Blocks only for the reaper's turn-around (it never blocks while moving).
 * False (nothing done) in a signal handler that interrupted this thread
 * inside the hand-off protocol, which could not wait for itself. */
bool reaper_vacate(int fd);

/* fork() child: the reaper thread does not exist there; close what it held
 * and let the next TCP socket start a new one. */
void reaper_forget_after_fork(void);

#endif
