#!/usr/bin/env bash
# Templates (docs/templates.md) with real QEMU: clones restored from a booted snapshot.
# Each test has a state root of its own, so it builds the templates it uses. Prints one
# line per test:  ok - NAME | not ok - NAME: why | skip - NAME: why
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
HULL=$BUILD/hull
ROOTFS=$BUILD/rootfs-demo
KERNEL=$BUILD/guest/vmlinuz
work=$(mktemp -d /tmp/hull-tpl.XXXXXX)
export HULL_ACCEL=${HULL_ACCEL:-auto}
unset HULL_TEMPLATE
trap 'pkill -9 -f -- "$work/" 2>/dev/null; rm -rf "$work"' EXIT

only=${HULL_TEST_FILTER:-}
failed=0

. "$top/tests/integration/lib.sh"

before_test() { export HULL_STATE_DIR=$T/state; }

leaks() {
	if ! wait_gone "$work/"; then
		echo "process left: $(pgrep -af -- "$work/" | head -1 | cut -c1-160)"
		pkill -9 -f -- "$work/"
		return
	fi
	[ -z "$(state_left "$HULL_STATE_DIR")" ] || echo "state left: $(state_left "$HULL_STATE_DIR" | tr '\n' ' ')"
}

STORE() { echo "$HULL_STATE_DIR/.templates"; }
n_templates() { ls "$(STORE)" 2>/dev/null | grep -c '^[0-9a-f]\{16\}$'; }
# The template a run's log (--log-level info) says it restored from.
restored_from() { sed -n 's/.*restored from template \([0-9a-f]\{16\}\).*/\1/p' "$1" | tail -1; }

# hull run --log-level info with the demo rootfs; stderr (the log) in $T/err.
trun() {
	"$HULL" run --log-level info --rootfs "$ROOTFS" "$@" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
}

# ---- tests ----------------------------------------------------------------------

test_first_builds_then_clones() {
	trun -- echo one && expect_rc 0 && expect_out one || return 1
	expect_err_has "building template" || return 1
	local id
	id=$(restored_from "$T/err")
	[ -n "$id" ] || { echo "the first run was not restored from its template: $(cat "$T/err")"; return 1; }
	[ "$(n_templates)" = 1 ] || { echo "$(n_templates) templates after one run"; return 1; }
	trun -- echo two && expect_rc 0 && expect_out two || return 1
	grep -q "building template" "$T/err" && { echo "the second run built again"; return 1; }
	[ "$(restored_from "$T/err")" = "$id" ] || { echo "the second run did not restore from $id: $(cat "$T/err")"; return 1; }
	# Everything a template holds is its store's; nothing of the runs is left.
	ls -A "$HULL_STATE_DIR" | grep -qv '^\.templates$' && { echo "left: $(ls -A "$HULL_STATE_DIR")"; return 1; }
	return 0
}

test_clones_differ() {
	# Two clones of one template: their own random stream, MAC and host name; the wall
	# clock is the host's even though the template was saved seconds ago (without
	# Sync a clone has the template's clock, and there is no RTC: 1970).
	local probe='head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"; echo; cat /sys/class/net/eth0/address; hostname; date +%s; cat /proc/sys/kernel/random/boot_id'
	trun --net user -- true && expect_rc 0 || return 1
	sleep 3
	trun --net user -- sh -c "$probe" && expect_rc 0 || return 1
	[ -n "$(restored_from "$T/err")" ] || { echo "not a clone: $(cat "$T/err")"; return 1; }
	local now a b
	now=$(date +%s)
	cp "$T/out" "$T/a"
	trun --net user -- sh -c "$probe" && expect_rc 0 || return 1
	cp "$T/out" "$T/b"
	a=$(sed -n 4p "$T/a") b=$(sed -n 4p "$T/b")
	[ $((now - a)) -le 2 ] && [ $((a - now)) -le 2 ] ||
		{ echo "clone clock $a, host $now"; return 1; }
	for line in 1 2 3 5; do
		[ "$(sed -n ${line}p "$T/a")" != "$(sed -n ${line}p "$T/b")" ] ||
			{ echo "line $line is the same in two clones: $(sed -n ${line}p "$T/a")"; return 1; }
	done
	grep -qx '0a:68:75:6c:6c:..' "$T/a" "$T/b" && { echo "a clone kept its template slot's MAC"; return 1; }
	return 0
}

test_clone_workloads() {
	# A clone sees what a cold boot sees: volumes, files, an image's erofs layers, the
	# NAT network with a published port.
	mkdir -p "$T/ws" && echo host-file >"$T/ws/in"
	trun -v "$T/ws:/ws" -- sh -c 'cat /ws/in; echo out >/ws/out' && expect_rc 0 && expect_out host-file || return 1
	[ "$(cat "$T/ws/out")" = out ] || { echo "volume write lost"; return 1; }
	"$HULL" run --log-level info busybox -- sh -c 'cat /etc/os-release 2>/dev/null | head -1; ls /bin/busybox' >"$T/out" 2>"$T/err" </dev/null ||
		{ echo "image run failed: $(cat "$T/err")"; return 1; }
	[ -n "$(restored_from "$T/err")" ] || { echo "the image run was not a clone: $(cat "$T/err")"; return 1; }
	expect_out_has /bin/busybox || return 1
	local port
	port=$(free_port)
	"$HULL" run --log-level info --rootfs "$ROOTFS" --net user -p "127.0.0.1:$port:8080" -- \
		sh -c 'mkdir /w; echo via-clone >/w/i; httpd -f -p 8080 -h /w' >"$T/out" 2>"$T/err" </dev/null &
	local pid=$! got=""
	for i in $(seq 1 100); do
		got=$(curl -sf --max-time 2 "http://127.0.0.1:$port/i" 2>/dev/null) && break
		sleep 0.2
	done
	kill -TERM $pid
	wait $pid
	[ "$got" = via-clone ] || { echo "published port answered '$got': $(cat "$T/err")"; return 1; }
}

test_key_changes() {
	# Another kernel, memory size or QEMU binary is another template.
	trun -- true && expect_rc 0 || return 1
	[ "$(n_templates)" = 1 ] || return 1
	trun --memory 320M -- true && expect_rc 0 && expect_err_has "building template" || return 1
	[ "$(n_templates)" = 2 ] || { echo "$(n_templates) templates after --memory"; return 1; }
	cp "$KERNEL" "$T/vmlinuz"
	trun --kernel "$T/vmlinuz" -- true && expect_rc 0 && expect_err_has "building template" || return 1
	[ "$(n_templates)" = 3 ] || { echo "$(n_templates) templates after --kernel"; return 1; }
	# The same file, touched: its identity changed, so did the key.
	touch -d '1 hour ago' "$T/vmlinuz"
	trun --kernel "$T/vmlinuz" -- true && expect_rc 0 && expect_err_has "building template" || return 1
	printf '#!/bin/sh\nexec qemu-system-x86_64 "$@"\n' >"$T/qemu" && chmod +x "$T/qemu"
	HULL_QEMU=$T/qemu trun -- true && expect_rc 0 && expect_err_has "building template" || return 1
	[ "$(n_templates)" = 5 ] || { echo "$(n_templates) templates, want 5"; return 1; }
	# The stale one (the kernel as it was) is what prune removes.
	"$HULL" template ls >"$T/ls" && grep -c stale "$T/ls" | grep -qx 1 || { echo "ls: $(cat "$T/ls")"; return 1; }
	[ "$("$HULL" template prune)" = "1 template removed" ] || return 1
	[ "$(n_templates)" = 4 ] || { echo "$(n_templates) templates after prune"; return 1; }
}

test_damaged_state_or_ram() {
	# A truncated or altered state file, or a truncated RAM file: refused, removed,
	# built again, and the run still succeeds from the new one.
	local id how
	trun -- true && expect_rc 0 || return 1
	id=$(restored_from "$T/err")
	for how in "truncate -s 1000 state" "truncate -s 4096 ram" "flip state"; do
		case $how in
		flip*) python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(100); b=f.read(1); f.seek(100); f.write(bytes([b[0]^0xff]))' "$(STORE)/$id/state" ;;
		*) (cd "$(STORE)/$id" && $how) ;;
		esac
		trun -- echo survived && expect_rc 0 && expect_out survived || return 1
		expect_err_has "template $id is damaged" && expect_err_has "building template $id" || return 1
		[ "$(restored_from "$T/err")" = "$id" ] || { echo "$how: not restored from the rebuilt template"; return 1; }
	done
}

test_bad_ram_falls_back() {
	# RAM of the right size but not the template's: the clone's guest is dead (QEMU
	# exits or Sync never answers); the run boots cold and succeeds, the template is
	# removed and the failure held back, and `template create` tries again.
	local id
	trun -- true && expect_rc 0 || return 1
	id=$(restored_from "$T/err")
	truncate -s 0 "$(STORE)/$id/ram" && truncate -s 256M "$(STORE)/$id/ram"
	trun -- echo cold && expect_rc 0 && expect_out cold || return 1
	expect_err_has "restore failed" && expect_err_has "booting without a template" || return 1
	[ ! -e "$(STORE)/$id" ] || { echo "the bad template is still there"; return 1; }
	[ -e "$(STORE)/$id.failed" ] || { echo "no failure record"; return 1; }
	trun -- echo cold-again && expect_rc 0 && expect_err_has "failed recently" || return 1
	[ "$("$HULL" template create)" = "$id" ] || { echo "template create did not rebuild $id"; return 1; }
	trun -- echo warm && expect_rc 0 && [ "$(restored_from "$T/err")" = "$id" ] ||
		{ echo "not restored after create: $(cat "$T/err")"; return 1; }
}

test_concurrent_first_runs() {
	# Four runs needing the same template at once: one builds it, all four restore.
	local i
	for i in 1 2 3 4; do
		"$HULL" run --log-level info --rootfs "$ROOTFS" -- echo "run-$i" >"$T/out$i" 2>"$T/err$i" </dev/null &
	done
	wait
	for i in 1 2 3 4; do
		[ "$(cat "$T/out$i")" = "run-$i" ] || { echo "run $i: $(cat "$T/err$i")"; return 1; }
		[ -n "$(restored_from "$T/err$i")" ] || { echo "run $i booted cold: $(cat "$T/err$i")"; return 1; }
	done
	[ "$(cat "$T"/err? | grep -c 'building template')" = 1 ] ||
		{ echo "$(cat "$T"/err? | grep -c 'building template') builds"; return 1; }
	[ "$(n_templates)" = 1 ] || { echo "$(n_templates) templates"; return 1; }
}

test_killed_mid_build() {
	# SIGKILL while the template boots: its QEMU dies with hull (PDEATHSIG), what is
	# left is an unfinished build nobody uses; the next run builds afresh.
	"$HULL" run --log-level info --rootfs "$ROOTFS" -- true >"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/err" "building template" || { kill -9 $pid; return 1; }
	kill -9 $pid
	wait $pid 2>/dev/null
	wait_gone "$HULL_STATE_DIR/" || { echo "QEMU survived its hull"; return 1; }
	[ "$(n_templates)" = 0 ] || { echo "a template from a killed build"; return 1; }
	ls -A "$(STORE)" | grep -q '^\.build-' || { echo "no unfinished build to clean (killed too late?)"; return 1; }
	trun -- echo after && expect_rc 0 && expect_out after && expect_err_has "building template" || return 1
	ls -A "$(STORE)" | grep -q '^\.build-' && { echo "unfinished build left: $(ls -A "$(STORE)")"; return 1; }
	# The killed run's state dir goes with the next run's sweep.
	[ -z "$(ls "$HULL_STATE_DIR")" ] || { echo "left: $(ls "$HULL_STATE_DIR")"; return 1; }
}

test_trust_domains() {
	# Sandboxes of two domains never share a template; of one domain they do.
	trun --template-domain tenant-a -- true && expect_rc 0 || return 1
	local a b
	a=$(restored_from "$T/err")
	trun --template-domain tenant-b -- true && expect_rc 0 || return 1
	b=$(restored_from "$T/err")
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] || { echo "tenant-a $a, tenant-b $b"; return 1; }
	trun --template-domain tenant-a -- true && [ "$(restored_from "$T/err")" = "$a" ] || return 1
	"$HULL" template ls >"$T/ls"
	grep -q "^$a  tenant-a " "$T/ls" && grep -q "^$b  tenant-b " "$T/ls" || { echo "ls: $(cat "$T/ls")"; return 1; }
	trun --template-domain 'bad name' -- true
	expect_rc 125 && expect_err_has "--template-domain 'bad name'"
}

test_no_template() {
	# --no-template and HULL_TEMPLATE=false boot cold and touch no store.
	trun --no-template -- echo cold && expect_rc 0 && expect_out cold || return 1
	grep -q "template" "$T/err" && { echo "log mentions a template: $(cat "$T/err")"; return 1; }
	HULL_TEMPLATE=false trun -- echo cold2 && expect_rc 0 && expect_out cold2 || return 1
	[ ! -e "$(STORE)" ] || { echo "a store was made: $(ls -A "$(STORE)")"; return 1; }
}

test_template_cli() {
	local id out
	id=$("$HULL" template create --disks 3 --net user 2>"$T/err") || { echo "create: $(cat "$T/err")"; return 1; }
	[[ $id =~ ^[0-9a-f]{16}$ ]] || { echo "create printed '$id'"; return 1; }
	# Idempotent: the same options name the same template.
	[ "$("$HULL" template create --disks 3 --net user)" = "$id" ] || return 1
	# A 3-layer image would use the 4-slot template: --disks 4 is the same one.
	[ "$("$HULL" template create --disks 4 --net user)" = "$id" ] || return 1
	out=$("$HULL" template ls)
	echo "$out" | grep -q "^$id  uid-$(id -u) .* 4     0    user " || { echo "ls: $out"; return 1; }
	"$HULL" template create --disks x >/dev/null 2>"$T/err" && return 1
	grep -q -- "--disks 'x'" "$T/err" || { echo "bad --disks: $(cat "$T/err")"; return 1; }
	"$HULL" template rm 0123456789abcdef 2>"$T/err" && return 1
	grep -q "no template '0123456789abcdef'" "$T/err" || return 1
	"$HULL" template rm "$id" && [ "$(n_templates)" = 0 ] || return 1
	"$HULL" template create >/dev/null && "$HULL" template create --memory 128M >/dev/null &&
		"$HULL" template rm --all && [ "$(n_templates)" = 0 ]
}

# ---- main -----------------------------------------------------------------------

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "skip - templates: qemu-system-x86_64 not installed (make deps)"
	exit 0
fi
for f in "$HULL" "$KERNEL" "$BUILD/guest/initramfs.cpio" "$ROOTFS/bin/busybox"; do
	[ -e "$f" ] || { echo "skip - templates: '$f' not built (make)"; exit 0; }
done

for t in first_builds_then_clones clones_differ clone_workloads key_changes damaged_state_or_ram \
	bad_ram_falls_back concurrent_first_runs killed_mid_build trust_domains no_template template_cli; do
	run_test "$t"
done
exit $failed
