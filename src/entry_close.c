/* entry_close.c: the interposed close(). */
#include "close_path.h"
#include "libc_binding.h"

#include <unistd.h>

WSPCLOSE_EXPORT int close(int fd)
{
	return close_path_close(fd, CLOSE_EXPLICIT);
}
