#!/usr/bin/env bash
# The hostile guest: tests/tools/evil-agent.c as the guest's /init (its own initramfs,
# given with --initrd or the shim's config), misbehaving as each container's command
# says. Run under `hull run`, `hull run -d` and the containerd shim (a real containerd,
# ctr, FIFOs nobody reads). Everything the guest sends is outside input: the host
# process's memory stays under RSS_CAP (measured from /proc), it keeps answering
# (signals, --timeout, ctr task ls), a guest that breaks the protocol is logged as such
# and its sandbox ends with an error naming what it did, other sandboxes and the pod's
# other containers go on, and nothing leaks. Prints one line per test:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
only=${HULL_TEST_FILTER:-}
PY=/usr/bin/python3
HULL=$BUILD/hull
ROOTFS=$BUILD/rootfs-demo
EVIL=$BUILD/tests/evil-initramfs.cpio
BB=docker.io/library/busybox:latest
# What a hull or shim process may hold, whatever its guest does (docs/architecture.md).
RSS_CAP_KB=$((64 * 1024))
TESTS_RUN="flood_unread_stdout frame_at_cap frame_over_cap bad_stream bad_wait tiny_frames
	silent_after_check hangup_mid_call ignore_destroy deaf_timeout deaf_signals
	honest_writer_stalled_reader other_sandbox_unaffected"
TESTS_DETACH="detached_flood_log_capped detached_bad_stream"
TESTS_SHIM="shim_flood_unread_fifo shim_pod_neighbour_unaffected shim_serves_during_create"

skip_tests() {
	local why=$1 t
	shift
	for t in "$@"; do
		[ -n "$only" ] && [[ $t != *$only* ]] && continue
		echo "skip - $t: $why"
	done
}
if [ "$(id -u)" != 0 ]; then
	skip_tests "the shared directory's binds and containerd need root" $TESTS_RUN $TESTS_DETACH $TESTS_SHIM
	exit 0
fi
for f in "$HULL" "$EVIL" "$BUILD/containerd-shim-hull-v2"; do
	[ -e "$f" ] || {
		skip_tests "$f missing (make check builds it)" $TESTS_RUN $TESTS_DETACH $TESTS_SHIM
		exit 0
	}
done
failed=0
have_ctd=1
command -v containerd >/dev/null && command -v ctr >/dev/null || have_ctd=0

# A private state dir (and containerd, for the shim's tests) under $W.
CTD_PREFIX=hull-hostile
. "$top/tests/integration/ctd-lib.sh"

# The highest VmHWM (peak RSS, kB) of pid until it exits, into $T/rss.
peak_rss() {
	local pid=$1 max=0 v
	while [ -e "/proc/$pid/status" ]; do
		v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$max" ] && max=$v
		sleep 0.05
	done
	echo "$max" >"$T/rss"
}
expect_rss_capped() {
	local kb
	kb=$(cat "$T/rss")
	[ "$kb" -gt 0 ] && [ "$kb" -lt "$RSS_CAP_KB" ] ||
		{ echo "peak RSS ${kb} kB, cap ${RSS_CAP_KB} kB"; return 1; }
}
# hull run with the evil guest: $T/{out,err,rc}.
evil() {
	"$HULL" run --initrd "$EVIL" --rootfs "$ROOTFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
}
# The same in the background, RSS watched: pid in $evil_pid.
evil_bg() {
	"$HULL" run --initrd "$EVIL" --rootfs "$ROOTFS" "$@" 2>"$T/err" </dev/null &
	evil_pid=$!
}
finish_bg() {
	peak_rss "$evil_pid"
	wait "$evil_pid"
	echo $? >"$T/rc"
}
# A reader that never reads: holds the FIFO's read end open, reads nothing.
stuck_fifo() {
	mkfifo "$1"
	sleep 1000 <>"$1" &
	echo $! >"$1.reader"
}
unstick() { kill "$(cat "$1.reader")" 2>/dev/null; }

# ---- hull run --------------------------------------------------------------------------

test_flood_unread_stdout() {
	# Output far past its credit, to a stdout nobody reads: the host holds at most the
	# window, cuts the guest off and says what it did.
	stuck_fifo "$T/fifo"
	evil_bg -- flood >"$T/fifo"
	finish_bg
	unstick "$T/fifo"
	expect_rc 125 && expect_err_has "protocol violation: container 'job': the guest sent" &&
		expect_err_has "bytes of credit left" && expect_rss_capped
}

test_frame_at_cap() {
	# One frame of exactly the 4 MiB limit, within the window: legal, every byte arrives.
	evil -- frame-at-cap
	expect_rc 0 || return 1
	[ "$(wc -c <"$T/out")" = 4194297 ] || { echo "got $(wc -c <"$T/out") bytes"; return 1; }
}

test_frame_over_cap() {
	evil -- frame-over-cap
	expect_rc 125 && expect_err_has "a 4194305-byte frame on stream" &&
		expect_err_has "over the 4 MiB limit"
}

test_bad_stream() {
	evil -- bad-stream
	expect_rc 125 && expect_err_has "protocol violation: data on stream 2, which was never opened"
}

test_bad_wait() {
	evil -- bad-wait
	expect_rc 125 &&
		expect_err_has "the guest reported an impossible exit status (exit code 1000, signal 0)"
}

test_tiny_frames() {
	# A million one-byte frames, within credit: all of them arrive, memory stays flat.
	"$HULL" run --initrd "$EVIL" --rootfs "$ROOTFS" -- tiny-frames 1000000 >"$T/out" 2>"$T/err" </dev/null &
	evil_pid=$!
	finish_bg
	expect_rc 0 && expect_rss_capped || return 1
	[ "$(wc -c <"$T/out")" = 1000000 ] || { echo "got $(wc -c <"$T/out") bytes"; return 1; }
}

test_silent_after_check() {
	# Check is answered, CreateContainer never: a signal still ends hull at once.
	evil_bg --log-level info -- silent
	wait_for "$T/err" "booted" || { kill -9 "$evil_pid"; return 1; }
	kill -TERM "$evil_pid"
	finish_bg
	expect_rc 143
}

test_hangup_mid_call() {
	# Half a reply to StartContainer, then the guest powers off.
	evil -- hangup
	expect_rc 125 && expect_err_has "the VM"
}

test_ignore_destroy() {
	# The job ends; DestroySandbox is answered but the guest stays up and keeps sending
	# on the finished stream: hull stops the VM itself, and reports the job's status.
	evil -- ignore-destroy
	expect_rc 0
}

test_deaf_timeout() {
	# --timeout against a guest that does not even end its job for SIGKILL.
	evil_bg --timeout 2s -- deaf >/dev/null
	finish_bg
	expect_rc 124 && expect_err_has "the guest did not end the job after SIGKILL"
}

test_deaf_signals() {
	# SIGTERM is forwarded, the second means SIGKILL, and a guest deaf to both loses
	# its VM: hull answers every signal.
	evil_bg -- deaf >"$T/out"
	wait_for "$T/out" ready || { kill -9 "$evil_pid"; return 1; }
	kill -TERM "$evil_pid"
	sleep 0.5
	kill -TERM "$evil_pid"
	finish_bg
	expect_rc 125 && expect_err_has "the guest did not end the job after SIGKILL"
}

test_honest_writer_stalled_reader() {
	# The real agent and a container that writes without end to a stdout nobody reads:
	# hull still answers SIGTERM (forwarded, then SIGKILL after --stop-timeout), and
	# drops what its reader never took.
	stuck_fifo "$T/fifo"
	"$HULL" run --rootfs "$ROOTFS" --stop-timeout 1s -- yes >"$T/fifo" 2>"$T/err" </dev/null &
	evil_pid=$!
	sleep 3
	kill -TERM "$evil_pid"
	finish_bg
	unstick "$T/fifo"
	expect_rc 137 && expect_rss_capped
}

test_other_sandbox_unaffected() {
	stuck_fifo "$T/fifo"
	evil_bg -- flood >"$T/fifo"
	"$HULL" run --rootfs "$ROOTFS" -- sh -c 'echo neighbour ok' >"$T/n.out" 2>"$T/n.err" </dev/null
	local nrc=$?
	finish_bg
	unstick "$T/fifo"
	[ "$nrc" = 0 ] && [ "$(cat "$T/n.out")" = "neighbour ok" ] ||
		{ echo "the other sandbox: exit $nrc, '$(cat "$T/n.out")' $(head -c 300 "$T/n.err")"; return 1; }
	expect_rc 125
}

# ---- hull run -d -----------------------------------------------------------------------

test_detached_flood_log_capped() {
	# A job that writes without end into its log: the log keeps to --log-opt's size and
	# count, the sandbox process to its RSS cap, and hull rm -f still ends it.
	local name dir owner
	name=$("$HULL" run -d --name hflood --log-opt max-size=1M --log-opt max-file=2 \
		--initrd "$EVIL" --rootfs "$ROOTFS" -- flood 2>"$T/err") || { echo "run -d: $(cat "$T/err")"; return 1; }
	dir=$HULL_STATE_DIR/hflood
	owner=$(cut -d' ' -f1 "$dir/owner")
	peak_rss "$owner" >/dev/null 2>&1 &
	local watcher=$! why=
	sleep 6
	"$HULL" ps >"$T/ps" && grep -q '^hflood ' "$T/ps" || why="ps: $(cat "$T/ps")"
	local size size1
	size=$(stat -c %s "$dir/container.log") || why="no container.log"
	size1=$(stat -c %s "$dir/container.log.1") || why="no container.log.1"
	[ -e "$dir/container.log.2" ] && why="a third log file: max-file=2"
	[ -z "$why" ] && ! { [ "$size" -le 1048576 ] && [ "$size1" -le 1048576 ] && [ "$size1" -gt 0 ]; } &&
		why="log sizes $size and $size1, max-size 1M"
	# Whatever was found, the sandbox goes: hull rm -f against a guest that ignores
	# SIGKILL.
	"$HULL" rm -f hflood || why="${why:+$why; }rm -f failed"
	wait "$watcher"
	[ -z "$why" ] || { echo "$why"; return 1; }
	expect_rss_capped
}

test_detached_bad_stream() {
	# A guest that breaks the channel under a detached job: the sandbox reports the job
	# ended (255), its log says what the guest did, and rm cleans up.
	local i why=
	"$HULL" run -d --name hbad --initrd "$EVIL" --rootfs "$ROOTFS" -- bad-stream >/dev/null 2>"$T/err" ||
		{ echo "run -d: $(cat "$T/err")"; return 1; }
	# NAME STATUS PID EXIT
	for i in $(seq 1 100); do
		"$HULL" ps 2>/dev/null | grep -qE '^hbad +exited +[0-9]+ +255$' && break
		sleep 0.1
	done
	"$HULL" ps | grep -qE '^hbad +exited +[0-9]+ +255$' || why="ps: $("$HULL" ps)"
	"$HULL" logs hbad >"$T/log" 2>&1
	grep -q "protocol violation: data on stream 2, which was never opened" "$T/log" ||
		why="${why:+$why; }log: $(tail -c 400 "$T/log")"
	"$HULL" rm -f hbad || why="${why:+$why; }rm failed"
	[ -z "$why" ] || { echo "$why"; return 1; }
}

# ---- the shim, through containerd --------------------------------------------------------

ctr_evil() {
	$CTR run -d --runtime io.containerd.hull.v2 --runtime-config-path "$W/evil.toml" "$@"
}
shim_pid() { pgrep -f -- "-address $SOCK.*-id $1 " | head -1; }

test_shim_flood_unread_fifo() {
	# ctr run -d: nobody reads the container's FIFO. The shim cuts the flooding stream,
	# says so in containerd's log, stays small, and keeps answering.
	ctr_evil $BB fl flood || return 1
	local pid
	pid=$(shim_pid fl)
	[ -n "$pid" ] || { echo "no shim"; return 1; }
	until_ok grep -q "protocol violation: container 'fl'" "$W/containerd.log" ||
		{ echo "no violation logged"; return 1; }
	status_is fl RUNNING || { echo "task ls: $($CTR task ls)"; return 1; }
	local kb
	kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
	echo "$kb" >"$T/rss"
	expect_rss_capped || return 1
	$CTR task kill -s KILL fl && until_ok status_is fl STOPPED || return 1
	$CTR task delete fl >/dev/null && $CTR container rm fl
}

test_shim_pod_neighbour_unaffected() {
	# Two containers of one pod (one shim, one VM): the one that floods is cut off,
	# its neighbour runs on, answers signals and reports its own exit.
	ctr_evil --annotation io.kubernetes.cri.container-type=sandbox $BB hp1 sleep || return 1
	ctr_evil --annotation io.kubernetes.cri.container-type=container \
		--annotation io.kubernetes.cri.sandbox-id=hp1 $BB hp2 flood || return 1
	[ "$(pgrep -fc -- "-address $SOCK")" = 1 ] || { echo "not one shim for the pod"; return 1; }
	until_ok grep -q "protocol violation: container 'hp2'" "$W/containerd.log" || return 1
	status_is hp1 RUNNING || { echo "neighbour: $(task_status hp1)"; return 1; }
	$CTR task kill -s TERM hp1 && until_ok status_is hp1 STOPPED || return 1
	$CTR task ls | grep -q '^hp1 .*STOPPED' || return 1
	$CTR task kill -s KILL hp2 && until_ok status_is hp2 STOPPED || return 1
	$CTR task delete hp2 >/dev/null && $CTR container rm hp2
	$CTR task delete hp1 >/dev/null && $CTR container rm hp1
}

test_shim_serves_during_create() {
	# A pod whose second container's CreateContainer the guest never answers: while that
	# Create is in flight, the shim serves everything else (ctr task ls, kill, wait of
	# the first container); the Create fails when its call times out.
	ctr_evil --annotation io.kubernetes.cri.container-type=sandbox $BB sd1 sleep || return 1
	ctr_evil --annotation io.kubernetes.cri.container-type=container \
		--annotation io.kubernetes.cri.sandbox-id=sd1 $BB sd2 silent >"$T/create" 2>&1 &
	local creating=$!
	sleep 3
	kill -0 "$creating" 2>/dev/null || { echo "the create did not wait: $(cat "$T/create")"; return 1; }
	timeout 10 $CTR task ls >"$T/ls" || { echo "ctr task ls did not answer"; return 1; }
	grep -q '^sd1 .*RUNNING' "$T/ls" || { echo "task ls: $(cat "$T/ls")"; return 1; }
	timeout 10 $CTR task kill -s TERM sd1 || { echo "kill did not answer"; return 1; }
	until_ok status_is sd1 STOPPED || return 1
	kill -0 "$creating" 2>/dev/null || { echo "the create ended early: $(cat "$T/create")"; return 1; }
	wait "$creating" && { echo "the silent create succeeded"; return 1; }
	grep -q "no answer" "$T/create" || { echo "create: $(cat "$T/create")"; return 1; }
	$CTR container rm sd2 2>/dev/null
	$CTR task delete sd1 >/dev/null && $CTR container rm sd1
}

# ---- main --------------------------------------------------------------------------------

for t in $TESTS_RUN $TESTS_DETACH; do
	run_test "$t"
done
if [ "$have_ctd" = 0 ]; then
	skip_tests "containerd is not installed (make deps installs Debian's containerd)" $TESTS_SHIM
	exit $failed
fi
printf 'initrd = "%s"\nboot_timeout = "60s"\n' "$EVIL" >"$W/evil.toml"
ctd_start || { echo "not ok - containerd_start: $(tail -3 "$W/containerd.log")"; exit 1; }
$CTR images import "$BUILD/images/busybox.tar" >/dev/null 2>"$W/import.err" ||
	{ echo "not ok - image_import: $(cat "$W/import.err")"; exit 1; }
for t in $TESTS_SHIM; do
	run_test "$t"
done
exit $failed
