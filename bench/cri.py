#!/usr/bin/python3
"""Pods through hull-cri beside containerd + the hull shim, in the same run (same image,
same CNI network, the same template store): pod start (RunPodSandbox -> first container
running) and teardown (StopPodSandbox + RemovePodSandbox) medians; 10 pods started at
once through hull-cri; hull-cri's own RSS with 20 pods. Starts its own containerd and
hull-cri; prints figures; asserts nothing. Debian's python3 (python3-grpcio)."""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pods  # noqa: E402
from pods import CRI, cri, start_pod, stop_pod  # noqa: E402

TOP = sys.argv[1]
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def wait_sock(path, proc, what):
    for _ in range(200):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited: {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    # A short path: unix socket names under it must stay below 108 bytes.
    w = tempfile.mkdtemp(prefix="hcb.", dir="/tmp")
    env = dict(os.environ, PATH=BUILD + ":" + os.environ["PATH"],
               HULL_STATE_DIR=os.path.join(w, "hull"), HULL_IMAGE_ROOT=os.path.join(w, "images"))
    subprocess.run([os.path.join(TOP, "tests", "tools", "ctd-config.sh"), w], check=True)
    log = open(os.path.join(w, "daemons.log"), "w")
    ctd = subprocess.Popen(["containerd", "--config", os.path.join(w, "config.toml")], env=env,
                           stdout=log, stderr=log, start_new_session=True)
    with open(os.path.join(w, "cri.toml"), "w") as f:
        f.write(f'[cni]\nconf_dir = "{w}/cni"\nbin_dirs = ["/usr/lib/cni"]\n')
    subprocess.run([os.path.join(BUILD, "hull"), "load", "-i",
                    os.path.join(BUILD, "images", "busybox.tar")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    hsock = os.path.join(w, "cri.sock")
    hcri = subprocess.Popen([os.path.join(BUILD, "hull-cri"), "--config", os.path.join(w, "cri.toml"),
                             "--socket", hsock, "--root", os.path.join(w, "cri-root"),
                             "--state", os.path.join(w, "cri-state")],
                            env=env, stdout=log, stderr=log, start_new_session=True)
    csock = os.path.join(w, "c.sock")
    try:
        wait_sock(csock, ctd, "containerd")
        wait_sock(hsock, hcri, "hull-cri")
        for img in ("images/busybox", "tests/images/pause"):
            subprocess.run(["ctr", "-a", csock, "-n", "k8s.io", "images", "import",
                            os.path.join(BUILD, img + ".tar")],
                           check=True, stdout=subprocess.DEVNULL)
        doors = {"containerd": CRI(csock), "hull-cri": CRI(hsock)}
        # The template, built once (both doors share the store) before anything is timed.
        for name, api in doors.items():
            sid, _ = start_pod(api, "hull", f"warm-{name}", os.path.join(w, "logs", "warm-" + name))
            stop_pod(api, sid)
        starts = {d: [] for d in doors}
        stops = {d: [] for d in doors}
        for i in range(RUNS):
            for name, api in doors.items():
                sid, t = start_pod(api, "hull", f"{name}-{i}", os.path.join(w, "logs", f"{name}{i}"))
                starts[name].append(t)
                stops[name].append(stop_pod(api, sid))
        m = {d: statistics.median(v) for d, v in starts.items()}
        s = {d: statistics.median(v) for d, v in stops.items()}
        print(f"cri      pod start through each door (hull handler, clones), n={RUNS}")
        print(f"           hull-cri            median {m['hull-cri'] * 1000:7.0f} ms   ratio hull-cri/containerd {m['hull-cri'] / m['containerd']:.2f}x")
        print(f"           containerd + shim   median {m['containerd'] * 1000:7.0f} ms")
        print(f"cri      pod teardown (StopPodSandbox + RemovePodSandbox)")
        print(f"           hull-cri            median {s['hull-cri'] * 1000:7.0f} ms   ratio hull-cri/containerd {s['hull-cri'] / s['containerd']:.2f}x")
        print(f"           containerd + shim   median {s['containerd'] * 1000:7.0f} ms")

        # Ten pods at once through hull-cri: the wall time until every one runs.
        api = doors["hull-cri"]
        results = [None] * 10

        def one(k):
            results[k] = start_pod(api, "hull", f"burst-{k}", os.path.join(w, "logs", f"burst{k}"))

        t0 = time.monotonic()
        ts = [threading.Thread(target=one, args=(k,)) for k in range(10)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        each = statistics.median(r[1] for r in results if r)
        print(f"cri      10 pods started at once through hull-cri: all running in {wall * 1000:.0f} ms "
              f"(median per pod {each * 1000:.0f} ms)")
        for r in results:
            if r:
                stop_pod(api, r[0])

        # hull-cri's own memory with 20 pods.
        rss0 = rss_kib(hcri.pid)
        held = [start_pod(api, "hull", f"held-{k}", os.path.join(w, "logs", f"held{k}"))[0] for k in range(20)]
        time.sleep(2)
        rss20 = rss_kib(hcri.pid)
        print(f"cri      hull-cri RSS: {rss0 / 1024:.1f} MiB idle, {rss20 / 1024:.1f} MiB with 20 pods "
              f"({(rss20 - rss0) / 20:.0f} KiB a pod)")
        for sid in held:
            stop_pod(api, sid)
    finally:
        for p in (hcri, ctd):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        # Pods outlive hull-cri by design: what a failed run left goes here, by path.
        subprocess.run(["pkill", "-9", "-f", "--", w], stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        with open("/proc/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(w)]
        for p in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)
        br = os.path.join(w, "cni", "bridge")
        if os.path.exists(br):
            subprocess.run(["ip", "link", "del", open(br).read().strip()], stderr=subprocess.DEVNULL)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    _ = pods
    main()
