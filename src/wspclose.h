/* wspclose.h: public header of libwspclose, the Winsock close-semantics preload
 * library. Gives Linux programs the Winsock SO_DONTLINGER socket option. */
#ifndef WSPCLOSE_H
#define WSPCLOSE_H

#include <sys/socket.h>

/* Winsock defines SO_DONTLINGER as the complement of SO_LINGER; libwspclose
 * emulates it on top of Linux's SO_LINGER (level SOL_SOCKET, an int value:
 * nonzero turns lingering off and keeps l_linger). Meaningful only while
 * libwspclose is preloaded; without it the kernel answers ENOPROTOOPT. */
#ifndef SO_DONTLINGER
#define SO_DONTLINGER ((int)(~SO_LINGER))
#endif

#endif /* WSPCLOSE_H */
