/* wine_profile.c: which part a process plays under Wine (wine_profile.h),
 * decided once by the constructor from the executable's name. */
#include "wine_profile.h"
#include "raw_syscall.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static bool in_wineserver;

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum process_role wine_role_of_executable(const char *path, enum wine_setting setting)
{
	if (setting == WINE_ON)
		return ROLE_WINESERVER;
	if (setting == WINE_OFF || path == NULL)
		return ROLE_PROGRAM;
	const char *name = strrchr(path, '/');
	name = name != NULL ? name + 1 : path;
	/* wineserver, wineserver64, wineserver32 (Debian's names). */
	if (starts_with(name, "wineserver"))
		return ROLE_WINESERVER;
	/* The loader of a Windows program: wine, wine64 and their preloaders. */
	static const char *const loaders[] = { "wine", "wine64", "wine-preloader",
					       "wine64-preloader", NULL };
	for (int i = 0; loaders[i] != NULL; i++)
		if (strcmp(name, loaders[i]) == 0)
			return ROLE_WINE_CLIENT;
	return ROLE_PROGRAM;
}

enum process_role wine_profile_detect(enum wine_setting setting)
{
	char path[4096];
	const char *exe = NULL;
	int saved = errno;
	if (setting == WINE_AUTO) {
		long n = raw_syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", path, sizeof path - 1);
		if (n > 0) {
			path[n] = '\0';
			exe = path;
		}
	}
	errno = saved;
	enum process_role role = wine_role_of_executable(exe, setting);
	in_wineserver = role == ROLE_WINESERVER;
	return role;
}

bool wine_profile_in_wineserver(void)
{
	return in_wineserver;
}
