# tests/robustness.mk: Automake fragment included from Makefile.am (paths relative to the top).
# Owns the tests of issue 3: sharing, implicit closes, epoll, blocked callers,
# the library's own descriptors, fork/exec, signals and threads, and the stress run;
# of issue 9: vfork/fork children, closes that end in the caller with the
# kernel's result, cancellation and signal-handler closes; and of issue 10:
# syscall(), fclose() and io_uring epoll registrations; of issue 12: the
# linger the table knows, release outcomes without the probes, the copies a
# later close() releases.

sharing_sources = tests/integration/sharing_helpers.c tests/integration/sharing_helpers.h \
	$(loopback_sources)
robustness_tests = \
	tests/integration/test_sharing \
	tests/integration/test_implicit_close \
	tests/integration/test_epoll \
	tests/integration/test_blocked_callers \
	tests/integration/test_own_descriptors \
	tests/integration/test_fork_exec \
	tests/integration/test_signals_threads \
	tests/integration/test_children \
	tests/integration/test_caller_close \
	tests/integration/test_cancel_signals \
	tests/integration/test_every_close \
	tests/integration/test_linger_known \
	tests/integration/test_release_outcomes \
	tests/integration/test_settle \
	tests/integration/test_later_close \
	tests/integration/test_dup2_race \
	tests/faults/test_injected_failures \
	tests/faults/test_two_copies \
	tests/stress/wspclose-stress
check_PROGRAMS += $(robustness_tests)
TESTS += $(robustness_tests)

tests_integration_test_sharing_SOURCES = tests/integration/test_sharing.c $(sharing_sources)
tests_integration_test_sharing_CFLAGS = $(test_cflags)
tests_integration_test_sharing_LDADD = $(test_libs)
tests_integration_test_implicit_close_SOURCES = tests/integration/test_implicit_close.c $(sharing_sources)
tests_integration_test_implicit_close_CFLAGS = $(test_cflags)
tests_integration_test_implicit_close_LDADD = $(test_libs)
tests_integration_test_epoll_SOURCES = tests/integration/test_epoll.c $(sharing_sources)
tests_integration_test_epoll_CFLAGS = $(test_cflags)
tests_integration_test_epoll_LDADD = $(test_libs)
tests_integration_test_blocked_callers_SOURCES = tests/integration/test_blocked_callers.c $(sharing_sources)
tests_integration_test_blocked_callers_CFLAGS = $(test_cflags)
tests_integration_test_blocked_callers_LDADD = $(test_libs)
tests_integration_test_own_descriptors_SOURCES = tests/integration/test_own_descriptors.c $(sharing_sources)
tests_integration_test_own_descriptors_CFLAGS = $(test_cflags)
tests_integration_test_own_descriptors_LDADD = $(test_libs)
tests_integration_test_fork_exec_SOURCES = tests/integration/test_fork_exec.c $(sharing_sources)
tests_integration_test_fork_exec_CFLAGS = $(test_cflags)
tests_integration_test_fork_exec_LDADD = $(test_libs)
tests_integration_test_signals_threads_SOURCES = tests/integration/test_signals_threads.c $(sharing_sources)
tests_integration_test_signals_threads_CFLAGS = $(test_cflags)
tests_integration_test_signals_threads_LDADD = $(test_libs)
tests_integration_test_children_SOURCES = tests/integration/test_children.c $(sharing_sources)
tests_integration_test_children_CFLAGS = $(test_cflags)
tests_integration_test_children_LDADD = $(test_libs)
tests_integration_test_caller_close_SOURCES = tests/integration/test_caller_close.c $(sharing_sources)
tests_integration_test_caller_close_CFLAGS = $(test_cflags)
tests_integration_test_caller_close_LDADD = $(test_libs)
tests_integration_test_cancel_signals_SOURCES = tests/integration/test_cancel_signals.c $(sharing_sources)
tests_integration_test_cancel_signals_CFLAGS = $(test_cflags)
tests_integration_test_cancel_signals_LDADD = $(test_libs)
tests_integration_test_linger_known_SOURCES = tests/integration/test_linger_known.c $(loopback_sources)
tests_integration_test_linger_known_CFLAGS = $(test_cflags)
tests_integration_test_linger_known_LDADD = $(test_libs)
tests_integration_test_release_outcomes_SOURCES = tests/integration/test_release_outcomes.c $(loopback_sources)
tests_integration_test_release_outcomes_CFLAGS = $(test_cflags)
tests_integration_test_release_outcomes_LDADD = $(test_libs)
tests_integration_test_settle_SOURCES = tests/integration/test_settle.c $(loopback_sources)
tests_integration_test_settle_CFLAGS = $(test_cflags)
tests_integration_test_settle_LDADD = $(test_libs)
tests_integration_test_later_close_SOURCES = tests/integration/test_later_close.c $(loopback_sources)
tests_integration_test_later_close_CFLAGS = $(test_cflags)
tests_integration_test_later_close_LDADD = $(test_libs)
tests_integration_test_dup2_race_SOURCES = tests/integration/test_dup2_race.c $(loopback_sources)
tests_integration_test_dup2_race_CFLAGS = $(test_cflags)
tests_integration_test_dup2_race_LDADD = $(test_libs)
tests_integration_test_every_close_SOURCES = tests/integration/test_every_close.c src/raw_syscall.c \
	$(sharing_sources)
tests_integration_test_every_close_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/src
tests_integration_test_every_close_CFLAGS = $(test_cflags)
tests_integration_test_every_close_LDADD = $(test_libs)
tests_faults_test_injected_failures_SOURCES = tests/faults/test_injected_failures.c $(sharing_sources)
tests_faults_test_injected_failures_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/integration
tests_faults_test_injected_failures_CFLAGS = $(test_cflags)
tests_faults_test_injected_failures_LDADD = $(test_libs)
tests_faults_test_two_copies_SOURCES = tests/faults/test_two_copies.c $(sharing_sources)
tests_faults_test_two_copies_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/integration
tests_faults_test_two_copies_CFLAGS = $(test_cflags)
tests_faults_test_two_copies_LDADD = $(test_libs)

# The stress program is plain C (no Check); `make check` runs it for 5 s.
tests_stress_wspclose_stress_SOURCES = tests/stress/wspclose-stress.c $(sharing_sources)
tests_stress_wspclose_stress_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/integration
tests_stress_wspclose_stress_LDADD = -lpthread
AM_TESTS_ENVIRONMENT += WSPCLOSE_STRESS_SECONDS=5; export WSPCLOSE_STRESS_SECONDS;
