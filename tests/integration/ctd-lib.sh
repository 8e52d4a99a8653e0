# Shared by the suites that drive a real containerd (containerd.sh, hostile.sh;
# sourced once their preconditions hold): a private containerd under $W with the hull
# runtime, started and stopped by pid, and the checks that nothing of a test is left.
# Short paths: unix socket names are limited to 108 bytes.
W=$(mktemp -d "/tmp/${CTD_PREFIX:-hull-ctd}.XXXXXX")
export HULL_STATE_DIR=$W/hull
export CRI_PB2_DIR=$BUILD/tests/cri
SOCK=$W/c.sock
CTR="ctr -a $SOCK"

mkdir -p "$W/logs" "$HULL_STATE_DIR"
"$top/tests/tools/ctd-config.sh" "$W"

# containerd's pid lives in a file: tests run in subshells ($(...)), and a test that
# restarts containerd must leave the new pid where the final cleanup finds it.
ctd_start() {
	PATH=$BUILD:$PATH setsid containerd --config "$W/config.toml" >>"$W/containerd.log" 2>&1 &
	echo $! >"$W/containerd.pid"
	local i
	for i in $(seq 1 100); do
		$CTR version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "containerd did not come up: $(tail -3 "$W/containerd.log")"
	return 1
}
ctd_stop() {
	local pid i
	pid=$(cat "$W/containerd.pid" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$W/containerd.pid"
}
cleanup() {
	ctd_stop
	# A containerd whose pid file was lost (a test killed midway): ours by its config.
	pkill -f -- "containerd --config $W/config.toml" 2>/dev/null
	pkill -9 -f -- "-address $SOCK" 2>/dev/null
	pkill -9 -f -- "$HULL_STATE_DIR" 2>/dev/null
	sleep 0.2
	grep -o " $W[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	[ -s "$W/cni/bridge" ] && ip link del "$(cat "$W/cni/bridge")" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# Nothing of a test may survive it: shims, QEMU, mounts under the sandbox state, state.
leaks() {
	local i
	for i in $(seq 1 100); do
		pgrep -f -- "-address $SOCK" >/dev/null || pgrep -f -- "$HULL_STATE_DIR/" >/dev/null || break
		sleep 0.1
	done
	if pgrep -af -- "-address $SOCK" >/dev/null; then
		echo "shim left: $(pgrep -af -- "-address $SOCK" | head -1 | cut -c1-120)"
		pkill -9 -f -- "-address $SOCK"
	fi
	if pgrep -af -- "$HULL_STATE_DIR/" >/dev/null; then
		echo "QEMU left"
		pkill -9 -f -- "$HULL_STATE_DIR/"
	fi
	if grep -q " $HULL_STATE_DIR/" /proc/mounts; then
		echo "mount left: $(grep -o " $HULL_STATE_DIR/[^ ]*" /proc/mounts | head -1)"
	fi
	# Task bundles (containerd's state) hold no rootfs mount once their task is gone.
	if grep -q " $W/state/io.containerd.runtime.v2.task/" /proc/mounts; then
		echo "bundle mount left: $(grep -o " $W/state/io.containerd.runtime.v2.task/[^ ]*" /proc/mounts | head -1)"
	fi
	if [ -n "$(state_left "$HULL_STATE_DIR")" ] || [ -n "$(ls -A "$HULL_STATE_DIR/.s" 2>/dev/null)" ]; then
		echo "state left: $(state_left "$HULL_STATE_DIR"; ls -A "$HULL_STATE_DIR/.s" 2>/dev/null | tr '\n' ' ')"
	fi
}

. "$top/tests/integration/lib.sh"
work=$W
after_failure() {
	echo "--- containerd log (last lines) ---" >&2
	grep -v 'level=info msg="loading\|skip loading' "$W/containerd.log" | tail -15 >&2
}

# Wait until "$@" succeeds (up to 60 s).
until_ok() {
	local i
	for i in $(seq 1 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "timed out waiting for: $*"
	return 1
}
task_status() { $CTR task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
status_is() { [ "$(task_status "$1")" = "$2" ]; }
qemus() { pgrep -fc -- "$HULL_STATE_DIR/" || true; }
no_vm() { ! pgrep -f -- "$HULL_STATE_DIR/$1/" >/dev/null; }

