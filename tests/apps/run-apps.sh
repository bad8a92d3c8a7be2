#!/bin/bash
# tests/apps/run-apps.sh: `make check-apps`: real servers and clients run once
# without and once with libwspclose preloaded, and their results compared.
#
# Usage: bash tests/apps/run-apps.sh --library PATH/libwspclose.so --build BUILDDIR
#
# Every server is started here on 127.0.0.1, on free ports picked here, with
# its own configuration and temporary directory, and stopped on exit. Missing
# Debian packages are installed with apt-get (after apt-get update). Loads are
# bounded in count and time. Prints a table (app | check | without | with |
# result), the throughputs, and "N passed, N failed"; exits non-zero on a
# failure.

# Make runs this with $(SHELL), which may be sh: continue in bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi

set -u
set -o pipefail

me='run-apps'
library=
build=
in_netns=0
while [ "$#" -gt 0 ]; do
	case $1 in
	--library) library=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--in-netns) in_netns=1; shift ;;
	*) echo "$me: unknown argument: $1" >&2; exit 2 ;;
	esac
done
if [ -z "$library" ] || [ -z "$build" ]; then
	echo "usage: $me --library PATH/libwspclose.so --build BUILDDIR" >&2
	exit 2
fi
case $library in /*) ;; *) library=$PWD/$library ;; esac
if [ ! -r "$library" ]; then
	echo "$me: $library: not readable (build the library first: make)" >&2
	exit 2
fi
w1_program=$build/tests/apps/w1_event_loop
if [ ! -x "$w1_program" ]; then
	echo "$me: $w1_program: not built (make tests/apps/w1_event_loop)" >&2
	exit 2
fi

. "$(dirname "$0")/../harness.sh" # log, pass_if, forget_pid

# ---------------------------------------------------------------- packages

ensure_packages() {
	local missing=() cmd pkg
	for cmd in nginx:nginx-light wrk:wrk redis-server:redis-server \
		redis-benchmark:redis-tools redis-cli:redis-tools curl:curl \
		socat:socat python3:python3 ss:iproute2 ip:iproute2 pgrep:procps \
		sha256sum:coreutils; do
		pkg=${cmd#*:}
		cmd=${cmd%%:*}
		if ! command -v "$cmd" >/dev/null 2>&1 && [ -x "/usr/sbin/$cmd" ]; then
			PATH=$PATH:/usr/sbin
		fi
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	# Remove duplicates (redis-tools, iproute2).
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || { log "apt-get update failed"; return 1; }
	apt_log=$(mktemp) || return 1
	if ! apt-get install -y -qq "${missing[@]}" >"$apt_log" 2>&1; then
		# nginx-light is gone from newer releases: fall back to nginx.
		missing=("${missing[@]/nginx-light/nginx}")
		apt-get install -y -qq "${missing[@]}" >>"$apt_log" 2>&1 || {
			tail -n 20 "$apt_log"
			rm -f "$apt_log"
			log "apt-get install ${missing[*]} failed"
			return 1
		}
	fi
	rm -f "$apt_log"
	PATH=$PATH:/usr/sbin
	return 0
}

if [ "$in_netns" = 0 ] && ! ensure_packages; then
	echo "0 passed, 1 failed"
	exit 1
fi
PATH=$PATH:/usr/sbin

# A network namespace of our own, when we may make one: its loopback is
# 127.0.0.1 like the host's, but its ports, TIME_WAIT table and counters are
# not shared with whatever else runs on this machine (and ours do not fill
# theirs). Without the privilege the host's loopback is used.
if [ "$in_netns" = 0 ]; then
	if command -v unshare >/dev/null 2>&1 && unshare --net true 2>/dev/null; then
		exec unshare --net -- bash "$0" --library "$library" --build "$build" --in-netns
	fi
	log "cannot create a network namespace: using the host's loopback"
else
	ip link set lo up || { log "ip link set lo up failed in the namespace"; exit 2; }
	log "running in a private network namespace (loopback 127.0.0.1)"
fi

# Load sizes (bounded in time and count). Each load runs once per mode in each
# of ROUNDS rounds, the order of the modes alternating (this VM is noisy):
# every run must pass the functional checks; the best throughput is reported.
ROUNDS=${ROUNDS:-2}
WRK_SECONDS=${WRK_SECONDS:-4}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
BIG_MB=50
SETTLE_SECONDS=5

started_at=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wspclose-apps.XXXXXX") || exit 2
declare -a pids=()
load_pid=$$

# stop_pid PID [SIGNAL]: SIGNAL (TERM), then KILL after 5 s; reaps it.
stop_pid() {
	local pid=$1 sig=${2:-TERM} i
	forget_pid "$pid"
	kill -"$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		: "$i"
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP


# The Debian python3, if there (a version manager's shim is a shell script).
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

# ---------------------------------------------------------------- results

declare -a rows=() throughputs=()
passed=0
failed=0

# record APP CHECK WITHOUT WITH RESULT(PASS|FAIL) [DETAIL]
record() {
	rows+=("$1|$2|$3|$4|$5")
	if [ "$5" = PASS ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		[ -n "${6:-}" ] && log "FAIL: $1: $2: $6"
	fi
}

# Results, keyed NAME.WHAT.MODE, accumulated over the rounds.
declare -A R=()
add() { R[$1]=$((${R[$1]:-0} + ${2:-0})); }
best() { R[$1]=$(awk -v a="${R[$1]:-0}" -v b="${2:-0}" 'BEGIN { print (b + 0 > a + 0) ? b : a }'); }
least() { R[$1]=$(awk -v a="${R[$1]:-}" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'); }
note() { R[$1]="${R[$1]:+${R[$1]} }$2"; }
v() { echo "${R[$1]:-?}"; }
c() { echo "${R[$1]:-0}"; } # a count

# ---------------------------------------------------------------- helpers

declare -A used_ports=()
# pick_port: sets $port to a free TCP port on 127.0.0.1 (none of the
# well-known defaults), never one picked before in this run.
pick_port() {
	local i
	for i in $(seq 1 200); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		[ -n "${used_ports[$port]:-}" ] && continue
		if [ -z "$(ss -Htan "( sport = :$port or dport = :$port )" 2>/dev/null)" ]; then
			used_ports[$port]=1
			return 0
		fi
		: "$i"
	done
	log "no free port found"
	return 1
}

# wait_listen PORT PID: until something listens on 127.0.0.1:PORT (10 s).
wait_listen() {
	local i
	for i in $(seq 1 200); do
		if [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
		: "$i"
	done
	return 1
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# cpu_per_request KEY PID_TICKS_BEFORE PID REQUESTS: records the server's CPU
# microseconds per request (the lowest of the rounds: the least disturbed by
# whatever else this machine runs), a steadier measure than throughput here.
cpu_per_request() {
	local t1
	t1=$(cpu_ticks "$3")
	[ "${4:-0}" -gt 0 ] 2>/dev/null || return 0
	least "$1" "$(awk -v t="$((t1 - $2))" -v hz="$clk_tck" -v n="$4" \
		'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
}

# fd_count PID: PID's open descriptors, less the library's documented copy
# of standard error that WSPCLOSE_STATS=1 keeps for its exit report (placed
# at 1024 or above, or in the upper half of a soft RLIMIT_NOFILE <= 1024):
# a descriptor there that is the server's original standard error, the file
# $server_stderr. Held copies (sockets) and the reaper's channel always count.
server_stderr=/nonexistent
fd_count() {
	local limit floor=1024
	limit=$(awk '/^Max open files/ {print $4}' "/proc/$1/limits" 2>/dev/null)
	case $limit in '' | *[!0-9]*) ;; *) [ "$limit" -le 1024 ] && floor=$((limit / 2)) ;; esac
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%f %l\n' 2>/dev/null |
		awk -v floor="$floor" -v err="$server_stderr" \
			'!($1 + 0 >= floor && $2 == err) { c++ } END { print c + 0 }'
}

# fd_listing PID: what a descriptor count is made of (for failure reports).
fd_listing() {
	local f
	for f in "/proc/$1/fd"/*; do
		printf '%s->%s ' "${f##*/}" "$(readlink "$f" 2>/dev/null)"
	done
	echo
}

# fd_check NAME MODE PID BASELINE: after a load, waits (SETTLE_SECONDS at
# most) for PID's descriptor count to come back to BASELINE; records it.
fd_check() {
	local name=$1 mode=$2 pid=$3 base=$4 n i
	for i in $(seq 1 $((SETTLE_SECONDS * 20))); do
		n=$(fd_count "$pid")
		[ "$n" = "$base" ] && break
		sleep 0.05
		: "$i"
	done
	note "$name.fd.$mode" "$base->$n"
	if [ "$n" != "$base" ]; then
		add "$name.fdbad.$mode" 1
		note "$name.fdlist.$mode" "[$(fd_listing "$pid")]"
	fi
}

# preload_env MODE: the env(1) arguments for "without" or "with".
preload_env() {
	if [ "$1" = with ]; then
		printf '%s\n' "LD_PRELOAD=$library" WSPCLOSE_STATS=1
	fi
}

# keep_summary NAME MODE FILE...: the library's exit summary lines, kept.
keep_summary() {
	local name=$1 mode=$2
	shift 2
	grep -h '^libwspclose:' "$@" >>"$tmp/summary-$name-$mode.txt" 2>/dev/null
}

big_file=$tmp/www/big.bin
mkdir -p "$tmp/www"
head -c $((BIG_MB * 1024 * 1024)) /dev/urandom >"$big_file"
big_sum=$(sha256sum "$big_file" | cut -d' ' -f1)
head -c 4096 /dev/urandom | base64 >"$tmp/www/index.html"

# ---------------------------------------------------------------- loads

# wrk_run MODE NAME URL [wrk args]: one bounded wrk run against the server
# whose process is $load_pid.
wrk_run() {
	local mode=$1 name=$2 url=$3 out rc requests t0
	shift 3
	out=$tmp/wrk-$name-$mode-$round.txt
	t0=$(cpu_ticks "$load_pid")
	timeout $((WRK_SECONDS + 30)) wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" \
		"$@" "$url" >"$out" 2>&1
	rc=$?
	add "$name.runs.$mode" 1
	[ "$rc" = 0 ] || add "$name.rcbad.$mode" 1
	requests=$(awk '/requests in/ {print $1; f=1; exit} END {if (!f) print 0}' "$out")
	add "$name.requests.$mode" "$requests"
	cpu_per_request "$name.cpu.$mode" "$t0" "$load_pid" "$requests"
	[ "$requests" -gt 0 ] || add "$name.norequests.$mode" 1
	best "$name.rps.$mode" "$(awk '/^Requests\/sec:/ {print $2; exit}' "$out")"
	# "Socket errors: connect 0, read 0, write 0, timeout 0" is only printed
	# when one is non-zero; "Non-2xx or 3xx responses: N" likewise.
	add "$name.sockerr.$mode" "$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10}
		END {print s + 0}' "$out")"
	add "$name.non2xx.$mode" "$(awk '/Non-2xx or 3xx responses:/ {n = $5} END {print n + 0}' "$out")"
}

# curl_get MODE NAME URL: one download of the big file, curl preloaded in
# the "with" mode.
curl_get() {
	local mode=$1 name=$2 url=$3 out=$tmp/curl-$2-$1.bin info rc
	local -a envs
	mapfile -t envs < <(preload_env "$mode")
	info=$(timeout 120 env "${envs[@]}" curl -sS --max-time 100 -o "$out" \
		-w '%{http_code} %{speed_download}' "$url" 2>"$tmp/curl-$name-$mode.err")
	rc=$?
	add "$name.runs.$mode" 1
	[ "$rc" = 0 ] || add "$name.rcbad.$mode" 1
	note "$name.http.$mode" "${info%% *}"
	best "$name.MBps.$mode" "$(echo "$info" | awk '{printf "%.1f", $2 / 1e6}')"
	if [ "$(sha256sum "$out" 2>/dev/null | cut -d' ' -f1)" = "$big_sum" ]; then
		add "$name.shaok.$mode" 1
	fi
	note "$name.errors.$mode" "$(grep -v '^libwspclose:' "$tmp/curl-$name-$mode.err" | head -c 200)"
	keep_summary "$name" "$mode" "$tmp/curl-$name-$mode.err"
	rm -f "$out"
}

# ---------------------------------------------------------------- nginx

nginx_phase() {
	local mode=$1 port dir=$tmp/nginx-$1-$round master worker base i
	local -a envs
	mapfile -t envs < <(preload_env "$mode")
	pick_port || return 1
	mkdir -p "$dir/logs"
	cat >"$dir/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	sendfile on;
	keepalive_requests 1000000;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$port;
		root $tmp/www;
	}
}
EOF
	server_stderr=$dir/stderr
	env "${envs[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
		>"$dir/stdout" 2>"$dir/stderr" &
	master=$!
	pids+=("$master")
	add "nginx.starts.$mode" 1
	if ! wait_listen "$port" "$master"; then
		log "nginx ($mode) did not start:"
		cat "$dir/stderr" "$dir/logs/error.log" 2>/dev/null
		return 1
	fi
	for i in $(seq 1 40); do
		worker=$(pgrep -P "$master" | head -n 1)
		[ -n "$worker" ] && break
		sleep 0.05
		: "$i"
	done
	add "nginx.started.$mode" 1
	base=$(fd_count "$worker")
	note "nginx.fdbase.$mode" "$base"
	load_pid=$worker

	wrk_run "$mode" wrk-keepalive "http://127.0.0.1:$port/index.html"
	fd_check wrk-keepalive "$mode" "$worker" "$base"
	wrk_run "$mode" wrk-close "http://127.0.0.1:$port/index.html" -H 'Connection: close'
	fd_check wrk-close "$mode" "$worker" "$base"
	curl_get "$mode" curl-nginx "http://127.0.0.1:$port/big.bin"
	fd_check curl-nginx "$mode" "$worker" "$base"

	stop_pid "$master"
	# nginx points its stderr at the error log.
	keep_summary nginx "$mode" "$dir/stderr" "$dir/logs/error.log"
	add "nginx.alerts.$mode" "$(grep -cE '\[(alert|crit|emerg)\]' "$dir/logs/error.log")"
	grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log" >>"$tmp/nginx-alerts-$mode.txt"
	return 0
}

# ---------------------------------------------------------------- redis

redis_phase() {
	local mode=$1 port dir=$tmp/redis-$1-$round pid base out cmd rc tests rps incr llen t0
	local -a envs
	mapfile -t envs < <(preload_env "$mode")
	pick_port || return 1
	mkdir -p "$dir"
	server_stderr=$dir/stderr
	env "${envs[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$dir" --daemonize no --protected-mode no \
		--logfile "$dir/redis.log" --maxclients 1000 \
		>"$dir/stdout" 2>"$dir/stderr" &
	pid=$!
	pids+=("$pid")
	add "redis.runs.$mode" 1
	if ! wait_listen "$port" "$pid"; then
		log "redis-server ($mode) did not start:"
		cat "$dir/stderr" "$dir/redis.log" 2>/dev/null
		return 1
	fi
	base=$(fd_count "$pid")
	note "redis.fdbase.$mode" "$base"
	out=$tmp/redis-bench-$mode-$round.txt
	t0=$(cpu_ticks "$pid")
	timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -t set,get,incr,lpush \
		-c 50 -n 20000 -q >"$out.raw" 2>&1
	rc=$?
	cpu_per_request "redis.cpu.$mode" "$t0" "$pid" 80000
	tr '\r' '\n' <"$out.raw" | grep -E 'requests per second|rror' >"$out"
	tests=0
	for cmd in SET GET INCR LPUSH; do
		rps=$(awk -v c="$cmd:" '$1 == c {print $2; exit}' "$out")
		[ -n "$rps" ] && tests=$((tests + 1))
		best "redis.$cmd.$mode" "$rps"
	done
	add "redis.errors.$mode" "$(grep -ci 'error' "$out")"
	# Every command was executed: 20000 INCRs of one key, 20000 LPUSHes.
	incr=$(redis-cli -h 127.0.0.1 -p "$port" GET 'counter:__rand_int__' 2>&1)
	llen=$(redis-cli -h 127.0.0.1 -p "$port" LLEN mylist 2>&1)
	note "redis.counts.$mode" "$incr/$llen"
	add "redis.errorstats.$mode" "$(redis-cli -h 127.0.0.1 -p "$port" INFO errorstats 2>&1 |
		tr -d '\r' | grep -c '^errorstat_')"
	if [ "$rc" = 0 ] && [ "$tests" = 4 ] && [ "$incr" = 20000 ] && [ "$llen" = 20000 ]; then
		add "redis.runsok.$mode" 1
	fi
	fd_check redis "$mode" "$pid" "$base"
	stop_pid "$pid"
	keep_summary redis "$mode" "$dir/stderr"
	return 0
}

# ---------------------------------------------------------------- python http.server

python_phase() {
	local mode=$1 port dir=$tmp/python-$1-$round pid base
	local -a envs
	mapfile -t envs < <(preload_env "$mode")
	pick_port || return 1
	mkdir -p "$dir"
	# python3 -m http.server, exiting normally on SIGTERM (a background job
	# of a script ignores SIGINT) so that exit handlers run.
	server_stderr=$dir/stderr
	env "${envs[@]}" "$python" -c 'import runpy, signal, sys
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
runpy.run_module("http.server", run_name="__main__", alter_sys=True)' \
		--bind 127.0.0.1 --directory "$tmp/www" "$port" >"$dir/stdout" 2>"$dir/stderr" &
	pid=$!
	pids+=("$pid")
	add "python.starts.$mode" 1
	if ! wait_listen "$port" "$pid"; then
		log "python3 -m http.server ($mode) did not start:"
		cat "$dir/stderr"
		return 1
	fi
	add "python.started.$mode" 1
	base=$(fd_count "$pid")
	note "python.fdbase.$mode" "$base"
	curl_get "$mode" curl-python "http://127.0.0.1:$port/big.bin"
	fd_check curl-python "$mode" "$pid" "$base"
	stop_pid "$pid"
	keep_summary python "$mode" "$dir/stderr"
	return 0
}

# ---------------------------------------------------------------- socat

socat_phase() {
	local mode=$1 port in_port out_port dir=$tmp/socat-$1-$round sink relay t0 t1 rc1 rc2 rc3
	local -a envs
	mapfile -t envs < <(preload_env "$mode")
	pick_port || return 1
	in_port=$port
	pick_port || return 1
	out_port=$port
	mkdir -p "$dir"
	add "socat.runs.$mode" 1
	timeout 120 socat -u "TCP-LISTEN:$out_port,bind=127.0.0.1,reuseaddr" \
		"CREATE:$dir/out.bin" 2>"$dir/sink.err" &
	sink=$!
	pids+=("$sink")
	wait_listen "$out_port" "$sink" || { log "socat sink did not start"; return 1; }
	# The relay, with the library in the "with" mode.
	timeout 120 env "${envs[@]}" socat "TCP-LISTEN:$in_port,bind=127.0.0.1,reuseaddr" \
		"TCP:127.0.0.1:$out_port" 2>"$dir/relay.err" &
	relay=$!
	pids+=("$relay")
	wait_listen "$in_port" "$relay" || { log "socat relay did not start"; return 1; }
	t0=$(date +%s%N)
	timeout 120 socat -u "OPEN:$big_file" "TCP:127.0.0.1:$in_port" 2>"$dir/source.err"
	rc1=$?
	wait "$relay"
	rc2=$?
	forget_pid "$relay"
	wait "$sink"
	rc3=$?
	forget_pid "$sink"
	t1=$(date +%s%N)
	note "socat.exits.$mode" "$rc1/$rc2/$rc3"
	best "socat.MBps.$mode" "$(awk -v b=$((BIG_MB * 1048576)) -v ns=$((t1 - t0)) \
		'BEGIN {printf "%.1f", b / 1e6 / (ns / 1e9)}')"
	if [ "$rc1$rc2$rc3" = 000 ] &&
		[ "$(sha256sum "$dir/out.bin" 2>/dev/null | cut -d' ' -f1)" = "$big_sum" ] &&
		! grep -qv '^libwspclose:' "$dir/sink.err" "$dir/relay.err" "$dir/source.err"; then
		add "socat.runsok.$mode" 1
	else
		note "socat.errors.$mode" "$(cat "$dir/relay.err" "$dir/sink.err" "$dir/source.err")"
	fi
	keep_summary socat "$mode" "$dir/relay.err"
	rm -f "$dir/out.bin"
	return 0
}

# ---------------------------------------------------------------- w1_event_loop

w1_phase() {
	local mode=$1 out=$tmp/w1-$1-$round.txt rc key
	local -a envs
	declare -A w=()
	mapfile -t envs < <(preload_env "$mode")
	timeout 120 env "${envs[@]}" "$w1_program" -c 32 -b 2097152 -l 10 >"$out" 2>"$out.err"
	rc=$?
	for key in verified eof w1 w1_fd_usable epollout_after_w1 close_retries max_close_ms \
		fds_before fds_after sockets_after MBps; do
		w[$key]=$(tr ' ' '\n' <"$out" | sed -n "s/^$key=//p")
	done
	add "w1.runs.$mode" 1
	# The program checks every byte, the EOF and its own descriptors.
	[ "$rc" = 0 ] && [ "${w[eof]}" = 32 ] && add "w1.runsok.$mode" 1
	note "w1.w1.$mode" "${w[w1]:-?}"
	note "w1.retries.$mode" "${w[close_retries]:-?}"
	note "w1.usable.$mode" "${w[w1_fd_usable]:-?}"
	note "w1.epollout.$mode" "${w[epollout_after_w1]:-?}"
	note "w1.maxclose.$mode" "${w[max_close_ms]:-?}"
	note "w1.fd.$mode" "${w[fds_before]:-?}->${w[fds_after]:-?}/${w[sockets_after]:-?}"
	best "w1.MBps.$mode" "${w[MBps]:-0}"
	if [ "$mode" = with ]; then
		[ "${w[w1]:-0}" -ge 1 ] 2>/dev/null || add "w1.w1bad.$mode" 1
	else
		[ "${w[w1]:-x}" = 0 ] || add "w1.w1bad.$mode" 1
	fi
	[ "$rc" = 0 ] || note "w1.errors.$mode" "exit $rc: $(head -c 300 "$out.err") $(cat "$out")"
	keep_summary w1 "$mode" "$out.err"
}

# ---------------------------------------------------------------- run

for round in $(seq 1 "$ROUNDS"); do
	modes="without with"
	[ $((round % 2)) = 0 ] && modes="with without"
	for mode in $modes; do
		log "round $round: nginx + wrk + curl ($mode library)"
		nginx_phase "$mode"
		log "round $round: redis-server + redis-benchmark ($mode library)"
		redis_phase "$mode"
		log "round $round: python3 http.server + curl ($mode library)"
		python_phase "$mode"
		log "round $round: socat relay ($mode library)"
		socat_phase "$mode"
		log "round $round: w1_event_loop ($mode library)"
		w1_phase "$mode"
	done
done

# ---------------------------------------------------------------- checks

# all_ok MODE KEY=VALUE...: every R[KEY.MODE] equals VALUE ("" = 0).
all_ok() {
	local mode=$1 kv key want
	shift
	for kv in "$@"; do
		key=${kv%%=*}
		want=${kv#*=}
		[ "${R[$key.$mode]:-0}" = "$want" ] || return 1
	done
	return 0
}

# same_baselines KEY: the baselines of every run, with and without, agree
# (the library holds no descriptor while nothing is held).
same_baselines() {
	[ "$(echo "$(v "$1.without") $(v "$1.with")" | tr ' ' '\n' | sort -u | wc -l)" = 1 ]
}

for name in wrk-keepalive wrk-close; do
	label="nginx ($name)"
	cell() {
		echo "$(c "$name.requests.$1") req, sockerr $(c "$name.sockerr.$1"), non2xx $(c "$name.non2xx.$1")"
	}
	res=PASS
	for mode in without with; do
		all_ok "$mode" "$name.runs=$ROUNDS" "$name.rcbad=0" "$name.norequests=0" \
			"$name.sockerr=0" "$name.non2xx=0" || res=FAIL
	done
	record "$label" "wrk: socket errors, non-2xx" "$(cell without)" "$(cell with)" "$res" \
		"wrk output (with): $(cat "$tmp"/wrk-"$name"-with-*.txt 2>/dev/null | tr '\n' ' ')"
	res=FAIL
	all_ok without "$name.fdbad=0" && all_ok with "$name.fdbad=0" &&
		same_baselines nginx.fdbase && res=PASS
	record "$label" "worker fds before->after load" "$(v "$name.fd.without")" \
		"$(v "$name.fd.with")" "$res" \
		"left behind: without $(v "$name.fdlist.without") with $(v "$name.fdlist.with")"
	throughputs+=("nginx ($name) requests/s|$(v "$name.rps.without")|$(v "$name.rps.with")")
	throughputs+=("nginx ($name) worker CPU us/request|$(v "$name.cpu.without")|$(v "$name.cpu.with")")
done

res=FAIL
all_ok without nginx.alerts=0 "nginx.started=$ROUNDS" &&
	all_ok with nginx.alerts=0 "nginx.started=$ROUNDS" && res=PASS
record "nginx" "started; no [alert]/[crit] logged" \
	"$(c nginx.started.without)/$ROUNDS started, $(c nginx.alerts.without) alerts" \
	"$(c nginx.started.with)/$ROUNDS started, $(c nginx.alerts.with) alerts" "$res" \
	"$(cat "$tmp/nginx-alerts-with.txt" 2>/dev/null)"

for name in curl-nginx curl-python; do
	server=${name#curl-}
	cell() { echo "$(c "$name.shaok.$1")/$(v "$name.runs.$1") sha256 ok, HTTP $(v "$name.http.$1")"; }
	res=PASS
	for mode in without with; do
		all_ok "$mode" "$name.runs=$ROUNDS" "$name.shaok=$ROUNDS" "$name.rcbad=0" || res=FAIL
	done
	record "curl <- $server" "${BIG_MB} MB download sha256" "$(cell without)" "$(cell with)" \
		"$res" "errors (with): $(c "$name.errors.with")"
	throughputs+=("curl <- $server (${BIG_MB} MB) MB/s|$(v "$name.MBps.without")|$(v "$name.MBps.with")")
done
res=FAIL
all_ok without curl-python.fdbad=0 && all_ok with curl-python.fdbad=0 &&
	same_baselines python.fdbase && res=PASS
record "python3 http.server" "server fds before->after load" "$(v curl-python.fd.without)" \
	"$(v curl-python.fd.with)" "$res" "left behind: with $(v curl-python.fdlist.with)"
res=FAIL
all_ok without curl-nginx.fdbad=0 && all_ok with curl-nginx.fdbad=0 && res=PASS
record "nginx (curl ${BIG_MB} MB)" "worker fds before->after load" "$(v curl-nginx.fd.without)" \
	"$(v curl-nginx.fd.with)" "$res" "left behind: with $(v curl-nginx.fdlist.with)"

cell() {
	echo "$(c "redis.runsok.$1")/$(v "redis.runs.$1") ok, INCR/LLEN $(v "redis.counts.$1"), err $(c "redis.errors.$1")+$(c "redis.errorstats.$1")"
}
res=PASS
for mode in without with; do
	all_ok "$mode" "redis.runs=$ROUNDS" "redis.runsok=$ROUNDS" redis.errors=0 \
		redis.errorstats=0 || res=FAIL
done
record "redis-server" "redis-benchmark: all commands" "$(cell without)" "$(cell with)" "$res" \
	"with: $(cat "$tmp"/redis-bench-with-*.txt 2>/dev/null | tr '\n' ' ')"
res=FAIL
all_ok without redis.fdbad=0 && all_ok with redis.fdbad=0 && same_baselines redis.fdbase && res=PASS
record "redis-server" "server fds before->after load" "$(v redis.fd.without)" \
	"$(v redis.fd.with)" "$res" "left behind: with $(v redis.fdlist.with)"
throughputs+=("redis-server CPU us/request (4 tests)|$(v redis.cpu.without)|$(v redis.cpu.with)")
for cmd in SET GET INCR LPUSH; do
	throughputs+=("redis-benchmark $cmd requests/s|$(v "redis.$cmd.without")|$(v "redis.$cmd.with")")
done

cell() { echo "$(c "socat.runsok.$1")/$(v "socat.runs.$1") sha256 ok, exits $(v "socat.exits.$1")"; }
res=PASS
for mode in without with; do
	all_ok "$mode" "socat.runs=$ROUNDS" "socat.runsok=$ROUNDS" || res=FAIL
done
record "socat (relay)" "${BIG_MB} MB relayed sha256" "$(cell without)" "$(cell with)" "$res" \
	"with: $(c socat.errors.with)"
throughputs+=("socat relay (${BIG_MB} MB) MB/s|$(v socat.MBps.without)|$(v socat.MBps.with)")

cell() { echo "$(c "w1.runsok.$1")/$(v "w1.runs.$1") runs: 32/32 bytes+EOF"; }
res=PASS
for mode in without with; do
	all_ok "$mode" "w1.runs=$ROUNDS" "w1.runsok=$ROUNDS" || res=FAIL
done
record "w1_event_loop" "every byte, then EOF" "$(cell without)" "$(cell with)" "$res" \
	"without: $(c w1.errors.without) with: $(c w1.errors.with)"
res=FAIL
all_ok without w1.w1bad=0 && all_ok with w1.w1bad=0 && res=PASS
record "w1_event_loop" "close() EWOULDBLOCK (W1) count" \
	"$(v w1.w1.without) (close() blocked max $(v w1.maxclose.without) ms)" \
	"$(v w1.w1.with) (retries $(v w1.retries.with), max $(v w1.maxclose.with) ms)" "$res" \
	"expected W1 >= 1 in every run with the library, 0 without (Linux blocks): with [$(v w1.w1.with)] without [$(v w1.w1.without)]"

# The program fails a run where an fd refused with W1 was not still open and
# unchanged (linger {1,10}): shown here.
record "w1_event_loop" "fd usable after W1; EPOLLOUT after" "-" \
	"usable $(v w1.usable.with) of $(v w1.w1.with); EPOLLOUT events $(v w1.epollout.with)" \
	"$(pass_if test "$(v w1.usable.with)" = "$(v w1.w1.with)")"

# fds_unchanged KEY: every "before->after/sockets" of R[KEY] has after ==
# before and no socket left.
fds_unchanged() {
	local entry before rest
	for entry in ${R[$1]:-x}; do
		before=${entry%%->*}
		rest=${entry#*->}
		[ "$rest" = "$before/0" ] || return 1
	done
	return 0
}
res=FAIL
fds_unchanged w1.fd.without && fds_unchanged w1.fd.with && res=PASS
record "w1_event_loop" "own fds before->after/sockets" "$(v w1.fd.without)" "$(v w1.fd.with)" "$res"
throughputs+=("w1_event_loop (32 x 2 MiB) MB/s|$(v w1.MBps.without)|$(v w1.MBps.with)")

# ---------------------------------------------------------------- report

echo
printf '%-22s | %-32s | %-46s | %-46s | %s\n' app check without with result
printf '%s\n' "$(printf '%.0s-' $(seq 1 164))"
for row in "${rows[@]}"; do
	IFS='|' read -r a c wo w r <<<"$row"
	printf '%-22s | %-32s | %-46s | %-46s | %s\n' "$a" "$c" "$wo" "$w" "$r"
done
echo
echo "throughput: best of $ROUNDS runs per mode, modes alternating in order; server CPU"
echo "per request: lowest of the runs (steadier than throughput on a shared machine)"
printf '%-36s | %12s | %12s | %s\n' load without with with/without
for row in "${throughputs[@]}"; do
	IFS='|' read -r a wo w <<<"$row"
	ratio=$(awk -v a="$wo" -v b="$w" 'BEGIN { if (a + 0 > 0) printf "%.2f", b / a; else print "?" }')
	printf '%-36s | %12s | %12s | %s\n' "$a" "$wo" "$w" "$ratio"
done
echo
echo "libwspclose exit summaries (WSPCLOSE_STATS=1 in every run with the library; the"
echo "server descriptor counts above leave out the copy of stderr it keeps for them):"
for app in nginx redis python curl-nginx curl-python socat w1; do
	f=$tmp/summary-$app-with.txt
	[ -s "$f" ] || continue
	printf '  [%s]\n' "$app"
	grep -E 'closes by row|released' "$f" | sed 's/^libwspclose: */    /'
done
echo
echo "run time: $((SECONDS - started_at)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
