#!/usr/bin/env bash
# hull-cri against an independent CRI client (Python grpcio with proto/cri.proto, as
# kubelet would call it): real hull-cri, real shims, real VMs. hull-cri runs with a
# private socket, root, state and image store, started and stopped by pid. Prints one
# line per test:  ok - NAME | not ok - NAME: why | skip - NAME: why
# After every test: no shim, no QEMU, no mount, no pod or container state left.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
only=${HULL_TEST_FILTER:-}
PY=/usr/bin/python3
BB=docker.io/library/busybox:latest
TESTS="version_status images pull_registry pod_lifecycle two_containers_one_vm exit_codes exec_sync stats_update_events seccomp_localhost
	pod_network port_mapping streaming streaming_spdy logs_and_reopen bad_input malformed_transport pod_failure_leaves_nothing calls_in_flight fault_qemu_killed fault_shim_killed runc_handler restart_keeps_pods"

skip_all() {
	for t in $TESTS; do
		[ -n "$only" ] && [[ $t != *$only* ]] && continue
		echo "skip - $t: $1"
	done
	exit 0
}
[ "$(id -u)" = 0 ] || skip_all "the shim's mounts need root"
$PY -c 'import grpc, google.protobuf' 2>/dev/null ||
	skip_all "python3-grpcio/python3-protobuf missing (make deps)"
for f in "$BUILD/hull-cri" "$BUILD/hull-pause" "$BUILD/containerd-shim-hull-v2" "$BUILD/hull" \
	"$BUILD/images/busybox.tar" "$BUILD/tests/cri/cri_pb2.py"; do
	[ -e "$f" ] || skip_all "$f missing (make check builds it)"
done

W=$(mktemp -d /tmp/hull-cri.XXXXXX)
work=$W
export HULL_STATE_DIR=$W/hull
export HULL_IMAGE_ROOT=$W/images
export CRI_PB2_DIR=$BUILD/tests/cri
SOCK=$W/cri.sock
mkdir -p "$HULL_STATE_DIR" "$W/logs" "$W/cni"

cri_start() {
	setsid "$BUILD/hull-cri" --socket "$SOCK" --root "$W/root" --state "$W/state" \
		--image-root "$HULL_IMAGE_ROOT" --config "$W/cri.toml" --log-level debug \
		>>"$W/cri.log" 2>&1 &
	echo $! >"$W/cri.pid"
	disown $!
	local i
	for i in $(seq 1 100); do
		[ -S "$SOCK" ] && cri Version >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "hull-cri did not come up: $(tail -3 "$W/cri.log")"
	return 1
}
cri_stop() {
	local pid i
	pid=$(cat "$W/cri.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
	rm -f "$W/cri.pid"
}
cleanup() {
	cri_stop
	pkill -9 -f -- "-address $SOCK" 2>/dev/null
	pkill -9 -f -- "$HULL_STATE_DIR/" 2>/dev/null
	sleep 0.2
	grep -o " $W[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

cri() { "$PY" "$top/tests/cri/cri.py" "$SOCK" "$@"; }
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=(d[int(k)] if isinstance(d, list) and k.isdigit() and int(k) < len(d) else {}) if isinstance(d, list) else d.get(k, {}) if isinstance(d, dict) else {}
print(d if d != {} else "")' "$1"; }
b64() { "$PY" -c 'import base64,sys; print(base64.b64decode(sys.stdin.read() or "").decode(), end="")'; }
qemus() { pgrep -fc -- "$HULL_STATE_DIR/" || true; }
until_ok() {
	local i
	for i in $(seq 1 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "timed out waiting for: $*"
	return 1
}

leaks() {
	local i
	for i in $(seq 1 100); do
		pgrep -f -- "-address $SOCK" >/dev/null || pgrep -f -- "$HULL_STATE_DIR/" >/dev/null || break
		sleep 0.1
	done
	pgrep -af -- "-address $SOCK" >/dev/null && { echo "shim left"; pkill -9 -f -- "-address $SOCK"; }
	pgrep -af -- "$HULL_STATE_DIR/" >/dev/null && { echo "QEMU left"; pkill -9 -f -- "$HULL_STATE_DIR/"; }
	grep -q " $W/" /proc/mounts && echo "mount left: $(grep -o " $W/[^ ]*" /proc/mounts | head -1)"
	for i in $(seq 1 50); do
		[ -z "$(ls -A "$W/state/pods" "$W/state/containers" 2>/dev/null | grep -v ':$' | grep .)" ] && break
		sleep 0.1
	done
	local left
	left=$(ls -A "$W/state/pods" "$W/state/containers" 2>/dev/null | grep -v ':$' | grep .)
	[ -z "$left" ] || echo "state left: $(echo $left | cut -c1-100)"
	left=$(ls -A "$W/root/pods" "$W/root/containers" 2>/dev/null | grep -v ':$' | grep .)
	[ -z "$left" ] || echo "records left: $(echo $left | cut -c1-100)"
	[ -z "$(state_left "$HULL_STATE_DIR")" ] || echo "sandbox state left: $(state_left "$HULL_STATE_DIR")"
	# runc pods: no runc container of ours left.
	grep -ls "$W/" /run/containerd/runc/k8s.io/*/state.json 2>/dev/null | head -1 | sed 's/^/runc state left: /'
}
after_failure() { tail -${CRI_LOG_LINES:-5} "$W/cri.log" | sed 's/^/#   /'; }

# A pod named $1 (its logs under $W/logs/$1): prints its id.
POD() { echo '{"metadata":{"name":"'$1'","uid":"u-'$1'","namespace":"default"},"hostname":"'$1'","log_directory":"'$W/logs/$1'"}'; }
run_pod() {
	mkdir -p "$W/logs/$1"
	cri RunPodSandbox '{"config":'"$(POD "$1")"',"runtime_handler":"hull"}' | jget pod_sandbox_id
}
# Container $2 in pod id $1 (named $3) running command JSON array $4: prints its id.
new_ctr() {
	cri CreateContainer '{"pod_sandbox_id":"'$1'","config":{"metadata":{"name":"'$3'"},"image":{"image":"'$BB'"},"command":'"$4"',"log_path":"'$3'.log"},"sandbox_config":'"$(POD "$2")"'}' | jget container_id
}
pod_gone() {
	cri StopPodSandbox '{"pod_sandbox_id":"'$1'"}' >/dev/null &&
		cri RemovePodSandbox '{"pod_sandbox_id":"'$1'"}' >/dev/null
}
ctr_state() { cri ContainerStatus '{"container_id":"'$1'"}' | jget status.state; }
# The gRPC status of a call that must fail: "METHOD: CODE: details" on stderr.
fails() { local m=$1; shift; cri "$m" "$@" 2>&1 >/dev/null && { echo "$m succeeded"; return 1; }; return 0; }

# ---- tests ------------------------------------------------------------------------------

test_version_status() {
	local v
	v=$(cri Version '{"version":"v1"}') || { echo "Version: $v"; return 1; }
	[ "$(echo "$v" | jget runtime_name)" = hull ] && [ "$(echo "$v" | jget runtime_api_version)" = v1 ] ||
		{ echo "Version: $v"; return 1; }
	v=$(cri Status '{}')
	# No CNI config in this hull-cri's conf dir: the network is not ready, and says why.
	echo "$v" | grep -q '"type": "RuntimeReady", "status": true' ||
		{ echo "Status: $v"; return 1; }
	echo "$v" | grep -q '"reason": "NetworkPluginNotReady"' || { echo "Status: $v"; return 1; }
	[ "$(cri RuntimeConfig '{}' | jget linux.cgroup_driver)" = CGROUPFS ] ||
		{ echo "RuntimeConfig: $(cri RuntimeConfig '{}')"; return 1; }
	cri UpdateRuntimeConfig '{"runtime_config":{"network_config":{"pod_cidr":"10.88.0.0/16"}}}' >/dev/null
}

test_images() {
	local id st
	id=$(cri ImageStatus '{"image":{"image":"busybox"}}' | jget image.id)
	[ -n "$id" ] || { echo "busybox not in the store: $(cri ImageStatus '{"image":{"image":"busybox"}}')"; return 1; }
	cri ListImages '{}' | grep -q "\"$BB\"" || { echo "ListImages: $(cri ListImages '{}')"; return 1; }
	st=$(cri ImageStatus '{"image":{"image":"'$id'"},"verbose":true}')
	[ "$(echo "$st" | jget image.id)" = "$id" ] && echo "$st" | grep -q '"info"' ||
		{ echo "ImageStatus by id: $st"; return 1; }
	# Unknown images are no error: the image is just absent.
	st=$(cri ImageStatus '{"image":{"image":"example.com/nothing:here"}}') || { echo "$st"; return 1; }
	[ -z "$(echo "$st" | jget image.id)" ] || { echo "unknown image: $st"; return 1; }
	cri ImageFsInfo '{}' | grep -q used_bytes || { echo "ImageFsInfo: $(cri ImageFsInfo '{}')"; return 1; }
	cri RemoveImage '{"image":{"image":"example.com/nothing:here"}}' >/dev/null ||
		{ echo "removing an absent image failed"; return 1; }
}

test_pull_registry() {
	reg_start htpasswd || return $?
	local r=127.0.0.1:$REG_PORT out id
	CREDS=alice:secret skopeo copy -q --dest-tls-verify=false --dest-creds alice:secret \
		"oci-archive:$BUILD/images/busybox.tar" "docker://$r/priv/bb:v1" ||
		{ reg_stop; echo "push failed"; return 1; }
	out=$(cri PullImage '{"image":{"image":"'$r'/priv/bb:v1"}}' 2>&1) &&
		{ reg_stop; echo "pulled without credentials: $out"; return 1; }
	echo "$out" | grep -q "PullImage: PERMISSION_DENIED" || { reg_stop; echo "no auth: $out"; return 1; }
	out=$(cri PullImage '{"image":{"image":"'$r'/priv/bb:v1"},"auth":{"username":"alice","password":"secret"}}' 2>&1)
	id=$(echo "$out" | jget image_ref)
	[ -n "$id" ] || { reg_stop; echo "pull with credentials: $out"; return 1; }
	out=$(cri PullImage '{"image":{"image":"'$r'/priv/bb:v1"},"auth":{"auth":"'$(printf alice:wrong | base64)'"}}' 2>&1) &&
		{ reg_stop; echo "pulled with a wrong password: $out"; return 1; }
	reg_stop
	[ "$(cri ImageStatus '{"image":{"image":"'$r'/priv/bb:v1"}}' | jget image.id)" = "$id" ] ||
		{ echo "pulled image: $(cri ImageStatus '{"image":{"image":"'$r'/priv/bb:v1"}}')"; return 1; }
	cri RemoveImage '{"image":{"image":"'$r'/priv/bb:v1"}}' >/dev/null
	[ -z "$(cri ImageStatus '{"image":{"image":"'$r'/priv/bb:v1"}}' | jget image.id)" ] ||
		{ echo "image still there after RemoveImage"; return 1; }
	# As containerd's: RemoveImage removes the image, under every name it has (the
	# pushed busybox is the loaded one); the other tests get it back.
	[ -z "$(cri ImageStatus '{"image":{"image":"'$BB'"}}' | jget image.id)" ] ||
		{ echo "the image's other name survived RemoveImage"; return 1; }
	"$BUILD/hull" load -i "$BUILD/images/busybox.tar" >/dev/null
}

test_pod_lifecycle() {
	local s c st
	s=$(run_pod life 2>&1) && [ ${#s} = 64 ] || { echo "RunPodSandbox: $s"; return 1; }
	[ "$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | jget status.state)" = "" ] || # READY is 0
		{ echo "pod status: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; return 1; }
	cri ListPodSandbox '{}' | grep -q "\"$s\"" || { echo "ListPodSandbox: $(cri ListPodSandbox '{}')"; return 1; }
	c=$(new_ctr "$s" life web '["sh","-c","echo started; trap \"echo bye; exit 0\" TERM; while true; do sleep 0.2; done"]' 2>&1) &&
		[ ${#c} = 64 ] || { echo "CreateContainer: $c"; pod_gone "$s"; return 1; }
	[ "$(ctr_state "$c")" = "" ] || { echo "created state: $(ctr_state "$c")"; pod_gone "$s"; return 1; }
	cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	[ "$(ctr_state "$c")" = CONTAINER_RUNNING ] || { echo "state: $(ctr_state "$c")"; pod_gone "$s"; return 1; }
	cri ListContainers '{"filter":{"pod_sandbox_id":"'$s'"}}' | grep -q "\"$c\"" ||
		{ echo "ListContainers: $(cri ListContainers '{}')"; pod_gone "$s"; return 1; }
	# The guest's kernel, not the host's.
	until_ok grep -q ' stdout F started$' "$W/logs/life/web.log" ||
		{ echo "log: $(cat "$W/logs/life/web.log")"; pod_gone "$s"; return 1; }
	cri StopContainer '{"container_id":"'$c'","timeout":10}' >/dev/null || { pod_gone "$s"; return 1; }
	st=$(cri ContainerStatus '{"container_id":"'$c'"}')
	[ "$(echo "$st" | jget status.state)" = CONTAINER_EXITED ] && [ "$(echo "$st" | jget status.exit_code)" = "" ] &&
		[ "$(echo "$st" | jget status.reason)" = Completed ] || { echo "after stop: $st"; pod_gone "$s"; return 1; }
	until_ok grep -q ' stdout F bye$' "$W/logs/life/web.log" || { pod_gone "$s"; return 1; }
	cri RemoveContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	fails ContainerStatus '{"container_id":"'$c'"}' | grep -q NOT_FOUND || { pod_gone "$s"; return 1; }
	cri StopPodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || return 1
	[ "$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | jget status.state)" = SANDBOX_NOTREADY ] ||
		{ echo "after stop: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; return 1; }
	# Stop is idempotent.
	cri StopPodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || { echo "second stop failed"; return 1; }
	cri RemovePodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || return 1
	fails PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | grep -q NOT_FOUND || return 1
}

test_two_containers_one_vm() {
	local s a b out
	s=$(run_pod duo) && [ -n "$s" ] || return 1
	a=$(new_ctr "$s" duo a '["sleep","600"]') && b=$(new_ctr "$s" duo b '["sleep","600"]') &&
		cri StartContainer '{"container_id":"'$a'"}' >/dev/null &&
		cri StartContainer '{"container_id":"'$b'"}' >/dev/null || { pod_gone "$s"; echo "containers failed"; return 1; }
	[ "$(qemus)" = 1 ] || { echo "$(qemus) QEMU for one pod"; pod_gone "$s"; return 1; }
	[ "$(ctr_state "$a")" = CONTAINER_RUNNING ] && [ "$(ctr_state "$b")" = CONTAINER_RUNNING ] ||
		{ echo "states: $(ctr_state "$a") $(ctr_state "$b")"; pod_gone "$s"; return 1; }
	# A name taken in the pod is refused.
	out=$(new_ctr "$s" duo a '["true"]' 2>&1)
	echo "$out" | grep -q ALREADY_EXISTS || { echo "duplicate name: $out"; pod_gone "$s"; return 1; }
	# StopPodSandbox stops what runs in it.
	cri StopPodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || return 1
	[ "$(ctr_state "$a")" = CONTAINER_EXITED ] || { echo "after pod stop: $(ctr_state "$a")"; return 1; }
	cri RemovePodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || return 1
	fails ContainerStatus '{"container_id":"'$b'"}' | grep -q NOT_FOUND
}

test_exit_codes() {
	local s c st
	s=$(run_pod ex) && [ -n "$s" ] || return 1
	c=$(new_ctr "$s" ex three '["sh","-c","echo to-err >&2; exit 3"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	until_ok sh -c "[ \"\$($PY $top/tests/cri/cri.py $SOCK ContainerStatus '{\"container_id\":\"$c\"}' | grep -c CONTAINER_EXITED)\" = 1 ]" ||
		{ pod_gone "$s"; return 1; }
	st=$(cri ContainerStatus '{"container_id":"'$c'"}')
	[ "$(echo "$st" | jget status.exit_code)" = 3 ] && [ "$(echo "$st" | jget status.reason)" = Error ] ||
		{ echo "status: $st"; pod_gone "$s"; return 1; }
	grep -q ' stderr F to-err$' "$W/logs/ex/three.log" || { echo "log: $(cat "$W/logs/ex/three.log")"; pod_gone "$s"; return 1; }
	# A container that cannot start: the error says why, the container is exited.
	c=$(new_ctr "$s" ex nope '["/no/such/binary"]') || { pod_gone "$s"; return 1; }
	fails StartContainer '{"container_id":"'$c'"}' >"$T/start" ; grep -q "no/such/binary" "$T/start" ||
		{ echo "start error: $(cat "$T/start")"; pod_gone "$s"; return 1; }
	pod_gone "$s"
}

test_exec_sync() {
	local s c out
	s=$(run_pod es) && [ -n "$s" ] || return 1
	c=$(new_ctr "$s" es box '["sleep","600"]') && cri StartContainer '{"container_id":"'$c'"}' >/dev/null ||
		{ pod_gone "$s"; return 1; }
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","echo out; echo err >&2; exit 5"],"timeout":60}') ||
		{ echo "ExecSync: $out"; pod_gone "$s"; return 1; }
	[ "$(echo "$out" | jget stdout | b64)" = out ] && [ "$(echo "$out" | jget stderr | b64)" = err ] &&
		[ "$(echo "$out" | jget exit_code)" = 5 ] || { echo "ExecSync: $out"; pod_gone "$s"; return 1; }
	# The container's environment and user; a megabyte of output, to the byte.
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","head -c 1048576 /dev/zero | tr \"\\\\0\" y"]}')
	[ "$(echo "$out" | jget stdout | b64 | wc -c)" = 1048576 ] || { echo "1 MiB: $(echo "$out" | jget stdout | b64 | wc -c)"; pod_gone "$s"; return 1; }
	# Several at once, none waiting for another.
	local i pids=()
	for i in 1 2 3 4; do
		cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","sleep 1; echo n'$i'"]}' >"$T/x$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || { echo "a concurrent exec failed"; pod_gone "$s"; return 1; }; done
	for i in 1 2 3 4; do
		[ "$(jget stdout <"$T/x$i" | b64)" = "n$i" ] || { echo "exec $i: $(cat "$T/x$i")"; pod_gone "$s"; return 1; }
	done
	# A timeout kills the process and says so.
	out=$(fails ExecSync '{"container_id":"'$c'","cmd":["sleep","59"],"timeout":1}')
	echo "$out" | grep -q "DEADLINE_EXCEEDED: exec in container '$c': timeout 1s exceeded" ||
		{ echo "timeout: $out"; pod_gone "$s"; return 1; }
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","ps | grep -c \"sleep 5[9]\""]}')
	[ "$(echo "$out" | jget stdout | b64)" = 0 ] || { echo "the timed-out process lives: $out"; pod_gone "$s"; return 1; }
	out=$(fails ExecSync '{"container_id":"'$c'","cmd":["/no/such"]}')
	echo "$out" | grep -q "no/such" || { echo "bad binary: $out"; pod_gone "$s"; return 1; }
	cri StopContainer '{"container_id":"'$c'","timeout":0}' >/dev/null
	out=$(fails ExecSync '{"container_id":"'$c'","cmd":["true"]}')
	echo "$out" | grep -q "FAILED_PRECONDITION" || { echo "exec in a stopped container: $out"; pod_gone "$s"; return 1; }
	pod_gone "$s"
}

test_seccomp_localhost() {
	# A Localhost seccomp profile (Docker's form, as kubelet's are): read on the node,
	# loaded in the guest. This one refuses chmod.
	local s c out
	mkdir -p "$W/profiles"
	cat >"$W/profiles/no-chmod.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ALLOW",
 "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
 "syscalls": [{"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
              {"names": ["mknod"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_TIME"]}}]}
EOF
	s=$(run_pod sc) && [ -n "$s" ] || return 1
	c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"c"},"image":{"image":"'$BB'"},"command":["sh","-c","touch /f; chmod 600 /f && echo changed || echo refused; sleep 600"],"log_path":"c.log","linux":{"security_context":{"seccomp":{"profile_type":"Localhost","localhost_ref":"'$W/profiles/no-chmod.json'"}}}},"sandbox_config":'"$(POD sc)"'}' 2>&1 | tee "$T/create" | jget container_id)
	[ -n "$c" ] && cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { echo "create: $(cat "$T/create")"; pod_gone "$s"; return 1; }
	until_ok grep -q ' stdout F refused$' "$W/logs/sc/c.log" || { echo "log: $(cat "$W/logs/sc/c.log")"; pod_gone "$s"; return 1; }
	# A profile that is not there: the field is named.
	out=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"d"},"image":{"image":"'$BB'"},"linux":{"security_context":{"seccomp":{"profile_type":"Localhost","localhost_ref":"'$W/profiles/none.json'"}}}},"sandbox_config":'"$(POD sc)"'}' 2>&1)
	echo "$out" | grep -q "INVALID_ARGUMENT\|NOT_FOUND" && echo "$out" | grep -q "seccomp.localhost_ref" ||
		{ echo "missing profile: $out"; pod_gone "$s"; return 1; }
	pod_gone "$s"
}

test_stats_update_events() {
	local s c st ev
	# Events first: a subscriber sees what follows.
	"$PY" - "$SOCK" >"$T/events" 2>&1 <<'EOF' &
import os, sys, grpc
sys.path.insert(0, os.environ["CRI_PB2_DIR"])
import cri_pb2
ch = grpc.insecure_channel("unix://" + sys.argv[1])
f = ch.unary_stream("/runtime.v1.RuntimeService/GetContainerEvents",
                    request_serializer=cri_pb2.GetEventsRequest.SerializeToString,
                    response_deserializer=cri_pb2.ContainerEventResponse.FromString)
try:
    for e in f(cri_pb2.GetEventsRequest(), timeout=60):
        print(cri_pb2.ContainerEventType.Name(e.container_event_type), e.container_id,
              e.pod_sandbox_status.id, len(e.containers_statuses), flush=True)
except grpc.RpcError as e:
    print("end", e.code().name, flush=True)
EOF
	ev=$!
	# Subscribed (hull-cri logs each subscriber) before anything happens.
	wait_for "$W/cri.log" "events: a subscriber" || { kill $ev; return 1; }
	s=$(run_pod st) && [ -n "$s" ] || { kill $ev; return 1; }
	c=$(new_ctr "$s" st box '["sleep","600"]') && cri StartContainer '{"container_id":"'$c'"}' >/dev/null ||
		{ kill $ev; pod_gone "$s"; return 1; }
	cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","dd if=/dev/zero of=/big bs=1024 count=3072 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"]}' >/dev/null
	cri ContainerStats '{"container_id":"'$c'"}' >/dev/null
	sleep 1
	st=$(cri ContainerStats '{"container_id":"'$c'"}')
	[ "$(echo "$st" | jget stats.cpu.usage_core_nano_seconds.value)" -gt 0 ] 2>/dev/null &&
		[ "$(echo "$st" | jget stats.memory.working_set_bytes.value)" -gt 0 ] 2>/dev/null &&
		[ "$(echo "$st" | jget stats.writable_layer.used_bytes.value)" -ge 3000000 ] 2>/dev/null ||
		{ echo "ContainerStats: $st"; kill $ev; pod_gone "$s"; return 1; }
	cri ListContainerStats '{"filter":{"pod_sandbox_id":"'$s'"}}' | grep -q "\"$c\"" ||
		{ echo "ListContainerStats: $(cri ListContainerStats '{}')"; kill $ev; pod_gone "$s"; return 1; }
	st=$(cri PodSandboxStats '{"pod_sandbox_id":"'$s'"}')
	[ "$(echo "$st" | jget stats.linux.containers.0.attributes.id)" = "$c" ] &&
		[ "$(echo "$st" | jget stats.linux.process.process_count.value)" -ge 1 ] 2>/dev/null ||
		{ echo "PodSandboxStats: $st"; kill $ev; pod_gone "$s"; return 1; }
	cri ListPodSandboxStats '{}' | grep -q "\"$s\"" || { echo "ListPodSandboxStats"; kill $ev; pod_gone "$s"; return 1; }
	# New limits reach the guest's cgroup, and the container's status.
	cri UpdateContainerResources '{"container_id":"'$c'","linux":{"memory_limit_in_bytes":67108864,"cpu_quota":50000,"cpu_period":100000}}' >"$T/upd" 2>&1 ||
		{ echo "update: $(cat "$T/upd")"; kill $ev; pod_gone "$s"; return 1; }
	# (The container's cgroup, by its path in /proc/self/cgroup.)
	st=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","g=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $g/memory.max $g/cpu.max"]}' | jget stdout | b64)
	[ "$st" = "67108864"$'\n'"50000 100000" ] || { echo "in the guest: '$st'"; kill $ev; pod_gone "$s"; return 1; }
	[ "$(cri ContainerStatus '{"container_id":"'$c'"}' | jget status.resources.linux.memory_limit_in_bytes)" = 67108864 ] ||
		{ echo "status: $(cri ContainerStatus '{"container_id":"'$c'"}')"; kill $ev; pod_gone "$s"; return 1; }
	cri StopContainer '{"container_id":"'$c'","timeout":0}' >/dev/null
	cri RemoveContainer '{"container_id":"'$c'"}' >/dev/null
	until_ok grep -q "CONTAINER_DELETED_EVENT $c" "$T/events"
	kill $ev 2>/dev/null
	wait $ev 2>/dev/null
	pod_gone "$s"
	local want="CONTAINER_CREATED_EVENT $c $s 1
CONTAINER_STARTED_EVENT $c $s 1
CONTAINER_STOPPED_EVENT $c $s 1
CONTAINER_DELETED_EVENT $c $s 1"
	[ "$(grep "$c" "$T/events")" = "$want" ] || { echo "events: $(cat "$T/events")"; return 1; }
}

# A CNI network for the pods (Debian's bridge and host-local, IPv4 and IPv6), present
# only during the test that uses it: the others check pods without one.
net_up() {
	local n sub
	n=$(printf %s "$W" | cksum | cut -d' ' -f1)
	BR=hullr$((n % 100000)) sub=$((n % 250))
	cat >"$W/cni/10-pods.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$W/ipam",
            "ranges": [[{"subnet": "10.216.$sub.0/24"}], [{"subnet": "fd13:216:$sub::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}
EOT
}
net_down() {
	rm -f "$W/cni/10-pods.conflist"
	ip link del "$BR" 2>/dev/null
	return 0
}

test_pod_network() {
	[ -x /usr/lib/cni/bridge ] || { echo "containernetworking-plugins is not installed"; return 77; }
	net_up
	local a b ca st ipa ipb ip6b out
	cri Status '{}' | grep -q '"type": "NetworkReady", "status": true' || { echo "Status: $(cri Status '{}')"; net_down; return 1; }
	a=$(run_pod na) && b=$(run_pod nb) && [ -n "$a" ] && [ -n "$b" ] || { echo "pods failed"; net_down; return 1; }
	st=$(cri PodSandboxStatus '{"pod_sandbox_id":"'$b'"}')
	ipb=$(echo "$st" | jget status.network.ip)
	ip6b=$(echo "$st" | jget status.network.additional_ips.0.ip)
	ipa=$(cri PodSandboxStatus '{"pod_sandbox_id":"'$a'"}' | jget status.network.ip)
	case "$ipb" in 10.216.*) ;; *) echo "pod IP '$ipb': $st"; pod_gone "$a"; pod_gone "$b"; net_down; return 1 ;; esac
	case "$ip6b" in fd13:216:*) ;; *) echo "pod IPv6 '$ip6b': $st"; pod_gone "$a"; pod_gone "$b"; net_down; return 1 ;; esac
	[ "$ipa" != "$ipb" ] || { echo "both pods have $ipa"; pod_gone "$a"; pod_gone "$b"; net_down; return 1; }
	ca=$(new_ctr "$a" na c '["sleep","600"]') && cri StartContainer '{"container_id":"'$ca'"}' >/dev/null ||
		{ pod_gone "$a"; pod_gone "$b"; net_down; return 1; }
	# The pod's own address inside its VM, and pod-to-pod traffic across the bridge.
	out=$(cri ExecSync '{"container_id":"'$ca'","cmd":["sh","-c","ip -o addr show eth0; ping -c 1 -W 5 '$ipb' >/dev/null && echo reached"]}')
	echo "$out" | jget stdout | b64 >"$T/net"
	grep -q "inet $ipa/" "$T/net" && grep -q reached "$T/net" ||
		{ echo "in pod a: $(cat "$T/net")"; pod_gone "$a"; pod_gone "$b"; net_down; return 1; }
	pod_gone "$a"
	pod_gone "$b"
	# StopPodSandbox took the pods' network down: no namespace left.
	[ -z "$(ls -A "$W/state/.netns" 2>/dev/null)" ] || { echo "netns left: $(ls "$W/state/.netns")"; net_down; return 1; }
	net_down
}

test_port_mapping() {
	# A pod's hostPort through CNI's portmap plugin: the node's address and port reach
	# the pod's VM.
	[ -x /usr/lib/cni/portmap ] && command -v iptables >/dev/null ||
		{ echo "the portmap plugin or iptables is not installed"; return 77; }
	net_up
	"$PY" - "$W/cni/10-pods.conflist" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True}})
json.dump(c, open(sys.argv[1], "w"))
EOF
	local s c hp gw out
	hp=$(free_port)
	mkdir -p "$W/logs/pm"
	local pod='{"metadata":{"name":"pm","uid":"u-pm","namespace":"default"},"log_directory":"'$W/logs/pm'","port_mappings":[{"container_port":8080,"host_port":'$hp'}]}'
	s=$(cri RunPodSandbox '{"config":'"$pod"'}' 2>&1 | tee "$T/run" | jget pod_sandbox_id)
	[ -n "$s" ] || { echo "RunPodSandbox: $(cat "$T/run")"; net_down; return 1; }
	c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"web"},"image":{"image":"'$BB'"},"command":["sh","-c","mkdir /www; echo mapped >/www/x; exec httpd -f -p 8080 -h /www"],"log_path":"web.log"},"sandbox_config":'"$pod"'}' | jget container_id)
	cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; net_down; return 1; }
	# The bridge's own address is the node's: portmap's DNAT for local traffic.
	gw=$(ip -4 -o addr show dev "$BR" | awk '{print $4}' | cut -d/ -f1 | head -1)
	until_ok sh -c "curl -sf --max-time 5 http://$gw:$hp/x | grep -q mapped" || {
		echo "hostPort $hp on $gw: $(curl -s --max-time 5 "http://$gw:$hp/x" 2>&1)"; pod_gone "$s"; net_down; return 1; }
	pod_gone "$s"
	# DEL took the mapping away.
	out=$(iptables -t nat -S 2>/dev/null | grep -c -- "--dport $hp ")
	net_down
	[ "$out" = 0 ] || { echo "portmap rules left for $hp"; return 1; }
}

test_streaming() {
	# Exec, Attach and PortForward URLs through the streaming server's WebSocket
	# protocol, as the API server and kubectl use them (Debian's python3-websocket).
	$PY -c 'import websocket' 2>/dev/null || { echo "python3-websocket is not installed (make deps)"; return 77; }
	[ -x /usr/lib/cni/bridge ] || { echo "containernetworking-plugins is not installed"; return 77; }
	net_up
	local s c a url out sum
	s=$(run_pod sm) && [ -n "$s" ] || { net_down; return 1; }
	c=$(new_ctr "$s" sm web '["sh","-c","mkdir -p /www; head -c 9437184 /dev/urandom >/www/big; md5sum </www/big >/www/sum; exec httpd -f -p 8080 -h /www"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; net_down; return 1; }
	# exec: stdin in, stdout and stderr apart, the exit code on the error channel.
	printf 'hello\n' >"$T/in"
	url=$(cri Exec '{"container_id":"'$c'","cmd":["sh","-c","read x; echo got $x; echo to-err >&2; exit 3"],"stdin":true,"stdout":true,"stderr":true}' | jget url)
	case "$url" in http://127.0.0.1:*/exec/*) ;; *) echo "Exec URL: '$url'"; pod_gone "$s"; net_down; return 1 ;; esac
	mkdir -p "$T/e1"
	timeout 60 "$PY" "$top/tests/cri/wsexec.py" "$url" "$T/e1" --stdin "$T/in" || { echo "exec client failed"; pod_gone "$s"; net_down; return 1; }
	[ "$(cat "$T/e1/stdout")" = "got hello" ] && [ "$(cat "$T/e1/stderr")" = to-err ] &&
		grep -q '"reason":"NonZeroExitCode"' "$T/e1/status" && grep -q '"message":"3"' "$T/e1/status" ||
		{ echo "exec: out '$(cat "$T/e1/stdout")' err '$(cat "$T/e1/stderr")' status '$(cat "$T/e1/status")'"; pod_gone "$s"; net_down; return 1; }
	# A URL is single-use.
	timeout 20 "$PY" "$top/tests/cri/wsexec.py" "$url" "$T/e1" 2>/dev/null && { echo "a used URL served again"; pod_gone "$s"; net_down; return 1; }
	# A terminal, sized by the resize channel.
	url=$(cri Exec '{"container_id":"'$c'","cmd":["sh","-c","i=0; while [ \"$(stty size)\" != \"27 91\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; stty size"],"tty":true,"stdout":true}' | jget url)
	mkdir -p "$T/e2"
	timeout 60 "$PY" "$top/tests/cri/wsexec.py" "$url" "$T/e2" --resize 91x27 || { pod_gone "$s"; net_down; return 1; }
	[ "$(tr -d '\r' <"$T/e2/stdout")" = "27 91" ] && grep -q '"status":"Success"' "$T/e2/status" ||
		{ echo "tty: '$(cat -A "$T/e2/stdout")' status '$(cat "$T/e2/status")'"; pod_gone "$s"; net_down; return 1; }
	# port-forward: 9 MiB from the pod's httpd, checked to the byte.
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK ExecSync '{\"container_id\":\"$c\",\"cmd\":[\"cat\",\"/www/sum\"]}' | grep -q stdout" || { pod_gone "$s"; net_down; return 1; }
	sum=$(cri ExecSync '{"container_id":"'$c'","cmd":["cat","/www/sum"]}' | jget stdout | b64 | cut -d' ' -f1)
	printf 'GET /big HTTP/1.0\r\n\r\n' >"$T/req"
	url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8080]}' | jget url)
	timeout 120 "$PY" "$top/tests/cri/portforward.py" "$url" 8080 "$T/req" >"$T/got" 2>"$T/err" ||
		{ echo "port-forward: rc $? $(cat "$T/err") got $(head -c 300 "$T/got" | tr -d "\r")"; pod_gone "$s"; net_down; return 1; }
	"$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(d.split(b"\r\n\r\n",1)[1] if b"\r\n\r\n" in d else b"")' "$T/got" >"$T/body"
	[ "$(stat -c %s "$T/body")" = 9437184 ] && [ "$(md5sum <"$T/body" | cut -d' ' -f1)" = "$sum" ] ||
		{ echo "port-forward body: $(stat -c %s "$T/body") bytes, $(head -c 200 "$T/got")"; pod_gone "$s"; net_down; return 1; }
	url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8081]}' | jget url)
	timeout 60 "$PY" "$top/tests/cri/portforward.py" "$url" 8081 "$T/req" >/dev/null 2>"$T/closed" &&
		{ echo "a port nobody listens on answered"; pod_gone "$s"; net_down; return 1; }
	grep -q "8081" "$T/closed" || { echo "closed port: $(cat "$T/closed")"; pod_gone "$s"; net_down; return 1; }
	# attach: the container's own stdin and stdout.
	a=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"echoer"},"image":{"image":"'$BB'"},"command":["sh","-c","while read l; do echo echo-$l; done"],"stdin":true,"log_path":"echoer.log"},"sandbox_config":'"$(POD sm)"'}' | jget container_id)
	cri StartContainer '{"container_id":"'$a'"}' >/dev/null || { pod_gone "$s"; net_down; return 1; }
	url=$(cri Attach '{"container_id":"'$a'","stdin":true,"stdout":true}' | jget url)
	printf 'abc\n' >"$T/in2"
	mkdir -p "$T/a1"
	timeout 60 "$PY" "$top/tests/cri/wsexec.py" "$url" "$T/a1" --stdin "$T/in2" --until echo-abc ||
		{ echo "attach client failed"; pod_gone "$s"; net_down; return 1; }
	grep -q echo-abc "$T/a1/stdout" || { echo "attach: '$(cat "$T/a1/stdout")'"; pod_gone "$s"; net_down; return 1; }
	grep -q ' stdout F echo-abc$' "$W/logs/sm/echoer.log" || { echo "attach output not in the log"; pod_gone "$s"; net_down; return 1; }
	pod_gone "$s"
	net_down
}

test_streaming_spdy() {
	# The same URLs over SPDY/3.1, the protocol kubectl's clients use by default
	# (tests/tools/spdyexec.c: client-go's streams, framed with the server's own codec).
	local tool=$BUILD/tests/spdyexec
	[ -x "$tool" ] || { echo "$tool missing (make $tool)"; return 77; }
	[ -x /usr/lib/cni/bridge ] || { echo "containernetworking-plugins is not installed"; return 77; }
	net_up
	local s c url sum
	s=$(run_pod sp) && [ -n "$s" ] || { net_down; return 1; }
	c=$(new_ctr "$s" sp web '["sh","-c","mkdir -p /www; head -c 9437184 /dev/urandom >/www/big; md5sum </www/big >/www/sum; exec httpd -f -p 8080 -h /www"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; net_down; return 1; }
	# exec: stdin in (then its FIN), stdout and stderr apart, the exit code in the error
	# stream's status.
	printf 'hello\n' >"$T/in"
	url=$(cri Exec '{"container_id":"'$c'","cmd":["sh","-c","read x; echo got $x; echo to-err >&2; exit 3"],"stdin":true,"stdout":true,"stderr":true}' | jget url)
	case "$url" in http://127.0.0.1:*/exec/*) ;; *) echo "Exec URL: '$url'"; pod_gone "$s"; net_down; return 1 ;; esac
	mkdir -p "$T/e1"
	timeout 60 "$tool" exec "$url" "$T/e1" --stdin "$T/in" 2>"$T/e1.err" ||
		{ echo "exec client failed: $(cat "$T/e1.err")"; pod_gone "$s"; net_down; return 1; }
	[ "$(cat "$T/e1/stdout")" = "got hello" ] && [ "$(cat "$T/e1/stderr")" = to-err ] &&
		grep -q '"reason":"NonZeroExitCode"' "$T/e1/status" && grep -q '"message":"3"' "$T/e1/status" ||
		{ echo "exec: out '$(cat "$T/e1/stdout")' err '$(cat "$T/e1/stderr")' status '$(cat "$T/e1/status")'"; pod_gone "$s"; net_down; return 1; }
	# 5 MiB of stdin, faster than the VM takes it: held back (the session stops reading
	# the client), not dropped.
	head -c 5242880 /dev/urandom >"$T/big"
	url=$(cri Exec '{"container_id":"'$c'","cmd":["md5sum"],"stdin":true,"stdout":true,"stderr":true}' | jget url)
	mkdir -p "$T/e3"
	timeout 60 "$tool" exec "$url" "$T/e3" --stdin "$T/big" 2>"$T/e3.err" ||
		{ echo "big stdin client failed: $(cat "$T/e3.err")"; pod_gone "$s"; net_down; return 1; }
	[ "$(cut -d' ' -f1 "$T/e3/stdout")" = "$(md5sum <"$T/big" | cut -d' ' -f1)" ] ||
		{ echo "5 MiB of stdin arrived as '$(cat "$T/e3/stdout")' (status '$(cat "$T/e3/status")')"; pod_gone "$s"; net_down; return 1; }
	# A terminal, sized by the resize stream.
	url=$(cri Exec '{"container_id":"'$c'","cmd":["sh","-c","i=0; while [ \"$(stty size)\" != \"27 91\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; stty size"],"tty":true,"stdout":true}' | jget url)
	mkdir -p "$T/e2"
	timeout 60 "$tool" exec "$url" "$T/e2" --tty --resize 91x27 2>"$T/e2.err" ||
		{ echo "tty exec client failed: $(cat "$T/e2.err")"; pod_gone "$s"; net_down; return 1; }
	[ "$(tr -d '\r' <"$T/e2/stdout")" = "27 91" ] && grep -q '"status":"Success"' "$T/e2/status" ||
		{ echo "tty: '$(cat -A "$T/e2/stdout")' status '$(cat "$T/e2/status")'"; pod_gone "$s"; net_down; return 1; }
	# port-forward: 9 MiB from the pod's httpd, checked to the byte.
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK ExecSync '{\"container_id\":\"$c\",\"cmd\":[\"cat\",\"/www/sum\"]}' | grep -q stdout" || { pod_gone "$s"; net_down; return 1; }
	sum=$(cri ExecSync '{"container_id":"'$c'","cmd":["cat","/www/sum"]}' | jget stdout | b64 | cut -d' ' -f1)
	printf 'GET /big HTTP/1.0\r\n\r\n' >"$T/req"
	url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8080]}' | jget url)
	timeout 120 "$tool" portforward "$url" 8080 "$T/req" >"$T/got" 2>"$T/err" ||
		{ echo "port-forward: rc $? $(cat "$T/err") got $(head -c 300 "$T/got" | tr -d "\r")"; pod_gone "$s"; net_down; return 1; }
	"$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(d.split(b"\r\n\r\n",1)[1] if b"\r\n\r\n" in d else b"")' "$T/got" >"$T/body"
	[ "$(stat -c %s "$T/body")" = 9437184 ] && [ "$(md5sum <"$T/body" | cut -d' ' -f1)" = "$sum" ] ||
		{ echo "port-forward body: $(stat -c %s "$T/body") bytes, $(head -c 200 "$T/got")"; pod_gone "$s"; net_down; return 1; }
	# A port nobody listens on: the error stream names it.
	url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8081]}' | jget url)
	timeout 60 "$tool" portforward "$url" 8081 "$T/req" >/dev/null 2>"$T/closed" &&
		{ echo "a port nobody listens on answered"; pod_gone "$s"; net_down; return 1; }
	grep -q "8081" "$T/closed" || { echo "closed port: $(cat "$T/closed")"; pod_gone "$s"; net_down; return 1; }
	pod_gone "$s"
	net_down
}

test_logs_and_reopen() {
	local s c
	s=$(run_pod lg) && [ -n "$s" ] || return 1
	# A long line (40000 bytes) is split into partial records; a tail without a
	# newline is a full record.
	c=$(new_ctr "$s" lg talk '["sh","-c","head -c 40000 /dev/zero | tr \"\\\\0\" x; echo; echo first; sleep 3; echo second; printf tail; sleep 600"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	until_ok grep -q ' stdout F first$' "$W/logs/lg/talk.log" || { pod_gone "$s"; return 1; }
	local parts
	parts=$(grep -c ' stdout P x' "$W/logs/lg/talk.log")
	[ "$parts" = 2 ] || { echo "$parts partial records for 40000 bytes"; pod_gone "$s"; return 1; }
	grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{9}Z stdout F first$' "$W/logs/lg/talk.log" ||
		{ echo "format: $(grep first "$W/logs/lg/talk.log")"; pod_gone "$s"; return 1; }
	# Rotation: kubelet renames the file, then asks for a reopen.
	mv "$W/logs/lg/talk.log" "$W/logs/lg/talk.log.1"
	cri ReopenContainerLog '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	until_ok grep -q ' stdout F second$' "$W/logs/lg/talk.log" ||
		{ echo "after reopen: $(cat "$W/logs/lg/talk.log" 2>&1)"; pod_gone "$s"; return 1; }
	pod_gone "$s"
	grep -q ' stdout F tail$' "$W/logs/lg/talk.log" || { echo "tail: $(tail -2 "$W/logs/lg/talk.log")"; return 1; }
}

test_bad_input() {
	local out s
	fails PodSandboxStatus '{"pod_sandbox_id":"nope"}' | grep -q NOT_FOUND || return 1
	fails ContainerStatus '{"container_id":"nope"}' | grep -q NOT_FOUND || return 1
	fails StartContainer '{"container_id":"nope"}' | grep -q NOT_FOUND || return 1
	# Stop and remove of what does not exist succeed (kubelet retries them).
	cri StopPodSandbox '{"pod_sandbox_id":"nope"}' >/dev/null && cri RemovePodSandbox '{"pod_sandbox_id":"nope"}' >/dev/null &&
		cri StopContainer '{"container_id":"nope"}' >/dev/null && cri RemoveContainer '{"container_id":"nope"}' >/dev/null ||
		{ echo "idempotent stop/remove failed"; return 1; }
	out=$(fails RunPodSandbox '{"config":{"metadata":{"name":"x"}}}')
	echo "$out" | grep -q "INVALID_ARGUMENT: config.metadata: name, namespace and uid are required" ||
		{ echo "no metadata: $out"; return 1; }
	out=$(fails RunPodSandbox '{"config":{"metadata":{"name":"h","uid":"u","namespace":"d"},"linux":{"security_context":{"namespace_options":{"network":"NODE"}}}}}')
	echo "$out" | grep -q "INVALID_ARGUMENT: config.linux.security_context.namespace_options.network: NODE (hostNetwork)" ||
		{ echo "hostNetwork: $out"; return 1; }
	out=$(fails RunPodSandbox '{"config":{"metadata":{"name":"h","uid":"u","namespace":"d"}},"runtime_handler":"kata"}')
	echo "$out" | grep -q "runtime_handler 'kata'" || { echo "handler: $out"; return 1; }
	s=$(run_pod bad) && [ -n "$s" ] || return 1
	out=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"c"},"image":{"image":"example.com/none:1"}},"sandbox_config":'"$(POD bad)"'}' 2>&1)
	echo "$out" | grep -q "NOT_FOUND: create container: config.image.image 'example.com/none:1'" ||
		{ echo "unknown image: $out"; pod_gone "$s"; return 1; }
	out=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"image":{"image":"'$BB'"}}}' 2>&1)
	echo "$out" | grep -q "INVALID_ARGUMENT: config.metadata.name" || { echo "no name: $out"; pod_gone "$s"; return 1; }
	pod_gone "$s"
	[ "$(ls "$W/state/containers" | wc -l)" = 0 ] || { echo "a failed create left state"; return 1; }
}

test_malformed_transport() {
	# Not HTTP/2, an oversized message, an unknown method: each answered, the server
	# keeps serving.
	"$PY" - "$SOCK" <<'EOF' || return 1
import socket, sys, grpc
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"); s.settimeout(5)
data = b""
while True:
    b = s.recv(4096)
    if not b: break
    data += b
assert data[3] == 4, "no SETTINGS first: %r" % data[:20]
assert any(data[i+3] == 7 for i in range(0, len(data) - 9)), "no GOAWAY"
ch = grpc.insecure_channel("unix://" + sys.argv[1], options=[("grpc.max_send_message_length", 64 << 20)])
big = ch.unary_unary("/runtime.v1.RuntimeService/Version", request_serializer=lambda x: x, response_deserializer=lambda x: x)
try:
    big(b"\x0a" + b"\xff\xff\xff\x07" + b"x" * (17 << 20), timeout=30)
    sys.exit("an oversized message was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
nope = ch.unary_unary("/runtime.v1.RuntimeService/Nope", request_serializer=lambda x: x, response_deserializer=lambda x: x)
try:
    nope(b"", timeout=10)
    sys.exit("an unknown method answered")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e
EOF
	cri Version '{}' >/dev/null || { echo "the server stopped serving"; return 1; }
}

test_pod_failure_leaves_nothing() {
	# A sysctl the guest lacks fails the sandbox after its VM booted: the shim, the VM
	# and the pod's state go, and the error reaches the client.
	local out
	mkdir -p "$W/logs/sf"
	out=$(cri RunPodSandbox '{"config":{"metadata":{"name":"sf","uid":"u-sf","namespace":"default"},"log_directory":"'$W/logs/sf'","linux":{"sysctls":{"net.no.such.sysctl":"1"}}}}' 2>&1) &&
		{ echo "a bad pod started: $out"; return 1; }
	echo "$out" | grep -q "net.no.such.sysctl" || { echo "error: $out"; return 1; }
	[ -z "$(cri ListPodSandbox '{}' | jget items)" ] || { echo "pods: $(cri ListPodSandbox '{}')"; return 1; }
}

test_fault_qemu_killed() {
	# The VM dies under a running pod: the pod is NOTREADY, its container exited, and
	# Stop/Remove leave nothing.
	local s c
	s=$(run_pod fq) && [ -n "$s" ] || return 1
	c=$(new_ctr "$s" fq c '["sleep","600"]') && cri StartContainer '{"container_id":"'$c'"}' >/dev/null ||
		{ pod_gone "$s"; return 1; }
	pkill -9 -f -- "$HULL_STATE_DIR/$s/" || { echo "no QEMU to kill"; pod_gone "$s"; return 1; }
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK PodSandboxStatus '{\"pod_sandbox_id\":\"$s\"}' | grep -q SANDBOX_NOTREADY" ||
		{ echo "pod after QEMU died: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; pod_gone "$s"; return 1; }
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK ContainerStatus '{\"container_id\":\"$c\"}' | grep -q CONTAINER_EXITED" ||
		{ echo "container: $(cri ContainerStatus '{"container_id":"'$c'"}')"; pod_gone "$s"; return 1; }
	pod_gone "$s"
}

test_fault_shim_killed() {
	local s c
	s=$(run_pod fs) && [ -n "$s" ] || return 1
	c=$(new_ctr "$s" fs c '["sleep","600"]') && cri StartContainer '{"container_id":"'$c'"}' >/dev/null ||
		{ pod_gone "$s"; return 1; }
	pkill -9 -f -- "-address $SOCK.*-id $s " || { echo "no shim to kill"; pod_gone "$s"; return 1; }
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK PodSandboxStatus '{\"pod_sandbox_id\":\"$s\"}' | grep -q SANDBOX_NOTREADY" ||
		{ echo "pod after its shim died: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; pod_gone "$s"; return 1; }
	[ "$(ctr_state "$c")" = CONTAINER_EXITED ] || { echo "container: $(ctr_state "$c")"; pod_gone "$s"; return 1; }
	# The VM went with its shim (PDEATHSIG); Remove runs `shim delete` for the rest.
	pod_gone "$s" || return 1
}

test_calls_in_flight() {
	# A RunPodSandbox held in its CNI plugin (a plugin that waits on a FIFO the test
	# opens) does not hold up anything else: Version, ListPodSandbox, another pod's
	# ExecSync all answer while it waits. No clock involved.
	local s other c
	mkdir -p "$W/slowbin"
	mkfifo "$W/gate"
	cat >"$W/slowbin/slowcni" <<EOT
#!/bin/sh
cat >/dev/null
[ "\$CNI_COMMAND" = ADD ] && read x <"$W/gate"
[ "\$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","interfaces":[],"ips":[]}'
exit 0
EOT
	chmod +x "$W/slowbin/slowcni"
	other=$(run_pod busy) && c=$(new_ctr "$other" busy c '["sleep","600"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$other"; return 1; }
	echo '{"cniVersion":"1.0.0","name":"slow","plugins":[{"type":"slowcni"}]}' >"$W/cni/20-slow.conflist"
	printf 'cni.conf_dir = "%s"\n[cni]\nbin_dirs = ["%s"]\n' "$W/cni" "$W/slowbin" >"$W/cri.toml"
	cri_stop
	cri_start || { rm -f "$W/cni/20-slow.conflist"; return 1; }
	mkdir -p "$W/logs/held"
	cri RunPodSandbox '{"config":'"$(POD held)"'}' >"$T/held" 2>&1 &
	local bg=$!
	local ok=1 out
	until_ok sh -c "ls $W/state/pods | grep -qv $other" || ok=0
	cri Version '{}' >/dev/null || { echo "Version waited"; ok=0; }
	cri ListPodSandbox '{}' | grep -q "$other" || { echo "ListPodSandbox waited"; ok=0; }
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["echo","meanwhile"]}' | jget stdout | b64)
	[ "$out" = meanwhile ] || { echo "ExecSync in another pod waited: '$out'"; ok=0; }
	# The held call is still waiting: its CNI plugin has not been let go.
	kill -0 $bg 2>/dev/null || { echo "RunPodSandbox did not wait for its plugin: $(cat "$T/held")"; ok=0; }
	echo go >"$W/gate"
	wait $bg
	s=$(jget pod_sandbox_id <"$T/held")
	[ -n "$s" ] || { echo "the held pod: $(cat "$T/held")"; ok=0; }
	rm -f "$W/cni/20-slow.conflist"
	printf 'cni.conf_dir = "%s"\n' "$W/cni" >"$W/cri.toml"
	[ -n "$s" ] && pod_gone "$s"
	pod_gone "$other"
	cri_stop
	cri_start || return 1
	[ "$ok" = 1 ]
}

test_runc_handler() {
	command -v containerd-shim-runc-v2 >/dev/null && command -v runc >/dev/null ||
		{ echo "containerd-shim-runc-v2 or runc is not installed (make deps)"; return 77; }
	local s c out
	cri Status '{}' | grep -q '"name": "runc"' || { echo "Status: $(cri Status '{}')"; return 1; }
	mkdir -p "$W/logs/rc"
	s=$(cri RunPodSandbox '{"config":'"$(POD rc)"',"runtime_handler":"runc"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id) &&
		[ -n "$s" ] || { echo "RunPodSandbox (runc): $(cat "$T/run")"; return 1; }
	[ "$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | jget status.runtime_handler)" = runc ] ||
		{ echo "handler: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; pod_gone "$s"; return 1; }
	[ "$(qemus)" = 0 ] || { echo "a runc pod booted a VM"; pod_gone "$s"; return 1; }
	c=$(new_ctr "$s" rc k '["sh","-c","cat /proc/version; hostname; sleep 600"]') &&
		cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { pod_gone "$s"; return 1; }
	# The host's kernel: the pod runs on the node, not in a VM.
	until_ok grep -qF "$(cat /proc/version)" "$W/logs/rc/k.log" ||
		{ echo "log: $(cat "$W/logs/rc/k.log")"; pod_gone "$s"; return 1; }
	grep -q ' stdout F rc$' "$W/logs/rc/k.log" || { echo "hostname: $(cat "$W/logs/rc/k.log")"; pod_gone "$s"; return 1; }
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","echo in-runc; exit 4"]}')
	[ "$(echo "$out" | jget stdout | b64)" = in-runc ] && [ "$(echo "$out" | jget exit_code)" = 4 ] ||
		{ echo "exec: $out"; pod_gone "$s"; return 1; }
	# Stats from the host's cgroup, as the runc shim gives them.
	out=$(cri ContainerStats '{"container_id":"'$c'"}')
	[ "$(echo "$out" | jget stats.cpu.usage_core_nano_seconds.value)" -gt 0 ] 2>/dev/null &&
		[ "$(echo "$out" | jget stats.memory.working_set_bytes.value)" -gt 0 ] 2>/dev/null ||
		{ echo "runc stats: $out"; pod_gone "$s"; return 1; }
	cri StopContainer '{"container_id":"'$c'","timeout":1}' >/dev/null
	[ "$(ctr_state "$c")" = CONTAINER_EXITED ] || { echo "after stop: $(ctr_state "$c")"; pod_gone "$s"; return 1; }
	pod_gone "$s" || return 1
	# hostNetwork: refused by default; with host_namespaces = "runc", run by runc on the
	# node's network.
	printf 'cni.conf_dir = "%s"\nhost_namespaces = runc\n' "$W/cni" >"$W/cri.toml"
	cri_stop
	cri_start || return 1
	local hn='{"metadata":{"name":"hn","uid":"u-hn","namespace":"default"},"log_directory":"'$W/logs/hn'","linux":{"security_context":{"namespace_options":{"network":"NODE"}}}}'
	mkdir -p "$W/logs/hn"
	s=$(cri RunPodSandbox '{"config":'"$hn"'}' 2>&1 | tee "$T/run" | jget pod_sandbox_id)
	printf 'cni.conf_dir = "%s"\n' "$W/cni" >"$W/cri.toml"
	[ -n "$s" ] || { echo "hostNetwork pod: $(cat "$T/run")"; cri_stop; cri_start; return 1; }
	[ "$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | jget status.runtime_handler)" = runc ] ||
		{ echo "hostNetwork pod's handler: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; pod_gone "$s"; cri_stop; cri_start; return 1; }
	c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"h"},"image":{"image":"'$BB'"},"command":["sleep","600"],"log_path":"h.log"},"sandbox_config":'"$hn"'}' | jget container_id)
	cri StartContainer '{"container_id":"'$c'"}' >/dev/null
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["cat","/proc/net/dev"]}' | jget stdout | b64)
	pod_gone "$s"
	cri_stop
	cri_start || return 1
	# The node's interfaces are there (one named as one of the host's, not lo alone).
	local ifc
	ifc=$(ip -o link | awk -F': ' '$2 != "lo" {print $2; exit}' | cut -d@ -f1)
	echo "$out" | grep -q "$ifc:" || { echo "hostNetwork container sees: $out (host has $ifc)"; return 1; }
}

test_restart_keeps_pods() {
	# hull-cri killed (-9) and started again: the pod is not stopped (its VM is the
	# shim's), comes back READY with its containers, an exit that happened meanwhile
	# is reported, logs go on, exec works.
	local s a b st n1 n2
	s=$(run_pod rs) && [ -n "$s" ] || return 1
	a=$(new_ctr "$s" rs ticker '["sh","-c","i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]') &&
		b=$(new_ctr "$s" rs quitter '["sh","-c","sleep 3; exit 7"]') &&
		cri StartContainer '{"container_id":"'$a'"}' >/dev/null && cri StartContainer '{"container_id":"'$b'"}' >/dev/null ||
		{ pod_gone "$s"; return 1; }
	until_ok grep -q 'tick 2$' "$W/logs/rs/ticker.log" || { pod_gone "$s"; return 1; }
	kill -9 "$(cat "$W/cri.pid")"
	rm -f "$W/cri.pid"
	sleep 4
	pgrep -f -- "-address $SOCK" >/dev/null || { echo "the shim died with hull-cri"; cri_start; return 1; }
	n1=$(wc -l <"$W/logs/rs/ticker.log")
	cri_start || return 1
	[ "$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | jget status.state)" = "" ] ||
		{ echo "pod after restart: $(cri PodSandboxStatus '{"pod_sandbox_id":"'$s'"}')"; pod_gone "$s"; return 1; }
	until_ok sh -c "$PY $top/tests/cri/cri.py $SOCK ContainerStatus '{\"container_id\":\"$b\"}' | grep -q CONTAINER_EXITED" ||
		{ echo "quitter: $(cri ContainerStatus '{"container_id":"'$b'"}')"; pod_gone "$s"; return 1; }
	st=$(cri ContainerStatus '{"container_id":"'$b'"}')
	[ "$(echo "$st" | jget status.exit_code)" = 7 ] || { echo "quitter: $st"; pod_gone "$s"; return 1; }
	[ "$(ctr_state "$a")" = CONTAINER_RUNNING ] || { echo "ticker: $(ctr_state "$a")"; pod_gone "$s"; return 1; }
	[ "$(cri ExecSync '{"container_id":"'$a'","cmd":["echo","still-here"]}' | jget stdout | b64)" = still-here ] ||
		{ echo "exec after restart failed"; pod_gone "$s"; return 1; }
	# The log goes on (what was written meanwhile waited in the FIFO).
	until_ok sh -c "[ \$(wc -l <'$W/logs/rs/ticker.log') -gt $((n1 + 2)) ]" ||
		{ echo "log: $n1 lines, then $(wc -l <"$W/logs/rs/ticker.log")"; pod_gone "$s"; return 1; }
	pod_gone "$s" || { echo "stop/remove after restart failed"; return 1; }
	fails PodSandboxStatus '{"pod_sandbox_id":"'$s'"}' | grep -q NOT_FOUND
}

# ---- main -------------------------------------------------------------------------------

. "$top/tests/integration/lib.sh"
printf 'cni.conf_dir = "%s"\n' "$W/cni" >"$W/cri.toml"
"$BUILD/hull" load -i "$BUILD/images/busybox.tar" >"$W/load.log" 2>&1 ||
	{ echo "not ok - image_load: $(cat "$W/load.log")"; exit 1; }
cri_start || { echo "not ok - cri_start: $(tail -3 "$W/cri.log")"; exit 1; }
failed=0
for t in $TESTS; do
	run_test "$t"
done
exit 0
