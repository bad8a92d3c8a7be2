# tests/wine/wine.mk: Automake fragment included from Makefile.am (paths relative to the top).
# `make check-wine`: a Windows program of our own, built with mingw-w64, closes
# sockets under Wine with plain Wine and with the library's Wine profile in
# wineserver (tests/wine/run-wine.sh); it installs wine, wine64 and
# gcc-mingw-w64-x86-64 when they are missing.

EXTRA_DIST += tests/wine/run-wine.sh tests/wine/wstest.c tests/wine/wine_peer.c

.PHONY: check-wine
check-wine: src/libwspclose.la scripts/wspclose
	$(SHELL) $(srcdir)/tests/wine/run-wine.sh --library '$(abs_top_builddir)/src/.libs/libwspclose.so' --build '$(abs_top_builddir)'
