#!/bin/sh
# tests/unit/check_interposed.sh: src/interposed.list is the one list of
# interposed functions: the built library exports exactly those names, each
# has its entry point (WSPCLOSE_EXPORT in src/entry_*.c, or the vfork
# trampoline), each "bound" one is reached through the binding table, and
# the library itself never calls the C library's syscall().
# Run by make check (not preloaded: it runs nm and grep).
set -u
top_srcdir=${top_srcdir:-$(cd -- "$(dirname -- "$0")/../.." && pwd)}
library=${WSPCLOSE_LIBRARY:?WSPCLOSE_LIBRARY must name the built library}
unset LD_PRELOAD
work=$(mktemp -d "${TMPDIR:-/tmp}/check_interposed.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT

list=$top_srcdir/src/interposed.list
sed -e 's/#.*//' "$list" | awk 'NF >= 2 { print $1 }' | sort >"$work/list"
nm -D --defined-only "$library" | awk '$2 == "T" || $2 == "W" { print $3 }' | sort >"$work/exported"
{
	cat "$top_srcdir"/src/entry_*.c | tr '\n' ' ' |
		grep -o 'WSPCLOSE_EXPORT [^(]*(' | sed 's/($//; s/.*[ *]//'
	grep -ho '\.globl [a-z_0-9]*' "$top_srcdir"/src/entry_*.c | awk '{ print $2 }'
} | sort -u >"$work/defined"

passed=0
failed=0
compare() {
	if diff -u "$work/$1" "$work/$2" >"$work/diff"; then
		passed=$((passed + 1))
		echo "PASS: $3"
	else
		failed=$((failed + 1))
		echo "FAIL: $3"
		sed 's/^/  | /' "$work/diff"
	fi
}
compare list exported "the library exports exactly the names of src/interposed.list"
# The library interposes syscall(): a call of the C library's one from inside
# it would reach that interposer, so it must import no syscall at all.
nm -D --undefined-only "$library" | awk '{ print $NF }' | sed 's/@.*//' | grep -x syscall >"$work/imports_syscall"
: >"$work/nothing"
compare nothing imports_syscall "the library never imports syscall() (src/raw_syscall.c makes its system calls)"
compare list defined "every listed name has an entry point, and no entry point is unlisted"
sed -e 's/#.*//' "$list" | awk '$2 == "bound" { print $1 }' >"$work/bound"
while read -r name; do
	if grep -q "BOUND_$name\b" "$top_srcdir"/src/*.c; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $name is listed as bound but nothing calls libc_function(BOUND_$name)"
	fi
done <"$work/bound"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
