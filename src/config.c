/* config.c: parses the WSPCLOSE_* environment variables (§7). Invalid
 * values are reported with one line each and replaced by the default. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wspclose_config wspclose_settings = {
	.trace_target = NULL,
	.trace_format = TRACE_TEXT,
	.grace_ms = WSPCLOSE_DEFAULT_GRACE_MS,
	.max_held = WSPCLOSE_DEFAULT_MAX_HELD,
	.passthrough = false,
	.stats = false,
};

/* One line, one write(): the constructor may run before stdio is usable. */
static void warn(int fd, const char *name, const char *value, const char *why,
		 const char *fallback)
{
	/* Control characters would break the one-line promise: show them as '?'. */
	char shown[201];
	size_t len = 0;
	for (; value[len] != '\0' && len < sizeof shown - 1; len++)
		shown[len] = (unsigned char)value[len] < 0x20 || value[len] == 0x7f ? '?' : value[len];
	shown[len] = '\0';
	char line[512];
	int n = snprintf(line, sizeof line,
			 "libwspclose: ignoring %s=\"%s\": %s; using %s\n",
			 name, shown, why, fallback);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	ssize_t ignored = write(fd, line, (size_t)n);
	(void)ignored;
}

/* Decimal digits only, in [min, max]. */
static bool parse_bounded(const char *s, long min, long max, long *out)
{
	if (*s == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno == ERANGE || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int load_number(const char *(*getenv_fn)(const char *), int warn_fd,
		       const char *name, long min, long max, long *value)
{
	const char *s = getenv_fn(name);
	if (s == NULL)
		return 0;
	if (parse_bounded(s, min, max, value))
		return 0;
	char why[96], fallback[32];
	snprintf(why, sizeof why, "expected a whole number from %ld to %ld", min, max);
	snprintf(fallback, sizeof fallback, "%ld", *value);
	warn(warn_fd, name, s, why, fallback);
	return 1;
}

static int load_flag(const char *(*getenv_fn)(const char *), int warn_fd,
		     const char *name, bool *value)
{
	const char *s = getenv_fn(name);
	if (s == NULL)
		return 0;
	if (strcmp(s, "0") == 0 || strcmp(s, "1") == 0) {
		*value = s[0] == '1';
		return 0;
	}
	warn(warn_fd, name, s, "expected 0 or 1", *value ? "1" : "0");
	return 1;
}

int config_load(struct wspclose_config *out,
		const char *(*getenv_fn)(const char *name), int warn_fd)
{
	struct wspclose_config c = {
		.trace_target = NULL,
		.trace_format = TRACE_TEXT,
		.grace_ms = WSPCLOSE_DEFAULT_GRACE_MS,
		.max_held = WSPCLOSE_DEFAULT_MAX_HELD,
	};
	int warnings = 0;

	const char *trace = getenv_fn("WSPCLOSE_TRACE");
	if (trace != NULL) {
		if (*trace == '\0') {
			warn(warn_fd, "WSPCLOSE_TRACE", trace,
			     "expected \"stderr\" or a file path", "no trace");
			warnings++;
		} else {
			c.trace_target = trace;
		}
	}

	const char *format = getenv_fn("WSPCLOSE_TRACE_FORMAT");
	if (format != NULL) {
		if (strcmp(format, "text") == 0)
			c.trace_format = TRACE_TEXT;
		else if (strcmp(format, "json") == 0)
			c.trace_format = TRACE_JSON;
		else {
			warn(warn_fd, "WSPCLOSE_TRACE_FORMAT", format,
			     "expected \"text\" or \"json\"", "text");
			warnings++;
		}
	}

	warnings += load_number(getenv_fn, warn_fd, "WSPCLOSE_GRACE_MS", 0,
				WSPCLOSE_MAX_GRACE_MS, &c.grace_ms);
	warnings += load_number(getenv_fn, warn_fd, "WSPCLOSE_MAX_HELD", 1,
				WSPCLOSE_MAX_MAX_HELD, &c.max_held);
	warnings += load_flag(getenv_fn, warn_fd, "WSPCLOSE_PASSTHROUGH", &c.passthrough);
	warnings += load_flag(getenv_fn, warn_fd, "WSPCLOSE_STATS", &c.stats);

	const char *wine = getenv_fn("WSPCLOSE_WINE");
	if (wine != NULL) {
		if (strcmp(wine, "auto") == 0)
			c.wine = WINE_AUTO;
		else if (strcmp(wine, "on") == 0)
			c.wine = WINE_ON;
		else if (strcmp(wine, "off") == 0)
			c.wine = WINE_OFF;
		else {
			warn(warn_fd, "WSPCLOSE_WINE", wine, "expected \"auto\", \"on\" or \"off\"",
			     "auto");
			warnings++;
		}
	}

	const char *findings = getenv_fn("WSPCLOSE_FINDINGS_FILE");
	if (findings != NULL && *findings == '\0') {
		warn(warn_fd, "WSPCLOSE_FINDINGS_FILE", findings, "expected a file path",
		     "no findings file");
		warnings++;
	} else {
		c.findings_file = findings;
	}

	*out = c;
	return warnings;
}
