#!/usr/bin/env bash
# Print hull's benchmark figures (medians, and ratios to their floors). Nothing here
# asserts: the numbers are for people. BENCH_RUNS sets the sample count (default 5).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
python3 "$top/bench/bench.py" "$top" "$@"
# Images: pull from a loopback registry beside skopeo; reads from an image's rootfs.
if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
	/usr/bin/python3 "$top/bench/images.py" "$top"
else
	echo "images   skipped: docker-registry or skopeo missing (make deps)"
fi
# Pods through containerd (hull beside runc): needs containerd, root and python3-grpcio.
if ! command -v containerd >/dev/null; then
	echo "pods     skipped: containerd is not installed (make deps)"
elif [ "$(id -u)" != 0 ]; then
	echo "pods     skipped: containerd's CRI plugin needs root"
elif ! /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
	echo "pods     skipped: python3-grpcio missing (make deps)"
else
	/usr/bin/python3 "$top/bench/pods.py" "$top"
	# The same pods through hull-cri, beside containerd + shim.
	/usr/bin/python3 "$top/bench/cri.py" "$top"
fi
# Networking: host <-> pod VM beside host <-> plain namespace (root: namespaces, taps).
/usr/bin/python3 "$top/bench/net.py" "$top"
