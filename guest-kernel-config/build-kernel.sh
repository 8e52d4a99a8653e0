#!/usr/bin/env bash
# Build hull's guest kernel from Debian's linux-source-6.1: tinyconfig plus the
# fragments beside this script, monolithic, cached outside the tree.
#
#   build-kernel.sh OUT      -> OUT is a copy of the cached bzImage
#   build-kernel.sh --key    -> print the cache key and exit
#
# The cache lives in $HULL_KERNEL_CACHE (default: $XDG_CACHE_HOME/hull/kernel or
# ~/.cache/hull/kernel) under a key made of the fragments, this script and the
# source package's version, so a second `make` (and CI on the same machine) does not
# rebuild; a changed fragment does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src_tar=${HULL_KERNEL_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${HULL_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hull/kernel}

die() { echo "build-kernel: $*" >&2; exit 1; }

[ -r "$src_tar" ] || die "kernel source '$src_tar' not found (make deps installs linux-source-6.1)"
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$src_tar")
key=$( { cat "$here"/*.config "$here/build-kernel.sh"; echo "$src_ver"; } | sha256sum | cut -c1-16)

if [ "${1:-}" = "--key" ]; then echo "$key"; exit 0; fi
out=${1:?usage: build-kernel.sh OUT | --key}

entry="$cache/$key"
if [ -s "$entry/bzImage" ]; then
	cp "$entry/bzImage" "$out.tmp" && mv "$out.tmp" "$out"
	echo "build-kernel: cached kernel $key"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: building guest kernel $key (takes ~9 min on 2 cores; cached afterwards)"
tar -xf "$src_tar" -C "$work"
ksrc=$(echo "$work"/linux-source-*)
kmake() { make -C "$ksrc" ARCH=x86_64 -j"$(nproc)" "$@"; }
kmake -s tinyconfig
"$ksrc/scripts/kconfig/merge_config.sh" -m -O "$ksrc" "$ksrc/.config" "$here"/*.config >/dev/null
kmake -s olddefconfig

# merge_config only warns when a symbol did not survive its dependencies: check each
# requested setting and fail loudly instead of shipping a kernel that lacks it.
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" "$ksrc/.config" || { echo "build-kernel: '$line' did not take" >&2; missing=1; } ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		if grep -q "^$sym=" "$ksrc/.config"; then echo "build-kernel: '$sym' should be unset" >&2; missing=1; fi ;;
	esac
done < <(cat "$here"/*.config)
[ "$missing" = 0 ] || die "kernel configuration incomplete"

kmake -s bzImage
mkdir -p "$entry.new"
cp "$ksrc/arch/x86/boot/bzImage" "$entry.new/bzImage"
cp "$ksrc/.config" "$entry.new/config"
rm -rf "$entry" && mv "$entry.new" "$entry"
cp "$entry/bzImage" "$out.tmp" && mv "$out.tmp" "$out"
echo "build-kernel: built $key"
