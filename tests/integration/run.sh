#!/usr/bin/env bash
# Integration tests: real QEMU under TCG (or KVM where it works), the real guest kernel
# and agent, hull run as a user runs it. Prints one line per test:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
# and checks after every test that nothing leaked: no QEMU, no state dir, no temp dir.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
HULL=$BUILD/hull
ROOTFS=$BUILD/rootfs-demo
work=$(mktemp -d /tmp/hull-it.XXXXXX)
export HULL_STATE_DIR=$work/state
export HULL_ACCEL=${HULL_ACCEL:-auto}
mkdir -p "$HULL_STATE_DIR"
trap 'pkill -9 -f -- "$HULL_STATE_DIR" 2>/dev/null; rm -rf "$work"' EXIT

only=${HULL_TEST_FILTER:-}
failed=0

say() { printf '%s\n' "$*"; }

# Nothing of ours may survive a test: QEMU processes naming our state dir, or entries in it.
leaks() {
	if ! wait_gone "$HULL_STATE_DIR"; then
		echo "process left: $(pgrep -af -- "$HULL_STATE_DIR" | head -1)"
		pkill -9 -f -- "$HULL_STATE_DIR"
		return
	fi
	if [ -n "$(state_left "$HULL_STATE_DIR")" ]; then
		echo "state left: $(state_left "$HULL_STATE_DIR" | head -3 | tr '\n' ' ')"
		rm -rf "${HULL_STATE_DIR:?}"/*
	fi
}

. "$top/tests/integration/lib.sh"


# ---- tests ----------------------------------------------------------------------

# agentctl SCRIPT: a sandbox driven by tests/integration/pod/SCRIPT; its output in
# $T/out.
agentctl() {
	(cd "$top/tests/integration/pod" && BUILD=$BUILD "$BUILD/tests/agentctl" --rootfs "$ROOTFS" "$1") >"$T/out" 2>"$T/err" ||
		{ echo "agentctl failed: $(head -c 400 "$T/err")"; return 1; }
}
# expect_lines FILE LINE...: each LINE is a whole line of FILE.
expect_lines() {
	local file=$1 line
	shift
	for line in "$@"; do
		grep -qxF -- "$line" "$file" || { echo "missing '$line' in: $(tr '\n' '|' <"$file")"; return 1; }
	done
}

test_echo() {
	hrun -- echo hello from the VM && expect_rc 0 && expect_out "hello from the VM"
}

test_exit_codes() {
	for code in 0 1 42; do
		hrun -- sh -c "exit $code" && expect_rc "$code" || return 1
	done
}

test_stderr_apart() {
	hrun -- sh -c 'echo out1; echo err1 >&2; echo out2; echo err2 >&2' && expect_rc 0 || return 1
	[ "$(cat "$T/out")" = $'out1\nout2' ] || { echo "stdout: $(cat "$T/out")"; return 1; }
	[ "$(grep -v '^hull' "$T/err")" = $'err1\nerr2' ] || { echo "stderr: $(cat "$T/err")"; return 1; }
}

test_stdout_10mib_intact() {
	mkdir -p "$T/data"
	head -c $((10 << 20)) /dev/urandom >"$T/data/blob"
	"$HULL" run --rootfs "$ROOTFS" -v "$T/data:/data:ro" -- cat /data/blob >"$T/got" 2>"$T/err" </dev/null
	local r=$?
	[ "$r" = 0 ] || { echo "exit $r: $(cat "$T/err")"; return 1; }
	[ "$(sha256sum <"$T/got")" = "$(sha256sum <"$T/data/blob")" ] ||
		{ echo "checksum differs ($(stat -c %s "$T/got") bytes arrived)"; return 1; }
}

test_stdin_through_cat() {
	head -c $((1 << 20)) /dev/urandom >"$T/in"
	"$HULL" run --rootfs "$ROOTFS" -i -- cat <"$T/in" >"$T/got" 2>"$T/err"
	local r=$?
	[ "$r" = 0 ] || { echo "exit $r: $(cat "$T/err")"; return 1; }
	cmp -s "$T/in" "$T/got" || { echo "stdin came back different ($(stat -c %s "$T/got") bytes)"; return 1; }
	# A pipe that ends: the command sees EOF and its result comes back.
	printf 'a\nb\nc\n' | "$HULL" run --rootfs "$ROOTFS" -i -- wc -l >"$T/out" 2>"$T/err"
	[ "$(tr -d ' ' <"$T/out")" = 3 ] || { echo "wc -l said '$(cat "$T/out")'"; return 1; }
}

test_tty() {
	hrun -t -- sh -c 'test -t 0 && test -t 1 && tty' && expect_rc 0 || return 1
	grep -q '^/dev/pts/' "$T/out" || { echo "no tty: $(cat "$T/out")"; return 1; }
	hrun -- sh -c 'test -t 1 && echo tty || echo notty' && expect_out notty
}

test_timeout() {
	hrun --timeout 2s -- sleep 600 && expect_rc 124 && expect_err_has "timeout"
}

test_volume_rw_ro_and_rootfs_unchanged() {
	local before after
	mkdir -p "$T/ws"
	before=$(cd "$ROOTFS" && find . -printf '%p %s %m %T@\n' | sort | sha256sum)
	hrun -v "$T/ws:/ws" -- sh -c 'echo made-in-vm >/ws/result; echo junk >/etc/junk; rm /bin/ls; mkdir /newdir' &&
		expect_rc 0 || return 1
	[ "$(cat "$T/ws/result" 2>/dev/null)" = made-in-vm ] || { echo "file written in the container is not on the host"; return 1; }
	hrun -v "$T/ws:/ws:ro" -- sh -c 'echo x >/ws/other' || true
	[ "$(rc)" != 0 ] || { echo "write to a :ro volume succeeded"; return 1; }
	expect_err_has "Read-only file system" || return 1
	[ ! -e "$T/ws/other" ] || { echo ":ro volume was written"; return 1; }
	after=$(cd "$ROOTFS" && find . -printf '%p %s %m %T@\n' | sort | sha256sum)
	[ "$before" = "$after" ] || { echo "the rootfs changed"; return 1; }
}

test_rootfs_rw() {
	local rw=$T/rootfs
	cp -a "$ROOTFS" "$rw"
	"$HULL" run --rootfs "$rw" --rootfs-rw -- sh -c 'echo kept >/etc/kept' >"$T/out" 2>"$T/err" </dev/null
	[ "$(cat "$rw/etc/kept" 2>/dev/null)" = kept ] || { echo "--rootfs-rw write did not land: $(cat "$T/err")"; return 1; }
}

test_env_user_workdir_hostname() {
	printf '# comment\nFROM_FILE=yes\nSHARED=file\n' >"$T/envfile"
	hrun --env-file "$T/envfile" -e SHARED=flag -e GREETING="a b" -u 1000:2000 -w /tmp/work --hostname job-7 -- \
		sh -c 'echo "$FROM_FILE $SHARED $GREETING"; id -u; id -g; pwd; hostname' && expect_rc 0 || return 1
	expect_out $'yes flag a b\n1000\n2000\n/tmp/work\njob-7'
}

test_signal_forwarded() {
	# A command that handles SIGTERM sees it and decides its own exit status.
	"$HULL" run --rootfs "$ROOTFS" -- sh -c 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.2; done' \
		>"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/out" ready || { kill -9 $pid; return 1; }
	kill -TERM $pid
	wait $pid
	local r=$?
	[ "$r" = 3 ] || { echo "exit $r, want 3: $(cat "$T/err")"; return 1; }
	grep -q got-term "$T/out" || { echo "the trap did not run"; return 1; }
}

test_killed_by_signal() {
	# PID 1 of the container ignores SIGINT; a second Ctrl-C kills it: 128+9.
	"$HULL" run --rootfs "$ROOTFS" -- sh -c 'echo ready; exec sleep 600' >"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/out" ready || { kill -9 $pid; return 1; }
	kill -INT $pid
	sleep 0.5
	kill -INT $pid
	wait $pid
	local r=$?
	[ "$r" = 137 ] || { echo "exit $r, want 137: $(cat "$T/err")"; return 1; }
}

test_ctrl_c_leaves_nothing() {
	# One Ctrl-C, a PID 1 that ignores it: the stop timeout kills; nothing remains.
	# SIGINT is ignored before "ready" (and stays ignored across exec): busybox sh
	# catches it, so a signal landing between the echo and the exec would end sh.
	"$HULL" run --rootfs "$ROOTFS" --stop-timeout 1s -- sh -c 'trap "" INT; echo ready; exec sleep 600' \
		>"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/out" ready || { kill -9 $pid; return 1; }
	kill -INT $pid
	wait $pid
	local r=$?
	[ "$r" = 137 ] || { echo "exit $r, want 137: $(cat "$T/err")"; return 1; }
	# Ctrl-C during boot aborts the boot and cleans up too.
	"$HULL" run --rootfs "$ROOTFS" -- true >"$T/out" 2>"$T/err" </dev/null &
	pid=$!
	sleep 0.3
	kill -INT $pid
	wait $pid
	r=$?
	[ "$r" = 130 ] || [ "$r" = 0 ] || { echo "boot interrupted: exit $r: $(cat "$T/err")"; return 1; }
}

test_hull_killed_hard() {
	# SIGKILL of hull itself: QEMU dies with it (PDEATHSIG); the next run sweeps the
	# dead sandbox's state dir.
	"$HULL" run --rootfs "$ROOTFS" -- sh -c 'echo ready; exec sleep 600' >"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/out" ready || { kill -9 $pid; return 1; }
	kill -9 $pid
	wait $pid 2>/dev/null
	local i
	for i in $(seq 1 50); do pgrep -f -- "$HULL_STATE_DIR" >/dev/null || break; sleep 0.1; done
	pgrep -f -- "$HULL_STATE_DIR" >/dev/null && { echo "QEMU outlived a killed hull"; return 1; }
	hrun -- true && expect_rc 0
}

test_vm_dies_mid_run() {
	"$HULL" run --rootfs "$ROOTFS" -- sh -c 'echo ready; exec sleep 600' >"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	wait_for "$T/out" ready || { kill -9 $pid; return 1; }
	pkill -9 -f -- "qemu-system.*$HULL_STATE_DIR"
	wait $pid
	local r=$?
	[ "$r" = 125 ] || { echo "exit $r, want 125"; return 1; }
	expect_err_has "VM exited"
}

test_bad_input() {
	hrun --rootfs /nonexistent/rootfs -- true
	expect_rc 125 && expect_err_has "rootfs '/nonexistent/rootfs'" || return 1
	"$HULL" run --rootfs "$ROOTFS" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "no command" || return 1
	hrun -- /no/such/command
	expect_rc 127 && expect_err_has "'/no/such/command'" || return 1
	hrun -- nosuchcmd
	expect_rc 127 || return 1
	hrun -- /etc/passwd
	expect_rc 126 || return 1
	HULL_QEMU=/nonexistent/qemu-system-x86_64 hrun -- true
	expect_rc 125 && expect_err_has "QEMU binary" || return 1
	hrun --kernel /nonexistent/vmlinuz -- true
	expect_rc 125 && expect_err_has "kernel '/nonexistent/vmlinuz'" || return 1
	hrun -v /nonexistent/dir:/x -- true
	expect_rc 125 && expect_err_has "/nonexistent/dir" || return 1
	hrun -m lots -- true
	expect_rc 125 && expect_err_has "--memory 'lots'" || return 1
	hrun --timeout soon -- true
	expect_rc 125 && expect_err_has "--timeout 'soon'"
}

test_unavailable_accel_and_channel() {
	# KVM and vsock are selectable; where the host lacks them the refusal is clear.
	if grep -qwE 'vmx|svm' /proc/cpuinfo; then
		echo "this host has vmx/svm: the refusal cannot be shown here"
		return 77
	fi
	hrun --accel kvm -- true
	expect_rc 125 && expect_err_has "accel kvm requested but unusable" || return 1
	if [ -e /dev/vhost-vsock ]; then
		hrun --channel vsock -- echo over-vsock && expect_rc 0 && expect_out over-vsock
		return
	fi
	hrun --channel vsock -- true
	expect_rc 125 && expect_err_has "vhost-vsock"
}

test_bad_kernel_boot_timeout() {
	# A "kernel" that is not one: QEMU refuses it, or the guest never answers; either
	# way a clear message and nothing left.
	head -c 4096 /dev/urandom >"$T/junk"
	hrun --kernel "$T/junk" --boot-timeout 10s -- true
	expect_rc 125 || return 1
	grep -qiE 'QEMU exited|boot VM' "$T/err" || { echo "unclear: $(head -c 400 "$T/err")"; return 1; }
	# A guest that does not answer in time: the boot timeout names itself and shows
	# the console's last lines.
	hrun --boot-timeout 1ms -- true
	expect_rc 125 && expect_err_has "boot VM: Check: no answer from the agent in 1 ms"
}

# A bundle exercising the process and security fields of the spec.
make_probe_bundle() {
	local b=$1
	mkdir -p "$b"
	cp -a "$ROOTFS" "$b/rootfs"
	echo 'job:x:1000:1000:job:/home/job:/bin/sh' >>"$b/rootfs/etc/passwd"
	install -m 0755 "$top/tests/integration/oci-probe.sh" "$b/rootfs/probe"
	python3 - "$b/config.json" <<'PY'
import json, sys
caps = lambda *n: ["CAP_" + x for x in n]
spec = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23},
        "args": ["/bin/sh", "/probe"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello world", "EMPTY="],
        "cwd": "/tmp",
        "capabilities": {"bounding": caps("CHOWN", "KILL", "NET_BIND_SERVICE", "SETUID", "SETGID"),
                         "effective": caps("KILL", "CHOWN"), "permitted": caps("KILL", "CHOWN"),
                         "inheritable": caps("KILL"), "ambient": caps("KILL")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                    {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}],
        "noNewPrivileges": True,
        "oomScoreAdj": 100,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "probe-box",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/timer_list", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys"],
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]},
    },
}
json.dump(spec, open(sys.argv[1], "w"), indent=1)
PY
}

test_oci_differential_runc() {
	command -v runc >/dev/null || { echo "runc not installed (make deps)"; return 77; }
	make_probe_bundle "$T/b"
	runc --root "$T/runc-state" run -b "$T/b" "hull-diff-$$" >"$T/runc.out" 2>"$T/runc.err" </dev/null
	local rr=$?
	"$HULL" run --bundle "$T/b" >"$T/hull.out" 2>"$T/hull.err" </dev/null
	local hr=$?
	[ "$rr" = 0 ] || { echo "runc failed ($rr): $(head -c 400 "$T/runc.err")"; return 1; }
	[ "$hr" = 0 ] || { echo "hull failed ($hr): $(head -c 400 "$T/hull.err")"; return 1; }
	[ "$(wc -l <"$T/runc.out")" -ge 20 ] || { echo "probe printed too little: $(cat "$T/runc.out")"; return 1; }
	# What honestly differs: "mount /sys/fs/cgroup ..." is not probed (cgroup v1 on
	# this host, v2 in the guest); nothing else is excluded.
	if ! diff -u "$T/runc.out" "$T/hull.out" >"$T/diff"; then
		echo "runc and hull disagree:"
		cat "$T/diff"
		return 1
	fi
}

# noNewPrivileges as runc honours it, with and without a seccomp profile: the flag in
# /proc/self/status, and whether a setuid-root program gains root on exec. The spec's
# sysctls apply before /proc/sys goes read-only (every runc spec lists it).
test_oci_no_new_privs_and_sysctl_like_runc() {
	command -v runc >/dev/null || { echo "runc not installed (make deps)"; return 77; }
	[ -x "$BUILD/tests/euid" ] || { echo "$BUILD/tests/euid missing (make check builds it)"; return 1; }
	make_probe_bundle "$T/b"
	install -m 4755 -o 0 -g 0 "$BUILD/tests/euid" "$T/b/rootfs/euid"
	local nnp sc rr hr
	for nnp in true false; do
		for sc in with without; do
			python3 - "$T/b/config.json" "$nnp" "$sc" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["noNewPrivileges"] = sys.argv[2] == "true"
c["process"]["args"] = ["/bin/sh", "-c",
    "grep NoNewPrivs /proc/self/status; /euid; echo domainname $(cat /proc/sys/kernel/domainname)"]
c["linux"]["sysctl"] = {"kernel.domainname": "probe.test"}
if sys.argv[3] == "with":
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                             "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
else:
    c["linux"].pop("seccomp", None)
json.dump(c, open(sys.argv[1], "w"))
PY
			runc --root "$T/runc-state" run -b "$T/b" "hull-nnp-$$" >"$T/runc.out" 2>"$T/runc.err" </dev/null
			rr=$?
			"$HULL" run --bundle "$T/b" >"$T/hull.out" 2>"$T/hull.err" </dev/null
			hr=$?
			[ "$rr" = 0 ] || { echo "runc failed ($rr, nnp $nnp, $sc seccomp): $(head -c 400 "$T/runc.err")"; return 1; }
			[ "$hr" = 0 ] || { echo "hull failed ($hr, nnp $nnp, $sc seccomp): $(head -c 400 "$T/hull.err")"; return 1; }
			# What runc shows is the reference; check it says what the case means too.
			local want_nnp=1 want_euid=1000
			[ "$nnp" = false ] && want_nnp=0 want_euid=0
			grep -q "^NoNewPrivs:[[:space:]]*$want_nnp\$" "$T/runc.out" &&
				grep -q "^euid $want_euid\$" "$T/runc.out" &&
				grep -q '^domainname probe.test$' "$T/runc.out" ||
				{ echo "runc (nnp $nnp, $sc seccomp) printed: $(cat "$T/runc.out")"; return 1; }
			if ! diff -u "$T/runc.out" "$T/hull.out" >"$T/diff"; then
				echo "runc and hull disagree (noNewPrivileges $nnp, $sc seccomp):"
				cat "$T/diff"
				return 1
			fi
		done
	done
}

test_oci_user_namespace_like_runc() {
	command -v runc >/dev/null || { echo "runc not installed (make deps)"; return 77; }
	make_probe_bundle "$T/b"
	python3 - "$T/b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["linux"]["namespaces"].append({"type": "user"})
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["process"]["args"] = ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; sh /probe"]
json.dump(c, open(sys.argv[1], "w"))
PY
	# The mapped root (host uid 100000) must be able to reach the bundle.
	chmod 0711 "$work" "$T" "$T/b"
	runc --root "$T/runc-state" run -b "$T/b" "hull-userns-$$" >"$T/runc.out" 2>"$T/runc.err" </dev/null
	local rr=$?
	"$HULL" run --bundle "$T/b" >"$T/hull.out" 2>"$T/hull.err" </dev/null
	local hr=$?
	[ "$rr" = 0 ] || { echo "runc failed ($rr): $(head -c 400 "$T/runc.err")"; return 1; }
	[ "$hr" = 0 ] || { echo "hull failed ($hr): $(head -c 400 "$T/hull.err")"; return 1; }
	grep -qE '^ +0 +100000 +65536$' "$T/hull.out" || { echo "no uid map: $(head -3 "$T/hull.out")"; return 1; }
	if ! diff -u "$T/runc.out" "$T/hull.out" >"$T/diff"; then
		echo "runc and hull disagree in a user namespace:"
		cat "$T/diff"
		return 1
	fi
}

test_oci_bind_host_files() {
	# Bind mounts of host files (what containerd gives for resolv.conf, hosts): copied
	# into the sandbox at start, mounted read-only or writable as the spec says.
	make_probe_bundle "$T/b"
	printf 'nameserver 192.0.2.53\n' >"$T/resolv.conf"
	printf 'original\n' >"$T/scratch"
	python3 - "$T/b/config.json" "$T/resolv.conf" "$T/scratch" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["user"] = {"uid": 0, "gid": 0}
c["process"]["args"] = ["/bin/sh", "-c",
    "cat /etc/resolv.conf; echo x >>/etc/resolv.conf 2>/dev/null || echo ro-refused; "
    "echo changed >/data/scratch && cat /data/scratch"]
c["mounts"] += [{"destination": "/etc/resolv.conf", "type": "bind", "source": sys.argv[2], "options": ["rbind", "ro"]},
                {"destination": "/data/scratch", "type": "bind", "source": sys.argv[3], "options": ["rbind"]}]
json.dump(c, open(sys.argv[1], "w"))
PY
	"$HULL" run --bundle "$T/b" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 0 && expect_out $'nameserver 192.0.2.53\nro-refused\nchanged' || return 1
	# A copy: the host's file is not written through (documented).
	[ "$(cat "$T/scratch")" = original ] || { echo "host file changed"; return 1; }
}

test_oci_bundle_errors() {
	# A bad spec is refused with the field's path; the sandbox stays usable (the next
	# container is another VM here, but the agent's refusal happens before any clone).
	make_probe_bundle "$T/b"
	python3 - "$T/b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["capabilities"]["bounding"].append("CAP_WARP_DRIVE")
json.dump(c, open(sys.argv[1], "w"))
PY
	"$HULL" run --bundle "$T/b" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "process.capabilities.bounding[5]: unknown capability 'CAP_WARP_DRIVE'" || return 1
	"$HULL" run --bundle /nonexistent/bundle >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "bundle '/nonexistent/bundle': config.json" || return 1
	"$HULL" run --bundle "$T/b" -e X=1 >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "--bundle takes the command"
}

test_oci_memory_limit_oom() {
	make_probe_bundle "$T/b"
	python3 - "$T/b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
# The shell holds the whole 200 MiB string: far past the 32 MiB limit.
c["process"]["args"] = ["/bin/sh", "-c", "echo start; x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived"]
c["process"]["user"] = {"uid": 0, "gid": 0}
c["linux"]["resources"] = {"memory": {"limit": 33554432, "swap": 33554432}, "pids": {"limit": 32}}
json.dump(c, open(sys.argv[1], "w"))
PY
	"$HULL" run --bundle "$T/b" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	grep -q start "$T/out" || { echo "did not start: $(cat "$T/err")"; return 1; }
	grep -q survived "$T/out" && { echo "a 200 MiB allocation survived a 32 MiB limit"; return 1; }
	expect_rc 137 && expect_err_has "OOM-killed"
}

test_default_security() {
	# hull run's defaults are docker's: its 14 capabilities, a seccomp filter, masked
	# paths; --privileged lifts them.
	hrun -- sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status; unshare -m true 2>&1 || echo unshare-denied' &&
		expect_rc 0 || return 1
	grep -q 'CapEff:.*00000000a80425fb' "$T/out" || { echo "default caps: $(cat "$T/out")"; return 1; }
	grep -q 'Seccomp:.*2' "$T/out" || { echo "no seccomp filter: $(cat "$T/out")"; return 1; }
	grep -q 'unshare-denied' "$T/out" || { echo "unshare was allowed: $(cat "$T/out")"; return 1; }
	hrun --privileged -- sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status' && expect_rc 0 || return 1
	grep -q 'CapEff:.*000001ffffffffff' "$T/out" || { echo "privileged caps: $(cat "$T/out")"; return 1; }
	grep -q 'Seccomp:.*0' "$T/out" || { echo "privileged has a filter: $(cat "$T/out")"; return 1; }
}

test_seccomp_kill_like_runc() {
	command -v runc >/dev/null || { echo "runc not installed (make deps)"; return 77; }
	make_probe_bundle "$T/b"
	python3 - "$T/b/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/mkdir", "/tmp/x"]
c["linux"]["seccomp"]["syscalls"] = [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
json.dump(c, open(sys.argv[1], "w"))
PY
	runc --root "$T/runc-state" run -b "$T/b" "hull-kill-$$" >/dev/null 2>&1 </dev/null
	local rr=$?
	"$HULL" run --bundle "$T/b" >"$T/out" 2>"$T/err" </dev/null
	local hr=$?
	# SIGSYS is 31: both runtimes report the kill as 128+31.
	[ "$rr" = 159 ] || { echo "runc exit $rr, want 159"; return 1; }
	[ "$hr" = "$rr" ] || { echo "hull exit $hr, runc $rr: $(head -c 300 "$T/err")"; return 1; }
}

test_pod_and_exec() {
	local out=$T/out
	agentctl script || return 1
	local want=(
		"started a"
		"error create bad bad.json: process.user.uid: want an integer, got string"
		"started b"
		"b> hull-q"          # b sees a's POSIX message queue: one IPC namespace
		"b> pod-b"           # ...but its own UTS namespace
		"b> cat: can't open '/tmp/marker': No such file or directory" # ...and its own root
		"exit b 1"
		"p> pid1=sleep"      # p joined a's pid namespace by path: a's init is its PID 1
		"exit p 0"
		"m> a"               # m joined a's mount namespace by path: a's root, a's files
		"m> hull-q"          # ...and a's /dev/mqueue in it
		"exit m 0"
		"a/x1> a"            # the exec sees a's files
		"a/x1> pod-a"        # a's hostname
		"a/x1> 0::/hull/a"   # a's cgroup
		"a/x1> hull-q"       # a's IPC namespace
		"a/x1> pid1=sleep"   # a's pid namespace
		"a/x1> 1000"         # and runs as the user its process object names
		"exit a/x1 0"
		"a> a-ready"
		"exit a 137"
	)
	expect_lines "$out" "${want[@]}" || return 1
	grep -q "error create c b.json: create container 'c': join namespace: '/proc/[0-9]*/ns/ipc': No such file or directory" "$out" ||
		{ echo "joining a dead container's namespace: $(tail -1 "$out")"; return 1; }
}

test_setup_hang() {
	# The agent's loop never waits for a child: a container whose setup hangs holds up
	# only its own CreateContainer (pod/hang-script). Everything else is answered while
	# it hangs, and removing it answers the create CANCELLED.
	local out=$T/out
	agentctl hang-script || return 1
	local want=(
		"started a"
		"check ok"
		"started q"
		"q> quick"
		"exit q 0"
		"a/x1> pod-a"
		"exit a/x1 0"
		"error create-bg h hang.json: container removed"
		"started h"           # the id is free again
		"h> quick"
		"exit h 0"
		"a> a-ready"
		"exit a 137"
	)
	expect_lines "$out" "${want[@]}" || return 1
	[ "$(grep -c '^error' "$out")" = 1 ] || { echo "unexpected errors: $(grep '^error' "$out" | tr '\n' '|')"; return 1; }
	# The hung create was answered by its removal, after the rest had been.
	[ "$(grep -nxF "exit a/x1 0" "$out" | cut -d: -f1)" -lt "$(grep -nF "error create-bg h" "$out" | cut -d: -f1)" ] ||
		{ echo "the hung create was answered too early: $(tr '\n' '|' <"$out")"; return 1; }
}

test_unprivileged() {
	# Without root: the sandbox's binds in a user and mount namespace of hull's own
	# (decision 44); a volume, the job's output and exit status as for root.
	command -v setpriv >/dev/null || { echo "setpriv (util-linux) is not installed"; return 77; }
	local state=$T/state-nobody
	mkdir -p "$state" "$T/vol" && echo shared-file >"$T/vol/f" && chmod 0711 "$work" "$T" &&
		chmod -R a+rX "$T/vol" && chown 65534:65534 "$state" || return 1
	setpriv --reuid=65534 --regid=65534 --clear-groups env HULL_STATE_DIR="$state" \
		"$HULL" run --rootfs "$ROOTFS" -v "$T/vol:/mnt:ro" -- sh -c 'cat /mnt/f; exit 5' \
		>"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 5 && expect_out shared-file || return 1
	[ -z "$(state_left "$state")" ] || { echo "state left: $(state_left "$state")"; return 1; }
}

test_port_forward() {
	# The port-forward API (kubectl port-forward's path into a VM): an HTTP request to
	# httpd on the guest's loopback, a 9 MiB reply (over two credit windows), and a
	# closed or bad port refused clearly.
	local out=$T/out
	agentctl forward-script || return 1
	tr -d '\r' <"$out" >"$T/clean"
	local want=(
		"started w"
		"forward> HTTP/1.1 200 OK"
		"forward> served-in-guest"
		"forward done"
		"error forward 9 http-get.txt: port 9 in the sandbox: Connection refused"
		"error forward 0 http-get.txt: port 0: want 1..65535"
		"exit w 137"
		"forward cancelled"
		"n> peer-closed"
		"exit n 0"
	)
	expect_lines "$T/clean" "${want[@]}" || return 1
	# The big reply: its 9 MiB body and headers, all of it.
	local big
	big=$(grep '^forward bytes ' "$T/clean" | sed -n 2p | cut -d' ' -f3)
	[ "${big:-0}" -gt $((9 * 1048576)) ] && [ "$big" -lt $((9 * 1048576 + 1024)) ] ||
		{ echo "big reply: $big bytes"; return 1; }
}

test_container_life() {
	local out=$T/out
	agentctl life-script || return 1
	local want=(
		"started a"
		"stats a mem_limit=67108864 pids=2 pids_limit=20 cpu=used mem=used"  # the spec's limits
		"ps a 2"                                                           # sh and its sleep
		"stats a mem_limit=134217728 pids=2 pids_limit=50 cpu=used mem=used" # after the update
		"error update a update-bad.json: update container: linux.resources.pids.limit: want an integer, got string"
		"a> up"
		"exit a 137"                                                       # SIGKILL reaches a paused container
	)
	expect_lines "$out" "${want[@]}" || return 1
	# pause and resume answered without an error (the agent waits for cgroup.events).
	grep -q '^error \(pause\|resume\)' "$out" && { echo "$(grep '^error' "$out")"; return 1; }
	return 0
}

test_detached_sandbox() {
	local name=det-$$
	"$HULL" run -d --name "$name" --rootfs "$ROOTFS" -- sh -c 'echo started; exec sleep 600' >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 0 && expect_out "$name" || return 1
	"$HULL" run -d --name "$name" --rootfs "$ROOTFS" -- true >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "a sandbox named '$name' exists" || return 1
	"$HULL" ps >"$T/ps" || return 1
	grep -qE "^$name +running +[0-9]+ +-" "$T/ps" || { echo "ps: $(cat "$T/ps")"; return 1; }
	local i
	for i in $(seq 1 100); do "$HULL" logs "$name" | grep -q started && break; sleep 0.1; done
	"$HULL" logs "$name" | grep -qx started || { echo "logs: $("$HULL" logs "$name")"; return 1; }
	# exec: the job's namespaces, its own exit status, stdin with -i, a tty with -t.
	"$HULL" exec "$name" sh -c 'cat /proc/1/comm; exit 7' >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 7 && expect_out sleep || return 1
	printf 'via stdin\n' | "$HULL" exec -i "$name" cat >"$T/out" 2>"$T/err"
	echo $? >"$T/rc"
	expect_rc 0 && expect_out "via stdin" || return 1
	"$HULL" exec -t "$name" tty >"$T/out" 2>"$T/err" </dev/null
	grep -q '^/dev/pts/' "$T/out" || { echo "exec -t: $(cat "$T/out" "$T/err")"; return 1; }
	"$HULL" exec "$name" nosuchcmd >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
	expect_rc 127 || return 1
	"$HULL" inspect "$name" >"$T/inspect" || return 1
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]=="running" and d["pid"]>0 and d["usage"]["pids"]>=1 and d["usage"]["memory_bytes"]>0, d' "$T/inspect" ||
		{ echo "inspect: $(cat "$T/inspect")"; return 1; }
	"$HULL" rm "$name" >"$T/out" 2>"$T/err"
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "is running" || return 1
	"$HULL" kill "$name" || return 1
	for i in $(seq 1 100); do "$HULL" ps | grep -qE "^$name +exited +[0-9]+ +137" && break; sleep 0.1; done
	"$HULL" ps | grep -qE "^$name +exited +[0-9]+ +137" || { echo "after kill: $("$HULL" ps)"; return 1; }
	"$HULL" rm "$name" || return 1
	"$HULL" ps | grep -q "^$name " && { echo "still listed after rm"; return 1; }
	"$HULL" logs nosuch >"$T/out" 2>"$T/err"
	echo $? >"$T/rc"
	expect_rc 125 && expect_err_has "no detached sandbox 'nosuch'"
}


test_net_user() {
	# The guest reaches a server on the host's loopback through QEMU's NAT gateway,
	# and its resolv.conf names the NAT's DNS.
	local port pid
	port=$(free_port)
	mkdir -p "$T/www" && echo "hello from the host" >"$T/www/index.html"
	(cd "$T/www" && exec python3 -m http.server "$port" --bind 127.0.0.1) >/dev/null 2>&1 &
	pid=$!
	sleep 0.5
	hrun --net=user -- sh -c "cat /etc/resolv.conf; ip -4 addr show eth0 | grep -o 'inet [0-9./]*'; wget -qO- http://10.0.2.2:$port/index.html"
	kill "$pid"
	wait "$pid" 2>/dev/null
	expect_rc 0 && expect_out $'nameserver 10.0.2.3\ninet 10.0.2.15/24\nhello from the host' || return 1
	# Without --net the VM has loopback only.
	hrun -- sh -c 'ip -o link | grep -c "eth0" || true; ip -o -4 addr show lo | grep -o "127.0.0.1"'
	expect_rc 0 && expect_out $'0\n127.0.0.1'
}

test_net_publish() {
	# -p reaches a server in the VM from the host.
	local port i
	port=$(free_port)
	"$HULL" run --rootfs "$ROOTFS" --net=user -p "127.0.0.1:$port:8080" -- \
		sh -c 'mkdir -p /www; echo served-from-vm >/www/x; exec httpd -f -p 8080 -h /www' \
		>"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	for i in $(seq 1 120); do
		curl -sf "http://127.0.0.1:$port/x" >"$T/got" 2>/dev/null && break
		sleep 0.5
	done
	kill -INT "$pid"; sleep 0.2; kill -INT "$pid"
	wait "$pid"
	[ "$(cat "$T/got")" = served-from-vm ] || { echo "curl got '$(cat "$T/got")'; $(cat "$T/err")"; return 1; }
	# Clear errors for a port in use, -p without a network, an unknown network.
	python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$port" &
	local holder=$!
	sleep 0.3
	hrun --net=user -p "127.0.0.1:$port:80" -- true
	kill "$holder"; wait "$holder" 2>/dev/null
	expect_rc 125 && expect_err_has "host port $port is in use" || return 1
	hrun -p 8080:80 -- true && expect_rc 125 && expect_err_has "add --net=user" || return 1
	hrun --net=bridge -- true && expect_rc 125 && expect_err_has "--net 'bridge': want none, user, cni:NAME or ns:/PATH" || return 1
	hrun --net=user -p 80:99999 -- true && expect_rc 125 && expect_err_has "container port '99999'"
}

test_q35_machine() {
	hrun --machine q35 -- echo q35 && expect_rc 0 && expect_out q35
}

test_qmp_schema() {
	# The commands our QMP client uses exist in this QEMU's schema.
	python3 - <<'PY'
import json, socket, subprocess, sys, tempfile, os, time
d = tempfile.mkdtemp()
sock = os.path.join(d, "qmp.sock")
p = subprocess.Popen(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "none",
                      "-qmp", f"unix:{sock},server=on,wait=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rw")
    json.loads(f.readline())
    def call(cmd):
        f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
        while True:
            m = json.loads(f.readline())
            if "event" not in m:
                return m
    call("qmp_capabilities")
    names = {c["name"] for c in call("query-commands")["return"]}
    missing = {"qmp_capabilities", "query-status", "quit"} - names
    if missing:
        print("missing from QEMU's schema:", missing); sys.exit(1)
    events = {e["name"] for e in call("query-qmp-schema")["return"] if e.get("meta-type") == "event"}
    if "SHUTDOWN" not in events:
        print("no SHUTDOWN event in schema"); sys.exit(1)
finally:
    p.kill(); p.wait()
    import shutil; shutil.rmtree(d)
PY
}

# ---- main -----------------------------------------------------------------------

if ! command -v qemu-system-x86_64 >/dev/null; then
	say "skip - integration: qemu-system-x86_64 not installed (make deps)"
	exit 0
fi
for f in "$HULL" "$BUILD/tests/agentctl" "$BUILD/guest/vmlinuz" "$BUILD/guest/initramfs.cpio" "$ROOTFS/bin/busybox"; do
	[ -e "$f" ] || { say "skip - integration: '$f' not built (make)"; exit 0; }
done

for t in echo exit_codes stderr_apart stdout_10mib_intact stdin_through_cat tty timeout \
	volume_rw_ro_and_rootfs_unchanged rootfs_rw env_user_workdir_hostname signal_forwarded \
	killed_by_signal ctrl_c_leaves_nothing hull_killed_hard vm_dies_mid_run bad_input \
	unavailable_accel_and_channel oci_differential_runc oci_no_new_privs_and_sysctl_like_runc oci_user_namespace_like_runc oci_bind_host_files oci_bundle_errors oci_memory_limit_oom \
	default_security seccomp_kill_like_runc pod_and_exec container_life setup_hang port_forward unprivileged detached_sandbox \
	bad_kernel_boot_timeout net_user net_publish q35_machine qmp_schema; do
	run_test "$t"
done
exit $failed
