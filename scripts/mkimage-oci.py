#!/usr/bin/env python3
"""mkimage-oci.py ROOTFS OUT.tar NAME [--cmd ARG...]: an OCI image archive (an OCI
image layout in a tar, what `ctr images import` and `skopeo copy oci-archive:` read)
with ROOTFS as its single gzip layer. Deterministic: same tree, same digests."""
import gzip, hashlib, io, json, os, sys, tarfile

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rootfs, out, name = sys.argv[1:4]
    cmd = ["sh"]
    if len(sys.argv) > 4 and sys.argv[4] == "--cmd":
        cmd = sys.argv[5:]
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as t:
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
    raw = layer_tar.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(raw)
    layer = gz.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    blobs = {}
    def blob(data, mt):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return {"mediaType": mt, "digest": "sha256:" + d, "size": len(data)}
    cfg_desc = blob(config, "application/vnd.oci.image.config.v1+json")
    layer_desc = blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg_desc, "layers": [layer_desc]}, sort_keys=True).encode()
    man_desc = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
    man_desc["annotations"] = {"io.containerd.image.name": name,
                               "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
    man_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = json.dumps({"schemaVersion": 2, "manifests": [man_desc]}, sort_keys=True).encode()
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
