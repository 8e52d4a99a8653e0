#!/usr/bin/env bash
# mkinitramfs.sh AGENT OUT: an uncompressed newc initramfs whose /init is the static
# agent. Uncompressed because unpacking beats gunzip under TCG for a ~1 MB image.
# No /dev/console node is needed (the agent opens the console after mounting
# devtmpfs), so this runs without root.
set -euo pipefail
agent=$1 out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp}
install -m 0755 "$agent" "$stage/init"
if [ -n "${HULL_DEBUG_BUSYBOX:-}" ]; then
	# Debug console only when asked for: busybox for poking around a guest.
	install -D -m 0755 /bin/busybox "$stage/bin/busybox"
fi
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
