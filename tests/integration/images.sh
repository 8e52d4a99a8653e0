#!/usr/bin/env bash
# Images: the store, hull load (OCI archive, OCI layout, docker archive), hull run
# IMAGE with the image's config, hostile layers and blobs, rmi/prune. Each test gets
# its own store ($HULL_IMAGE_ROOT) and checks afterwards that nothing of the store is
# left half-made (tmp/ empty) and that no QEMU or sandbox state survived.
#   ok - NAME | not ok - NAME: why | skip - NAME: why
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
HULL=$BUILD/hull
PY=/usr/bin/python3
MKIMAGE="$PY $top/scripts/mkimage-oci.py"
ROOTFS=$BUILD/rootfs-demo
only=${HULL_TEST_FILTER:-}
work=$(mktemp -d /tmp/hull-img.XXXXXX)
export HULL_STATE_DIR=$work/state
mkdir -p "$HULL_STATE_DIR"
OUTSIDE=$work/outside # what hostile layers aim at
mkdir -p "$OUTSIDE"
trap 'pkill -9 -f -- "$HULL_STATE_DIR" 2>/dev/null; pkill -f -- "$work/" 2>/dev/null; rm -rf "$work"' EXIT

"$PY" "$top/tests/tools/mklayers.py" "$work/layers" "$OUTSIDE" ||
	{ echo "not ok - make_layers: mklayers.py failed"; exit 1; }

. "$top/tests/integration/lib.sh"

leaks() {
	wait_gone "$HULL_STATE_DIR" || { echo "QEMU left"; pkill -9 -f -- "$HULL_STATE_DIR"; }
	[ -z "$(state_left "$HULL_STATE_DIR")" ] || { echo "state left: $(state_left "$HULL_STATE_DIR")"; rm -rf "${HULL_STATE_DIR:?}"/*; }
	[ -z "$(ls -A "$HULL_IMAGE_ROOT/tmp" 2>/dev/null)" ] || echo "store tmp/ left: $(ls "$HULL_IMAGE_ROOT/tmp")"
	[ -z "$(ls -A "$OUTSIDE")" ] || echo "written outside the store: $(ls -A "$OUTSIDE")"
}

# Each test gets its own store.
before_test() { export HULL_IMAGE_ROOT=$T/store; }

# run hull; stdout, stderr, status in $T/{out,err,rc}
h() {
	"$HULL" "$@" >"$T/out" 2>"$T/err" </dev/null
	echo $? >"$T/rc"
}
want_rc() { [ "$(cat "$T/rc")" = "$1" ] || { echo "hull $*: status $(cat "$T/rc"), want $1: $(head -c 500 "$T/err")"; return 1; }; }
want_out() { [ "$(cat "$T/out")" = "$1" ] || { echo "stdout '$(head -c 300 "$T/out")', want '$1'"; return 1; }; }
want_err() { grep -qF -- "$1" "$T/err" || { echo "stderr lacks '$1': $(head -c 500 "$T/err")"; return 1; }; }
names() { "$HULL" images -q 2>/dev/null | tr '\n' ' '; }
prepared() { find "$HULL_IMAGE_ROOT/rootfs" "$HULL_IMAGE_ROOT/layers" -mindepth 1 -maxdepth 1 2>/dev/null; }

# ---- tests ----------------------------------------------------------------------------

test_builtin_busybox() {
	# An empty store: the image make built is loaded on first use.
	h run busybox -- sh -c 'cat /etc/hostname; echo $PATH'
	want_rc 0 && want_out $'hull-demo\n/usr/sbin:/usr/bin:/sbin:/bin' || return 1
	[ "$(names)" = "docker.io/library/busybox:latest " ] || { echo "images: $(names)"; return 1; }
	# The same image by its other spellings.
	h run docker.io/library/busybox -- true && want_rc 0 || return 1
	h run library/busybox:latest -- true && want_rc 0
}

test_image_config() {
	$MKIMAGE "$ROOTFS" "$T/cfg.tar" example.com/t/cfg:1 --entrypoint sh -c --cmd 'echo "$(id -u):$(id -g) $(pwd) $GREETING"' \
		--env PATH=/bin GREETING=hello --workdir /tmp --user nobody --stop-signal SIGQUIT || return 1
	h load -i "$T/cfg.tar" && want_rc 0 && want_out "Loaded image: example.com/t/cfg:1" || return 1
	# Entrypoint + Cmd, Env, WorkingDir and User (a name from the image's /etc/passwd).
	h run example.com/t/cfg:1 && want_rc 0 && want_out "65534:65534 /tmp hello" || return 1
	# A CMD replaces Cmd; -e, -w and -u win over the image.
	h run -e GREETING=hi -w / -u 1000:1000 example.com/t/cfg:1 -- 'echo "$(id -u) $(pwd) $GREETING"'
	want_rc 0 && want_out "1000 / hi" || return 1
	# --entrypoint replaces Entrypoint and drops Cmd.
	h run --entrypoint echo example.com/t/cfg:1 plain && want_rc 0 && want_out "plain" || return 1
	h image inspect example.com/t/cfg:1 && want_rc 0 || return 1
	grep -q '"stop_signal":"SIGQUIT"' "$T/out" && grep -q '"user":"nobody"' "$T/out" ||
		{ echo "inspect: $(tr -d '\n ' <"$T/out")"; return 1; }
}

test_load_formats() {
	command -v skopeo >/dev/null || { echo "skopeo is not installed (make deps)"; return 77; }
	local src=$BUILD/images/busybox.tar
	skopeo copy -q "oci-archive:$src" "docker-archive:$T/docker.tar:example.com/dock/bb:v1" &&
		skopeo copy -q "oci-archive:$src" "oci:$T/layout:example.com/lay/bb:v2" ||
		{ echo "skopeo failed"; return 1; }
	h load -i "$T/docker.tar" && want_rc 0 && want_out "Loaded image: example.com/dock/bb:v1" || return 1
	h load -i "$T/layout" && want_rc 0 && want_out "Loaded image: example.com/lay/bb:v2" || return 1
	h run example.com/dock/bb:v1 -- echo from-docker-archive && want_rc 0 && want_out from-docker-archive || return 1
	h run example.com/lay/bb:v2 -- echo from-layout && want_rc 0 && want_out from-layout || return 1
	# Loading again changes nothing; a missing file is a clear error.
	h load -i "$T/layout" && want_rc 0 || return 1
	h load -i "$T/nonexistent.tar" && want_rc 125 && want_err "nonexistent.tar': No such file"
}

test_hostile_layers() {
	local l
	declare -A why=(
		[dotdot]="entry '../escaped' climbs out of the image"
		[absolute]="entry '/abs-file' is an absolute path"
		[symlink-file]="goes through symlink 'link', which leads to no directory in the image"
		[hardlink-out]="hard link 'h' points out of the image"
		[hardlink-abs]="hard link 'h' points out of the image"
	)
	for l in "${!why[@]}"; do
		$MKIMAGE "$ROOTFS" "$T/$l.tar" "example.com/bad/$l:1" --layer-tar "$work/layers/$l.tar" || return 1
		h load -i "$T/$l.tar"
		want_rc 125 && want_err "${why[$l]}" || return 1
	done
	# No name for any of them, and nothing half-unpacked.
	[ -z "$(names)" ] || { echo "named after a failed load: $(names)"; return 1; }
	[ -z "$(ls -A "$HULL_IMAGE_ROOT/rootfs")" ] || { echo "rootfs left: $(ls "$HULL_IMAGE_ROOT/rootfs")"; return 1; }
	# A whiteout through a symlink to "/" stays inside the image (it hides the image's
	# /etc), and device nodes of an unprivileged image are skipped.
	$MKIMAGE "$ROOTFS" "$T/wh.tar" example.com/bad/wh:1 --layer-tar "$work/layers/wh-escape.tar" &&
		$MKIMAGE "$ROOTFS" "$T/dev.tar" example.com/bad/dev:1 --layer-tar "$work/layers/devices.tar" || return 1
	h load -i "$T/wh.tar" && want_rc 0 || return 1
	[ -d /etc ] && [ -f /etc/hostname ] || { echo "the host's /etc was touched"; return 1; }
	h load -i "$T/dev.tar" && want_rc 0 || return 1
	# What the container sees, by either way the image reaches the guest.
	local b
	for b in erofs 9p; do
		HULL_IMAGE_BACKEND=$b h run example.com/bad/dev:1 -- ls /devs
		want_rc 0 && want_out plain || { echo "backend $b"; return 1; }
		# A privileged container gets them (from trees and layer images of their own).
		HULL_IMAGE_BACKEND=$b h run --privileged example.com/bad/dev:1 -- sh -c 'ls /devs | tr "\n" " "; test -c /devs/mem2 && echo chr'
		want_rc 0 && want_out "mem2 plain sda9 chr" || { echo "backend $b, privileged"; return 1; }
	done
}

test_whiteouts() {
	$MKIMAGE "$ROOTFS" "$T/wh.tar" example.com/t/wh:1 --layer-tar "$work/layers/base.tar" \
		--layer-tar "$work/layers/whiteouts.tar" || return 1
	h load -i "$T/wh.tar" && want_rc 0 || return 1
	# Applied on the host (9p tree) or by overlayfs in the guest (erofs layers): the same.
	local b
	for b in erofs 9p; do
		HULL_IMAGE_BACKEND=$b h run example.com/t/wh:1 -- sh -c 'cat /keep; test -e /gone && echo gone-still-here; ls /d'
		want_rc 0 && want_out $'keep\nnew' || { echo "backend $b"; return 1; }
	done
	[ "$(ls "$HULL_IMAGE_ROOT/layers" | wc -l)" = 3 ] || { echo "layer images: $(ls "$HULL_IMAGE_ROOT/layers")"; return 1; }
}

# Rewrite the busybox archive with one blob changed by mutate(data) -> data.
tamper() {
	"$PY" - "$BUILD/images/busybox.tar" "$1" "$2" <<'EOF'
import hashlib, io, json, sys, tarfile
src, dst, how = sys.argv[1:4]
blob = b'{"schemaVersion": 2, "pad": "' + b"x" * (5 << 20) + b'"}'
huge = hashlib.sha256(blob).hexdigest()
tin = tarfile.open(src)
index = json.load(tin.extractfile("index.json"))
man_digest = index["manifests"][0]["digest"].split(":")[1]
man = json.load(tin.extractfile("blobs/sha256/" + man_digest))
layer = man["layers"][0]["digest"].split(":")[1]
with tarfile.open(dst, "w") as tout:
    for m in tin.getmembers():
        data = tin.extractfile(m).read() if m.isfile() else None
        if how == "flip" and m.name.endswith(layer):
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        if how == "truncate" and m.name.endswith(layer):
            data = data[: len(data) // 2]
        if how == "huge-manifest" and m.name == "index.json":
            index["manifests"][0].update(digest="sha256:" + huge, size=len(blob))
            data = json.dumps(index).encode()
        m.size = len(data) if data is not None else 0
        tout.addfile(m, io.BytesIO(data) if data is not None else None)
    if how == "huge-manifest":
        ti = tarfile.TarInfo("blobs/sha256/" + huge)
        ti.size = len(blob)
        tout.addfile(ti, io.BytesIO(blob))
EOF
}

test_zstd_layer() {
	command -v zstd >/dev/null || { echo "zstd is not installed (make deps)"; return 77; }
	zstd -q -o "$T/base.tar.zst" "$work/layers/base.tar" || return 1
	$MKIMAGE "$ROOTFS" "$T/z.tar" example.com/t/zstd:1 --layer-tar "$T/base.tar.zst" || return 1
	h load -i "$T/z.tar" && want_rc 0 || return 1
	h image inspect example.com/t/zstd:1 && want_rc 0 || return 1
	h run example.com/t/zstd:1 -- cat /keep && want_rc 0 && want_out keep
}

test_deep_image() {
	# 23 layers: more than microvm's virtio slots hold as disks (the 9p way then);
	# q35 takes them all as disks.
	local i args=()
	for i in $(seq 1 22); do
		"$PY" -c 'import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w")
ti = tarfile.TarInfo("l%s" % sys.argv[2]); data = ("layer %s\n" % sys.argv[2]).encode(); ti.size = len(data)
t.addfile(ti, io.BytesIO(data)); t.close()' "$T/l$i.tar" "$i" || return 1
		args+=(--layer-tar "$T/l$i.tar")
	done
	$MKIMAGE "$ROOTFS" "$T/deep.tar" example.com/t/deep:1 "${args[@]}" && h load -i "$T/deep.tar" && want_rc 0 || return 1
	# The unpacked tree reaches the guest through the sandbox's shared directory.
	h run example.com/t/deep:1 -- sh -c 'cat /l1 /l22; grep -o "lowerdir=/run/hull/shares/hull-shared/job/rootfs" /proc/mounts'
	want_rc 0 && want_out $'layer 1\nlayer 22\nlowerdir=/run/hull/shares/hull-shared/job/rootfs' || { echo "microvm"; return 1; }
	HULL_IMAGE_BACKEND=erofs h run --machine q35 example.com/t/deep:1 -- sh -c 'cat /l22; grep -o "hull-l[0-9]*" /proc/mounts | sort -u | wc -l'
	want_rc 0 && want_out $'layer 22\n23' || { echo "q35"; return 1; }
}

test_bad_blobs() {
	tamper "$T/flip.tar" flip && tamper "$T/trunc.tar" truncate && tamper "$T/huge.tar" huge-manifest || return 1
	h load -i "$T/flip.tar" && want_rc 125 && want_err "its content hashes to sha256:" || return 1
	h load -i "$T/trunc.tar" && want_rc 125 && want_err "fewer" || return 1
	h load -i "$T/huge.tar" && want_rc 125 && want_err "at most" || return 1
	[ -z "$(names)" ] || { echo "named after a failed load: $(names)"; return 1; }
	# The store still works.
	h load -i "$BUILD/images/busybox.tar" && want_rc 0
}

test_many_files_bounded_memory() {
	$MKIMAGE - "$T/many.tar" example.com/t/many:1 --layer-tar "$work/layers/many.tar" --cmd /x || return 1
	# hull load unpacks; its peak RSS must not grow with the number of entries. (The
	# tree: with erofs, mkfs.erofs's own memory would be measured too.)
	HULL_IMAGE_BACKEND=9p "$PY" - "$HULL" "$T/many.tar" <<'EOF' || return 1
import resource, subprocess, sys
p = subprocess.run([sys.argv[1], "load", "-i", sys.argv[2]], capture_output=True, text=True)
if p.returncode != 0:
    sys.exit("load failed: " + p.stderr)
rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
if rss_mib > 64:
    sys.exit(f"hull load of 100000 files peaked at {rss_mib:.0f} MiB")
EOF
	[ "$(find "$HULL_IMAGE_ROOT/rootfs" -path '*/m/*' -type f | wc -l)" -ge 100000 ] ||
		{ echo "not every file was unpacked"; return 1; }
}

test_rmi_and_prune() {
	local before after
	h load -i "$BUILD/images/busybox.tar" && want_rc 0 || return 1
	$MKIMAGE "$ROOTFS" "$T/other.tar" example.com/t/other:1 --env A=1 && h load -i "$T/other.tar" && want_rc 0 || return 1
	before=$(find "$HULL_IMAGE_ROOT/blobs" -type f | wc -l)
	h rmi example.com/t/other:1 && want_rc 0 || return 1
	[ "$(names)" = "docker.io/library/busybox:latest " ] || { echo "images after rmi: $(names)"; return 1; }
	after=$(find "$HULL_IMAGE_ROOT/blobs" -type f | wc -l)
	# other's manifest and config go; the layer it shares with busybox stays.
	[ "$after" = $((before - 2)) ] || { echo "blobs: $before before rmi, $after after"; return 1; }
	# One prepared image left: its tree (9p) or its one layer image (erofs).
	[ "$(prepared | wc -l)" = 1 ] || { echo "prepared: $(prepared | tr '\n' ' ')"; return 1; }
	h rmi example.com/t/nonexistent:1 && want_rc 125 && want_err "example.com/t/nonexistent:1" || return 1
	h run example.com/t/other:1 -- true && want_rc 125 && want_err "no image 'example.com/t/other:1'" || return 1
	h image prune && want_rc 0
}

test_save_roundtrip() {
	$MKIMAGE "$ROOTFS" "$T/two.tar" example.com/t/two:1 --cmd echo two || return 1
	h load -i "$BUILD/images/busybox.tar" && h load -i "$T/two.tar" && want_rc 0 || return 1
	h save -o "$T/out.tar" busybox example.com/t/two:1 && want_rc 0 || return 1
	# What skopeo (and so containerd, docker) reads back.
	if command -v skopeo >/dev/null; then
		skopeo inspect "oci-archive:$T/out.tar:example.com/t/two:1" >/dev/null 2>"$T/sk" ||
			{ echo "skopeo cannot read the archive: $(cat "$T/sk")"; return 1; }
	fi
	h rmi busybox example.com/t/two:1 && want_rc 0 || return 1
	[ -z "$(names)" ] || { echo "images left: $(names)"; return 1; }
	h load -i "$T/out.tar" && want_rc 0 || return 1
	h run example.com/t/two:1 && want_rc 0 && want_out two || return 1
	h save -o "$T/x.tar" example.com/t/nosuch:1 && want_rc 125 && want_err "no image" || return 1
	[ ! -e "$T/x.tar" ] && [ ! -e "$T/x.tar.tmp" ] || { echo "a failed save left a file"; return 1; }
}

test_concurrent_loads() {
	local i pids=()
	for i in 1 2 3 4; do
		"$HULL" load -i "$BUILD/images/busybox.tar" >"$T/o$i" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || { echo "a concurrent load failed: $(cat "$T"/o*)"; return 1; }
	done
	[ "$(names)" = "docker.io/library/busybox:latest " ] || { echo "images: $(names)"; return 1; }
	# One prepared image left: its tree (9p) or its one layer image (erofs).
	[ "$(prepared | wc -l)" = 1 ] || { echo "prepared: $(prepared | tr '\n' ' ')"; return 1; }
	h run busybox -- true && want_rc 0
}

# ---- registries ----------------------------------------------------------------------

push() { skopeo copy -q --dest-tls-verify=false ${CREDS:+--dest-creds "$CREDS"} "$@"; }

test_pull_registry() {
	reg_start || return $?
	local r=127.0.0.1:$REG_PORT digest
	push "oci-archive:$BUILD/images/busybox.tar" "docker://$r/lib/busybox:v1" &&
		$MKIMAGE "$ROOTFS" "$T/multi.tar" example.com/m/bb:1 --arch-too arm64 &&
		push --all "oci-archive:$T/multi.tar" "docker://$r/lib/multi:v1" || { reg_stop; echo "push failed"; return 1; }
	h pull "$r/lib/busybox:v1"
	want_rc 0 && want_out "$r/lib/busybox:v1"$'
'"Digest: $(sed -n 2p "$T/out" | cut -d' ' -f2)" || { reg_stop; return 1; }
	digest=$(sed -n 2p "$T/out" | cut -d' ' -f2)
	h run "$r/lib/busybox:v1" -- echo pulled && want_rc 0 && want_out pulled || { reg_stop; return 1; }
	# By digest: pulled (again, from the store) and runnable by digest.
	h pull -q "$r/lib/busybox@$digest" && want_rc 0 && want_out "$digest" || { reg_stop; return 1; }
	h run "$r/lib/busybox@$digest" -- true && want_rc 0 || { reg_stop; return 1; }
	# A multi-platform index resolves to linux/amd64; a platform it lacks is an error.
	h pull "$r/lib/multi:v1" && want_rc 0 || { reg_stop; return 1; }
	h image inspect "$r/lib/multi:v1" && grep -q '"architecture":"amd64"' "$T/out" ||
		{ reg_stop; echo "multi-arch inspect: $(tr -d '
 ' <"$T/out")"; return 1; }
	h pull --platform linux/s390x "$r/lib/multi:v1" && want_rc 125 && want_err "no linux/s390x image" || { reg_stop; return 1; }
	h pull "$r/lib/nosuch:v1" && want_rc 125 && want_err "not found (404)" || { reg_stop; return 1; }
	# Four pulls of one image at once: one download per blob, one image.
	rm -rf "$HULL_IMAGE_ROOT"
	local i pids=()
	for i in 1 2 3 4; do
		"$HULL" pull -q "$r/lib/busybox:v1" >"$T/p$i" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || { reg_stop; echo "a concurrent pull failed: $(cat "$T"/p*)"; return 1; }; done
	reg_stop
	[ "$(names)" = "$r/lib/busybox:v1 " ] || { echo "images: $(names)"; return 1; }
}

test_pull_auth() {
	reg_start htpasswd || return $?
	local r=127.0.0.1:$REG_PORT
	CREDS=alice:secret push "oci-archive:$BUILD/images/busybox.tar" "docker://$r/priv/bb:v1" ||
		{ reg_stop; echo "push failed"; return 1; }
	h pull "$r/priv/bb:v1" && want_rc 125 && want_err "access denied (401)" || { reg_stop; return 1; }
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$r" "$(printf alice:secret | base64)" >"$T/auth.json"
	REGISTRY_AUTH_FILE=$T/auth.json h pull "$r/priv/bb:v1"
	want_rc 0 || { reg_stop; return 1; }
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$r" "$(printf alice:wrong | base64)" >"$T/bad.json"
	rm -rf "$HULL_IMAGE_ROOT"
	REGISTRY_AUTH_FILE=$T/bad.json h pull "$r/priv/bb:v1"
	reg_stop
	want_rc 125 && want_err "the credentials were refused"
}

# The fake registry (tests/tools/fake-registry.py) misbehaving on purpose.
fake() {
	rm -f "$T/fake.port"
	"$PY" "$top/tests/tools/fake-registry.py" "$BUILD/images/busybox.tar" "$1" "$T/fake.port" &
	FAKE_PID=$!
	local i
	for i in $(seq 1 100); do [ -s "$T/fake.port" ] && break; sleep 0.1; done
	FAKE=127.0.0.1:$(cat "$T/fake.port")
}
fake_stop() { kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" 2>/dev/null; }

test_pull_faults() {
	# The connection drops halfway through a layer: the pull resumes with Range.
	fake drop-once
	h pull "$FAKE/x/bb:1"
	fake_stop
	want_rc 0 || return 1
	grep -q '^range [1-9]' "$T/fake.port.log" || { echo "no resumed fetch: $(cat "$T/fake.port.log" 2>&1)"; return 1; }
	rm -rf "$HULL_IMAGE_ROOT"
	fake 500
	h pull "$FAKE/x/bb:1"
	fake_stop
	want_rc 125 && want_err "the registry answered 500" || return 1
	fake hang
	h pull --timeout 2s "$FAKE/x/bb:1"
	fake_stop
	want_rc 125 && want_err "Timeout was reached" || return 1
	fake bad-blob
	h pull "$FAKE/x/bb:1"
	fake_stop
	want_rc 125 && want_err "its content hashes to" || return 1
	[ -z "$(names)" ] || { echo "named after a failed pull: $(names)"; return 1; }
	fake bearer
	printf '{"auths":{"%s":{"auth":"%s"}}}' "$FAKE" "$(printf alice:secret | base64)" >"$T/auth.json"
	h pull "$FAKE/x/bb:1" && want_rc 125 && want_err "registry token" || { fake_stop; return 1; }
	REGISTRY_AUTH_FILE=$T/auth.json h pull "$FAKE/x/bb:1"
	fake_stop
	want_rc 0 || return 1
	h image prune && want_rc 0
}

for f in "$HULL" "$BUILD/images/busybox.tar" "$BUILD/guest/vmlinuz"; do
	[ -e "$f" ] || { echo "not ok - prerequisites: $f missing (make)"; exit 1; }
done
for t in builtin_busybox image_config load_formats hostile_layers whiteouts bad_blobs \
	zstd_layer deep_image many_files_bounded_memory rmi_and_prune save_roundtrip concurrent_loads pull_registry pull_auth \
	pull_faults; do
	run_test "$t"
done
