# tests/bench/scale.mk: Automake fragment included from Makefile.am (paths relative to the top).
# `make bench-scale`: churn (also against the reference hold_floor.so), 1k-15k held sockets,
# reaper data structures to 10^6 (BENCHMARKS.md).

scale_bench_common = tests/bench/bench_scale_util.c tests/bench/bench_scale_util.h

EXTRA_PROGRAMS += \
	tests/bench/bench_churn_scale \
	tests/bench/bench_hold_scale \
	tests/bench/sim_deadline_heap

tests_bench_bench_churn_scale_SOURCES = tests/bench/bench_churn_scale.c $(scale_bench_common)
tests_bench_bench_churn_scale_LDADD = -lm
tests_bench_bench_hold_scale_SOURCES = tests/bench/bench_hold_scale.c $(scale_bench_common)
tests_bench_bench_hold_scale_LDADD = -lm
# The reaper's deadline heap itself, linked in (a pure data structure).
tests_bench_sim_deadline_heap_SOURCES = tests/bench/sim_deadline_heap.c \
	src/deadline_heap.c src/deadline_heap.h src/fd_table.h $(scale_bench_common)
tests_bench_sim_deadline_heap_CFLAGS = $(AM_CFLAGS)
tests_bench_sim_deadline_heap_LDADD = -lm

.PHONY: bench-scale
bench-scale: src/libwspclose.la tests/bench/bench_churn_scale tests/bench/bench_hold_scale \
		tests/bench/sim_deadline_heap tests/bench/hold_floor.so
	$(SHELL) $(srcdir)/tests/bench/run-scale.sh \
	  --library '$(abs_top_builddir)/src/.libs/libwspclose.so' \
	  --reference '$(abs_top_builddir)/tests/bench/hold_floor.so' \
	  --bindir '$(abs_builddir)/tests/bench'

EXTRA_DIST += tests/bench/run-scale.sh
