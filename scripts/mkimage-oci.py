#!/usr/bin/env python3
"""mkimage-oci.py ROOTFS OUT.tar NAME [--cmd ARG...] [--entrypoint ARG...]
                  [--env K=V]... [--workdir DIR] [--user U] [--stop-signal SIG]
                  [--layer-tar FILE]... [--arch-too ARCH]

An OCI image archive (an OCI image layout in a tar: what `ctr images import`, `hull
load` and `skopeo copy oci-archive:` read) with ROOTFS as its gzip layer (ROOTFS "-":
no directory layer), then each --layer-tar FILE as a further layer as it is (the tests
use this for hostile layers; a FILE ending in .zst is a zstd-compressed tar). --arch-too ARCH makes it a multi-platform image: an
index of the linux/amd64 image and a linux/ARCH one (same layers, its own config).
Deterministic: same input, same digests."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def tar_of_dir(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for n in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, n)
                rel = os.path.relpath(full, rootfs)
                if rel == ".stamp":
                    continue
                ti = t.gettarinfo(full, arcname=rel)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = 0
                if ti.isfile():
                    with open(full, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti)
    return buf.getvalue()


def gz(raw):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(raw)
    return out.getvalue()


def parse(argv):
    opts = {"cmd": None, "entrypoint": None, "env": [], "workdir": None, "user": None,
            "stop-signal": None, "layer-tar": [], "arch-too": None}
    key = None
    for a in argv:
        if a.startswith("--") and a[2:] in opts:
            key = a[2:]
            if key in ("cmd", "entrypoint"):
                opts[key] = []
            continue
        if key in ("cmd", "entrypoint"):
            opts[key].append(a)
        elif key in ("env", "layer-tar"):
            opts[key].append(a)
        elif key:
            opts[key] = a
        else:
            sys.exit(__doc__)
    return opts


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rootfs, out, name = sys.argv[1:4]
    o = parse(sys.argv[4:])
    layers = []  # (raw tar, blob, media type)
    if rootfs != "-":
        raw = tar_of_dir(rootfs)
        layers.append((raw, gz(raw), "application/vnd.oci.image.layer.v1.tar+gzip"))
    for path in o["layer-tar"]:
        with open(path, "rb") as f:
            blob = f.read()
        if path.endswith(".zst"):
            # A zstd layer: its diff_id is the digest of the tar inside.
            import subprocess
            raw = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
            layers.append((raw, blob, "application/vnd.oci.image.layer.v1.tar+zstd"))
        else:
            layers.append((blob, blob, "application/vnd.oci.image.layer.v1.tar"))
    cfg = {"Env": o["env"] or ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}
    if o["cmd"] is not None or (o["entrypoint"] is None):
        cfg["Cmd"] = o["cmd"] if o["cmd"] is not None else ["sh"]
    if o["entrypoint"] is not None:
        cfg["Entrypoint"] = o["entrypoint"]
    for k, field in (("workdir", "WorkingDir"), ("user", "User"), ("stop-signal", "StopSignal")):
        if o[k]:
            cfg[field] = o[k]
    blobs = {}

    def blob(data, mt):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}
    layer_descs = [blob(b, mt) for _, b, mt in layers]

    def image(arch):
        config = json.dumps({
            "architecture": arch, "os": "linux", "config": cfg,
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest() for raw, _, _ in layers]},
        }, sort_keys=True).encode()
        cfg_desc = blob(config, "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2,
                               "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": cfg_desc, "layers": layer_descs}, sort_keys=True).encode()
        d = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        d["platform"] = {"architecture": arch, "os": "linux"}
        return d
    top = image("amd64")
    if o["arch-too"]:
        entries = [top, image(o["arch-too"])]
        idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": entries}, sort_keys=True).encode()
        top = blob(idx, "application/vnd.oci.image.index.v1+json")
    top["annotations"] = {"io.containerd.image.name": name,
                          "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
    index = json.dumps({"schemaVersion": 2, "manifests": [top]}, sort_keys=True).encode()
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as t:
        def add(path, data):
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for d, data in sorted(blobs.items()):
            add("blobs/sha256/" + d, data)
    os.replace(tmp, out)


main()
