#!/usr/bin/python3
"""Images: cold pull + first run of a ~30 MiB image from a loopback docker-registry,
beside `skopeo copy` of the same image to a local dir in the same run; warm runs; and,
for both ways an image reaches the guest (erofs layer disks, the unpacked tree over
9p), file-read throughput and a metadata-heavy walk inside the container. Prints
figures; asserts nothing."""
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = sys.argv[1]
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
HULL = os.path.join(BUILD, "hull")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def timed(argv, env):
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {p.stderr[-400:]}")
    return time.monotonic() - t0, p.stdout


def main():
    w = tempfile.mkdtemp(prefix="hull-imgbench.", dir="/tmp")
    env = dict(os.environ, HULL_STATE_DIR=os.path.join(w, "state"))
    reg = None
    try:
        # A ~30 MiB image: busybox plus 30 MiB of incompressible files.
        root = os.path.join(w, "root")
        shutil.copytree(os.path.join(BUILD, "rootfs-demo"), root, symlinks=True)
        os.makedirs(os.path.join(root, "data"))
        for i in range(6):
            with open(os.path.join(root, "data", f"f{i}"), "wb") as f:
                f.write(os.urandom(5 << 20))
        archive = os.path.join(w, "img.tar")
        subprocess.run(["/usr/bin/python3", os.path.join(TOP, "scripts", "mkimage-oci.py"), root, archive,
                        "example.com/bench/img:1"], check=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with open(os.path.join(w, "reg.yml"), "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {w}/reg\n"
                    f"http:\n  addr: 127.0.0.1:{port}\n")
        reg = subprocess.Popen(["docker-registry", "serve", os.path.join(w, "reg.yml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        ref = f"127.0.0.1:{port}/bench/img:1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci-archive:{archive}",
                        f"docker://{ref}"], check=True)
        pulls, skopeos = [], []
        firsts = {"erofs": [], "9p": []}
        warms = {"erofs": [], "9p": []}
        for i in range(RUNS):
            e = dict(env, HULL_IMAGE_ROOT=os.path.join(w, f"store{i}"))
            t, _ = timed([HULL, "pull", "-q", ref], e)
            pulls.append(t)
            for backend in ("erofs", "9p"):
                eb = dict(e, HULL_IMAGE_BACKEND=backend)
                t, _ = timed([HULL, "run", ref, "--", "true"], eb)
                firsts[backend].append(t)
                t, _ = timed([HULL, "run", ref, "--", "true"], eb)
                warms[backend].append(t)
            t, _ = timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                          f"dir:{w}/skopeo{i}"], env)
            skopeos.append(t)
        m = statistics.median
        print(f"images   ~30 MiB image from a loopback registry, n={RUNS}")
        print(f"           hull pull (fetch, verify, unpack)  median {m(pulls) * 1000:7.0f} ms")
        print(f"           skopeo copy to a dir (floor)       median {m(skopeos) * 1000:7.0f} ms   "
              f"ratio {m(pulls) / m(skopeos):.2f}x")
        for backend in ("erofs", "9p"):
            print(f"           [{backend:5}] first run after the pull median {m(firsts[backend]) * 1000:7.0f} ms"
                  f"   warm run {m(warms[backend]) * 1000:5.0f} ms")
        print(f"           cold pull + first run (erofs)      median "
              f"{(m(pulls) + m(firsts['erofs'])) * 1000:7.0f} ms")
        for backend in ("erofs", "9p"):
            print(f"           [{backend:5}] read 30 MiB of image files  median "
                  f"{read_rate(env, w, ref, backend):7.1f} MB/s")
        for backend in ("erofs", "9p"):
            print(f"           [{backend:5}] metadata: 10x find / + ls -lR /bin  median "
                  f"{walk_time(env, w, ref, backend) * 1000:7.0f} ms")
    finally:
        if reg:
            reg.send_signal(signal.SIGTERM)
            reg.wait(timeout=20)
        shutil.rmtree(w, ignore_errors=True)


def walk_time(env, w, ref, backend):
    """Stat- and readdir-heavy work inside the container (what starting real programs
    does), timed with the guest's clock."""
    e = dict(env, HULL_IMAGE_ROOT=os.path.join(w, "store0"), HULL_IMAGE_BACKEND=backend)
    times = []
    for _ in range(RUNS):
        _, out = timed([HULL, "run", ref, "--", "sh", "-c",
                        "a=$(cut -d' ' -f1 /proc/uptime); for i in 1 2 3 4 5 6 7 8 9 10; do "
                        "find / -xdev >/dev/null; ls -lR /bin >/dev/null; done; "
                        "b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"], e)
        a, b = (float(x) for x in re.findall(r"[0-9.]+", out)[-2:])
        times.append(b - a)
    return statistics.median(times)


def read_rate(env, w, ref, backend):
    """Reading the image's 30 MiB inside the container, timed with the guest's clock."""
    if True:
        e = dict(env, HULL_IMAGE_ROOT=os.path.join(w, "store0"), HULL_IMAGE_BACKEND=backend)
        rates = []
        for _ in range(RUNS):
            # The guest's clock, 10 ms resolution: /proc/uptime before and after.
            _, out = timed([HULL, "run", ref, "--", "sh", "-c",
                            "a=$(cut -d' ' -f1 /proc/uptime); cat /data/* >/dev/null; "
                            "b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"], e)
            a, b = (float(x) for x in re.findall(r"[0-9.]+", out)[-2:])
            if b > a:
                rates.append((30 << 20) / 1e6 / (b - a))
        return statistics.median(rates) if rates else float("nan")


if __name__ == "__main__":
    main()
