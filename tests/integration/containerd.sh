#!/usr/bin/env bash
# The containerd shim against a real containerd (Debian's 1.6), started here with a
# private root, state and socket: `ctr` with --runtime io.containerd.hull.v2, the CRI
# plugin with a runtime handler "hull" (driven by tests/cri/cri.py), and faults
# (QEMU killed, containerd restarted, shim killed). Prints one line per test:
#   ok - NAME | not ok - NAME: why | skip - NAME: why
# After every test: no QEMU, no shim, no mount under our dirs, no sandbox state left.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
only=${HULL_TEST_FILTER:-}
PY=/usr/bin/python3 # Debian's, with python3-grpcio (a pyenv python may shadow it)
BB=docker.io/library/busybox:latest
TESTS="ctr_run ctr_tty ctr_task_lifecycle ctr_events ctr_bad_config ctr_netns cri_pod cri_pod_network
	cri_pod_templates cri_pod_sysctls cri_pod_systemd_cgroup cri_port_forward cri_host_namespaces
	cri_ro_volume_with_mount cri_output_tail_at_stop fault_qemu_killed fault_containerd_restart fault_shim_killed"

skip_all() {
	for t in $TESTS; do
		[ -n "$only" ] && [[ $t != *$only* ]] && continue
		echo "skip - $t: $1"
	done
	exit 0
}
command -v containerd >/dev/null && command -v ctr >/dev/null ||
	skip_all "containerd is not installed (make deps installs Debian's containerd)"
[ "$(id -u)" = 0 ] || skip_all "containerd and the shim's mounts need root"
$PY -c 'import grpc, google.protobuf' 2>/dev/null ||
	skip_all "python3-grpcio/python3-protobuf missing (make deps)"
for f in "$BUILD/containerd-shim-hull-v2" "$BUILD/images/busybox.tar" \
	"$BUILD/tests/images/pause.tar" "$BUILD/tests/cri/cri_pb2.py"; do
	[ -e "$f" ] || skip_all "$f missing (make check builds it)"
done

. "$top/tests/integration/ctd-lib.sh"

# ---- ctr --------------------------------------------------------------------------

test_ctr_run() {
	local out rc
	out=$(echo piped-in | timeout 120 $CTR run --rm --runtime io.containerd.hull.v2 $BB r1 \
		sh -c 'read x; echo "got $x"; echo to-err >&2; uname -r; exit 3' 2>"$T/err")
	rc=$?
	[ "$rc" = 3 ] || { echo "exit $rc, want 3: $(cat "$T/err")"; return 1; }
	[ "$(echo "$out" | head -1)" = "got piped-in" ] || { echo "stdout: $out"; return 1; }
	grep -q '^to-err$' "$T/err" || { echo "stderr: $(cat "$T/err")"; return 1; }
	# A guest kernel, not the host's: the task ran in a VM.
	[ "$(echo "$out" | tail -1)" != "$(uname -r)" ] || { echo "kernel is the host's"; return 1; }
}

test_ctr_tty() {
	# A terminal through containerd's stdin FIFO and the pty in the guest; the size
	# set here arrives by ResizePty after start.
	command -v script >/dev/null || { echo "script (bsdutils) is not installed"; return 77; }
	timeout 120 script -qec "stty cols 91 rows 27; $CTR run --rm -t --runtime io.containerd.hull.v2 $BB tty1 sh -c 'tty; sleep 1; stty size'" /dev/null >"$T/out" 2>&1
	# ctr types a NUL into the terminal first; its echo is "^@".
	tr -d '\r' <"$T/out" | sed 's/^\^@//' >"$T/clean"
	grep -q '^/dev/pts/' "$T/clean" && grep -q '^27 91$' "$T/clean" ||
		{ echo "terminal output: $(cat -A "$T/clean" | head -5)"; return 1; }
}

test_ctr_task_lifecycle() {
	local out
	$CTR run -d --runtime io.containerd.hull.v2 $BB life \
		sh -c 'trap "echo term; exit 7" TERM; while true; do sleep 0.2; done' ||
		{ echo "run -d failed"; return 1; }
	status_is life RUNNING || { echo "status $(task_status life)"; return 1; }
	out=$($CTR task exec --exec-id e1 life sh -c 'echo exec-out; exit 4' 2>&1)
	[ $? = 4 ] && [ "$out" = exec-out ] || { echo "exec: '$out'"; return 1; }
	# Two processes: the init (sh) and its sleep at the time; the exec is gone.
	[ "$($CTR task ps life | tail -n +2 | wc -l)" -ge 1 ] || { echo "ps: $($CTR task ps life)"; return 1; }
	$CTR task pause life && status_is life PAUSED || { echo "pause: $(task_status life)"; return 1; }
	$CTR task resume life && status_is life RUNNING || { echo "resume: $(task_status life)"; return 1; }
	$CTR task metrics life >"$T/metrics" || { echo "metrics failed"; return 1; }
	grep -q 'memory.usage ' "$T/metrics" && grep -q 'pids.current' "$T/metrics" ||
		{ echo "metrics: $(cat "$T/metrics")"; return 1; }
	$CTR task kill -s TERM life || return 1
	until_ok status_is life STOPPED || return 1
	$CTR task delete life >"$T/del" 2>&1 || { echo "delete: $(cat "$T/del")"; return 1; }
	$CTR container rm life
}

test_ctr_events() {
	$CTR events >"$T/events" 2>&1 &
	local ev=$!
	sleep 0.5
	# An OOM kill first: /tasks/oom before its exit.
	timeout 120 $CTR run --rm --memory-limit 33554432 --runtime io.containerd.hull.v2 $BB oom \
		sh -c 'x=a; while true; do x=$x$x; done' >/dev/null 2>&1
	$CTR run -d --runtime io.containerd.hull.v2 $BB evt sleep 600 || { kill $ev; return 1; }
	$CTR task exec --exec-id x1 evt true
	$CTR task pause evt && $CTR task resume evt
	$CTR task kill -s KILL evt
	until_ok status_is evt STOPPED
	$CTR task delete evt >/dev/null && $CTR container rm evt
	sleep 1
	kill $ev
	wait $ev 2>/dev/null
	local topic missing=
	for topic in /tasks/create /tasks/start /tasks/exec-added /tasks/exec-started /tasks/paused \
		/tasks/resumed /tasks/exit /tasks/delete /tasks/oom; do
		grep -q " $topic " "$T/events" || missing="$missing $topic"
	done
	[ -z "$missing" ] || { echo "events missing:$missing; got: $(awk '{print $4}' "$T/events" | sort -u | tr '\n' ' ')"; return 1; }
	# TaskExit names the container and carries the status of SIGKILL.
	grep ' /tasks/exit ' "$T/events" | grep -q '"container_id":"evt"' ||
		{ echo "exit event: $(grep ' /tasks/exit ' "$T/events")"; return 1; }
}

test_ctr_bad_config() {
	printf 'memory = "256M"\ncpus = many\n' >"$T/bad.toml"
	timeout 60 $CTR run --rm --runtime io.containerd.hull.v2 --runtime-config-path "$T/bad.toml" \
		$BB badcfg true >"$T/out" 2>&1 && { echo "ran with a bad config"; return 1; }
	grep -q "bad.toml:2: cpus: bad value 'many'" "$T/out" || { echo "error: $(cat "$T/out")"; return 1; }
	$CTR container rm badcfg 2>/dev/null
	return 0
}

test_ctr_netns() {
	# ctr --with-ns network:PATH: the shim joins that namespace to the VM (a veth made
	# here); a namespace that does not exist is a clear error and leaves nothing.
	local ns=hullctr$$ hv=hvc$$ out
	ip netns add $ns && ip link add $hv type veth peer name eth0 netns $ns &&
		ip addr add 10.217.0.1/24 dev $hv && ip link set $hv up &&
		ip netns exec $ns ip addr add 10.217.0.2/24 dev eth0 && ip netns exec $ns ip link set eth0 up || return 1
	out=$(timeout 120 $CTR run --rm --runtime io.containerd.hull.v2 --with-ns network:/run/netns/$ns \
		$BB nsj sh -c 'ip -o -4 addr show eth0; ping -c 1 -W 5 10.217.0.1 >/dev/null && echo ping-ok' 2>&1)
	ip link del $hv; ip netns del $ns
	grep -q "inet 10.217.0.2/24" <<<"$out" && grep -q ping-ok <<<"$out" || { echo "in the VM: $out"; return 1; }
	timeout 60 $CTR run --rm --runtime io.containerd.hull.v2 --with-ns network:/run/netns/nonexistent-$$ \
		$BB nsbad true >"$T/out" 2>&1 && { echo "ran without its namespace"; return 1; }
	grep -q "network namespace '/run/netns/nonexistent-$$': No such file or directory" "$T/out" ||
		{ echo "error: $(cat "$T/out")"; return 1; }
	$CTR container rm nsbad 2>/dev/null
	return 0
}

# ---- CRI ----------------------------------------------------------------------------

cri() { "$PY" "$top/tests/cri/cri.py" "$SOCK" "$@"; }
jget() { "$PY" -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d.get(k, {}) if isinstance(d, dict) else {}
print(d if d != {} else "")' "$1"; }
b64() { "$PY" -c 'import base64,sys; print(base64.b64decode(sys.stdin.read() or "").decode(), end="")'; }

test_cri_pod() {
	local pod sid c1 c2 out
	mkdir -p "$W/logs/p1"
	local parent=/hull-test-$$
	pod='{"metadata":{"name":"p1","uid":"u-p1","namespace":"default"},"hostname":"pod-one","log_directory":"'$W/logs/p1'","linux":{"cgroup_parent":"'$parent'","security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	sid=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id) &&
		[ -n "$sid" ] || { echo "RunPodSandbox failed: $(cat "$T/run")"; return 1; }
	# The VM is charged to the pod: QEMU sits in the sandbox's cgroup (memory here).
	local qpid mem=/sys/fs/cgroup/memory
	[ -e $mem/cgroup.procs ] || mem=/sys/fs/cgroup
	qpid=$(pgrep -f -- "$HULL_STATE_DIR/$sid/")
	grep -qx "$qpid" "$mem$parent/$sid/cgroup.procs" ||
		{ echo "QEMU $qpid is not in $mem$parent/$sid: $(cat /proc/$qpid/cgroup | tr '\n' ' ')"; return 1; }
	for n in c1 c2; do
		local id
		id=$(cri CreateContainer '{"pod_sandbox_id":"'$sid'","config":{"metadata":{"name":"'$n'"},"image":{"image":"'$BB'"},"command":["sh","-c","echo hello from '$n' on $(hostname); echo err-'$n' >&2; echo '$n' >/dev/shm/'$n'; exec sleep 600"],"log_path":"'$n'.log","linux":{"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}},"sandbox_config":'"$pod"'}' | jget container_id)
		[ -n "$id" ] || { echo "CreateContainer $n failed"; return 1; }
		cri StartContainer '{"container_id":"'$id'"}' >/dev/null || { echo "StartContainer $n failed"; return 1; }
		eval "$n=$id"
	done
	# One VM for the pod and its two containers.
	[ "$(qemus)" = 1 ] || { echo "$(qemus) QEMU processes for one pod"; return 1; }
	until_ok grep -q "err-c2" "$W/logs/p1/c2.log" || return 1
	grep -q ' stdout F hello from c1 on pod-one$' "$W/logs/p1/c1.log" &&
		grep -q ' stderr F err-c1$' "$W/logs/p1/c1.log" ||
		{ echo "c1 log: $(cat "$W/logs/p1/c1.log")"; return 1; }
	# ExecSync: output, exit code, and the pod's IPC (/dev/shm) shared by both.
	out=$(cri ExecSync '{"container_id":"'$c1'","cmd":["sh","-c","ls /dev/shm | tr \"\\n\" \" \"; exit 5"],"timeout":60}')
	[ "$(echo "$out" | jget exit_code)" = 5 ] || { echo "ExecSync: $out"; return 1; }
	[ "$(echo "$out" | jget stdout | b64)" = "c1 c2 " ] || { echo "ExecSync stdout: $(echo "$out" | jget stdout | b64)"; return 1; }
	out=$(cri ContainerStats '{"container_id":"'$c1'"}')
	[ -n "$(echo "$out" | jget stats.memory.working_set_bytes.value)" ] &&
		[ -n "$(echo "$out" | jget stats.cpu.usage_core_nano_seconds.value)" ] ||
		{ echo "ContainerStats: $out"; return 1; }
	cri UpdateContainerResources '{"container_id":"'$c1'","linux":{"memory_limit_in_bytes":67108864}}' >/dev/null ||
		{ echo "UpdateContainerResources failed"; return 1; }
	out=$(cri ExecSync '{"container_id":"'$c1'","cmd":["sh","-c","cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"],"timeout":60}')
	[ "$(echo "$out" | jget stdout | b64)" = 67108864 ] || { echo "memory.max after update: $out"; return 1; }
	cri StopContainer '{"container_id":"'$c1'","timeout":2}' >/dev/null || { echo "StopContainer failed"; return 1; }
	out=$(cri ContainerStatus '{"container_id":"'$c1'"}')
	[ "$(echo "$out" | jget status.state)" = CONTAINER_EXITED ] || { echo "status after stop: $out"; return 1; }
	cri RemoveContainer '{"container_id":"'$c1'"}' >/dev/null || { echo "RemoveContainer failed"; return 1; }
	# c2 still runs in the pod's VM after c1 is gone.
	out=$(cri ExecSync '{"container_id":"'$c2'","cmd":["cat","/dev/shm/c2"],"timeout":60}')
	[ "$(echo "$out" | jget stdout | b64)" = c2 ] || { echo "c2 after c1 removed: $out"; return 1; }
	cri StopPodSandbox '{"pod_sandbox_id":"'$sid'"}' >/dev/null || { echo "StopPodSandbox failed"; return 1; }
	cri RemovePodSandbox '{"pod_sandbox_id":"'$sid'"}' >/dev/null || { echo "RemovePodSandbox failed"; return 1; }
	until_ok no_vm "$sid" || return 1
	# The shim leaves the pod's cgroup last, as it exits.
	until_ok test ! -e "$mem$parent/$sid" || { echo "the pod's cgroup $mem$parent/$sid is left"; return 1; }
	# The parent is the kubelet's to make and remove; here the test's.
	local h
	for h in /sys/fs/cgroup/*$parent /sys/fs/cgroup$parent; do
		[ -d "$h" ] && rmdir "$h"/* "$h" 2>/dev/null
	done
	return 0
}

# A pod with its own network (POD namespace option): prints its sandbox id.
net_pod() {
	local pod='{"metadata":{"name":"'$1'","uid":"u-'$1'","namespace":"default"},"hostname":"'$1'","log_directory":"'$W/logs/$1'","dns_config":{"servers":["192.0.2.53"],"searches":["hull.test"]},"linux":{"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	mkdir -p "$W/logs/$1"
	cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' | jget pod_sandbox_id
}
net_ctr() { # SANDBOX NAME SHELL-COMMAND: prints the started container's id
	local pod='{"metadata":{"name":"'$2'","uid":"u-'$2'","namespace":"default"},"log_directory":"'$W/logs/$2'"}' id
	id=$(cri CreateContainer '{"pod_sandbox_id":"'$1'","config":{"metadata":{"name":"'$2'"},"image":{"image":"'$BB'"},"command":["sh","-c","'"$3"'"],"log_path":"'$2'.log"},"sandbox_config":'"$pod"'}' | jget container_id) &&
		[ -n "$id" ] && cri StartContainer '{"container_id":"'$id'"}' >/dev/null && echo "$id"
}
pod_gone() {
	cri StopPodSandbox '{"pod_sandbox_id":"'$1'"}' >/dev/null
	cri RemovePodSandbox '{"pod_sandbox_id":"'$1'"}' >/dev/null
}

# A pod (a network of its own) in Kubernetes namespace $2, annotations $3 (JSON object or ""):
# prints its sandbox id.
tpl_pod() {
	local ann="" pod
	[ -n "$3" ] && ann=',"annotations":'"$3"
	pod='{"metadata":{"name":"'$1'","uid":"u-'$1'","namespace":"'$2'"},"hostname":"'$1'","log_directory":"'$W/logs/$1'"'"$ann"',"linux":{"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	mkdir -p "$W/logs/$1"
	cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' | jget pod_sandbox_id
}
# The template the shim of sandbox $1 restored its VM from (its log in containerd's).
tpl_of() { sed -n "s/.*sandbox=$1 restored from template \([0-9a-f]\{16\}\).*/\1/p" "$W/containerd.log" | tail -1; }

test_cri_pod_templates() {
	# Pods restore from a template of their trust domain: their Kubernetes namespace.
	# A second pod of a namespace restores from the template the first built; a pod of
	# another namespace never does; the annotation keeps a pod apart from its
	# namespace's (it narrows, never widens), and a bad one is refused by name.
	local a1 a2 b1 s1 out ta1 ta2 tb1 ts1
	a1=$(tpl_pod a1 tpl-a "") && [ -n "$a1" ] || { echo "RunPodSandbox a1 failed"; return 1; }
	a2=$(tpl_pod a2 tpl-a "")
	b1=$(tpl_pod b1 tpl-b "")
	s1=$(tpl_pod s1 tpl-a '{"io.hull.template-domain":"solo"}')
	ta1=$(tpl_of "$a1") ta2=$(tpl_of "$a2") tb1=$(tpl_of "$b1") ts1=$(tpl_of "$s1")
	out=$(cri RunPodSandbox '{"config":{"metadata":{"name":"bad","uid":"u-bad","namespace":"tpl-a"},"annotations":{"io.hull.template-domain":"no way"},"linux":{"security_context":{"namespace_options":{"network":"POD"}}}},"runtime_handler":"hull"}' 2>&1)
	local id
	for id in $a1 $a2 $b1 $s1; do pod_gone "$id"; done
	until_ok no_vm "$a1" && until_ok no_vm "$b1" || return 1
	[ -n "$ta1" ] && [ "$ta1" = "$ta2" ] || { echo "pods of one namespace: templates '$ta1' and '$ta2'"; return 1; }
	[ -n "$tb1" ] && [ "$tb1" != "$ta1" ] || { echo "a pod of another namespace restored from '$tb1'"; return 1; }
	[ -n "$ts1" ] && [ "$ts1" != "$ta1" ] && [ "$ts1" != "$tb1" ] ||
		{ echo "the annotated pod restored from '$ts1' (a: $ta1, b: $tb1)"; return 1; }
	echo "$out" | grep -q "annotation io.hull.template-domain: 'no way' is not a name" ||
		{ echo "bad annotation: $out"; return 1; }
	HULL_STATE_DIR=$HULL_STATE_DIR "$BUILD/hull" template ls >"$T/ls"
	grep -q " k8s-tpl-a " "$T/ls" && grep -q " k8s-tpl-b " "$T/ls" && grep -q " k8s-tpl-a.solo " "$T/ls" ||
		{ echo "template ls: $(cat "$T/ls")"; return 1; }
}

test_cri_pod_sysctls() {
	# A pod's sysctls, a safe one and an unsafe (namespaced) one, are applied where
	# containerd puts them (the pod's sandbox spec, whose /proc/sys is read-only) and
	# seen by its containers (IPC namespace sysctls); /proc/sys stays read-only in a
	# container as the kubelet asks (readonly_paths).
	local pod sid c out
	mkdir -p "$W/logs/sy"
	pod='{"metadata":{"name":"sy","uid":"u-sy","namespace":"default"},"log_directory":"'$W/logs/sy'","linux":{"sysctls":{"kernel.shm_rmid_forced":"1","fs.mqueue.msg_max":"100"},"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	sid=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id) &&
		[ -n "$sid" ] || { echo "RunPodSandbox failed: $(cat "$T/run")"; return 1; }
	c=$(cri CreateContainer '{"pod_sandbox_id":"'$sid'","config":{"metadata":{"name":"c"},"image":{"image":"'$BB'"},"command":["sleep","600"],"log_path":"c.log","linux":{"security_context":{"readonly_paths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"],"masked_paths":["/proc/kcore","/proc/keys"]}}},"sandbox_config":'"$pod"'}' 2>&1 | tee "$T/create" | jget container_id) &&
		[ -n "$c" ] || { echo "CreateContainer failed: $(cat "$T/create")"; pod_gone "$sid"; return 1; }
	cri StartContainer '{"container_id":"'$c'"}' >"$T/start" 2>&1 ||
		{ echo "StartContainer failed: $(cat "$T/start")"; pod_gone "$sid"; return 1; }
	out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","cat /proc/sys/kernel/shm_rmid_forced /proc/sys/fs/mqueue/msg_max | tr \"\\n\" \" \"; echo 0 >/proc/sys/kernel/shm_rmid_forced 2>/dev/null && echo writable"],"timeout":60}')
	pod_gone "$sid"
	until_ok no_vm "$sid" || return 1
	[ "$(echo "$out" | jget stdout | b64)" = "1 100 " ] || { echo "sysctls in the container: $out"; return 1; }
	# A sysctl the guest kernel does not have fails the pod after its VM booted,
	# with the name in the error; nothing of it is left (checked after every test).
	out=$(cri RunPodSandbox '{"config":{"metadata":{"name":"sy2","uid":"u-sy2","namespace":"default"},"linux":{"sysctls":{"net.ipv4.hull_no_such_knob":"1"},"security_context":{"namespace_options":{"network":"POD"}}}},"runtime_handler":"hull"}' 2>&1)
	echo "$out" | grep -q "sysctl 'net.ipv4.hull_no_such_knob'" || { echo "a bad sysctl: $out"; return 1; }
	until_ok test "$(qemus)" = 0 || { echo "$(qemus) QEMU left by a failed RunPodSandbox"; return 1; }
}

test_cri_pod_systemd_cgroup() {
	# The kubelet's systemd cgroup driver: a cgroup parent that is a slice makes
	# containerd build "slice:cri-containerd:ID"; the VM must sit in that scope where
	# systemd lays it out (no systemd runs here), and the scope goes with the pod.
	local sl=hulltest$$ sid pod qpid mem=/sys/fs/cgroup/memory scope
	[ -e $mem/cgroup.procs ] || mem=/sys/fs/cgroup
	mkdir -p "$W/logs/sd"
	pod='{"metadata":{"name":"sd","uid":"u-sd","namespace":"default"},"log_directory":"'$W/logs/sd'","linux":{"cgroup_parent":"'$sl'-pod1.slice","security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	sid=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id) &&
		[ -n "$sid" ] || { echo "RunPodSandbox failed: $(cat "$T/run")"; return 1; }
	scope=/$sl.slice/$sl-pod1.slice/cri-containerd-$sid.scope
	qpid=$(pgrep -f -- "$HULL_STATE_DIR/$sid/")
	local ok=1
	grep -qx "$qpid" "$mem$scope/cgroup.procs" 2>/dev/null || ok=0
	pod_gone "$sid"
	until_ok no_vm "$sid" || return 1
	[ $ok = 1 ] || { echo "QEMU $qpid is not in $mem$scope: $(tr '\n' ' ' </proc/$qpid/cgroup 2>/dev/null)"; return 1; }
	until_ok test ! -e "$mem$scope" || { echo "the pod's scope $mem$scope is left"; return 1; }
	# The slices are the kubelet's to make and remove; here the test's.
	local h
	for h in /sys/fs/cgroup/*/$sl.slice /sys/fs/cgroup/$sl.slice; do
		[ -d "$h" ] && rmdir "$h/$sl-pod1.slice" "$h" 2>/dev/null
	done
	return 0
}

test_cri_pod_network() {
	# CNI (bridge + host-local, v4 and v6) through the CRI plugin: the pod VM has the
	# pod's addresses; a server in one pod answers the host and a second pod VM.
	local s1 s2 c1 c2 ip4 ip6 out i netns_before
	netns_before=$(ip netns list | wc -l)
	s1=$(net_pod n1) && [ -n "$s1" ] || { echo "RunPodSandbox n1 failed"; return 1; }
	s2=$(net_pod n2) && [ -n "$s2" ] || { echo "RunPodSandbox n2 failed"; pod_gone "$s1"; return 1; }
	out=$(cri PodSandboxStatus '{"pod_sandbox_id":"'$s1'"}')
	ip4=$(echo "$out" | jget status.network.ip)
	ip6=$(echo "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"]["network"]["additional_ips"][0]["ip"])' 2>/dev/null)
	c1=$(net_ctr "$s1" web 'mkdir -p /www; echo served-by-pod >/www/x; exec httpd -f -p 8080 -h /www')
	c2=$(net_ctr "$s2" client 'exec sleep 600')
	local ok=0
	if [ -n "$ip4" ] && [ -n "$ip6" ] && [ -n "$c1" ] && [ -n "$c2" ]; then
		for i in $(seq 1 120); do
			curl -sf --max-time 5 "http://$ip4:8080/x" >"$T/got" 2>/dev/null && break
			sleep 0.5
		done
		out=$(cri ExecSync '{"container_id":"'$c2'","cmd":["wget","-qO-","http://'$ip4':8080/x"],"timeout":60}' | jget stdout | b64)
		local addrs
		addrs=$(cri ExecSync '{"container_id":"'$c1'","cmd":["ip","-o","addr","show","eth0"],"timeout":60}' | jget stdout | b64)
		# DNS and hostname: the CRI's files for the pod, bind-mounted into the guest.
		local etc
		etc=$(cri ExecSync '{"container_id":"'$c1'","cmd":["sh","-c","hostname; cat /etc/resolv.conf"],"timeout":60}' | jget stdout | b64)
		if [ "$(cat "$T/got")" != served-by-pod ]; then echo "host -> $ip4: '$(cat "$T/got")'"
		elif [ "$out" != served-by-pod ]; then echo "pod n2 -> $ip4: '$out'"
		elif ! grep -q "inet $ip4/" <<<"$addrs" || ! grep -q "inet6 $ip6/" <<<"$addrs"; then echo "eth0 in the VM: $addrs (want $ip4 and $ip6)"
		elif ! grep -qx n1 <<<"$etc" || ! grep -qx "nameserver 192.0.2.53" <<<"$etc" || ! grep -q "^search hull.test" <<<"$etc"; then echo "hostname and resolv.conf: $etc"
		else ok=1
		fi
	else
		echo "pod addresses '$ip4' '$ip6', containers '$c1' '$c2'"
	fi
	pod_gone "$s1"
	pod_gone "$s2"
	until_ok no_vm "$s1" && until_ok no_vm "$s2" || return 1
	# CNI DEL ran and the CRI removed the namespaces; nothing of ours is left in them.
	[ "$(ip netns list | wc -l)" = "$netns_before" ] || { echo "netns left: $(ip netns list | tr '\n' ' ')"; return 1; }
	[ "$(ls "$W/ipam/hullpods" 2>/dev/null | grep -cE "^[0-9]+[.]|:")" = 0 ] || { echo "IPs still leased: $(ls "$W/ipam/hullpods")"; return 1; }
	[ "$ok" = 1 ]
}

test_cri_port_forward() {
	# kubectl port-forward's path: CRI PortForward gives a URL of containerd's
	# streaming server, whose WebSocket protocol carries a connection that containerd
	# dials on localhost:PORT in the pod's namespace; the server listens in the VM.
	# 9 MiB back, checked to the byte; a port nobody listens on is an error; and
	# both loopbacks of the pod's namespace (127.0.0.1 and ::1) reach the VM.
	local s c url out sum before ns v4 v6
	before=$(ip netns list | cut -d' ' -f1 | sort)
	s=$(net_pod pf) && [ -n "$s" ] || { echo "RunPodSandbox failed"; return 1; }
	ns=$(comm -13 <(echo "$before") <(ip netns list | cut -d' ' -f1 | sort) | head -1)
	c=$(net_ctr "$s" web 'mkdir -p /www; head -c 9437184 /dev/urandom >/www/big; md5sum </www/big >/www/sum; exec httpd -f -p 8080 -h /www')
	[ -n "$c" ] || { echo "CreateContainer failed"; pod_gone "$s"; return 1; }
	printf 'GET /big HTTP/1.0\r\n\r\n' >"$T/req"
	url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8080]}' 2>&1 | tee "$T/pf" | jget url)
	local ok=0 i
	if [ -n "$url" ]; then
		for i in $(seq 1 60); do
			cri ExecSync '{"container_id":"'$c'","cmd":["cat","/www/sum"],"timeout":60}' | jget stdout | b64 >"$T/sum"
			[ -s "$T/sum" ] && break
			sleep 0.5
		done
		sum=$(cut -d' ' -f1 "$T/sum")
		for i in $(seq 1 20); do
			"$PY" "$top/tests/cri/portforward.py" "$url" 8080 "$T/req" >"$T/got" 2>"$T/err" && grep -q "200 OK" "$T/got" && break
			sleep 0.5
		done
		# The body: what follows the response's blank line.
		"$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.stdout.buffer.write(d.split(b"\r\n\r\n",1)[1] if b"\r\n\r\n" in d else b"")' "$T/got" >"$T/body"
		v4=$(ip netns exec "$ns" curl -sf --max-time 20 http://127.0.0.1:8080/sum 2>&1)
		v6=$(ip netns exec "$ns" curl -sfg --max-time 20 'http://[::1]:8080/sum' 2>&1)
		url=$(cri PortForward '{"pod_sandbox_id":"'$s'","port":[8081]}' | jget url)
		"$PY" "$top/tests/cri/portforward.py" "$url" 8081 "$T/req" >"$T/closed" 2>"$T/closed.err"
		local closed_rc=$?
		if [ -z "$sum" ]; then echo "no checksum from the container"
		elif [ "$(stat -c %s "$T/body")" != 9437184 ]; then echo "got $(stat -c %s "$T/body") bytes of the body, want 9437184: $(head -c 300 "$T/got"; cat "$T/err")"
		elif [ "$(md5sum <"$T/body" | cut -d' ' -f1)" != "$sum" ]; then echo "the body differs from the container's file"
		elif [ "$v4" != "$(cat "$T/sum")" ] || [ "$v6" != "$(cat "$T/sum")" ]; then echo "in the pod's namespace ($ns): 127.0.0.1 gave '$v4', ::1 '$v6', want '$(cat "$T/sum")'"
		elif [ $closed_rc = 0 ] || ! grep -q 8081 "$T/closed.err"; then echo "a closed port: exit $closed_rc, $(cat "$T/closed.err"); the shim: $(grep -i "port.forward" "$W/containerd.log" | tail -3)"
		else ok=1
		fi
	else
		echo "PortForward: $(cat "$T/pf")"
	fi
	pod_gone "$s"
	until_ok no_vm "$s" || return 1
	[ "$ok" = 1 ]
}

test_cri_ro_volume_with_mount() {
	# critest's non-recursive read-only mount: a host directory with a tmpfs mounted
	# inside, mounted read-only into a container. Only the top is read-only (runc's
	# "ro"), so the tmpfs takes a file; and the node can unmount and remove that
	# directory while the pod runs (the shim's binds are not the node's).
	local vol=$W/rovol pod s c out
	mkdir -p "$vol/tmpfs" "$W/logs/ro" && echo top >"$vol/top" && mount -t tmpfs tmpfs "$vol/tmpfs" ||
		{ echo "cannot set up $vol"; return 1; }
	pod='{"metadata":{"name":"ro","uid":"u-ro","namespace":"default"},"log_directory":"'$W/logs/ro'","linux":{"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	s=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id)
	[ -n "$s" ] && c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"c"},"image":{"image":"'$BB'"},"command":["sleep","600"],"log_path":"c.log","mounts":[{"container_path":"/mnt","host_path":"'$vol'","readonly":true}]},"sandbox_config":'"$pod"'}' 2>&1 | tee "$T/create" | jget container_id) &&
		[ -n "$c" ] && cri StartContainer '{"container_id":"'$c'"}' >/dev/null &&
		out=$(cri ExecSync '{"container_id":"'$c'","cmd":["sh","-c","cat /mnt/top; echo in-tmpfs >/mnt/tmpfs/file && echo tmpfs-writable; echo x >/mnt/new 2>/dev/null || echo top-read-only"],"timeout":60}' | jget stdout | b64)
	local on_host rm_rc
	on_host=$(cat "$vol/tmpfs/file" 2>/dev/null)
	umount "$vol/tmpfs" && rm -rf "$vol" 2>"$T/rm"
	rm_rc=$?
	[ -n "$s" ] && pod_gone "$s"
	[ -z "$s" ] || until_ok no_vm "$s" || return 1
	mountpoint -q "$vol/tmpfs" 2>/dev/null && umount "$vol/tmpfs"
	[ -n "$c" ] || { echo "pod or container failed: $(cat "$T/run" "$T/create")"; return 1; }
	[ "$out" = "top
tmpfs-writable
top-read-only" ] || { echo "in the container: '$out'"; return 1; }
	[ "$on_host" = in-tmpfs ] || { echo "the host's tmpfs holds '$on_host'"; return 1; }
	[ $rm_rc = 0 ] && [ ! -e "$vol" ] || { echo "the node could not remove $vol while the pod ran: $(cat "$T/rm")"; return 1; }
}

test_cri_output_tail_at_stop() {
	# Containers killed by StopPodSandbox while they write: every line a container
	# wrote to stdout before it died is in its log. Each line goes to stdout first,
	# then to a file on the host, so the file's last line was written to stdout.
	local dir=$W/tail pod s c n last
	mkdir -p "$dir" "$W/logs/tl"
	pod='{"metadata":{"name":"tl","uid":"u-tl","namespace":"default"},"log_directory":"'$W/logs/tl'","linux":{"security_context":{"namespace_options":{"network":"POD","pid":"CONTAINER"}}}}'
	s=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' | jget pod_sandbox_id)
	[ -n "$s" ] || { echo "RunPodSandbox failed"; return 1; }
	for n in a b c d; do
		c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"'$n'"},"image":{"image":"'$BB'"},"command":["sh","-c","i=0; while :; do echo '$n'-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; echo '$n'-line-$i >>/out/'$n'; i=$((i+1)); done"],"log_path":"'$n'.log","mounts":[{"container_path":"/out","host_path":"'$dir'"}]},"sandbox_config":'"$pod"'}' | jget container_id)
		[ -n "$c" ] && cri StartContainer '{"container_id":"'$c'"}' >/dev/null || { echo "container $n failed"; pod_gone "$s"; return 1; }
	done
	until_ok test -s "$dir/b" || { pod_gone "$s"; return 1; }
	sleep 2
	cri StopPodSandbox '{"pod_sandbox_id":"'$s'"}' >/dev/null || { echo "StopPodSandbox failed"; pod_gone "$s"; return 1; }
	local bad=""
	for n in a b c d; do
		last=$(tail -n 1 "$dir/$n")
		grep -q " stdout [FP] $last-x" "$W/logs/tl/$n.log" ||
			bad="$bad $n: '$last' (the log ends '$(tail -n 1 "$W/logs/tl/$n.log" | cut -c1-120)', $(wc -l <"$W/logs/tl/$n.log") lines, the file $(wc -l <"$dir/$n"));"
	done
	pod_gone "$s"
	until_ok no_vm "$s" || return 1
	[ -z "$bad" ] || { echo "lost at stop:$bad $(grep -c 'Failed to pipe' "$W/containerd.log") 'Failed to pipe' in containerd's log"; return 1; }
}

test_cri_host_namespaces() {
	# The node's network and IPC namespaces cannot reach into a VM: such pods fail,
	# and the error names what they asked for; nothing is left. hostPID gives the
	# VM's PID namespace: PID 1 is the guest's agent, not the container.
	local out s c comm
	out=$(cri RunPodSandbox '{"config":{"metadata":{"name":"hn","uid":"u-hn","namespace":"default"},"linux":{"security_context":{"namespace_options":{"network":"NODE"}}}},"runtime_handler":"hull"}' 2>&1)
	echo "$out" | grep -q "hostNetwork (no network namespace in linux.namespaces)" ||
		{ echo "a hostNetwork pod: $out"; return 1; }
	out=$(cri RunPodSandbox '{"config":{"metadata":{"name":"hi","uid":"u-hi","namespace":"default"},"linux":{"security_context":{"namespace_options":{"ipc":"NODE"}}}},"runtime_handler":"hull"}' 2>&1)
	echo "$out" | grep -q "hostIPC (no ipc namespace in linux.namespaces)" ||
		{ echo "a hostIPC pod: $out"; return 1; }
	[ "$(qemus)" = 0 ] || { echo "$(qemus) QEMU left by refused pods"; return 1; }
	mkdir -p "$W/logs/hp"
	local pod='{"metadata":{"name":"hp","uid":"u-hp","namespace":"default"},"log_directory":"'$W/logs/hp'","linux":{"security_context":{"namespace_options":{"pid":"NODE"}}}}'
	s=$(cri RunPodSandbox '{"config":'"$pod"',"runtime_handler":"hull"}' 2>&1 | tee "$T/run" | jget pod_sandbox_id) &&
		[ -n "$s" ] || { echo "a hostPID pod failed: $(cat "$T/run")"; return 1; }
	c=$(cri CreateContainer '{"pod_sandbox_id":"'$s'","config":{"metadata":{"name":"c"},"image":{"image":"'$BB'"},"command":["sleep","600"],"log_path":"c.log","linux":{"security_context":{"namespace_options":{"pid":"NODE"}}}},"sandbox_config":'"$pod"'}' | jget container_id)
	[ -n "$c" ] && cri StartContainer '{"container_id":"'$c'"}' >/dev/null &&
		comm=$(cri ExecSync '{"container_id":"'$c'","cmd":["cat","/proc/1/comm"],"timeout":60}' | jget stdout | b64)
	pod_gone "$s"
	until_ok no_vm "$s" || return 1
	[ -n "$comm" ] && [ "$comm" != sleep ] || { echo "PID 1 of a hostPID container: '$comm'"; return 1; }
}

# ---- faults ---------------------------------------------------------------------------

test_fault_qemu_killed() {
	$CTR run -d --runtime io.containerd.hull.v2 $BB fq sleep 600 || return 1
	pkill -9 -f -- "$HULL_STATE_DIR/" || { echo "no QEMU to kill"; return 1; }
	until_ok status_is fq STOPPED || return 1
	$CTR task delete fq >/dev/null 2>&1 || { echo "task delete failed"; return 1; }
	$CTR container rm fq
}

test_fault_containerd_restart() {
	local out
	$CTR run -d --runtime io.containerd.hull.v2 $BB cr sleep 600 || return 1
	ctd_stop
	pgrep -f -- "$HULL_STATE_DIR/" >/dev/null || { echo "the VM died with containerd"; return 1; }
	ctd_start || return 1
	until_ok status_is cr RUNNING || { echo "after restart: $($CTR task ls)"; return 1; }
	out=$($CTR task exec --exec-id after cr echo still-here 2>&1)
	[ "$out" = still-here ] || { echo "exec after restart: $out"; return 1; }
	$CTR task kill -s KILL cr
	until_ok status_is cr STOPPED || return 1
	$CTR task delete cr >/dev/null && $CTR container rm cr
}

test_fault_shim_killed() {
	$CTR run -d --runtime io.containerd.hull.v2 $BB sk sleep 600 || return 1
	pkill -9 -f -- "-address $SOCK.*-id sk " || { echo "no shim to kill"; return 1; }
	# containerd sees the shim go, runs `shim delete`, and the task is gone or stopped.
	until_ok sh -c "! $CTR task ls | grep -q '^sk .*RUNNING'" || return 1
	$CTR task delete sk >/dev/null 2>&1
	$CTR container rm sk
	[ "$(qemus)" = 0 ] || { echo "the VM outlived its shim"; return 1; }
}

# ---- main -------------------------------------------------------------------------------

ctd_start || { echo "not ok - containerd_start: $(tail -3 "$W/containerd.log")"; exit 1; }
for ns in default k8s.io; do
	for img in images/busybox tests/images/pause; do
		$CTR -n $ns images import "$BUILD/$img.tar" >/dev/null 2>>"$W/import.err" ||
			{ echo "not ok - image_import: $(cat "$W/import.err")"; exit 1; }
	done
done
for t in $TESTS; do
	run_test "$t"
done
