#!/usr/bin/env bash
# tests/peers/run-peers.sh: `make check-peers`: other people's test suites
# with and without libwspclose. Runs CPython 3.11's own tests (Debian's
# libpython3.11-testsuite) for sockets, selectors, asyncio, subprocess,
# signals, threads, multiprocessing's forkserver and concurrent.futures,
# once without and once with the library preloaded (children inherit it),
# compares them test case by test case, runs every case that failed only
# with the library again both ways, and fails when one still fails only
# with it, or when a whole module fails only with it (a hang or a crash).
#
# Usage: run-peers.sh --library PATH [--modules "test_a test_b"] [--keep DIR]
#   Installs python3.11 and libpython3.11-testsuite when missing (apt-get,
#   as root). Everything runs on loopback; no network resource is enabled.
set -euo pipefail

me=run-peers
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
python=/usr/bin/python3.11
library=
keep=
modules=(test_socket test_selectors test_asyncio test_subprocess test_signal test_threading
	test_multiprocessing_forkserver test_concurrent_futures)
# Per module, killed after this (a hang counts as that module failing).
module_timeout=600

die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 2
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--library) library=${2:-}; shift 2 ;;
	--modules) read -r -a modules <<<"${2:-}"; shift 2 ;;
	--keep) keep=${2:-}; shift 2 ;;
	*) die "unknown argument '$1' (usage: $me --library PATH [--modules LIST] [--keep DIR])" ;;
	esac
done
[[ -n $library && -r $library ]] || die "--library must name the built libwspclose.so"
library=$(cd -- "$(dirname -- "$library")" && pwd)/$(basename -- "$library")

install_if_missing() {
	local missing=() pkg
	for pkg in python3.11 libpython3.11-testsuite; do
		dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed ||
			missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	printf '%s: installing %s\n' "$me" "${missing[*]}"
	[[ $(id -u) -eq 0 ]] || die "root is needed to install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_if_missing
[[ -x $python ]] || die "$python is missing"

work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/check-peers.XXXXXX")}
mkdir -p "$work"
[[ -n $keep ]] || trap 'rm -rf "$work"' EXIT

# What both runs leave out: the environment's, never the library's (see
# the file), and the intended Windows differences (none today).
ignores=$work/ignore.txt
grep -hv '^[[:space:]]*\(#\|$\)' "$here/environment-exclusions.txt" "$here/intended-differences.txt" |
	awk '{print $1}' >"$ignores" || true

# run_suite LABEL PRELOAD OUTPUT [regrtest arguments...]: one regrtest run.
run_suite() {
	local label=$1 preload=$2 out=$3 start=$SECONDS
	shift 3
	(
		unset LD_PRELOAD WSPCLOSE_TRACE WSPCLOSE_TRACE_FORMAT WSPCLOSE_STATS \
			WSPCLOSE_PASSTHROUGH WSPCLOSE_GRACE_MS WSPCLOSE_MAX_HELD WSPCLOSE_FINDINGS_FILE
		[[ -n $preload ]] && export LD_PRELOAD=$preload
		cd "$work" && timeout $((module_timeout * ${#modules[@]} + 300)) \
			"$python" -m test -j2 --timeout "$module_timeout" --ignorefile "$ignores" \
			--junit-xml "$out.xml" "$@" >"$out.log" 2>&1
	) || true
	printf '%s: %-28s %4ds\n' "$me" "$label" $((SECONDS - start))
}

# The modules regrtest's summary lists as failed, crashed or timed out.
failed_modules() {
	awk '/^[0-9]+ tests? (failed|crashed|timed out|failed again)/ {list = 1; next}
	     list && /^    / {for (i = 1; i <= NF; i++) print $i; next}
	     {list = 0}' "$1" | sort -u
}

printf '%s: CPython %s, modules: %s\n' "$me" "$("$python" -c 'import platform; print(platform.python_version())')" "${modules[*]}"
run_suite 'without the library' '' "$work/without" "${modules[@]}"
run_suite 'with the library' "$library" "$work/with" "${modules[@]}"

"$python" "$here/compare_junit.py" "$work/without.xml" "$work/with.xml" | tee "$work/compare.txt"
"$python" "$here/compare_junit.py" "$work/without.xml" "$work/with.xml" --ids-only >"$work/suspects.txt"
comm -13 <(failed_modules "$work/without.log") <(failed_modules "$work/with.log") >"$work/modules_only_with.txt"

failures=0
if [[ -s $work/suspects.txt ]]; then
	# Once more, both ways, only those cases: one flaky run decides nothing.
	sed 's/^/*/' "$work/suspects.txt" >"$work/match.txt"
	mapfile -t rerun_modules < <(sed 's/\..*//' "$work/suspects.txt" | sort -u)
	run_suite 'rerun without' '' "$work/rerun-without" --matchfile "$work/match.txt" "${rerun_modules[@]}"
	run_suite 'rerun with' "$library" "$work/rerun-with" --matchfile "$work/match.txt" "${rerun_modules[@]}"
	"$python" "$here/compare_junit.py" "$work/rerun-without.xml" "$work/rerun-with.xml" --ids-only |
		grep -Fxf "$work/suspects.txt" >"$work/confirmed.txt" || true
	while read -r id; do
		printf '%s: FAIL only with the library (twice): %s\n' "$me" "$id"
		failures=$((failures + 1))
	done <"$work/confirmed.txt"
	comm -23 <(sort "$work/suspects.txt") <(sort "$work/confirmed.txt") |
		sed "s/^/$me: passed when run again (flaky, not counted): /"
fi
while read -r module; do
	[[ -n $module ]] || continue
	printf '%s: FAIL module %s fails only with the library (hang or crash?); its log:\n' "$me" "$module"
	grep -n -A20 "$module" "$work/with.log" | head -40 | sed 's/^/    /'
	failures=$((failures + 1))
done <"$work/modules_only_with.txt"

passed=$("$python" "$here/compare_junit.py" "$work/without.xml" "$work/with.xml" --count-ok)
printf '%s: %d passed, %d failed\n' "$me" "$passed" "$failures"
[[ $failures -eq 0 ]]
