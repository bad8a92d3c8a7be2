# tests/harness.sh: shell helpers shared by tests/apps/run-apps.sh and
# tests/faults/run-faults.sh. Sourced; the caller sets $me and keeps the
# processes it started in the array pids.

log() { printf '%s: %s\n' "$me" "$*"; }

pass_if() { if "$@"; then echo PASS; else echo FAIL; fi; }

# forget_pid PID: exited and reaped, no longer ours to stop.
forget_pid() {
	local p kept=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || kept+=("$p")
	done
	pids=("${kept[@]}")
}
