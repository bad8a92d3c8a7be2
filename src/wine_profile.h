/* wine_profile.h: the Wine profile (libwspclose(7) §3.1). Under Wine,
 * wineserver creates, connects, accepts, shuts down and finally closes every
 * socket; the Windows program's processes only borrow copies of the
 * descriptors (SCM_RIGHTS), temporary or cached. So the semantics are
 * applied inside wineserver, where a close() of a TCP socket is the
 * closesocket() of its last Windows handle: the copies it passed out do not
 * make the socket shared, and no call may block or fail there (wineserver is
 * single-threaded and ignores close()'s result). In the Windows program's
 * own processes the library stays inert. */
#ifndef WSPCLOSE_WINE_PROFILE_H
#define WSPCLOSE_WINE_PROFILE_H

#include "config.h"

#include <stdbool.h>

enum process_role {
	ROLE_PROGRAM,    /* any program: the semantics as documented */
	ROLE_WINESERVER, /* wineserver: the Wine profile */
	ROLE_WINE_CLIENT /* a Wine process of a Windows program: inert */
};


/* What the executable's file name makes of this process ("wineserver64",
 * "wine64", ...), for WINE_AUTO. Pure: tested directly. */
enum process_role wine_role_of_executable(const char *path, enum wine_setting setting);

/* Constructor only: reads /proc/self/exe and remembers the role. */
enum process_role wine_profile_detect(enum wine_setting setting);

/* True inside wineserver (one load). */
bool wine_profile_in_wineserver(void);

#endif
