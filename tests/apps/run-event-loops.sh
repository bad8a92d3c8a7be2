#!/bin/bash
# tests/apps/run-event-loops.sh: the event-loop part of `make check-apps`:
# programs whose closes the library sees only through syscall(), because
# libuv closes every descriptor with syscall(SYS_close):
#   - tests/apps/uv_echo.c against Debian's libuv1 (an echo server and 2,000
#     client connections, then 300 libuv-style poll pairs: duplex,
#     unidirectional, closed while polled), 30 runs without and 30 with the
#     library, then one traced run: every close is traced with its row;
#   - Node.js (Debian's nodejs, its own libuv inside): an HTTP server and a
#     client making 500 requests on new connections, without and under the
#     wspclose command with a JSON trace: the same bodies, and one close
#     line per connection in each process; then the same with
#     UV_USE_IO_URING=1, where Node 20's libuv makes its epoll registrations
#     through io_uring.
#
# Usage: bash tests/apps/run-event-loops.sh --library PATH/libwspclose.so --build BUILDDIR
# Installs libuv1-dev, pkg-config and nodejs when missing (apt-get, as root).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u
set -o pipefail

me='run-event-loops'
here=$(cd "$(dirname "$0")" && pwd)
runs=30
requests=500

. "$here/../harness.sh" # log, pass_if, forget_pid, argument and package helpers
library_and_build_arguments "$@"
wspclose=$build/scripts/wspclose

install_missing_packages libuv1-dev pkg-config
command -v node >/dev/null || install_missing_packages nodejs

work=$(mktemp -d "${TMPDIR:-/tmp}/check-event-loops.XXXXXX") || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
verdict() { if "$@"; then echo PASS; else echo FAIL; fi; }
check() { # check DESCRIPTION WITHOUT WITH RESULT(PASS/FAIL)
	printf '%-58s | %-22s | %-22s | %s\n' "$1" "$2" "$3" "$4"
	if [ "$4" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

# unset_library_environment: what the caller's environment must not add.
run_plain() { env -u LD_PRELOAD -u WSPCLOSE_TRACE -u WSPCLOSE_TRACE_FORMAT "$@"; }
run_preloaded() { env -u WSPCLOSE_TRACE -u WSPCLOSE_TRACE_FORMAT LD_PRELOAD="$library" "$@"; }

# ---------------------------------------------------------------- libuv

uv_echo=$work/uv_echo
# shellcheck disable=SC2046
cc -O2 -Wall -o "$uv_echo" "$here/uv_echo.c" $(pkg-config --cflags --libs libuv) ||
	{ log "building uv_echo failed"; exit 1; }
log "libuv $(pkg-config --modversion libuv), $runs runs each way"
printf '%-58s | %-22s | %-22s | %s\n' check without with result

runs_passing() { # runs_passing MODE: how many of $runs runs exit 0
	local ok=0 i
	for ((i = 0; i < runs; i++)); do
		if "$1" "$uv_echo" >"$work/uv.out" 2>&1; then ok=$((ok + 1)); else cp "$work/uv.out" "$work/uv.fail.$1"; fi
	done
	echo "$ok"
}
plain_ok=$(runs_passing run_plain)
preloaded_ok=$(runs_passing run_preloaded)
check "uv_echo: echo and poll runs with every byte, no stray event" "$plain_ok/$runs" "$preloaded_ok/$runs" \
	"$(verdict [ "$preloaded_ok" -eq "$plain_ok" -a "$plain_ok" -eq "$runs" ])"
[ -f "$work/uv.fail.run_preloaded" ] && sed "s/^/$me:   with the library: /" "$work/uv.fail.run_preloaded"

# One traced run: every close the program makes is a trace line with a row.
env -u LD_PRELOAD LD_PRELOAD="$library" WSPCLOSE_TRACE="$work/uv.trace" "$uv_echo" >"$work/uv.traced" 2>&1
connections=$(sed -n 's/^echo: \([0-9]*\) connections.*/\1/p' "$work/uv.traced")
pairs=$(sed -n 's/^poll: \([0-9]*\) pairs.*/\1/p' "$work/uv.traced")
expected=$((2 * ${connections:-0} + 2 * ${pairs:-0} + 2)) # both ends, and the two listeners
closes=$(grep -c ' event=close ' "$work/uv.trace" 2>/dev/null)
with_row=$(grep ' event=close ' "$work/uv.trace" 2>/dev/null | grep -c ' row=[A-Z]')
check "uv_echo: closes traced with their row (syscall(SYS_close))" "-" "$with_row of $expected" \
	"$(verdict [ "$closes" -eq "$expected" -a "$with_row" -eq "$expected" ])"

# ---------------------------------------------------------------- Node.js

# launch ROLE LABEL [ARGS]: how a Node process of this round is started.
# LABEL: plain or traced, and with "-uring" libuv's io_uring
# (UV_USE_IO_URING=1: Node 20's libuv then makes its epoll registrations
# through a ring, which the library cannot see).
launch() {
	local role=$1 label=$2 uring=0
	shift 2
	case $label in *-uring) uring=1 ;; esac
	case $label in
	plain*)
		run_plain UV_USE_IO_URING=$uring node "$here/node_http.js" "$role" "$@" ;;
	*)
		env -u LD_PRELOAD UV_USE_IO_URING=$uring WSPCLOSE_LIBRARY="$library" "$wspclose" \
			-t "$work/node.trace.$label.$role" --json -- node "$here/node_http.js" "$role" "$@" ;;
	esac
}
node_round() { # node_round LABEL: a server and a client; sets node_result
	local label=$1 port server_pid client_rc
	launch server "$label" >"$work/node.port.$label" 2>"$work/node.server.$label" &
	server_pid=$!
	pids+=("$server_pid")
	for _ in $(seq 50); do
		[ -s "$work/node.port.$label" ] && break
		sleep 0.1
	done
	port=$(head -n1 "$work/node.port.$label")
	launch client "$label" "$port" "$requests" >"$work/node.client.$label" 2>&1
	client_rc=$?
	node_result="$(cat "$work/node.client.$label") rc=$client_rc"
	# The server's closes of the last connections may still be under way.
	sleep 1
	kill "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	forget_pid "$server_pid"
}
# close_lines LABEL: the fewest close lines with a row in one process's trace.
close_lines() {
	local least=$requests f n rows
	for f in "$work"/node.trace."$1".*; do
		n=$(grep -c '"event":"close"' "$f")
		rows=$(grep '"event":"close"' "$f" | grep -c '"row":"[A-Z]')
		[ "$rows" -lt "$least" ] && least=$rows
		[ "$n" -eq "$rows" ] || least=0
	done
	ls "$work"/node.trace."$1".* >/dev/null 2>&1 || least=0
	echo "$least"
}
log "node $(node --version) (libuv $(node -p process.versions.uv)), $requests requests each way"
want="requests=$requests bytes=$((requests * 65536)) failures=0 rc=0"
for uring in '' -uring; do
	node_round "plain$uring"
	plain_result=$node_result
	node_round "traced$uring"
	traced_result=$node_result
	what=${uring:+ with libuv io_uring}
	check "node$what: $requests requests, every body whole" "${plain_result%% bytes*}" \
		"${traced_result%% bytes*}" "$(verdict [ "$plain_result" = "$want" -a "$traced_result" = "$want" ])"
	least=$(close_lines "traced$uring")
	check "node$what: server and client traced a close per connection" "-" ">= $least each" \
		"$(verdict [ "$least" -ge "$requests" ])"
done

echo "$me: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
