#!/bin/bash
# tests/wine/run-wine.sh: `make check-wine`: a Windows program of our own
# (tests/wine/wstest.c, built with mingw-w64) closes sockets under Wine whose
# other ends are a native Linux program (tests/wine/wine_peer.c), once with
# plain Wine and once with the library's Wine profile in wineserver
# (libwspclose(7) §3.1). Prints a table (case | plain Wine | with the
# profile | Windows | result) and the start-up cost; asserts what Windows
# does where the profile gives it, and what Wine does where it cannot, so
# that a change shows.
#
# Usage: bash tests/wine/run-wine.sh --library PATH/libwspclose.so --build BUILDDIR
# Installs wine, wine64 and gcc-mingw-w64-x86-64 when missing (apt-get, as
# root). The Wine prefix is created in a temporary directory (about 700 MB,
# a few seconds) and removed at the end.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u
set -o pipefail

me='run-wine'
here=$(cd "$(dirname "$0")" && pwd)

. "$here/../harness.sh" # log, pass_if, forget_pid, argument and package helpers
library_and_build_arguments "$@"
wspclose=$build/scripts/wspclose

install_missing_packages wine wine64 gcc-mingw-w64-x86-64

work=$(mktemp -d "${TMPDIR:-/tmp}/check-wine.XXXXXX") || exit 1
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml='
unset LD_PRELOAD WSPCLOSE_TRACE WSPCLOSE_TRACE_FORMAT WSPCLOSE_STATS WSPCLOSE_WINE
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wineserver -k 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

x86_64-w64-mingw32-gcc -O2 -Wall -o "$work/wstest.exe" "$here/wstest.c" -lws2_32 ||
	{ log "building wstest.exe failed"; exit 1; }
cc -O2 -Wall -o "$work/wine_peer" "$here/wine_peer.c" || { log "building wine_peer failed"; exit 1; }

start=$SECONDS
wine wineboot -i >"$work/wineboot.log" 2>&1
wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f >/dev/null 2>&1
wineserver -w
log "prefix created in $((SECONDS - start)) s ($(du -sh "$WINEPREFIX" | cut -f1))"

now_ms() { date +%s%3N; }

# Start-up of a Windows program with a cold wineserver: median of 3.
startup_ms() { # startup_ms LAUNCHER...
	local times=() i t
	for i in 1 2 3; do
		wineserver -w
		t=$(now_ms)
		"$@" wine "$work/wstest.exe" >/dev/null 2>&1
		times+=($(($(now_ms) - t)))
	done
	wineserver -w
	printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}
plain_startup=$(startup_ms env)
profile_startup=$(startup_ms "$wspclose" --wine --)
log "start-up of a Windows program (cold wineserver, median of 3): plain ${plain_startup} ms, with the profile ${profile_startup} ms"

server_pid() { pgrep -f "wineserver64 -f -p60|wineserver -f -p60" | head -n1; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# run_case MODE CASE: one case; sets result_wstest, result_peer, fds_back.
run_case() {
	local mode=$1 which=$2 peer_pid server baseline
	rm -f "$work/port"
	"$work/wine_peer" "$work/port" >"$work/peer.out" 2>&1 &
	peer_pid=$!
	pids+=("$peer_pid")
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	server=$(server_pid)
	baseline=$(fd_count "$server")
	if [ "$mode" = plain ]; then
		timeout 60 wine "$work/wstest.exe" "$which" "$(cat "$work/port")" >"$work/wstest.out" 2>&1
	else
		timeout 60 "$wspclose" --wine -- wine "$work/wstest.exe" "$which" "$(cat "$work/port")" \
			>"$work/wstest.out" 2>&1
	fi
	wait "$peer_pid"
	forget_pid "$peer_pid"
	result_wstest=$(tr -d '\r' <"$work/wstest.out" | grep '^case=' | head -n1)
	result_peer=$(head -n1 "$work/peer.out")
	fds_back=0
	for _ in $(seq 60); do
		[ "$(fd_count "$server")" -le "$baseline" ] && { fds_back=1; break; }
		sleep 0.05
	done
	[ "$fds_back" -eq 1 ] || log "$mode $which: wineserver has $(fd_count "$server") descriptors, $baseline before"
}

field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

cases=(stall linger1 default abort shutdown w1)
declare -A wstest_out peer_out fds_ok
for mode in plain profile; do
	wineserver -k 2>/dev/null
	wineserver -w
	if [ "$mode" = plain ]; then
		wineserver -f -p60 </dev/null >/dev/null 2>&1 &
	else
		# The manual set-up: wineserver with the library (the Wine profile
		# is recognised by its name); wspclose --wine then finds it ours.
		LD_PRELOAD=$library WSPCLOSE_TRACE=$work/trace.jsonl WSPCLOSE_TRACE_FORMAT=json \
			wineserver -f -p60 </dev/null >/dev/null 2>&1 &
	fi
	pids+=($!)
	for _ in $(seq 100); do [ -n "$(server_pid)" ] && break; sleep 0.05; done
	wine "$work/wstest.exe" >/dev/null 2>&1 # warm: the prefix's services are up
	if [ "$mode" = plain ]; then
		# A wineserver without the library serves the prefix: refused.
		"$wspclose" --wine -- wine "$work/wstest.exe" >/dev/null 2>"$work/refused.err"
		refused=$?
		if [ "$refused" -ne 125 ] || ! grep -q 'without libwspclose' "$work/refused.err"; then
			refusal_ok=0
			log "FAIL: wspclose --wine beside a plain wineserver: status $refused, $(cat "$work/refused.err")"
		else
			refusal_ok=1
		fi
	fi
	for which in "${cases[@]}"; do
		run_case "$mode" "$which"
		wstest_out[$mode.$which]=$result_wstest
		peer_out[$mode.$which]=$result_peer
		fds_ok[$mode.$which]=$fds_back
	done
done
wineserver -k 2>/dev/null

passed=0
failed=0
if [ "$refusal_ok" -eq 1 ]; then
	passed=$((passed + 1))
	log "wspclose --wine refuses a prefix served without the library: $(cat "$work/refused.err")"
else
	failed=$((failed + 1))
fi
# expect CASE WINDOWS-TEXT PLAIN-CONDITION PROFILE-CONDITION: one table row.
row() {
	local which=$1 windows=$2 plain_ok=$3 profile_ok=$4
	local p=${peer_out[plain.$which]} q=${peer_out[profile.$which]}
	local pw=${wstest_out[plain.$which]} qw=${wstest_out[profile.$which]} verdict=PASS
	[ "$plain_ok" -eq 1 ] && [ "$profile_ok" -eq 1 ] && [ "${fds_ok[plain.$which]}" -eq 1 ] &&
		[ "${fds_ok[profile.$which]}" -eq 1 ] || verdict=FAIL
	printf '%-9s | %-40s | %-40s | %-34s | %s\n' "$which" \
		"$(field end "$p") $(field reset_ms "$p")ms close $(field took_ms "$pw")ms stall $(field max_stall_ms "$pw")" \
		"$(field end "$q") $(field reset_ms "$q")ms close $(field took_ms "$qw")ms stall $(field max_stall_ms "$qw")" \
		"$windows" "$verdict"
	if [ "$verdict" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
between() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
is() { if "$@"; then echo 1; else echo 0; fi; }
all_bytes() { [ "$(field end "$1")" = EOF ] && [ "$(field bytes "$1")" -gt 0 ]; }
reset() { [ "$(field end "$1")" = ECONNRESET ]; }

printf '%-9s | %-40s | %-40s | %-34s | %s\n' case 'plain Wine (peer end, reset, close, stall)' \
	'with the profile' Windows result
p=plain q=profile
row stall 'no stall; RST after 2 s' \
	"$(is eval 'all_bytes "${peer_out[$p.stall]}" && [ "$(field max_stall_ms "${wstest_out[$p.stall]}")" -ge 1500 ]')" \
	"$(is eval 'reset "${peer_out[$q.stall]}" && between "$(field reset_ms "${peer_out[$q.stall]}")" 1700 2500 && [ "$(field max_stall_ms "${wstest_out[$q.stall]}")" -lt 100 ]')"
row linger1 'RST after 1 s' \
	"$(is eval 'all_bytes "${peer_out[$p.linger1]}"')" \
	"$(is eval 'reset "${peer_out[$q.linger1]}" && between "$(field reset_ms "${peer_out[$q.linger1]}")" 850 1150')"
row default 'every byte, then EOF' \
	"$(is eval '[ "$(field end "${peer_out[$p.default]}")" = EOF ] && [ "$(field bytes "${peer_out[$p.default]}")" = 65536 ]')" \
	"$(is eval '[ "$(field end "${peer_out[$q.default]}")" = EOF ] && [ "$(field bytes "${peer_out[$q.default]}")" = 65536 ]')"
row abort 'RST (ECONNRESET)' \
	"$(is eval 'reset "${peer_out[$p.abort]}"')" "$(is eval 'reset "${peer_out[$q.abort]}"')"
row w1 'WSAEWOULDBLOCK; stays open' \
	"$(is eval 'all_bytes "${peer_out[$p.w1]}"')" \
	"$(is eval 'reset "${peer_out[$q.w1]}" && between "$(field reset_ms "${peer_out[$q.w1]}")" 1700 2500')"
row shutdown 'every byte, then EOF' \
	"$(is eval 'reset "${peer_out[$p.shutdown]}"')" \
	"$(is eval '[ "$(field end "${peer_out[$q.shutdown]}")" = EOF ] && [ "$(field bytes "${peer_out[$q.shutdown]}")" = 65536 ]')"

# What wineserver decided: one close line with its row per case's socket.
rows=$(grep '"event":"close"' "$work/trace.jsonl" 2>/dev/null | grep '"remote":"127' |
	sed 's/.*"row":"\([^"]*\)","action":"\([^"]*\)".*/\1:\2/' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
printf '%s: wineserver traced: %s\n' "$me" "$rows"
case $rows in
*"W1:hand-off-linger"*"A1:abort"* | *"A1:abort"*"W1:hand-off-linger"*) passed=$((passed + 1)) ;;
*) failed=$((failed + 1)); log "FAIL: the trace lacks the rows of the cases" ;;
esac
grep -q '"row":"G2"' "$work/trace.jsonl" || { failed=$((failed + 1)); log "FAIL: no G2 close traced (shutdown case)"; }
# SO_DONTLINGER FALSE: Wine's own answer, with and without the library.
for mode in plain profile; do
	wineserver -k 2>/dev/null
	wineserver -w
	if [ "$mode" = plain ]; then
		dont=$(wine "$work/wstest.exe" dontlinger 2>/dev/null | tr -d '\r')
	else
		dont=$("$wspclose" --wine -- wine "$work/wstest.exe" dontlinger 2>/dev/null | tr -d '\r')
	fi
	printf '%s: %s: SO_LINGER after {1,5} and SO_DONTLINGER FALSE: %s (Windows: {1,5})\n' "$me" "$mode" \
		"$(field linger "$dont")"
	[ "$(field linger "$dont")" = '{1,0}' ] ||
		{ failed=$((failed + 1)); log "FAIL: Wine's SO_DONTLINGER FALSE changed: $dont"; }
done
wineserver -k 2>/dev/null
# closesocket() is 0 in every case, with and without: Wine's, not ours
# (WSAEWOULDBLOCK never reaches a program under Wine).
for key in "${!wstest_out[@]}"; do
	[ "$(field closesocket "${wstest_out[$key]}")" = 0 ] ||
		{ failed=$((failed + 1)); log "FAIL: $key: closesocket() = $(field closesocket "${wstest_out[$key]}")"; }
done

echo "$me: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
