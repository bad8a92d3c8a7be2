# tests/robustness.mk: Automake fragment included from Makefile.am (paths relative to the top).
