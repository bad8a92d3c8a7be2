/* fd_state.c: the transition table of fd_state.h, and its check. */
#include "fd_state.h"
#include "fd_table.h"
#include "raw_syscall.h"

#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum fd_class fd_state_class(uint32_t state)
{
	if (state & FD_LIBRARY_OWNED)
		return FD_CLASS_LIBRARY;
	if (state == FD_TOMBSTONE)
		return FD_CLASS_TOMBSTONE;
	switch (fd_kind(state)) {
	case FD_KIND_TCP:
	case FD_KIND_OTHER_SOCKET:
		return state & FD_CLOSING ? FD_CLASS_CLAIMED : FD_CLASS_SOCKET;
	case FD_KIND_EPOLL:
		return state & FD_CLOSING ? FD_CLASS_CLAIMED : FD_CLASS_EPOLL;
	default:
		return FD_CLASS_UNKNOWN;
	}
}

const char *fd_class_name(enum fd_class c)
{
	static const char *const names[FD_CLASS_COUNT] = {
		"UNKNOWN", "SOCKET", "EPOLL", "CLAIMED", "TOMBSTONE", "LIBRARY",
	};
	return c < FD_CLASS_COUNT ? names[c] : "?";
}

/* legal[from][to]: the table in fd_state.h. Columns: UNKNOWN SOCKET EPOLL
 * CLAIMED TOMBSTONE LIBRARY. */
static const bool legal[FD_CLASS_COUNT][FD_CLASS_COUNT] = {
	[FD_CLASS_UNKNOWN]   = { true,  true,  true,  true,  false, true  },
	[FD_CLASS_SOCKET]    = { true,  true,  false, true,  false, true  },
	[FD_CLASS_EPOLL]     = { true,  true,  true,  true,  false, true  },
	[FD_CLASS_CLAIMED]   = { true,  true,  true,  true,  true,  false },
	[FD_CLASS_TOMBSTONE] = { true,  true,  true,  false, false, true  },
	[FD_CLASS_LIBRARY]   = { true,  true,  true,  false, false, true  },
};

bool fd_transition_is_legal(enum fd_class from, enum fd_class to)
{
	return from < FD_CLASS_COUNT && to < FD_CLASS_COUNT && legal[from][to];
}

static void say(const char *text)
{
	raw_syscall(SYS_write, STDERR_FILENO, text, strlen(text));
}

void fd_state_violation(uint32_t from, uint32_t to, const char *by)
{
	say("libwspclose: illegal descriptor state change ");
	say(fd_class_name(fd_state_class(from)));
	say(" -> ");
	say(fd_class_name(fd_state_class(to)));
	say(" by ");
	say(by);
	say("\n");
	abort();
}
