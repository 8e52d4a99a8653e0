#!/usr/bin/env bash
# ctd-config.sh DIR: a private containerd configuration in DIR/config.toml (root,
# state and sockets under DIR; CRI with runtime handlers "runc", "hull" (reading
# DIR/shim.toml) and "hull-cold" (DIR/shim-cold.toml: no templates)) for the containerd tests and the pod benchmark. Pods
# with their own network get it from DIR/cni/10-hullpods.conflist: Debian's bridge and
# host-local plugins, IPv4 and IPv6, on a bridge named in DIR/cni/bridge.
set -eu
W=$1
mkdir -p "$W/cni"
n=$(printf %s "$W" | cksum | cut -d' ' -f1)
br=hullc$((n % 100000)) sub=$((n % 250))
echo "$br" >"$W/cni/bridge"
cat >"$W/cni/10-hullpods.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "hullpods", "plugins": [
  {"type": "bridge", "bridge": "$br", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$W/ipam",
            "ranges": [[{"subnet": "10.215.$sub.0/24"}], [{"subnet": "fd13:215:$sub::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}
EOT
cat >"$W/config.toml" <<EOT
version = 2
root = "$W/root"
state = "$W/state"
[grpc]
  address = "$W/c.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "hull.test/pause:1"
  # This host's root lacks CAP_SYS_RESOURCE (see ../shared/notes).
  restrict_oom_score_adj = true
  # Exec and port-forward URLs (CRI streaming) on loopback, a port of the kernel's.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull]
      runtime_type = "io.containerd.hull.v2"
      # The pod annotation that narrows a pod's template domain (docs/templates.md).
      pod_annotations = ["io.hull.template-domain"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull.options]
        ConfigPath = "$W/shim.toml"
    # The same shim booting every VM (template = false), for the pod benchmark.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull-cold]
      runtime_type = "io.containerd.hull.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull-cold.options]
        ConfigPath = "$W/shim-cold.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni"
EOT
printf '# written by tests/tools/ctd-config.sh\nmemory = "256M"\nboot_timeout = "60s"\n' >"$W/shim.toml"
printf '# written by tests/tools/ctd-config.sh\nmemory = "256M"\nboot_timeout = "60s"\ntemplate = false\n' >"$W/shim-cold.toml"
