#!/usr/bin/env bash
# Networking with real parts: network namespaces, veth and a Linux bridge made here,
# Debian's CNI plugins (bridge + host-local, IPv4 and IPv6), real QEMU. hull run joins
# a namespace (--net=ns:PATH) or makes its own with a CNI network (--net=cni:NAME).
# Prints one line per test:  ok - NAME | not ok - NAME: why | skip - NAME: why
# After every test: no QEMU, no state, no tap or tc filter left, no netns, no leased IP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
HULL=$BUILD/hull
ROOTFS=$BUILD/rootfs-demo
only=${HULL_TEST_FILTER:-}
CNI_BIN=/usr/lib/cni
TESTS="ns_join ns_stale_qdisc ns_bad cni_run cni_reach cni_dns cni_publish cni_bad cni_killed_hard"

skip_all() {
	for t in $TESTS; do
		[ -n "$only" ] && [[ $t != *$only* ]] && continue
		echo "skip - $t: $1"
	done
	exit 0
}
[ "$(id -u)" = 0 ] || skip_all "network namespaces and taps need root"
[ -x $CNI_BIN/bridge ] && [ -x $CNI_BIN/host-local ] ||
	skip_all "Debian's containernetworking-plugins missing (make deps)"
command -v ip >/dev/null || skip_all "iproute2 missing"

work=$(mktemp -d /tmp/hull-net.XXXXXX)
export HULL_STATE_DIR=$work/state
export HULL_CNI_CONF_DIR=$work/cni
mkdir -p "$HULL_STATE_DIR" "$HULL_CNI_CONF_DIR"
# Names unique to this run: a bridge, two namespaces, a subnet pair.
id=$(( $$ % 100000 ))
BR=hullbr$id BR2=hullbp$id NS=hullns$id NS2=hullnb$id
NET4=10.213.$(( id % 250 )) NET6=fd13:213:$(( id % 250 ))
IPAM=$work/ipam
cat >"$HULL_CNI_CONF_DIR/10-hulltest.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "hulltest", "plugins": [
  {"type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$IPAM",
            "ranges": [[{"subnet": "$NET4.0/24"}], [{"subnet": "$NET6::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]},
   "dns": {"nameservers": ["$NET4.1"], "search": ["hull.test"]}}]}
EOT
# With portmap (iptables DNAT), for -p.
cat >"$HULL_CNI_CONF_DIR/15-hullpm.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "hullpm", "plugins": [
  {"type": "bridge", "bridge": "$BR2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$IPAM",
            "ranges": [[{"subnet": "10.218.$(( id % 250 )).0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOT
echo '{"cniVersion": "1.0.0", "name": "badtype", "plugins": [{"type": "../../bin/sh"}]}' \
	>"$HULL_CNI_CONF_DIR/30-badtype.conflist"
cat >"$HULL_CNI_CONF_DIR/20-broken.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "broken", "plugins": [
  {"type": "bridge", "bridge": "$BR", "ipam": {"type": "host-local", "dataDir": "$IPAM",
   "ranges": [[{"subnet": "not-a-subnet"}]]}}]}
EOT

cleanup() {
	pkill -9 -f -- "$HULL_STATE_DIR" 2>/dev/null
	[ -n "${dns_pid:-}" ] && kill "$dns_pid" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	ip netns del "$NS2" 2>/dev/null
	ip link del "$BR" 2>/dev/null
	ip link del "$BR2" 2>/dev/null
	ip link del "h$NS" 2>/dev/null
	grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

leaks() {
	local f i
	# A detached sandbox's process tears its network down after `hull rm` returns.
	for i in $(seq 1 100); do
		[ -z "$(state_left "$HULL_STATE_DIR")" ] && break
		sleep 0.1
	done
	if ! wait_gone "$HULL_STATE_DIR"; then
		echo "process left: $(pgrep -af -- "$HULL_STATE_DIR" | head -1)"
		pkill -9 -f -- "$HULL_STATE_DIR"
		return
	fi
	if [ -n "$(state_left "$HULL_STATE_DIR")" ]; then
		echo "state left: $(state_left "$HULL_STATE_DIR" | head -3 | tr '\n' ' ')"
		rm -rf "${HULL_STATE_DIR:?}"/*
	fi
	# Every address host-local leased was released by CNI DEL.
	for f in "$IPAM"/hulltest/*; do
		case ${f##*/} in *.*.*.* | *:*) echo "IP still leased: ${f##*/}"; rm -f "$f" ;; esac
	done
	if ip netns list | grep -q "^$NS"; then
		if ip netns exec "$NS" ip -o link | grep -q hull-tap; then echo "tap left in $NS"; fi
		if ip netns exec "$NS" tc qdisc show | grep -q ingress; then echo "qdisc left in $NS"; fi
	fi
	return 0
}

. "$top/tests/integration/lib.sh"

# The address host-local leased to sandbox $1 (its files are named by IP).
leased_ip() {
	local f
	for f in "$IPAM"/hulltest/$NET4.*; do
		[ "$(tr -d '\r' <"$f" 2>/dev/null | head -1)" = "$1" ] && { echo "${f##*/}"; return 0; }
	done
	return 1
}

# ---- tests ----------------------------------------------------------------------

test_ns_join() {
	# A namespace with a veth made here (as a CNI plugin would): the VM takes its MAC,
	# addresses (v4 and v6) and routes, and reaches the host's end of the veth.
	ip netns add "$NS" || return 1
	ip link add "h$NS" type veth peer name eth0 netns "$NS" &&
		ip addr add 10.214.0.1/24 dev "h$NS" && ip -6 addr add fd13:214::1/64 dev "h$NS" nodad &&
		ip link set "h$NS" up &&
		ip netns exec "$NS" ip addr add 10.214.0.2/24 dev eth0 &&
		ip netns exec "$NS" ip -6 addr add fd13:214::2/64 dev eth0 nodad &&
		ip netns exec "$NS" ip link set eth0 up &&
		ip netns exec "$NS" ip route add default via 10.214.0.1 || return 1
	local mac
	mac=$(ip netns exec "$NS" cat /sys/class/net/eth0/address)
	hrun --net="ns:/run/netns/$NS" -- sh -c 'cat /sys/class/net/eth0/address; ip -o addr show eth0; ip route; ping -c 1 -W 5 10.214.0.1 >/dev/null && echo ping4-ok; ping -c 3 -W 5 fd13:214::1 >/dev/null && echo ping6-ok'
	expect_rc 0 && expect_out_has "$mac" && expect_out_has "inet 10.214.0.2/24" &&
		expect_out_has "inet6 fd13:214::2/64" && expect_out_has "default via 10.214.0.1 dev eth0" &&
		expect_out_has ping4-ok && expect_out_has ping6-ok || return 1
	# The namespace is as it was: no tap, no ingress qdisc (leaks checks), the veth kept.
	ip netns exec "$NS" ip -o addr show eth0 | grep -q "10.214.0.2/24" || { echo "veth lost its address"; return 1; }
	leaks | grep . && return 1
	ip link del "h$NS"
	ip netns del "$NS"
}

test_ns_stale_qdisc() {
	# A sandbox killed before its teardown leaves its ingress qdisc (and redirect) on
	# the namespace's interface: the next attach replaces it, and nothing is left after.
	ip netns add "$NS" || return 1
	ip link add "h$NS" type veth peer name eth0 netns "$NS" && ip link set "h$NS" up &&
		ip netns exec "$NS" ip addr add 10.214.1.2/24 dev eth0 &&
		ip netns exec "$NS" ip link set eth0 up &&
		ip netns exec "$NS" tc qdisc add dev eth0 ingress || return 1
	hrun --net="ns:/run/netns/$NS" -- sh -c 'ip -o addr show eth0'
	expect_rc 0 && expect_out_has "inet 10.214.1.2/24" || return 1
	ip netns exec "$NS" tc qdisc show dev eth0 | grep -q ingress &&
		{ echo "an ingress qdisc is left: $(ip netns exec "$NS" tc qdisc show dev eth0)"; return 1; }
	ip link del "h$NS"
	ip netns del "$NS"
}

test_ns_bad() {
	# Clear errors, nothing made: a path that does not exist, a file that is not a
	# namespace, an interface kind hull cannot carry.
	hrun --net=ns:/nonexistent/netns -- true
	expect_rc 125 && expect_err_has "network namespace '/nonexistent/netns': No such file or directory" || return 1
	hrun --net=ns:/etc/hostname -- true
	expect_rc 125 && expect_err_has "'/etc/hostname' is not a network namespace" || return 1
	ip netns add "$NS" && ip netns exec "$NS" ip tuntap add tun0 mode tun || return 1
	hrun --net="ns:/run/netns/$NS" -- true
	expect_rc 125 && expect_err_has "interface 'tun0' (tun) cannot be connected to a VM" || return 1
	ip netns exec "$NS" ip -o link | grep -q hull-tap && { echo "a tap was left"; return 1; }
	ip netns del "$NS"
	# The host's own namespace would lose its interfaces to the VM: refused.
	hrun --net=ns:/proc/self/ns/net -- true
	expect_rc 125 && expect_err_has "'/proc/self/ns/net' is the host's network namespace" || return 1
	hrun --net=ns:relative -- true
	expect_rc 125 && expect_err_has "want none, user, cni:NAME or ns:/PATH"
}

test_cni_run() {
	# --net=cni: the plugins' address (v4 and v6), routes and DNS, gone after the run.
	hrun --net=cni:hulltest --hostname cni-box -- sh -c 'ip -o addr show eth0; ip route; ip -6 route; cat /etc/resolv.conf /etc/hosts; ping -c 1 -W 5 '$NET4'.1 >/dev/null && echo gw-ok; ping -c 1 -W 5 cni-box >/dev/null && echo self-ok'
	expect_rc 0 && expect_out_has "inet $NET4." && expect_out_has "inet6 $NET6::" &&
		grep -q "^$NET4\.[0-9]*	cni-box$" "$T/out" && expect_out_has self-ok &&
		expect_out_has "default via $NET4.1 dev eth0" && expect_out_has "default via $NET6::1 dev eth0" &&
		expect_out_has "nameserver $NET4.1" && expect_out_has "search hull.test" &&
		expect_out_has gw-ok || return 1
	# The exit code is the job's, with the network torn down all the same.
	hrun --net=cni:hulltest -- sh -c 'exit 7'
	expect_rc 7
}

test_cni_reach() {
	# A server in one VM, reached from the host at its address and from a second VM
	# on the same bridge.
	local name=web$id ip i
	"$HULL" run -d --name "$name" --rootfs "$ROOTFS" --net=cni:hulltest -- \
		sh -c 'mkdir -p /www; echo served-by-vm >/www/x; exec httpd -f -p 8080 -h /www' \
		>"$T/out" 2>"$T/err" </dev/null || { echo "run -d: $(cat "$T/err")"; return 1; }
	ip=$(leased_ip "$name") || { echo "no address leased to $name: $(ls "$IPAM/hulltest")"; "$HULL" rm -f "$name"; return 1; }
	for i in $(seq 1 120); do
		curl -sf --max-time 5 "http://$ip:8080/x" >"$T/got" 2>/dev/null && break
		sleep 0.5
	done
	[ "$(cat "$T/got")" = served-by-vm ] || { echo "host -> $ip: '$(cat "$T/got")'"; "$HULL" rm -f "$name"; return 1; }
	hrun --net=cni:hulltest -- wget -qO- "http://$ip:8080/x"
	"$HULL" rm -f "$name" >/dev/null 2>&1
	expect_rc 0 && expect_out_has served-by-vm
}

test_cni_dns() {
	# Names resolve through the nameserver the CNI result gave (a scripted DNS server
	# on the bridge's gateway address).
	ip link add "$BR" type bridge 2>/dev/null
	ip addr add "$NET4.1/24" dev "$BR" 2>/dev/null
	ip link set "$BR" up
	/usr/bin/python3 "$top/tests/tools/fake-dns.py" "$NET4.1" 53 "$NET4.77" >"$T/dns" 2>&1 &
	dns_pid=$!
	local i
	for i in $(seq 1 50); do grep -q ready "$T/dns" && break; sleep 0.1; done
	hrun --net=cni:hulltest -- nslookup web.hull.test
	kill "$dns_pid"; wait "$dns_pid" 2>/dev/null; dns_pid=
	expect_rc 0 && expect_out_has "$NET4.77"
}

test_cni_publish() {
	# -p with a CNI network: the portmap plugin's DNAT, through the host's loopback;
	# its rules go with the sandbox.
	local name=pub$id port i
	port=$(free_port)
	"$HULL" run -d --name "$name" --rootfs "$ROOTFS" --net=cni:hullpm -p "$port:8080" -- \
		sh -c 'mkdir -p /www; echo published >/www/x; exec httpd -f -p 8080 -h /www' \
		>"$T/out" 2>"$T/err" </dev/null || { echo "run -d: $(cat "$T/err")"; return 1; }
	for i in $(seq 1 120); do
		curl -sf --max-time 5 "http://127.0.0.1:$port/x" >"$T/got" 2>/dev/null && break
		sleep 0.5
	done
	"$HULL" rm -f "$name" >/dev/null 2>&1
	[ "$(cat "$T/got")" = published ] || { echo "127.0.0.1:$port: '$(cat "$T/got")'"; return 1; }
	# The detached process runs DEL after `hull rm` returns: portmap's, then bridge's.
	for i in $(seq 1 100); do
		! iptables-save -t nat | grep -q "$name" && [ -z "$(ls "$IPAM/hullpm" | grep -E '^[0-9]+[.]')" ] && break
		sleep 0.1
	done
	iptables-save -t nat | grep -q "$name" && { echo "DNAT rules left: $(iptables-save -t nat | grep -c "$name")"; return 1; }
	[ -z "$(ls "$IPAM/hullpm" 2>/dev/null | grep -E '^[0-9]+[.]')" ] || { echo "IP still leased: $(ls "$IPAM/hullpm")"; return 1; }
}

test_cni_bad() {
	# An unknown network, a plugin that fails: clear errors, the namespace removed and
	# the plugins' work undone (DEL).
	hrun --net=cni:nosuch -- true
	expect_rc 125 && expect_err_has "no CNI network named 'nosuch' in '$HULL_CNI_CONF_DIR'" || return 1
	hrun --net=cni:badtype -- true
	expect_rc 125 && expect_err_has "30-badtype.conflist': plugins[0].type: want a name" || return 1
	hrun --net=cni:broken -- true
	expect_rc 125 && expect_err_has "--net=cni:broken: CNI plugin 'bridge' (ADD) failed" || return 1
	hrun --net=cni:hulltest -p 8080:80 -- true
	expect_rc 125 && expect_err_has "-p: no plugin of '$HULL_CNI_CONF_DIR/10-hulltest.conflist' takes port mappings"
}

test_cni_killed_hard() {
	# SIGKILL of hull mid-run: no CNI DEL ran. The next sandbox start sweeps it from
	# the record: DEL runs (the IP is released) and the namespace goes.
	local name=killed$id ip i
	"$HULL" run --name "$name" --rootfs "$ROOTFS" --net=cni:hulltest -- sh -c 'echo ready; exec sleep 600' \
		>"$T/out" 2>"$T/err" </dev/null &
	local pid=$!
	for i in $(seq 1 600); do grep -q ready "$T/out" && break; sleep 0.1; done
	ip=$(leased_ip "$name") || { kill -9 $pid; echo "no lease: $(cat "$T/err")"; return 1; }
	kill -9 $pid
	wait $pid 2>/dev/null
	[ -e "$HULL_STATE_DIR/.netns/$name.cni" ] || { echo "no record of the run"; return 1; }
	# A run may sit between ADD and boot: the sweep waits two minutes. Age the record.
	touch -d '-5 min' "$HULL_STATE_DIR/.netns/$name.cni"
	hrun -- true
	expect_rc 0 || return 1
	[ -e "$IPAM/hulltest/$ip" ] && { echo "$ip still leased after the sweep"; return 1; }
	[ -e "$HULL_STATE_DIR/.netns/$name" ] && { echo "namespace left after the sweep"; return 1; }
	return 0
}

for t in $TESTS; do
	run_test "$t"
done
