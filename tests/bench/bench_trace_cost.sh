#!/bin/sh
# tests/bench/bench_trace_cost.sh: what tracing costs (issue 4 item 7): the
# churn program plain, under libwspclose, traced to JSON, and under strace.
#
# Usage: sh bench_trace_cost.sh --churn PATH --library PATH
#                               [--connections N] [--rounds N]
# Configurations run alternately (the order rotates every round) so that
# drift in machine load hits all of them alike; the table shows medians.
# The ratios are medians of per-round ratios (each pairs runs made a few
# seconds apart, under the same load), with their range; the ratio of the
# medians is shown beside them.

me=bench_trace_cost

churn=
library=
connections=5000
rounds=9

usage() {
	echo "Usage: $me --churn PATH --library PATH [--connections N] [--rounds N]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
		--churn) [ $# -ge 2 ] || usage; churn=$2; shift ;;
		--library) [ $# -ge 2 ] || usage; library=$2; shift ;;
		--connections) [ $# -ge 2 ] || usage; connections=$2; shift ;;
		--rounds) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
		*) usage ;;
	esac
	shift
done
[ -n "$churn" ] && [ -n "$library" ] || usage
case $connections$rounds in *[!0-9]*) usage ;; esac
[ -x "$churn" ] || { echo "$me: $churn: not an executable (make tests/bench/churn)" >&2; exit 2; }
[ -f "$library" ] || { echo "$me: $library: no such library (make)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

have_strace=
if command -v strace >/dev/null 2>&1 &&
	strace -f -e trace=close -o "$work/probe.strace" true >/dev/null 2>&1; then
	have_strace=1
fi

. "$(dirname "$0")/bench_lib.sh"

# run_config A|B|C|D: one churn run (in a subshell of its own); prints
# "CONNECTIONS_PER_SECOND CPU_MICROSECONDS_PER_CONNECTION", or fails.
run_config() {
	rm -f "$work/trace.json" "$work/out.strace"
	times >"$work/times.before" # here: a command substitution would be another shell
	case $1 in
		a) env -u LD_PRELOAD "$churn" --connections "$connections" ;;
		b) env -u WSPCLOSE_TRACE LD_PRELOAD="$library" "$churn" --connections "$connections" ;;
		c) env LD_PRELOAD="$library" WSPCLOSE_TRACE="$work/trace.json" \
			WSPCLOSE_TRACE_FORMAT=json "$churn" --connections "$connections" ;;
		d) env -u LD_PRELOAD strace -f -e trace=close,shutdown,setsockopt \
			-o "$work/out.strace" "$churn" --connections "$connections" ;;
	esac >"$work/run.out" 2>"$work/run.err" || {
		echo "$me: configuration ($1) failed:" >&2
		cat "$work/run.err" >&2
		return 1
	}
	times >"$work/times.after"
	cpu_before=$(children_cpu "$work/times.before")
	cpu_after=$(children_cpu "$work/times.after")
	if [ "$1" = c ]; then
		wc -l <"$work/trace.json" >"$work/trace.lines"
		wc -c <"$work/trace.json" >"$work/trace.bytes"
	fi
	throughput=$(sed -n 's/.*: \([0-9][0-9]*\) connections\/second$/\1/p' "$work/run.out")
	[ -n "$throughput" ] || { echo "$me: ($1) printed no throughput" >&2; return 1; }
	awk -v t="$throughput" -v a="$cpu_before" -v b="$cpu_after" -v n="$connections" \
		'BEGIN { printf "%s %.1f\n", t, (b - a) * 1e6 / n }'
}

median() {
	sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

configs="a b c"
[ -z "$have_strace" ] || configs="$configs d"

echo "$me: $connections connections per run, $rounds rounds, configurations alternating"
# One short warm-up of each, not measured (page cache, CPU frequency).
for config in $configs; do
	connections_saved=$connections
	connections=200
	run_config "$config" >/dev/null || exit 1
	connections=$connections_saved
done

round=1
while [ "$round" -le "$rounds" ]; do
	# Rotate the order: round 1 a b c d, round 2 b c d a, ...
	order=$configs
	i=1
	while [ "$i" -lt "$round" ]; do
		first=${order%% *}
		order="${order#* } $first"
		i=$((i + 1))
	done
	line="round $round:"
	for config in $order; do
		value=$(run_config "$config") || exit 1
		echo "${value% *}" >>"$work/results.$config"
		echo "${value#* }" >>"$work/cpu.$config"
		eval "this_$config=\${value% *}"
		line="$line ($config) ${value% *}"
	done
	awk -v x="$this_b" -v y="$this_a" 'BEGIN { printf "%.4f\n", x / y }' >>"$work/ratio.ba"
	awk -v x="$this_c" -v y="$this_b" 'BEGIN { printf "%.4f\n", x / y }' >>"$work/ratio.cb"
	[ -z "$have_strace" ] ||
		awk -v x="$this_d" -v y="$this_a" 'BEGIN { printf "%.4f\n", x / y }' >>"$work/ratio.da"
	echo "$line"
	round=$((round + 1))
done

a=$(median <"$work/results.a")
b=$(median <"$work/results.b")
c=$(median <"$work/results.c")
d=n/a
[ -z "$have_strace" ] || d=$(median <"$work/results.d")
# CPU time per connection (all threads; for (d) with strace's own).
cpu_median() {
	if [ -f "$work/cpu.$1" ]; then
		sort -n "$work/cpu.$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
	else
		echo n/a
	fi
}

ratio() {
	case $1$2 in
		*n/a*) echo n/a ;;
		*) awk -v x="$1" -v y="$2" 'BEGIN { printf "%.3f\n", x / y }' ;;
	esac
}

# "median (min-max)" of the per-round ratios in FILE.
paired() {
	[ -f "$1" ] || { echo n/a; return; }
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.3f (%.3f-%.3f)\n", m, v[1], v[NR] }'
}

printf '\n%-58s %15s %14s\n' "configuration" "conn/s (median)" "CPU us/conn"
printf '%-58s %15s %14s\n' "(a) plain" "$a" "$(cpu_median a)"
printf '%-58s %15s %14s\n' "(b) libwspclose, untraced" "$b" "$(cpu_median b)"
printf '%-58s %15s %14s\n' "(c) libwspclose, WSPCLOSE_TRACE=file, json" "$c" "$(cpu_median c)"
printf '%-58s %15s %14s\n' "(d) strace -f -e trace=close,shutdown,setsockopt (no lib)" "$d" "$(cpu_median d)"
cb_paired=$(paired "$work/ratio.cb")
verdict=$(awk -v r="${cb_paired%% *}" 'BEGIN { print (r >= 0.90) ? "met" : "MISSED" }')
printf '\n%-24s %-24s %s\n' "throughput ratio" "per round: median (range)" "of the medians"
printf '%-24s %-24s %s\n' "(b)/(a) library cost" "$(paired "$work/ratio.ba")" "$(ratio "$b" "$a")"
printf '%-24s %-24s %s   (target >= 0.90: %s)\n' "(c)/(b) trace cost" "$cb_paired" \
	"$(ratio "$c" "$b")" "$verdict"
printf '%-24s %-24s %s\n' "(d)/(a) strace cost" "$(paired "$work/ratio.da")" "$(ratio "$d" "$a")"
[ -z "$have_strace" ] && echo "(strace is not usable here: (d) not measured)"
printf '%-24s %s\n' "CPU (c)/(b)" "$(ratio "$(cpu_median c)" "$(cpu_median b)")"
# churn closes both ends of each connection, each with a close and a release
# line, and its listener, which has nothing to tear down (closed in the
# caller: a close line, no release line); one summary at exit.
expected=$((4 * connections + 2))
lines=$(cat "$work/trace.lines")
complete="complete"
[ "$lines" -eq "$expected" ] || complete="NOT COMPLETE: $expected expected"
echo "trace of the last (c) run: $lines lines ($complete), $(cat "$work/trace.bytes") bytes"
exit 0
