/* json_check.h: a small strict JSON parser (RFC 8259) for the trace tests:
 * builds a tree of values; rejects anything a strict reader would. */
#ifndef WSPCLOSE_TEST_JSON_CHECK_H
#define WSPCLOSE_TEST_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_member;

struct json_value {
	enum json_type type;
	bool boolean;             /* JSON_BOOL */
	double number;            /* JSON_NUMBER */
	bool is_integer;          /* JSON_NUMBER with no fraction or exponent that
				   * fits in long long */
	long long integer;        /* valid when is_integer */
	char *string;             /* JSON_STRING: UTF-8, NUL-terminated */
	size_t string_len;        /* bytes, not counting the NUL (may hold NULs) */
	struct json_value **items;/* JSON_ARRAY */
	size_t item_count;
	struct json_member *members; /* JSON_OBJECT, in document order */
	size_t member_count;
};

struct json_member {
	char *key;
	size_t key_len;
	struct json_value *value;
};

/* Parses exactly one JSON value from text[0..len): leading and trailing
 * whitespace (space, tab, CR, LF) is allowed, anything else after the value
 * is an error. Strict: no comments, no trailing commas, no single quotes, no
 * leading zeros or '+', no raw control characters or invalid UTF-8 in
 * strings, no lone surrogates, no duplicate keys in an object, nesting at
 * most JSON_MAX_DEPTH. Returns the tree (free with json_free), or NULL with
 * a message naming the byte offset in `error`. */
#define JSON_MAX_DEPTH 64
struct json_value *json_parse(const char *text, size_t len, char *error, size_t error_len);

void json_free(struct json_value *value);

/* The member `key` of an object, or NULL (also when `object` is not one). */
const struct json_value *json_get(const struct json_value *object, const char *key);

/* Shortcuts for the checks: NULL / false when absent or of another type. */
const char *json_get_string(const struct json_value *object, const char *key);
bool json_get_integer(const struct json_value *object, const char *key, long long *out);

/* "null", "boolean", ... for messages. */
const char *json_type_name(enum json_type type);

#endif
