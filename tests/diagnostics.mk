# tests/diagnostics.mk: Automake fragment included from Makefile.am (paths relative to the top).
# Owns the tests of issue 4 (trace, what-if mode, findings, the wspclose command) and its trace-cost bench.

# ---------------------------------------------------------------- trace lines
# Preloaded by the default LOG_COMPILER; runs its scenarios in child processes.
check_PROGRAMS += tests/integration/test_trace
TESTS += tests/integration/test_trace
tests_integration_test_trace_SOURCES = tests/integration/test_trace.c \
	tests/integration/json_check.c tests/integration/json_check.h \
	$(loopback_sources)
tests_integration_test_trace_CFLAGS = $(test_cflags)
tests_integration_test_trace_LDADD = $(test_libs)

# ---------------------------------------------------------------- the wspclose command
# A shell test run by $(SHELL), not preloaded: it runs the helper programs
# below through scripts/wspclose, which preloads them itself.
TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)
TESTS += tests/command/test_wspclose_command.sh
check_PROGRAMS += tests/command/strict_w1_ignored tests/command/strict_clean \
	tests/command/strict_closefrom
w1_situation_sources = tests/command/w1_situation.c tests/command/w1_situation.h
tests_command_strict_w1_ignored_SOURCES = tests/command/strict_w1_ignored.c $(w1_situation_sources)
tests_command_strict_clean_SOURCES = tests/command/strict_clean.c $(w1_situation_sources)
tests_command_strict_closefrom_SOURCES = tests/command/strict_closefrom.c
AM_TESTS_ENVIRONMENT += abs_top_builddir='$(abs_top_builddir)'; export abs_top_builddir;
EXTRA_DIST += tests/command/test_wspclose_command.sh

# ---------------------------------------------------------------- trace cost (make bench-trace)
EXTRA_PROGRAMS += tests/bench/churn
tests_bench_churn_SOURCES = tests/bench/churn.c
EXTRA_DIST += tests/bench/bench_trace_cost.sh

.PHONY: bench-trace
bench-trace: src/libwspclose.la tests/bench/churn
	$(SHELL) $(top_srcdir)/tests/bench/bench_trace_cost.sh \
	  --churn '$(abs_top_builddir)/tests/bench/churn' \
	  --library '$(abs_top_builddir)/src/.libs/libwspclose.so'

# ---------------------------------------------------------------- nginx (make bench-nginx)
# nginx's CPU per request with Connection: close, with and without (issue 12).
# hold_floor.so is the reference it is also measured against: the least any
# preload library can do to hold a socket until its FIN is acknowledged. It
# is built without the project's flags (no sanitizer runtime, default
# visibility for what it interposes) and never installed.
EXTRA_DIST += tests/bench/bench_nginx.sh tests/bench/hold_floor.c
CLEANFILES += tests/bench/hold_floor.so

tests/bench/hold_floor.so: tests/bench/hold_floor.c
	@$(MKDIR_P) tests/bench
	$(CC) -O2 -Wall -shared -fPIC -o $@ $(srcdir)/tests/bench/hold_floor.c -lpthread

.PHONY: bench-nginx
bench-nginx: src/libwspclose.la tests/bench/hold_floor.so
	$(SHELL) $(top_srcdir)/tests/bench/bench_nginx.sh \
	  --library '$(abs_top_builddir)/src/.libs/libwspclose.so' \
	  --reference '$(abs_top_builddir)/tests/bench/hold_floor.so'

# ---------------------------------------------------------------- teardown cost (make bench-teardown)
# System calls and CPU per held socket on the same churn (issue 12).
EXTRA_DIST += tests/bench/bench_teardown.sh tests/bench/bench_lib.sh

.PHONY: bench-teardown
bench-teardown: src/libwspclose.la tests/bench/churn
	$(SHELL) $(top_srcdir)/tests/bench/bench_teardown.sh \
	  --churn '$(abs_top_builddir)/tests/bench/churn' \
	  --library '$(abs_top_builddir)/src/.libs/libwspclose.so'
