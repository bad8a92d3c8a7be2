/* trace_line.h: one trace line under construction (trace_line.c): the
 * builders that trace.c's events are written with. Text lines are
 * "key=value" pairs after a timestamp; JSON lines one object. A line that
 * would pass TRACE_LINE_MAX_BYTES is cut, keeping room for its end. */
#ifndef WSPCLOSE_TRACE_LINE_H
#define WSPCLOSE_TRACE_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TRACE_LINE_MAX_BYTES 2048

struct trace_line {
	char text[TRACE_LINE_MAX_BYTES];
	size_t len;
	bool fields; /* at least one field written */
	bool json;   /* a JSON object, else key=value text */
};

/* Starts a line: time, pid, tid and event. */
void line_begin(struct trace_line *l, bool json, const char *event, int64_t time_ns, pid_t pid,
		pid_t tid);

void line_put_str(struct trace_line *l, const char *s);
void line_put_uint(struct trace_line *l, uint64_t v);
void line_put_int(struct trace_line *l, int64_t v);
/* v in exactly `width` decimal digits, zero-padded. */
void line_put_padded(struct trace_line *l, unsigned v, int width);
/* ISO 8601 UTC with microseconds. */
void line_put_time(struct trace_line *l, int64_t time_ns);

/* A field: " key=" or ",\"key\":" as the format wants, then its value. */
void line_begin_field(struct trace_line *l, const char *key);
void line_field_str(struct trace_line *l, const char *key, const char *value);
void line_field_int(struct trace_line *l, const char *key, int64_t value);
void line_field_bool(struct trace_line *l, const char *key, bool value);
/* Milliseconds with three decimals, from nanoseconds. */
void line_field_ms(struct trace_line *l, const char *key, int64_t ns);

/* CLOCK_REALTIME in nanoseconds. */
int64_t line_realtime_ns(void);

#endif
