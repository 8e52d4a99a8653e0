#!/usr/bin/env bash
# mkrootfs-demo.sh DIR: a tiny rootfs from Debian's busybox-static, for the README demo
# and the integration tests (no registry needed).
set -euo pipefail
dir=$1
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkrootfs-demo: '$bb' missing (make deps installs busybox-static)" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' ||
	{ echo "mkrootfs-demo: '$bb' is not static" >&2; exit 1; }
tmp=$(mktemp -d "$(dirname "$dir")/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var/tmp,run,mnt}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
install -m 0755 "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] && continue
	[ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$tmp/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$tmp/etc/group"
echo hull-demo > "$tmp/etc/hostname"
chmod 0755 "$tmp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
touch "$dir/.stamp"
