/* trace_line.c: builds one trace line, text (key=value) or JSON, by hand on
 * the caller's stack: no snprintf, no malloc, async-signal-safe. trace.c
 * decides what goes in a line and where it is written. */
#include "trace_line.h"
#include "address_text.h"
#include "monotonic.h"

#include <string.h>
#include <time.h>

static void line_put(struct trace_line *l, const char *s, size_t n)
{
	if (n > sizeof l->text - 2 - l->len)
		n = sizeof l->text - 2 - l->len; /* keep room for the newline */
	memcpy(l->text + l->len, s, n);
	l->len += n;
}

void line_put_str(struct trace_line *l, const char *s)
{
	line_put(l, s, strlen(s));
}

void line_put_uint(struct trace_line *l, uint64_t v)
{
	char digits[20];
	line_put(l, digits, format_decimal(digits, v));
}

void line_put_int(struct trace_line *l, int64_t v)
{
	if (v < 0) {
		line_put_str(l, "-");
		line_put_uint(l, (uint64_t)0 - (uint64_t)v);
	} else {
		line_put_uint(l, (uint64_t)v);
	}
}

void line_put_padded(struct trace_line *l, unsigned v, int width)
{
	char digits[12];
	for (int i = width - 1; i >= 0; i--) {
		digits[i] = (char)('0' + v % 10);
		v /= 10;
	}
	line_put(l, digits, (size_t)width);
}

/* JSON string body: quotes, backslashes and control characters escaped;
 * the plain runs between them copied whole. */
static void line_put_json_escaped(struct trace_line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *plain = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c != '"' && c != '\\' && c >= 0x20)
			continue;
		line_put(l, plain, (size_t)(s - plain));
		plain = s + 1;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			line_put(l, esc, 2);
		} else {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			line_put(l, esc, 6);
		}
	}
	line_put(l, plain, (size_t)(s - plain));
}

void line_begin_field(struct trace_line *l, const char *key)
{
	if (l->json) {
		line_put_str(l, l->fields ? ",\"" : "\"");
		line_put_str(l, key);
		line_put_str(l, "\":");
	} else {
		line_put_str(l, " ");
		line_put_str(l, key);
		line_put_str(l, "=");
	}
	l->fields = true;
}

void line_field_str(struct trace_line *l, const char *key, const char *value)
{
	line_begin_field(l, key);
	if (l->json) {
		line_put_str(l, "\"");
		line_put_json_escaped(l, value);
		line_put_str(l, "\"");
	} else if (value[0] == '\0' || strchr(value, ' ') != NULL) {
		line_put_str(l, "\"");
		line_put_str(l, value);
		line_put_str(l, "\"");
	} else {
		line_put_str(l, value);
	}
}

void line_field_int(struct trace_line *l, const char *key, int64_t value)
{
	line_begin_field(l, key);
	line_put_int(l, value);
}

void line_field_bool(struct trace_line *l, const char *key, bool value)
{
	line_begin_field(l, key);
	line_put_str(l, l->json ? (value ? "true" : "false") : (value ? "1" : "0"));
}

/* Milliseconds with three decimals, from nanoseconds. */
void line_field_ms(struct trace_line *l, const char *key, int64_t ns)
{
	line_begin_field(l, key);
	if (ns < 0)
		ns = 0;
	line_put_uint(l, (uint64_t)(ns / 1000000));
	line_put_str(l, ".");
	line_put_padded(l, (unsigned)(ns / 1000 % 1000), 3);
}

/* UTC civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void line_civil_from_days(int64_t days, int *year, unsigned *month, unsigned *day)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*day = doy - (153 * mp + 2) / 5 + 1;
	*month = mp < 10 ? mp + 3 : mp - 9;
	*year = (int)(yoe + era * 400 + (*month <= 2));
}

int64_t line_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

void line_put_time(struct trace_line *l, int64_t time_ns)
{
	struct timespec ts = { .tv_sec = time_ns / NS_PER_SEC, .tv_nsec = time_ns % NS_PER_SEC };
	int year;
	unsigned month, day;
	line_civil_from_days(ts.tv_sec / 86400, &year, &month, &day);
	unsigned secs = (unsigned)(ts.tv_sec % 86400);
	line_put_padded(l, (unsigned)year, 4);
	line_put_str(l, "-");
	line_put_padded(l, month, 2);
	line_put_str(l, "-");
	line_put_padded(l, day, 2);
	line_put_str(l, "T");
	line_put_padded(l, secs / 3600, 2);
	line_put_str(l, ":");
	line_put_padded(l, secs / 60 % 60, 2);
	line_put_str(l, ":");
	line_put_padded(l, secs % 60, 2);
	line_put_str(l, ".");
	line_put_padded(l, (unsigned)(ts.tv_nsec / 1000), 6);
	line_put_str(l, "Z");
}

void line_begin(struct trace_line *l, bool json, const char *event, int64_t time_ns, pid_t pid,
		pid_t tid)
{
	l->len = 0;
	l->fields = false;
	l->json = json;
	if (json) {
		line_put_str(l, "{\"time\":\"");
		line_put_time(l, time_ns);
		line_put_str(l, "\"");
		l->fields = true;
	} else {
		line_put_time(l, time_ns);
		line_put_str(l, " libwspclose");
	}
	line_field_int(l, "pid", pid);
	line_field_int(l, "tid", tid);
	line_field_str(l, "event", event);
}
