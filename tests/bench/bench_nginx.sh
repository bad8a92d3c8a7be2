#!/bin/sh
# tests/bench/bench_nginx.sh: nginx's CPU per request with `Connection:
# close` (issue 12), plain and under libwspclose, alternating.
#
# Usage: sh bench_nginx.sh --library PATH [--reference PATH] [--rounds N] [--seconds S]
# Each round starts nginx (one worker, a 612-byte file) once plain, once
# with LD_PRELOAD of the library and, with --reference, once with that
# reference library (hold_floor.so: a minimal holder that keeps each socket
# until its FIN is acknowledged and closes the copies in a thread of its
# own), the order rotating by round, and
# drives it with
# `wrk -t1 -c4 -d S -H 'Connection: close'` over loopback. The server's CPU
# is the worker's user + system time from /proc/PID/stat (every thread of
# it, the reaper's included) over the wrk run, divided by the requests wrk
# completed. The table shows medians; each ratio is the median of the
# per-round ratios. Without nginx or wrk it says so and measures nothing.

me=bench_nginx
library=
reference=
rounds=5
seconds=5

usage() {
	echo "Usage: $me --library PATH [--reference PATH] [--rounds N] [--seconds S]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
		--library) [ $# -ge 2 ] || usage; library=$2; shift ;;
		--reference) [ $# -ge 2 ] || usage; reference=$2; shift ;;
		--rounds) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
		--seconds) [ $# -ge 2 ] || usage; seconds=$2; shift ;;
		*) usage ;;
	esac
	shift
done
[ -n "$library" ] || usage
case $rounds$seconds in *[!0-9]*) usage ;; esac
[ -f "$library" ] || { echo "$me: $library: no such library (make)" >&2; exit 2; }
[ -z "$reference" ] || [ -f "$reference" ] ||
	{ echo "$me: $reference: no such library (make)" >&2; exit 2; }
for tool in nginx wrk; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$me: NOT MEASURED: $tool is not installed (apt-get install nginx wrk)"
		exit 0
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/$me.XXXXXX") || exit 1
master=
cleanup() {
	[ -n "$master" ] && kill "$master" 2>/dev/null && wait "$master" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/www"
head -c 612 /dev/zero | tr '\0' 'n' >"$work/www/index.html"
ticks=$(getconf CLK_TCK)
. "$(dirname "$0")/bench_lib.sh"

# A port nothing listens on.
port=
for candidate in $(seq 18080 18180); do
	if ! grep -qi ":$(printf '%04X' "$candidate") 00000000:0000 0A" /proc/net/tcp; then
		port=$candidate
		break
	fi
done
[ -n "$port" ] || { echo "$me: no free port in 18080-18180" >&2; exit 1; }

cat >"$work/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/body;
	proxy_temp_path $work/proxy;
	fastcgi_temp_path $work/fastcgi;
	uwsgi_temp_path $work/uwsgi;
	scgi_temp_path $work/scgi;
	default_type text/html;
	server {
		listen 127.0.0.1:$port;
		root $work/www;
	}
}
EOF

# process_cpu_ticks PID: utime + stime of the whole process.
process_cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# one_run plain|lib|ref: prints "REQUESTS CPU_US_PER_REQUEST".
one_run() {
	preload=
	[ "$1" = lib ] && preload=$library
	[ "$1" = ref ] && preload=$reference
	env LD_PRELOAD="$preload" nginx -p "$work" -c "$work/nginx.conf" -e "$work/error.log" \
		>"$work/nginx.out" 2>&1 &
	master=$!
	worker=
	i=0
	while [ $i -lt 100 ]; do
		worker=$(pgrep -P "$master" | head -n 1)
		[ -n "$worker" ] && grep -qi ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp &&
			break
		sleep 0.05
		i=$((i + 1))
	done
	[ -n "$worker" ] || { echo "$me: nginx ($1) did not start" >&2; cat "$work/nginx.out" >&2; return 1; }
	before=$(process_cpu_ticks "$worker")
	wrk -t1 -c4 -d"${seconds}s" -H 'Connection: close' "http://127.0.0.1:$port/index.html" \
		>"$work/wrk.out" 2>&1
	after=$(process_cpu_ticks "$worker")
	kill "$master"
	wait "$master" 2>/dev/null
	master=
	requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
	errors=$(awk '/Socket errors|Non-2xx/ { print }' "$work/wrk.out")
	[ -n "$requests" ] && [ "$requests" -gt 0 ] ||
		{ echo "$me: wrk ($1) completed no request:" >&2; cat "$work/wrk.out" >&2; return 1; }
	[ -z "$errors" ] || echo "$me: ($1) $errors" >&2
	awk -v r="$requests" -v a="$before" -v b="$after" -v t="$ticks" \
		'BEGIN { printf "%d %.2f\n", r, (b - a) / t * 1e6 / r }'
}

configs="plain lib"
[ -n "$reference" ] && configs="plain lib ref"
echo "$me: nginx (1 worker), wrk -t1 -c4 -d${seconds}s 'Connection: close', $rounds rounds, configurations rotating ($configs)"
[ -n "$reference" ] && echo "  ref = $reference"
round=1
while [ "$round" -le "$rounds" ]; do
	# Rotate the order so that no configuration always runs first.
	order=$configs
	i=1
	while [ "$i" -lt "$round" ]; do
		order="${order#* } ${order%% *}"
		i=$((i + 1))
	done
	for config in $order; do
		value=$(one_run "$config") || exit 1
		echo "${value% *}" >>"$work/requests.$config"
		echo "${value#* }" >>"$work/cpu.$config"
		eval "cpu_$config=\${value#* }"
	done
	awk -v l="$cpu_lib" -v p="$cpu_plain" 'BEGIN { printf "%.4f\n", l / p }' >>"$work/ratio"
	line="round $round: server CPU per request plain $cpu_plain us, with the library $cpu_lib us"
	if [ -n "$reference" ]; then
		awk -v r="$cpu_ref" -v p="$cpu_plain" 'BEGIN { printf "%.4f\n", r / p }' >>"$work/ratio.ref"
		awk -v l="$cpu_lib" -v r="$cpu_ref" 'BEGIN { printf "%.4f\n", l / r }' >>"$work/ratio.lib-ref"
		line="$line, with the reference $cpu_ref us"
	fi
	echo "$line"
	round=$((round + 1))
done

# range_of FILE: "MIN-MAX" of its lines.
range_of() {
	sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.3f-%.3f", v[1], v[NR] }'
}

header="plain libwspclose"
[ -n "$reference" ] && header="$header reference"
printf '\n%-34s' "median of $rounds rounds"
for config in $header; do printf ' %12s' "$config"; done
printf '\n%-34s' "requests per run"
for config in $configs; do printf ' %12s' "$(median_of_lines <"$work/requests.$config")"; done
printf '\n%-34s' "server CPU per request, us"
for config in $configs; do printf ' %12s' "$(median_of_lines <"$work/cpu.$config")"; done
printf '\n'
if [ -n "$reference" ]; then
	printf 'reference/plain (a minimal holder with a release thread): %.3f (per-round range %s)\n' \
		"$(median_of_lines <"$work/ratio.ref")" "$(range_of "$work/ratio.ref")"
	printf 'libwspclose/reference: %.3f (per-round range %s)\n' \
		"$(median_of_lines <"$work/ratio.lib-ref")" "$(range_of "$work/ratio.lib-ref")"
fi
ratio=$(median_of_lines <"$work/ratio")
printf 'RESULT nginx server CPU per request with/without: %.3f (per-round range %s; target <= 1.10: %s)\n' \
	"$ratio" "$(range_of "$work/ratio")" "$(awk -v m="$ratio" 'BEGIN { print m <= 1.10 ? "met" : "MISSED" }')"
exit 0
