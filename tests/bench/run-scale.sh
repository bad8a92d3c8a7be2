#!/bin/sh
# tests/bench/run-scale.sh: runs the scale benchmarks of `make bench-scale` (churn,
# hold scale and cost curve, data-structure simulation) and prints their tables.
#
# Usage: sh tests/bench/run-scale.sh --library PATH [--reference PATH] [--bindir DIR]
#                                    [--quick]
#   --library PATH  the libwspclose.so to preload (with/without comparisons)
#   --reference PATH  also run the churn with this preload (hold_floor.so)
#   --bindir DIR    where the bench_*/sim_* programs are (default: this script's dir)
#   --quick         small sizes and few runs: a smoke test of the programs, not numbers
# Environment (optional overrides of the defaults below):
#   SCALE_CHURN_CONNECTIONS SCALE_CHURN_RUNS SCALE_CHURN_CONCURRENCY
#   SCALE_HOLD_SIZES SCALE_HOLD_RUNS SCALE_HOLD_WAIT_MS SCALE_SIM_SIZES
# Exit status: 0 when every program ran to the end; a missed target is reported
# on its RESULT line, not as a failure.

me=run-scale.sh
library=
reference=
bindir=$(dirname "$0")
quick=no

while [ "$#" -gt 0 ]; do
	case $1 in
	--library) library=$2; shift 2 ;;
	--reference) reference=$2; shift 2 ;;
	--bindir) bindir=$2; shift 2 ;;
	--quick) quick=yes; shift ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "$me: unknown argument: $1" >&2; exit 2 ;;
	esac
done
if [ -z "$library" ] || [ ! -f "$library" ]; then
	echo "$me: --library must name the built libwspclose.so (got '${library}')" >&2
	exit 2
fi
if [ -n "$reference" ] && [ ! -f "$reference" ]; then
	echo "$me: --reference: no such file: '$reference'" >&2
	exit 2
fi
for prog in bench_churn_scale bench_hold_scale sim_deadline_heap; do
	if [ ! -x "$bindir/$prog" ]; then
		echo "$me: $bindir/$prog is not built (make bench-scale builds it)" >&2
		exit 2
	fi
done

if [ "$quick" = yes ]; then
	: "${SCALE_CHURN_CONNECTIONS:=2000}" "${SCALE_CHURN_RUNS:=1}"
	: "${SCALE_HOLD_SIZES:=500,1000}" "${SCALE_HOLD_RUNS:=1}" "${SCALE_HOLD_WAIT_MS:=500}"
	: "${SCALE_SIM_SIZES:=1000,10000}"
fi
: "${SCALE_CHURN_CONNECTIONS:=20000}"
: "${SCALE_CHURN_RUNS:=7}"
: "${SCALE_CHURN_CONCURRENCY:=4 16}"
# 50,000 and 100,000 held sockets need about 2 x 100,000 descriptors in the
# holder: only where the hard RLIMIT_NOFILE is, or may be raised, that high.
if [ -z "${SCALE_HOLD_SIZES:-}" ]; then
	if (ulimit -Hn 262144) 2>/dev/null; then
		SCALE_HOLD_SIZES=1000,2000,5000,10000,15000,50000,100000
	else
		SCALE_HOLD_SIZES=1000,2000,5000,10000,15000
		scale_note="100,000 held sockets NOT MEASURED: the hard RLIMIT_NOFILE ($(ulimit -Hn)) cannot be raised here (needs CAP_SYS_RESOURCE)"
	fi
fi
: "${SCALE_HOLD_RUNS:=3}"
: "${SCALE_HOLD_WAIT_MS:=5000}"
: "${SCALE_SIM_SIZES:=1000,2000,5000,10000,20000,50000,100000,200000,500000,1000000}"

log=$(mktemp "${TMPDIR:-/tmp}/run-scale.XXXXXX") || exit 1
snapdir=$(mktemp -d "${TMPDIR:-/tmp}/run-scale-lib.XXXXXX") || exit 1
trap 'rm -f "$log" "$log.rc"; rm -rf "$snapdir"' EXIT
trap 'exit 130' HUP INT PIPE TERM
# Every run uses one and the same library: a copy taken now, so that a
# rebuild while the benchmarks run cannot mix two versions in one table.
built=$library
cp "$built" "$snapdir/libwspclose.so" || exit 1
library=$snapdir/libwspclose.so
status=0
started=$(date +%s)

echo "libwspclose scale benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(uname -srvm); nproc $(nproc); $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
if command -v lscpu >/dev/null 2>&1; then
	lscpu | grep -E '^(CPU\(s\)|Model name|Thread\(s\) per core|Core\(s\) per socket|Hypervisor vendor|L2 cache|L3 cache):' |
		sed 's/  */ /g; s/^/  lscpu: /'
fi
echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo);" \
	"somaxconn $(cat /proc/sys/net/core/somaxconn 2>/dev/null);" \
	"ip_local_port_range $(tr '\t' ' ' < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)"
echo "RLIMIT_NOFILE: soft $(ulimit -Sn), hard $(ulimit -Hn)"
[ -z "${scale_note:-}" ] || echo "$scale_note"
echo "library: $built (built $(date -u -r "$built" +%Y-%m-%dT%H:%M:%SZ)," \
	"sha256 $(sha256sum "$built" | cut -c1-16)), run from a copy"
top=$(cd "$(dirname "$0")/../.." && pwd)
if command -v git >/dev/null 2>&1 && git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	echo "source: $(git -C "$top" log -1 --format='%h %s'); uncommitted changes in src/:" \
		"$(git -C "$top" status --porcelain -- src | wc -l) files"
fi
echo

# Each program in turn; `|| status=1` must see the program's own status, not tee's.
step() {
	echo "\$ $*"
	{ "$@" 2>&1; echo "exit=$?" >"$log.rc"; } | tee -a "$log"
	if [ "$(cat "$log.rc")" != exit=0 ]; then
		echo "$me: $1 failed ($(cat "$log.rc"))"
		status=1
	fi
	rm -f "$log.rc"
	echo
}

step "$bindir/sim_deadline_heap" --sizes "$SCALE_SIM_SIZES"
for c in $SCALE_CHURN_CONCURRENCY; do
	step "$bindir/bench_churn_scale" --library "$library" ${reference:+--reference "$reference"} \
		--connections "$SCALE_CHURN_CONNECTIONS" --runs "$SCALE_CHURN_RUNS" --concurrency "$c"
done
step "$bindir/bench_hold_scale" --library "$library" --sizes "$SCALE_HOLD_SIZES" \
	--runs "$SCALE_HOLD_RUNS" --wait-ms "$SCALE_HOLD_WAIT_MS"

echo "== summary ($(($(date +%s) - started)) s) =="
grep '^RESULT' "$log"
[ -z "${scale_note:-}" ] || echo "$scale_note"
[ "$status" -eq 0 ] || echo "$me: a benchmark program failed"
exit "$status"
