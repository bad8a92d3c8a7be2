/* test_config.c: owns config_load() (src/config.c): WSPCLOSE_* defaults,
 * valid values, and one warning line per invalid value (§7). */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* By path: the build puts -I. (autoconf's own config.h) before -I src. */
#include "config.h"

/* ---------------------------------------------------------------- stub env */

#define MAX_VARS 16

struct env_var {
	const char *name;
	const char *value;
};

static struct env_var stub_env[MAX_VARS];
static int stub_env_count;

static void env_clear(void)
{
	memset(stub_env, 0, sizeof stub_env);
	stub_env_count = 0;
}

static void env_set(const char *name, const char *value)
{
	ck_assert_int_lt(stub_env_count, MAX_VARS);
	stub_env[stub_env_count].name = name;
	stub_env[stub_env_count].value = value;
	stub_env_count++;
}

static const char *stub_getenv(const char *name)
{
	for (int i = 0; i < stub_env_count; i++)
		if (strcmp(stub_env[i].name, name) == 0)
			return stub_env[i].value;
	return NULL;
}

static void setup(void)
{
	env_clear();
}

/* ---------------------------------------------------------------- helpers */

struct load_result {
	struct wspclose_config cfg;
	int ret;
	char warnings[4096];
	size_t warn_len;
};

/* Runs config_load on the stub environment with a pipe as warn_fd and
 * collects everything written to it. */
static void load(struct load_result *r)
{
	int p[2];

	memset(r, 0, sizeof *r);
	/* The opposite of every default first: config_load must set every
	 * field, not rely on a zeroed struct. */
	r->cfg.trace_target = "garbage";
	r->cfg.trace_format = TRACE_JSON;
	r->cfg.grace_ms = -1;
	r->cfg.max_held = -1;
	r->cfg.passthrough = true;
	r->cfg.stats = true;
	ck_assert_int_eq(pipe(p), 0);
	r->ret = config_load(&r->cfg, stub_getenv, p[1]);
	ck_assert_int_eq(close(p[1]), 0);
	for (;;) {
		ck_assert_uint_lt(r->warn_len, sizeof r->warnings - 1);
		ssize_t n = read(p[0], r->warnings + r->warn_len,
				 sizeof r->warnings - 1 - r->warn_len);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		r->warn_len += (size_t)n;
	}
	r->warnings[r->warn_len] = '\0';
	close(p[0]);
}

static int count_lines(const struct load_result *r)
{
	int lines = 0;
	for (size_t i = 0; i < r->warn_len; i++)
		if (r->warnings[i] == '\n')
			lines++;
	return lines;
}

static bool is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Does [line, line+len) name `var` as a whole word (so that WSPCLOSE_TRACE
 * does not match inside WSPCLOSE_TRACE_FORMAT)? */
static bool names_var(const char *line, size_t len, const char *var)
{
	size_t vl = strlen(var);
	for (size_t i = 0; i + vl <= len; i++) {
		if (memcmp(line + i, var, vl) != 0)
			continue;
		if (i > 0 && is_name_char(line[i - 1]))
			continue;
		if (i + vl < len && is_name_char(line[i + vl]))
			continue;
		return true;
	}
	return false;
}

static void assert_no_warning(const struct load_result *r)
{
	ck_assert_msg(r->ret == 0, "config_load returned %d, expected 0", r->ret);
	ck_assert_msg(r->warn_len == 0, "unexpected warning output: \"%s\"",
		      r->warnings);
}

/* Exactly one '\n'-terminated line, naming `var`. */
static void assert_one_warning(const struct load_result *r, const char *var)
{
	ck_assert_msg(r->ret == 1, "%s: config_load returned %d, expected 1",
		      var, r->ret);
	ck_assert_msg(count_lines(r) == 1,
		      "%s: expected exactly one warning line, got \"%s\"",
		      var, r->warnings);
	ck_assert_msg(r->warn_len > 0 && r->warnings[r->warn_len - 1] == '\n',
		      "%s: warning is not '\\n'-terminated: \"%s\"", var,
		      r->warnings);
	ck_assert_msg(names_var(r->warnings, r->warn_len, var),
		      "warning does not name %s: \"%s\"", var, r->warnings);
}

static void assert_default_grace(const struct load_result *r)
{
	ck_assert_int_eq(r->cfg.grace_ms, WSPCLOSE_DEFAULT_GRACE_MS);
}

static void assert_defaults(const struct load_result *r)
{
	ck_assert_ptr_null(r->cfg.trace_target);
	ck_assert_int_eq(r->cfg.trace_format, TRACE_TEXT);
	ck_assert_int_eq(r->cfg.grace_ms, 60000);
	ck_assert_int_eq(r->cfg.max_held, 4096);
	ck_assert(!r->cfg.passthrough);
	ck_assert(!r->cfg.stats);
	ck_assert_int_eq(r->cfg.wine, WINE_AUTO);
}

/* ---------------------------------------------------------------- defaults */

START_TEST(test_defaults_when_nothing_set)
{
	struct load_result r;
	load(&r);
	assert_no_warning(&r);
	assert_defaults(&r);
	ck_assert_int_eq(WSPCLOSE_DEFAULT_GRACE_MS, 60000);
	ck_assert_int_eq(WSPCLOSE_DEFAULT_MAX_HELD, 4096);
}
END_TEST

/* The environment is read only through getenv_fn. */
START_TEST(test_reads_only_through_getenv_fn)
{
	struct load_result r;
	setenv("WSPCLOSE_GRACE_MS", "123", 1);
	setenv("WSPCLOSE_MAX_HELD", "7", 1);
	setenv("WSPCLOSE_TRACE", "stderr", 1);
	setenv("WSPCLOSE_TRACE_FORMAT", "json", 1);
	setenv("WSPCLOSE_PASSTHROUGH", "1", 1);
	setenv("WSPCLOSE_STATS", "1", 1);
	load(&r);
	unsetenv("WSPCLOSE_GRACE_MS");
	unsetenv("WSPCLOSE_MAX_HELD");
	unsetenv("WSPCLOSE_TRACE");
	unsetenv("WSPCLOSE_TRACE_FORMAT");
	unsetenv("WSPCLOSE_PASSTHROUGH");
	unsetenv("WSPCLOSE_STATS");
	assert_no_warning(&r);
	assert_defaults(&r);
}
END_TEST

/* ---------------------------------------------------------------- valid */

START_TEST(test_grace_ms_500)
{
	struct load_result r;
	env_set("WSPCLOSE_GRACE_MS", "500");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.grace_ms, 500);
	ck_assert_int_eq(r.cfg.max_held, 4096);
}
END_TEST

/* 0 is valid: hold nothing, reset at once. */
START_TEST(test_grace_ms_0)
{
	struct load_result r;
	env_set("WSPCLOSE_GRACE_MS", "0");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.grace_ms, 0);
}
END_TEST

START_TEST(test_grace_ms_max)
{
	struct load_result r;
	env_set("WSPCLOSE_GRACE_MS", "86400000");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.grace_ms, WSPCLOSE_MAX_GRACE_MS);
	ck_assert_int_eq(WSPCLOSE_MAX_GRACE_MS, 86400000L);
}
END_TEST

START_TEST(test_max_held_10)
{
	struct load_result r;
	env_set("WSPCLOSE_MAX_HELD", "10");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.max_held, 10);
	ck_assert_int_eq(r.cfg.grace_ms, 60000);
}
END_TEST

START_TEST(test_max_held_bounds)
{
	struct load_result r;
	env_set("WSPCLOSE_MAX_HELD", "1");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.max_held, 1);

	env_clear();
	env_set("WSPCLOSE_MAX_HELD", "1048576");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.max_held, WSPCLOSE_MAX_MAX_HELD);
	ck_assert_int_eq(WSPCLOSE_MAX_MAX_HELD, 1048576L);
}
END_TEST

START_TEST(test_trace_stderr)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE", "stderr");
	load(&r);
	assert_no_warning(&r);
	ck_assert_ptr_nonnull(r.cfg.trace_target);
	ck_assert_str_eq(r.cfg.trace_target, "stderr");
	ck_assert_int_eq(r.cfg.trace_format, TRACE_TEXT);
}
END_TEST

START_TEST(test_trace_path)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE", "/tmp/x");
	load(&r);
	assert_no_warning(&r);
	ck_assert_ptr_nonnull(r.cfg.trace_target);
	ck_assert_str_eq(r.cfg.trace_target, "/tmp/x");
}
END_TEST

/* An empty WSPCLOSE_TRACE names no file: tracing stays off (a warning is
 * allowed, at most one). */
START_TEST(test_trace_empty_is_off)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE", "");
	load(&r);
	ck_assert_ptr_null(r.cfg.trace_target);
	ck_assert_int_le(r.ret, 1);
	ck_assert_int_eq(count_lines(&r), r.ret);
}
END_TEST

START_TEST(test_trace_format_json)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE_FORMAT", "json");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.trace_format, TRACE_JSON);
}
END_TEST

START_TEST(test_trace_format_text)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE_FORMAT", "text");
	load(&r);
	assert_no_warning(&r);
	ck_assert_int_eq(r.cfg.trace_format, TRACE_TEXT);
}
END_TEST

START_TEST(test_passthrough_1)
{
	struct load_result r;
	env_set("WSPCLOSE_PASSTHROUGH", "1");
	load(&r);
	assert_no_warning(&r);
	ck_assert(r.cfg.passthrough);
	ck_assert(!r.cfg.stats);
}
END_TEST

START_TEST(test_passthrough_0)
{
	struct load_result r;
	env_set("WSPCLOSE_PASSTHROUGH", "0");
	load(&r);
	assert_no_warning(&r);
	ck_assert(!r.cfg.passthrough);
}
END_TEST

START_TEST(test_wine_values)
{
	static const struct { const char *value; enum wine_setting setting; } values[] = {
		{ "auto", WINE_AUTO }, { "on", WINE_ON }, { "off", WINE_OFF },
	};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		struct load_result r;
		env_clear();
		env_set("WSPCLOSE_WINE", values[i].value);
		load(&r);
		assert_no_warning(&r);
		ck_assert_int_eq(r.cfg.wine, values[i].setting);
	}
}
END_TEST

START_TEST(test_stats_1)
{
	struct load_result r;
	env_set("WSPCLOSE_STATS", "1");
	load(&r);
	assert_no_warning(&r);
	ck_assert(r.cfg.stats);
	ck_assert(!r.cfg.passthrough);
}
END_TEST

START_TEST(test_stats_0)
{
	struct load_result r;
	env_set("WSPCLOSE_STATS", "0");
	load(&r);
	assert_no_warning(&r);
	ck_assert(!r.cfg.stats);
}
END_TEST

START_TEST(test_all_valid_together)
{
	struct load_result r;
	env_set("WSPCLOSE_TRACE", "/tmp/x");
	env_set("WSPCLOSE_TRACE_FORMAT", "json");
	env_set("WSPCLOSE_GRACE_MS", "500");
	env_set("WSPCLOSE_MAX_HELD", "10");
	env_set("WSPCLOSE_PASSTHROUGH", "1");
	env_set("WSPCLOSE_STATS", "1");
	load(&r);
	assert_no_warning(&r);
	ck_assert_str_eq(r.cfg.trace_target, "/tmp/x");
	ck_assert_int_eq(r.cfg.trace_format, TRACE_JSON);
	ck_assert_int_eq(r.cfg.grace_ms, 500);
	ck_assert_int_eq(r.cfg.max_held, 10);
	ck_assert(r.cfg.passthrough);
	ck_assert(r.cfg.stats);
}
END_TEST

/* ---------------------------------------------------------------- invalid */

struct invalid_case {
	const char *var;
	const char *value;
};

static const struct invalid_case invalid_cases[] = {
	{ "WSPCLOSE_GRACE_MS", "" },
	{ "WSPCLOSE_GRACE_MS", "abc" },
	{ "WSPCLOSE_GRACE_MS", "12abc" },
	{ "WSPCLOSE_GRACE_MS", "-5" },
	{ "WSPCLOSE_GRACE_MS", "86400001" },
	{ "WSPCLOSE_GRACE_MS", "9223372036854775807" },
	{ "WSPCLOSE_GRACE_MS", "99999999999999999999999" },
	{ "WSPCLOSE_MAX_HELD", "" },
	{ "WSPCLOSE_MAX_HELD", "abc" },
	{ "WSPCLOSE_MAX_HELD", "12abc" },
	{ "WSPCLOSE_MAX_HELD", "-5" },
	{ "WSPCLOSE_MAX_HELD", "0" },
	{ "WSPCLOSE_MAX_HELD", "1048577" },
	{ "WSPCLOSE_MAX_HELD", "9223372036854775807" },
	{ "WSPCLOSE_MAX_HELD", "99999999999999999999999" },
	{ "WSPCLOSE_TRACE_FORMAT", "xml" },
	{ "WSPCLOSE_TRACE_FORMAT", "" },
	{ "WSPCLOSE_TRACE_FORMAT", "jsonx" },
	{ "WSPCLOSE_PASSTHROUGH", "yes" },
	{ "WSPCLOSE_PASSTHROUGH", "2" },
	{ "WSPCLOSE_PASSTHROUGH", "" },
	{ "WSPCLOSE_PASSTHROUGH", "10" },
	{ "WSPCLOSE_STATS", "yes" },
	{ "WSPCLOSE_STATS", "2" },
	{ "WSPCLOSE_STATS", "" },
	{ "WSPCLOSE_STATS", "abc" },
	{ "WSPCLOSE_WINE", "1" },
	{ "WSPCLOSE_WINE", "wineserver" },
	{ "WSPCLOSE_WINE", "" },
	/* Still one line when the value itself holds a line break. */
	{ "WSPCLOSE_GRACE_MS", "12\n34" },
	{ "WSPCLOSE_TRACE_FORMAT", "json\nxml" },
	{ "WSPCLOSE_PASSTHROUGH", "1\n" },
};

#define N_INVALID ((int)(sizeof invalid_cases / sizeof invalid_cases[0]))

START_TEST(test_invalid_value)
{
	const struct invalid_case *c = &invalid_cases[_i];
	struct load_result r;

	env_set(c->var, c->value);
	load(&r);
	ck_assert_msg(r.ret == 1 && count_lines(&r) == 1,
		      "%s=\"%s\": returned %d, warnings \"%s\"",
		      c->var, c->value, r.ret, r.warnings);
	assert_one_warning(&r, c->var);
	/* The default is kept, and nothing else is disturbed. */
	assert_defaults(&r);
}
END_TEST

START_TEST(test_several_invalid)
{
	static const char *const vars[] = {
		"WSPCLOSE_GRACE_MS", "WSPCLOSE_MAX_HELD",
		"WSPCLOSE_TRACE_FORMAT", "WSPCLOSE_PASSTHROUGH",
		"WSPCLOSE_STATS",
	};
	const int nvars = (int)(sizeof vars / sizeof vars[0]);
	struct load_result r;

	env_set("WSPCLOSE_GRACE_MS", "abc");
	env_set("WSPCLOSE_MAX_HELD", "0");
	env_set("WSPCLOSE_TRACE_FORMAT", "xml");
	env_set("WSPCLOSE_PASSTHROUGH", "yes");
	env_set("WSPCLOSE_STATS", "2");
	env_set("WSPCLOSE_TRACE", "stderr"); /* valid */
	load(&r);

	ck_assert_msg(r.ret == nvars, "returned %d, expected %d", r.ret, nvars);
	ck_assert_msg(count_lines(&r) == nvars, "expected %d lines, got \"%s\"",
		      nvars, r.warnings);
	ck_assert(r.warn_len > 0 && r.warnings[r.warn_len - 1] == '\n');

	/* Each line names one invalid variable, each variable exactly once. */
	int seen[sizeof vars / sizeof vars[0]] = { 0 };
	const char *line = r.warnings;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = (size_t)(nl - line);
		int named = 0;
		for (int v = 0; v < nvars; v++) {
			if (names_var(line, len, vars[v])) {
				seen[v]++;
				named++;
			}
		}
		ck_assert_msg(named == 1, "line \"%.*s\" names %d variables",
			      (int)len, line, named);
		ck_assert_msg(!names_var(line, len, "WSPCLOSE_TRACE"),
			      "valid WSPCLOSE_TRACE warned about: \"%.*s\"",
			      (int)len, line);
		line = nl + 1;
	}
	for (int v = 0; v < nvars; v++)
		ck_assert_msg(seen[v] == 1, "%s named %d times in \"%s\"",
			      vars[v], seen[v], r.warnings);

	/* Defaults kept for the invalid ones, the valid one applied. */
	ck_assert_int_eq(r.cfg.grace_ms, 60000);
	ck_assert_int_eq(r.cfg.max_held, 4096);
	ck_assert_int_eq(r.cfg.trace_format, TRACE_TEXT);
	ck_assert(!r.cfg.passthrough);
	ck_assert(!r.cfg.stats);
	ck_assert_str_eq(r.cfg.trace_target, "stderr");
}
END_TEST

/* A very long invalid value still gives one complete, '\n'-terminated line. */
START_TEST(test_invalid_long_value)
{
	static char value[8192];
	struct load_result r;

	memset(value, '7', sizeof value - 1);
	value[sizeof value - 1] = '\0';
	env_set("WSPCLOSE_MAX_HELD", value);
	load(&r);
	assert_one_warning(&r, "WSPCLOSE_MAX_HELD");
	ck_assert_int_eq(r.cfg.max_held, 4096);
}
END_TEST

/* An invalid value of one variable does not disturb the valid others. */
START_TEST(test_invalid_beside_valid)
{
	struct load_result r;
	env_set("WSPCLOSE_GRACE_MS", "12abc");
	env_set("WSPCLOSE_MAX_HELD", "10");
	env_set("WSPCLOSE_TRACE_FORMAT", "json");
	env_set("WSPCLOSE_STATS", "1");
	load(&r);
	assert_one_warning(&r, "WSPCLOSE_GRACE_MS");
	assert_default_grace(&r);
	ck_assert_int_eq(r.cfg.max_held, 10);
	ck_assert_int_eq(r.cfg.trace_format, TRACE_JSON);
	ck_assert(r.cfg.stats);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");

	TCase *defaults = tcase_create("defaults");
	tcase_add_checked_fixture(defaults, setup, NULL);
	tcase_add_test(defaults, test_defaults_when_nothing_set);
	tcase_add_test(defaults, test_reads_only_through_getenv_fn);
	suite_add_tcase(s, defaults);

	TCase *valid = tcase_create("valid");
	tcase_add_checked_fixture(valid, setup, NULL);
	tcase_add_test(valid, test_grace_ms_500);
	tcase_add_test(valid, test_grace_ms_0);
	tcase_add_test(valid, test_grace_ms_max);
	tcase_add_test(valid, test_max_held_10);
	tcase_add_test(valid, test_max_held_bounds);
	tcase_add_test(valid, test_trace_stderr);
	tcase_add_test(valid, test_trace_path);
	tcase_add_test(valid, test_trace_empty_is_off);
	tcase_add_test(valid, test_trace_format_json);
	tcase_add_test(valid, test_trace_format_text);
	tcase_add_test(valid, test_passthrough_1);
	tcase_add_test(valid, test_passthrough_0);
	tcase_add_test(valid, test_stats_1);
	tcase_add_test(valid, test_wine_values);
	tcase_add_test(valid, test_stats_0);
	tcase_add_test(valid, test_all_valid_together);
	suite_add_tcase(s, valid);

	TCase *invalid = tcase_create("invalid");
	tcase_add_checked_fixture(invalid, setup, NULL);
	tcase_add_loop_test(invalid, test_invalid_value, 0, N_INVALID);
	tcase_add_test(invalid, test_invalid_long_value);
	tcase_add_test(invalid, test_several_invalid);
	tcase_add_test(invalid, test_invalid_beside_valid);
	suite_add_tcase(s, invalid);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
