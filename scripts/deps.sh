#!/usr/bin/env bash
# Install every build and test dependency from Debian's packages. Idempotent: does
# nothing when everything is present.
set -euo pipefail
pkgs=(
	build-essential pkg-config clang libclang-rt-14-dev clang-format
	protobuf-c-compiler libprotobuf-c-dev libjson-c-dev libseccomp-dev libcmocka-dev
	qemu-system-x86 busybox-static cpio file
	linux-source-6.1 flex bison bc libelf-dev libssl-dev xz-utils
	python3 runc containerd python3-grpcio python3-protobuf protobuf-compiler
	libarchive-dev libcurl4-openssl-dev libnghttp2-dev libwslay-dev zlib1g-dev python3-websocket skopeo docker-registry curl erofs-utils zstd
	containernetworking-plugins iproute2 iptables
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
