#!/bin/sh
# tests/bench/bench_teardown.sh: what a teardown costs per socket (issue
# 12): system calls and CPU of the churn program (accept, 1 KiB, close;
# both ends in one process, so two graceful closes per connection: the
# server's end is held, the client's, whose peer closed first, is torn
# down inside its close()), plain and under libwspclose, alternating.
#
# Usage: sh bench_teardown.sh --churn PATH --library PATH
#                             [--connections N] [--rounds N]
# System calls are counted by `perf stat -e raw_syscalls:sys_enter` (every
# thread, the reaper's included) and, per call, by its syscalls:sys_enter_*
# tracepoints; without a usable perf, by `strace -f -c` (which slows the
# program down and so changes how the reaper batches: marked as such).
# CPU is user + system time (getrusage of the children, through the shell's
# times builtin) of separate runs without a counter, which would add CPU to
# every system call. Each figure is the median over the rounds;
# "extra per socket" is (with - without) / 2 per connection.

me=bench_teardown

churn=
library=
connections=10000
rounds=5

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

# The calls shown one by one; the rest are summed as "other".
calls="close fcntl dup getsockopt setsockopt ioctl shutdown epoll_ctl epoll_pwait
epoll_wait write read futex eventfd2 epoll_create1 poll ppoll accept accept4
socket connect sendto recvfrom"

counter=
if perf stat -x, -e raw_syscalls:sys_enter -e syscalls:sys_enter_close true \
	>/dev/null 2>&1; then
	counter=perf
elif strace -f -c -o "$work/probe" true >/dev/null 2>&1; then
	counter=strace
else
	echo "$me: neither perf nor strace can count system calls here" >&2
	exit 2
fi

events="-e raw_syscalls:sys_enter"
for call in $calls; do
	[ -d /sys/kernel/tracing/events/syscalls/sys_enter_$call ] ||
		[ -d /sys/kernel/debug/tracing/events/syscalls/sys_enter_$call ] ||
		[ "$counter" = strace ] || continue
	events="$events -e syscalls:sys_enter_$call"
done

. "$(dirname "$0")/bench_lib.sh"

# timed_run plain|lib: one churn run without a counter (the tracepoints
# cost CPU per system call); appends its CPU us/connection to $work/cpu.CONFIG.
timed_run() {
	preload=
	[ "$1" = lib ] && preload=$library
	times >"$work/times.before"
	env LD_PRELOAD="$preload" "$churn" --connections "$connections" \
		>"$work/run.out" 2>"$work/run.err" || {
		echo "$me: churn ($1) failed:" >&2
		cat "$work/run.err" >&2
		return 1
	}
	times >"$work/times.after"
	awk -v a="$(children_cpu "$work/times.before")" -v b="$(children_cpu "$work/times.after")" \
		-v n="$connections" 'BEGIN { printf "%.2f\n", (b - a) * 1e6 / n }' >>"$work/cpu.$1"
}

# counted_run plain|lib ROUND: one counted churn run; writes "call count"
# lines to $work/ROUND.CONFIG.calls.
counted_run() {
	preload=
	[ "$1" = lib ] && preload=$library
	case $counter in
		perf) env LD_PRELOAD="$preload" perf stat -x, -o "$work/counts" $events \
			"$churn" --connections "$connections" ;;
		strace) env LD_PRELOAD="$preload" strace -f -c -o "$work/counts" \
			"$churn" --connections "$connections" ;;
	esac >"$work/run.out" 2>"$work/run.err" || {
		echo "$me: churn ($1) failed:" >&2
		cat "$work/run.err" >&2
		return 1
	}
	case $counter in
		perf) awk -F, '$3 == "raw_syscalls:sys_enter" { print "total", $1 }
			$3 ~ /^syscalls:sys_enter_/ { sub("syscalls:sys_enter_", "", $3); print $3, $1 }' \
			"$work/counts" ;;
		strace) awk '$NF == "total" { print "total", $3 }
			NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$work/counts" ;;
	esac >"$work/$2.$1.calls"
}

# per_connection CONFIG CALL: median over the rounds of CALL's count / connections.
per_connection() {
	r=1
	while [ "$r" -le "$rounds" ]; do
		awk -v c="$2" -v n="$connections" '$1 == c { x = $2 } END { printf "%.3f\n", x / n }' \
			"$work/$r.$1.calls"
		r=$((r + 1))
	done | median_of_lines
}

echo "$me: churn, $connections connections per run, $rounds rounds, plain and" \
	"libwspclose alternating; counted with $counter"
[ "$counter" = strace ] && echo "(strace slows the program: the counts are indicative)"
timed_run plain && timed_run lib || exit 1 # warm-up, not counted
rm -f "$work/cpu.plain" "$work/cpu.lib"
round=1
while [ "$round" -le "$rounds" ]; do
	if [ $((round % 2)) -eq 1 ]; then order="plain lib"; else order="lib plain"; fi
	for config in $order; do
		counted_run "$config" "$round" && timed_run "$config" || exit 1
	done
	echo "round $round: $(awk '$1 == "total" { print $2 }' "$work/$round.plain.calls") calls" \
		"plain, $(awk '$1 == "total" { print $2 }' "$work/$round.lib.calls") with the library"
	round=$((round + 1))
done

printf '\n%-14s %12s %12s %18s\n' "system call" "plain/conn" "lib/conn" "extra/socket"
shown=0
for call in $calls total; do
	p=$(per_connection plain "$call")
	l=$(per_connection lib "$call")
	line=$(awk -v c="$call" -v p="$p" -v l="$l" 'BEGIN {
		if (p == 0 && l == 0) exit
		printf "%-14s %12.2f %12.2f %18.2f\n", c, p, l, (l - p) / 2 }')
	[ -n "$line" ] && echo "$line"
done
p_total=$(per_connection plain total)
l_total=$(per_connection lib total)
cpu_p=$(median_of_lines <"$work/cpu.plain")
cpu_l=$(median_of_lines <"$work/cpu.lib")
awk -v p="$p_total" -v l="$l_total" -v cp="$cpu_p" -v cl="$cpu_l" 'BEGIN {
	calls = (l - p) / 2
	cpu = (cl - cp) / 2
	printf "\nCPU us/conn: plain %.1f, with the library %.1f\n", cp, cl
	printf "RESULT system calls per socket closed: %.2f extra (target <= 6: %s)\n", calls,
		calls <= 6 ? "met" : "MISSED"
	printf "RESULT CPU per socket closed: %.1f us extra (target <= 15: %s)\n", cpu,
		cpu <= 15 ? "met" : "MISSED"
}'
exit 0
