# tests/faults/faults.mk: Automake fragment included from Makefile.am (paths relative to the top).
# `make check-faults`: fault injection in network namespaces the test creates
# (blackholed peer, 5 % loss both ways, peer reset while held), with nftables
# rules inside the namespaces (tests/faults/run-faults.sh).

EXTRA_PROGRAMS += tests/faults/fault_closer tests/faults/fault_peer
tests_faults_fault_closer_SOURCES = tests/faults/fault_closer.c tests/faults/fault_common.h tests/proc_fds.h
tests_faults_fault_peer_SOURCES = tests/faults/fault_peer.c tests/faults/fault_common.h tests/proc_fds.h

EXTRA_DIST += tests/faults/run-faults.sh

.PHONY: check-faults
check-faults: src/libwspclose.la tests/faults/fault_closer tests/faults/fault_peer
	$(SHELL) $(srcdir)/tests/faults/run-faults.sh --library '$(abs_top_builddir)/src/.libs/libwspclose.so' --build '$(abs_top_builddir)'
