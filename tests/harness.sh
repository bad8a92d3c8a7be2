# tests/harness.sh: shell helpers shared by tests/apps/run-apps.sh,
# tests/apps/run-event-loops.sh, tests/faults/run-faults.sh and
# tests/wine/run-wine.sh. Sourced; the caller sets $me and keeps the
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

# library_and_build_arguments "$@": the --library PATH and --build BUILDDIR
# that tests/apps/run-event-loops.sh and tests/wine/run-wine.sh take; sets
# library and build, or exits 2 with the usage.
library_and_build_arguments() {
	library=
	build=
	while [ "$#" -gt 0 ]; do
		case $1 in
		--library) library=$2; shift 2 ;;
		--build) build=$2; shift 2 ;;
		*) echo "$me: unknown argument: $1" >&2; exit 2 ;;
		esac
	done
	if [ -z "$library" ] || [ -z "$build" ] || [ ! -r "$library" ]; then
		echo "usage: $me --library PATH/libwspclose.so --build BUILDDIR (build the library first)" >&2
		exit 2
	fi
}

# install_missing_packages PACKAGE...: apt-get installs those not installed.
install_missing_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed ||
			missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null ||
		{ log "apt-get install ${missing[*]} failed"; exit 1; }
}
