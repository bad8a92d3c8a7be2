# tests/peers/peers.mk: Automake fragment included from Makefile.am (paths relative to the top).
# `make check-peers`: other projects' own test suites (CPython 3.11's socket,
# selectors, asyncio, subprocess, signal, threading, multiprocessing
# forkserver and concurrent.futures tests) with and without the library;
# fails on any test that fails only with it (tests/peers/run-peers.sh).

EXTRA_DIST += tests/peers/run-peers.sh tests/peers/compare_junit.py \
	tests/peers/environment-exclusions.txt tests/peers/intended-differences.txt

.PHONY: check-peers
check-peers: src/libwspclose.la
	$(SHELL) $(srcdir)/tests/peers/run-peers.sh --library '$(abs_top_builddir)/src/.libs/libwspclose.so'
