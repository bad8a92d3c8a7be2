# tests/apps/apps.mk: Automake fragment included from Makefile.am (paths relative to the top).
# `make check-apps`: real servers and clients (nginx + wrk, redis-benchmark,
# curl, socat, python3 http.server, w1_event_loop) run once without and once
# with libwspclose preloaded; results are compared (tests/apps/run-apps.sh).
# Then the event loops that close through syscall(): a libuv program and
# Node.js (tests/apps/run-event-loops.sh).

EXTRA_PROGRAMS += tests/apps/w1_event_loop
tests_apps_w1_event_loop_SOURCES = tests/apps/w1_event_loop.c tests/proc_fds.h

EXTRA_DIST += tests/apps/run-apps.sh tests/harness.sh tests/apps/run-event-loops.sh \
	tests/apps/uv_echo.c tests/apps/node_http.js

.PHONY: check-apps
check-apps: src/libwspclose.la tests/apps/w1_event_loop
	$(SHELL) $(srcdir)/tests/apps/run-apps.sh --library '$(abs_top_builddir)/src/.libs/libwspclose.so' --build '$(abs_top_builddir)'
	$(SHELL) $(srcdir)/tests/apps/run-event-loops.sh --library '$(abs_top_builddir)/src/.libs/libwspclose.so' --build '$(abs_top_builddir)'
