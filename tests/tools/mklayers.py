#!/usr/bin/env python3
"""mklayers.py OUTDIR: layer tars for the image tests. Hostile ones (each must be
refused with a clear error, or made harmless, and write nothing outside the store) and
well-formed ones whose whiteouts must apply:

  dotdot.tar        "../escaped"
  absolute.tar      "/abs-file"
  symlink-file.tar  a symlink to a host directory, then a file written through it
  hardlink-out.tar  a hard link to "../../../../etc/passwd"
  hardlink-abs.tar  a hard link to "/etc/passwd"
  wh-escape.tar     a symlink to "/", then a whiteout through it for "etc"
  devices.tar       a character and a block device, beside a normal file
  base.tar          files, a dir with two files
  whiteouts.tar     removes base's file, makes its dir opaque and adds one file
  many.tar          N tiny files (N from $MANY_FILES, default 100000)
Every layer holds the file OUTSIDE is the host path a hostile layer aims at."""
import io
import os
import sys
import tarfile

out = sys.argv[1]
outside = sys.argv[2] if len(sys.argv) > 2 else "/tmp/hull-outside"
os.makedirs(out, exist_ok=True)


def layer(name, entries):
    with tarfile.open(os.path.join(out, name), "w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.mtime = 0
            data = e.get("data")
            if e.get("type") == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif e.get("type") == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e["target"]
            elif e.get("type") == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e["target"]
            elif e.get("type") in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if e["type"] == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = 1, 3
            else:
                data = data if data is not None else b"x\n"
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)


layer("dotdot.tar", [{"name": "../escaped", "data": b"escaped\n"}])
layer("absolute.tar", [{"name": "/abs-file"}])
layer("symlink-file.tar", [{"name": "link", "type": "symlink", "target": outside},
                           {"name": "link/pwned", "data": b"pwned\n"}])
layer("hardlink-out.tar", [{"name": "h", "type": "hardlink", "target": "../../../../etc/passwd"}])
layer("hardlink-abs.tar", [{"name": "h", "type": "hardlink", "target": "/etc/passwd"}])
layer("wh-escape.tar", [{"name": "root", "type": "symlink", "target": "/"},
                        {"name": "root/.wh.etc"}])
layer("devices.tar", [{"name": "devs", "type": "dir"}, {"name": "devs/mem2", "type": "chr"},
                      {"name": "devs/sda9", "type": "blk"}, {"name": "devs/plain", "data": b"plain\n"}])
layer("base.tar", [{"name": "keep", "data": b"keep\n"}, {"name": "gone", "data": b"gone\n"},
                   {"name": "d", "type": "dir"}, {"name": "d/old1"}, {"name": "d/old2"}])
layer("whiteouts.tar", [{"name": ".wh.gone"}, {"name": "d", "type": "dir"},
                        {"name": "d/.wh..wh..opq"}, {"name": "d/new", "data": b"new\n"}])
n = int(os.environ.get("MANY_FILES", "100000"))
with tarfile.open(os.path.join(out, "many.tar"), "w", format=tarfile.GNU_FORMAT) as t:
    for i in range(n):
        ti = tarfile.TarInfo("m/%03d/%d" % (i % 997, i))
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"."))
