/* config.h: the WSPCLOSE_* environment settings (§7), read once. */
#ifndef WSPCLOSE_CONFIG_H
#define WSPCLOSE_CONFIG_H

#include <stdbool.h>

enum trace_format { TRACE_TEXT, TRACE_JSON };

/* WSPCLOSE_WINE: auto (the default: wineserver is recognised by its
 * executable's name), on (this process is wineserver), off (no Wine profile:
 * Wine's processes are programs like any other). */
enum wine_setting { WINE_AUTO, WINE_ON, WINE_OFF };

struct wspclose_config {
	const char *trace_target;   /* NULL (off), "stderr" or a path */
	enum trace_format trace_format;
	long grace_ms;              /* WSPCLOSE_GRACE_MS, default 60000 */
	long max_held;              /* WSPCLOSE_MAX_HELD, default 4096 */
	bool passthrough;           /* WSPCLOSE_PASSTHROUGH */
	bool stats;                 /* WSPCLOSE_STATS */
	const char *findings_file;  /* WSPCLOSE_FINDINGS_FILE (set by wspclose --strict) */
	enum wine_setting wine;     /* WSPCLOSE_WINE */
};

#define WSPCLOSE_DEFAULT_GRACE_MS 60000L
#define WSPCLOSE_DEFAULT_MAX_HELD 4096L
#define WSPCLOSE_MAX_GRACE_MS 86400000L   /* one day */
#define WSPCLOSE_MAX_MAX_HELD 1048576L

/* Reads the environment through `getenv_fn` (secure_getenv in the library, a
 * stub in tests). Each invalid value writes one warning line to `warn_fd`
 * and keeps the default. Returns the number of warnings written. */
int config_load(struct wspclose_config *out,
		const char *(*getenv_fn)(const char *name), int warn_fd);

/* The process-wide settings, defaults until lib_init loads them. */
extern struct wspclose_config wspclose_settings;

#endif
