/* json_check.c: the strict JSON parser of json_check.h (recursive descent,
 * one pass, a tree of malloc'ed values). Test code: clarity over speed. */
#include "json_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *text;
	size_t len;
	size_t pos;
	int depth;
	char *error;
	size_t error_len;
	bool failed;
};

__attribute__((format(printf, 2, 3)))
static void fail_at(struct parser *p, const char *format, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	if (p->error == NULL || p->error_len == 0)
		return;
	char what[160];
	va_list ap;
	va_start(ap, format);
	vsnprintf(what, sizeof what, format, ap);
	va_end(ap);
	snprintf(p->error, p->error_len, "%s at byte %zu", what, p->pos);
}

static bool at_end(const struct parser *p)
{
	return p->pos >= p->len;
}

static int peek(const struct parser *p)
{
	return at_end(p) ? -1 : (unsigned char)p->text[p->pos];
}

static void skip_whitespace(struct parser *p)
{
	while (!at_end(p)) {
		char c = p->text[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static struct json_value *new_value(struct parser *p, enum json_type type)
{
	struct json_value *v = calloc(1, sizeof *v);
	if (v == NULL) {
		fail_at(p, "out of memory");
		return NULL;
	}
	v->type = type;
	return v;
}

/* ---------------------------------------------------------------- strings */

/* A growable byte buffer for string bodies. */
struct buffer {
	char *bytes;
	size_t len;
	size_t cap;
};

static bool buffer_put(struct buffer *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *grown = realloc(b->bytes, cap);
		if (grown == NULL)
			return false;
		b->bytes = grown;
		b->cap = cap;
	}
	memcpy(b->bytes + b->len, s, n);
	b->len += n;
	b->bytes[b->len] = '\0';
	return true;
}

static bool buffer_put_code_point(struct buffer *b, uint32_t cp)
{
	char out[4];
	size_t n;
	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		out[0] = (char)(0xF0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buffer_put(b, out, n);
}

static bool read_hex4(struct parser *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int c = peek(p);
		int digit;
		if (c >= '0' && c <= '9')
			digit = c - '0';
		else if (c >= 'a' && c <= 'f')
			digit = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			digit = c - 'A' + 10;
		else {
			fail_at(p, "bad \\u escape (4 hex digits expected)");
			return false;
		}
		v = v * 16 + (uint32_t)digit;
		p->pos++;
	}
	*out = v;
	return true;
}

/* After the backslash of a \u escape's 'u': one code point, joining a
 * surrogate pair; lone surrogates are errors. */
static bool read_unicode_escape(struct parser *p, uint32_t *out)
{
	uint32_t first;
	if (!read_hex4(p, &first))
		return false;
	if (first >= 0xDC00 && first <= 0xDFFF) {
		fail_at(p, "lone low surrogate \\u%04X", (unsigned)first);
		return false;
	}
	if (first < 0xD800 || first > 0xDBFF) {
		*out = first;
		return true;
	}
	if (p->pos + 2 > p->len || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
		fail_at(p, "high surrogate \\u%04X without its low half", (unsigned)first);
		return false;
	}
	p->pos += 2;
	uint32_t second;
	if (!read_hex4(p, &second))
		return false;
	if (second < 0xDC00 || second > 0xDFFF) {
		fail_at(p, "high surrogate followed by \\u%04X, not a low surrogate",
			(unsigned)second);
		return false;
	}
	*out = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
	return true;
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available),
 * or 0 when it is invalid (overlong, surrogate, above U+10FFFF, cut). */
static size_t utf8_sequence_length(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	size_t need;
	uint32_t cp, min;
	if ((s[0] & 0xE0) == 0xC0) {
		need = 2; cp = s[0] & 0x1F; min = 0x80;
	} else if ((s[0] & 0xF0) == 0xE0) {
		need = 3; cp = s[0] & 0x0F; min = 0x800;
	} else if ((s[0] & 0xF8) == 0xF0) {
		need = 4; cp = s[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need;
}

/* At the opening quote. Fills *out (malloc'ed, NUL-terminated). */
static bool parse_string_body(struct parser *p, char **out, size_t *out_len)
{
	struct buffer b = { NULL, 0, 0 };
	p->pos++; /* the opening quote */
	if (!buffer_put(&b, "", 0))
		goto oom;
	for (;;) {
		if (at_end(p)) {
			fail_at(p, "unterminated string");
			goto fail;
		}
		unsigned char c = (unsigned char)p->text[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20) {
			fail_at(p, "raw control character 0x%02x in a string", c);
			goto fail;
		}
		if (c == '\\') {
			p->pos++;
			int e = peek(p);
			const char *simple = NULL;
			switch (e) {
			case '"': simple = "\""; break;
			case '\\': simple = "\\"; break;
			case '/': simple = "/"; break;
			case 'b': simple = "\b"; break;
			case 'f': simple = "\f"; break;
			case 'n': simple = "\n"; break;
			case 'r': simple = "\r"; break;
			case 't': simple = "\t"; break;
			case 'u': {
				p->pos++;
				uint32_t cp;
				if (!read_unicode_escape(p, &cp))
					goto fail;
				if (!buffer_put_code_point(&b, cp))
					goto oom;
				continue;
			}
			default:
				fail_at(p, "bad escape \\%c", e < 0 ? '?' : e);
				goto fail;
			}
			p->pos++;
			if (!buffer_put(&b, simple, 1))
				goto oom;
			continue;
		}
		size_t n = utf8_sequence_length((const unsigned char *)p->text + p->pos,
						p->len - p->pos);
		if (n == 0) {
			fail_at(p, "invalid UTF-8 in a string");
			goto fail;
		}
		if (!buffer_put(&b, p->text + p->pos, n))
			goto oom;
		p->pos += n;
	}
	*out = b.bytes;
	*out_len = b.len;
	return true;
oom:
	fail_at(p, "out of memory");
fail:
	free(b.bytes);
	return false;
}

/* ---------------------------------------------------------------- numbers */

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static struct json_value *parse_number(struct parser *p)
{
	size_t start = p->pos;
	bool integral = true;
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0') {
		p->pos++;
		if (is_digit(peek(p))) {
			fail_at(p, "leading zero in a number");
			return NULL;
		}
	} else if (is_digit(peek(p))) {
		while (is_digit(peek(p)))
			p->pos++;
	} else {
		fail_at(p, "digit expected");
		return NULL;
	}
	if (peek(p) == '.') {
		integral = false;
		p->pos++;
		if (!is_digit(peek(p))) {
			fail_at(p, "digit expected after the decimal point");
			return NULL;
		}
		while (is_digit(peek(p)))
			p->pos++;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		integral = false;
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (!is_digit(peek(p))) {
			fail_at(p, "digit expected in the exponent");
			return NULL;
		}
		while (is_digit(peek(p)))
			p->pos++;
	}
	char digits[64];
	size_t n = p->pos - start;
	struct json_value *v = new_value(p, JSON_NUMBER);
	if (v == NULL)
		return NULL;
	if (n >= sizeof digits) {
		/* Valid, just long: keep the double only. */
		char *copy = strndup(p->text + start, n);
		v->number = copy ? strtod(copy, NULL) : 0;
		free(copy);
		return v;
	}
	memcpy(digits, p->text + start, n);
	digits[n] = '\0';
	v->number = strtod(digits, NULL);
	if (integral) {
		errno = 0;
		long long i = strtoll(digits, NULL, 10);
		if (errno == 0) {
			v->is_integer = true;
			v->integer = i;
		}
	}
	return v;
}

/* ---------------------------------------------------------------- values */

static struct json_value *parse_value(struct parser *p);

static bool expect_literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) {
		fail_at(p, "unexpected token (expected '%s')", word);
		return false;
	}
	p->pos += n;
	return true;
}

static struct json_value *parse_array(struct parser *p)
{
	struct json_value *v = new_value(p, JSON_ARRAY);
	if (v == NULL)
		return NULL;
	p->pos++; /* [ */
	skip_whitespace(p);
	if (peek(p) == ']') {
		p->pos++;
		return v;
	}
	for (;;) {
		struct json_value *item = parse_value(p);
		if (item == NULL)
			goto fail;
		struct json_value **grown = realloc(v->items, (v->item_count + 1) * sizeof *grown);
		if (grown == NULL) {
			json_free(item);
			fail_at(p, "out of memory");
			goto fail;
		}
		v->items = grown;
		v->items[v->item_count++] = item;
		skip_whitespace(p);
		int c = peek(p);
		p->pos++;
		if (c == ']')
			return v;
		if (c != ',') {
			p->pos--;
			fail_at(p, "',' or ']' expected in an array");
			goto fail;
		}
	}
fail:
	json_free(v);
	return NULL;
}

static bool has_key(const struct json_value *object, const char *key, size_t key_len)
{
	for (size_t i = 0; i < object->member_count; i++)
		if (object->members[i].key_len == key_len &&
		    memcmp(object->members[i].key, key, key_len) == 0)
			return true;
	return false;
}

static struct json_value *parse_object(struct parser *p)
{
	struct json_value *v = new_value(p, JSON_OBJECT);
	if (v == NULL)
		return NULL;
	p->pos++; /* { */
	skip_whitespace(p);
	if (peek(p) == '}') {
		p->pos++;
		return v;
	}
	for (;;) {
		skip_whitespace(p);
		if (peek(p) != '"') {
			fail_at(p, "string key expected in an object");
			goto fail;
		}
		size_t key_at = p->pos;
		char *key;
		size_t key_len;
		if (!parse_string_body(p, &key, &key_len))
			goto fail;
		if (has_key(v, key, key_len)) {
			p->pos = key_at;
			fail_at(p, "duplicate key \"%s\"", key);
			free(key);
			goto fail;
		}
		skip_whitespace(p);
		if (peek(p) != ':') {
			free(key);
			fail_at(p, "':' expected after a key");
			goto fail;
		}
		p->pos++;
		struct json_value *member = parse_value(p);
		if (member == NULL) {
			free(key);
			goto fail;
		}
		struct json_member *grown = realloc(v->members,
						    (v->member_count + 1) * sizeof *grown);
		if (grown == NULL) {
			free(key);
			json_free(member);
			fail_at(p, "out of memory");
			goto fail;
		}
		v->members = grown;
		v->members[v->member_count++] = (struct json_member){ key, key_len, member };
		skip_whitespace(p);
		int c = peek(p);
		p->pos++;
		if (c == '}')
			return v;
		if (c != ',') {
			p->pos--;
			fail_at(p, "',' or '}' expected in an object");
			goto fail;
		}
	}
fail:
	json_free(v);
	return NULL;
}

static struct json_value *parse_value(struct parser *p)
{
	skip_whitespace(p);
	if (at_end(p)) {
		fail_at(p, "value expected, found the end");
		return NULL;
	}
	if (++p->depth > JSON_MAX_DEPTH) {
		fail_at(p, "nesting deeper than %d", JSON_MAX_DEPTH);
		return NULL;
	}
	struct json_value *v = NULL;
	int c = peek(p);
	switch (c) {
	case '{':
		v = parse_object(p);
		break;
	case '[':
		v = parse_array(p);
		break;
	case '"': {
		char *s;
		size_t n;
		if (parse_string_body(p, &s, &n)) {
			v = new_value(p, JSON_STRING);
			if (v == NULL) {
				free(s);
			} else {
				v->string = s;
				v->string_len = n;
			}
		}
		break;
	}
	case 't':
	case 'f':
		if (expect_literal(p, c == 't' ? "true" : "false")) {
			v = new_value(p, JSON_BOOL);
			if (v)
				v->boolean = c == 't';
		}
		break;
	case 'n':
		if (expect_literal(p, "null"))
			v = new_value(p, JSON_NULL);
		break;
	default:
		if (c == '-' || is_digit(c))
			v = parse_number(p);
		else
			fail_at(p, "unexpected character '%c'", c >= 0x20 && c < 0x7f ? c : '?');
		break;
	}
	p->depth--;
	return v;
}

struct json_value *json_parse(const char *text, size_t len, char *error, size_t error_len)
{
	struct parser p = { text, len, 0, 0, error, error_len, false };
	if (error && error_len)
		error[0] = '\0';
	struct json_value *v = parse_value(&p);
	if (v == NULL) {
		if (!p.failed)
			fail_at(&p, "parse error");
		return NULL;
	}
	skip_whitespace(&p);
	if (!at_end(&p)) {
		fail_at(&p, "trailing garbage after the value");
		json_free(v);
		return NULL;
	}
	return v;
}

void json_free(struct json_value *v)
{
	if (v == NULL)
		return;
	free(v->string);
	for (size_t i = 0; i < v->item_count; i++)
		json_free(v->items[i]);
	free(v->items);
	for (size_t i = 0; i < v->member_count; i++) {
		free(v->members[i].key);
		json_free(v->members[i].value);
	}
	free(v->members);
	free(v);
}

const struct json_value *json_get(const struct json_value *object, const char *key)
{
	if (object == NULL || object->type != JSON_OBJECT)
		return NULL;
	size_t n = strlen(key);
	for (size_t i = 0; i < object->member_count; i++)
		if (object->members[i].key_len == n && memcmp(object->members[i].key, key, n) == 0)
			return object->members[i].value;
	return NULL;
}

const char *json_get_string(const struct json_value *object, const char *key)
{
	const struct json_value *v = json_get(object, key);
	return v && v->type == JSON_STRING ? v->string : NULL;
}

bool json_get_integer(const struct json_value *object, const char *key, long long *out)
{
	const struct json_value *v = json_get(object, key);
	if (v == NULL || v->type != JSON_NUMBER || !v->is_integer)
		return false;
	*out = v->integer;
	return true;
}

const char *json_type_name(enum json_type type)
{
	switch (type) {
	case JSON_NULL: return "null";
	case JSON_BOOL: return "boolean";
	case JSON_NUMBER: return "number";
	case JSON_STRING: return "string";
	case JSON_ARRAY: return "array";
	case JSON_OBJECT: return "object";
	}
	return "?";
}
