#!/bin/sh
# tests/command/test_wspclose_command.sh: tests the wspclose command (issue 4
# item 4): options, exit statuses, --strict, --trace --json. Run by make check.

# Where the build tree is: exported by the Makefile, else two levels up.
if [ -z "${abs_top_builddir:-}" ]; then
	abs_top_builddir=$(cd -- "$(dirname -- "$0")/../.." && pwd) || exit 99
fi
wspclose=$abs_top_builddir/scripts/wspclose
# In a sanitizer build (configure --enable-sanitizers) the library carries
# the ASan runtime, and wspclose preloads it into uninstrumented programs
# (sh, awk) too: there the runtime cannot come first in the library list.
if [ -n "${WSPCLOSE_SANITIZER_RUNTIME:-}" ]; then
	ASAN_OPTIONS="verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export ASAN_OPTIONS
fi
helpers=$abs_top_builddir/tests/command

# Not under the preloading log compiler: the script itself must run plain.
unset LD_PRELOAD
unset WSPCLOSE_LIBRARY WSPCLOSE_TRACE WSPCLOSE_TRACE_FORMAT WSPCLOSE_STATS \
	WSPCLOSE_PASSTHROUGH WSPCLOSE_GRACE_MS WSPCLOSE_MAX_HELD WSPCLOSE_FINDINGS_FILE

for needed in "$wspclose" "$helpers/strict_w1_ignored" "$helpers/strict_clean" \
	"$helpers/strict_closefrom"; do
	if [ ! -x "$needed" ]; then
		echo "test_wspclose_command: $needed is missing (run make check)" >&2
		exit 99
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/test_wspclose_command.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
skipped=0

pass() {
	passed=$((passed + 1))
	echo "PASS: $1"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL: $1"
	for f in "$work/out" "$work/err"; do
		if [ -s "$f" ]; then
			echo "  --- ${f##*/}:"
			sed -n '1,20s/^/  | /p' "$f"
		fi
	done
}

skip() {
	skipped=$((skipped + 1))
	echo "SKIP: $1"
}

# run CMD...: runs it with stdout/stderr in $work/out, $work/err; sets $status.
run() {
	status=0
	"$@" >"$work/out" 2>"$work/err" || status=$?
}

# expect_status NAME WANTED: compares the last run's $status.
expect_status() {
	if [ "$status" -eq "$2" ]; then
		pass "$1 (exit $status)"
	else
		fail "$1: exit status $status, expected $2"
	fi
}

# --------------------------------------------------------------- --strict

run "$wspclose" --strict "$helpers/strict_w1_ignored"
expect_status "--strict with an ignored W1 EWOULDBLOCK" 3
if grep -q "finding" "$work/err"; then
	pass "--strict says why it failed"
else
	fail "--strict exited without a message on stderr"
fi

run "$wspclose" --strict "$helpers/strict_clean"
expect_status "--strict with W1 handled properly" 0

run "$wspclose" --strict "$helpers/strict_closefrom"
expect_status "--strict: closefrom()/close_range() over numbers closed before are no double closes" 0

run "$wspclose" --passthrough --strict "$helpers/strict_w1_ignored"
expect_status "--passthrough --strict with an ignored W1" 3

# Without --strict the program's own status comes back.
run "$wspclose" "$helpers/strict_w1_ignored"
expect_status "no --strict: findings do not change the status" 0

# ----------------------------------------------------- help, version, usage

run "$wspclose" --help
expect_status "--help" 0
if grep -q '^Usage: wspclose' "$work/out"; then
	pass "--help prints Usage on stdout"
else
	fail "--help: no 'Usage: wspclose' line on stdout"
fi

run "$wspclose" --version
expect_status "--version" 0
if [ "$(wc -l <"$work/out")" -eq 1 ] && grep -Eq '^wspclose [0-9]+\.[0-9]+\.[0-9]+$' "$work/out"; then
	pass "--version prints 'wspclose X.Y.Z'"
else
	fail "--version printed '$(cat "$work/out")'"
fi

# usage_error NAME ARGS...: exit 2, usage on stderr, nothing on stdout.
usage_error() {
	name=$1
	shift
	run "$wspclose" "$@"
	expect_status "$name" 2
	if grep -q '^Usage: wspclose' "$work/err" && [ ! -s "$work/out" ]; then
		pass "$name: usage on stderr"
	else
		fail "$name: no usage message on stderr (or output on stdout)"
	fi
}

usage_error "unknown option" --no-such-option true
usage_error "--grace abc" --grace abc true
usage_error "--grace without a value" --grace
usage_error "no command" --stats
usage_error "no arguments at all"

# ------------------------------------------------------------ the command

run "$wspclose" wspclose-no-such-command-here
expect_status "a command not found" 127
run "$wspclose" "$work/no-such-program"
expect_status "a program path that does not exist" 127

run "$wspclose" sh -c 'exit 7'
expect_status "the program's own exit status" 7
run "$wspclose" --strict sh -c 'exit 7'
expect_status "--strict keeps a non-zero exit status" 7
run "$wspclose" -- sh -c 'exit 0'
expect_status "-- before the command" 0

# The library is in front of an LD_PRELOAD already set, which is kept.
run env LD_PRELOAD=/nonexistent-preload.so "$wspclose" sh -c 'printf %s "$LD_PRELOAD"'
case $(cat "$work/out") in
	*/libwspclose.so:/nonexistent-preload.so) pass "LD_PRELOAD is prepended to" ;;
	*) fail "LD_PRELOAD is '$(cat "$work/out")'" ;;
esac

# ------------------------------------------------------------ --trace --json

trace=$work/trace.json
run "$wspclose" --trace "$trace" --json "$helpers/strict_clean"
expect_status "--trace FILE --json" 0
if [ ! -s "$trace" ]; then
	fail "--trace FILE --json wrote nothing"
elif ! command -v python3 >/dev/null 2>&1; then
	skip "--json lines parse (no python3)"
else
	# Every line one JSON object; the W1 refusal and a summary are there.
	if python3 - "$trace" >"$work/out" 2>"$work/err" <<'PYTHON'
import json, sys
events = []
with open(sys.argv[1], encoding="utf-8") as trace:
    for number, line in enumerate(trace, 1):
        if not line.endswith("\n"):
            sys.exit("line %d is torn (no newline)" % number)
        value = json.loads(line)
        if not isinstance(value, dict):
            sys.exit("line %d is not an object" % number)
        events.append((value.get("event"), value.get("row"), value.get("errno")))
if ("close", "W1", "EWOULDBLOCK") not in events:
    sys.exit("no W1 EWOULDBLOCK close line in %r" % events)
if not any(e[0] == "summary" for e in events):
    sys.exit("no summary line")
print("%d lines" % len(events))
PYTHON
	then
		pass "--trace FILE --json: every line is JSON ($(cat "$work/out"))"
	else
		fail "--trace FILE --json: not JSON lines"
	fi
fi

# (A program of its own: dash's exit and coreutils' close_stdout lose the
# report, see the library's man page.)
run "$wspclose" --stats "$helpers/strict_clean"
expect_status "--stats" 0
if grep -q '^libwspclose: summary for pid' "$work/err"; then
	pass "--stats prints the summary on stderr"
else
	fail "--stats: no summary on stderr"
fi

if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed ($skipped skipped)"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] || exit 1
exit 0
