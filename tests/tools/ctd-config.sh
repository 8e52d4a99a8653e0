#!/usr/bin/env bash
# ctd-config.sh DIR: a private containerd configuration in DIR/config.toml (root,
# state and sockets under DIR; CRI with runtime handlers "runc" and "hull", the hull
# handler reading DIR/shim.toml) for the containerd tests and the pod benchmark.
set -eu
W=$1
mkdir -p "$W"
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
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull]
      runtime_type = "io.containerd.hull.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.hull.options]
        ConfigPath = "$W/shim.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$W/cni-bin"
    conf_dir = "$W/cni"
EOT
printf '# written by tests/tools/ctd-config.sh\nmemory = "256M"\nboot_timeout = "60s"\n' >"$W/shim.toml"
