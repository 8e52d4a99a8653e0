#!/usr/bin/env python3
"""hull benchmarks: startup against a QEMU boot floor, stdio throughput against the
raw channel, host memory of an idle sandbox. Prints figures; asserts nothing."""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import pss_kib

TOP = sys.argv[1]
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
HULL = os.path.join(BUILD, "hull")
KERNEL = os.path.join(BUILD, "guest", "vmlinuz")
FLOOR_INITRD = os.path.join(BUILD, "bench", "initramfs-floor.cpio")
ROOTFS = os.path.join(BUILD, "rootfs-demo")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
STATE = tempfile.mkdtemp(prefix="hull-bench.")
ENV = dict(os.environ, HULL_STATE_DIR=os.path.join(STATE, "state"), HULL_BENCH_PHASES="1")
THROUGHPUT_BYTES = 256 << 20


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def floor_argv(extra_append="", state=None, serial=False):
    """QEMU as hull starts it (same machine, kernel, flags), with an init that powers
    off at once or writes raw bytes into the agent port."""
    argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-machine", "microvm,acpi=off,rtc=off", "-accel", "tcg", "-smp", "1", "-m", "256M",
            "-kernel", KERNEL, "-initrd", FLOOR_INITRD,
            "-append", "console=ttyS0 reboot=t panic=-1 no_timer_check cryptomgr.notests quiet loglevel=3 pci=off "
            + extra_append,
            "-serial", "null"]
    if serial:
        argv += ["-device", "virtio-serial-device,max_ports=2",
                 "-chardev", f"socket,id=agent,path={state}/agent.sock,server=on,wait=off",
                 "-device", "virtserialport,chardev=agent,name=io.hull.agent"]
    return argv


def time_floor():
    t0 = time.monotonic()
    subprocess.run(floor_argv(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return time.monotonic() - t0


def time_hull_true():
    t0 = time.monotonic()
    p = subprocess.run([HULL, "run", "--rootfs", ROOTFS, "--", "true"], env=ENV, capture_output=True,
                       text=True, timeout=120)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError("hull run failed: " + p.stderr)
    phases = {}
    for line in p.stderr.splitlines():
        if line.startswith("hull-phases:"):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                phases[k] = float(v)
    return wall, phases


def bench_startup():
    floors, walls, phases = [], [], {}
    for _ in range(RUNS):
        # Interleaved so both see the same machine load.
        floors.append(time_floor())
        w, ph = time_hull_true()
        walls.append(w)
        for k, v in ph.items():
            phases.setdefault(k, []).append(v)
    f, w = median(floors), median(walls)
    print(f"startup  hull run -- true      median {w * 1000:7.0f} ms   (n={RUNS})")
    for k in ("vmm_start_ms", "boot_ms", "job_ms", "teardown_ms"):
        if k in phases:
            print(f"           {k[:-3]:<22} median {median(phases[k]):7.0f} ms")
    print(f"floor    QEMU boot+poweroff   median {f * 1000:7.0f} ms")
    print(f"ratio    hull / floor          {w / f:.2f}x   (goal: <= 1.3x)")


def read_until(sock, total):
    got, first = 0, None
    while got < total:
        b = sock.recv(1 << 20)
        if not b:
            break
        if first is None:
            first = time.monotonic()
        got += len(b)
    return got, first, time.monotonic()


def raw_channel_speed():
    d = tempfile.mkdtemp(dir=STATE)
    p = subprocess.Popen(floor_argv(f"bench.raw={THROUGHPUT_BYTES}", d, serial=True),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        path = os.path.join(d, "agent.sock")
        for _ in range(1000):
            if os.path.exists(path):
                break
            time.sleep(0.01)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        got, first, last = read_until(s, THROUGHPUT_BYTES)
        s.sendall(b"k")
        s.close()
    finally:
        p.wait(timeout=120)
    if got != THROUGHPUT_BYTES or first is None:
        raise RuntimeError(f"raw channel delivered {got} bytes")
    return got / (last - first) / 1e6


def hull_stdout_speed():
    # The file is made in the guest first (tmpfs); only the cat's bytes are timed,
    # from the first byte on our stdout to the last.
    mib = THROUGHPUT_BYTES >> 20
    p = subprocess.Popen([HULL, "run", "--rootfs", ROOTFS, "-m", "1G", "--", "sh", "-c",
                          f"head -c {mib}m /dev/zero > /tmp/f && cat /tmp/f"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    got, first = 0, None
    while True:
        b = p.stdout.read1(1 << 20)
        if not b:
            break
        if first is None:
            first = time.monotonic()
        got += len(b)
    last = time.monotonic()
    p.wait(timeout=120)
    if got != THROUGHPUT_BYTES:
        raise RuntimeError(f"hull delivered {got} bytes")
    return got / (last - first) / 1e6


def bench_throughput():
    n = max(1, RUNS // 2)
    raws = [raw_channel_speed() for _ in range(n)]
    hulls = [hull_stdout_speed() for _ in range(n)]
    r, h = median(raws), median(hulls)
    print(f"stdout   cat 256 MiB -> host    median {h:7.1f} MB/s   (n={n})")
    print(f"floor    raw port write 256 MiB median {r:7.1f} MB/s")
    print(f"ratio    hull / raw             {h / r:.2f}x")


def bench_memory():
    p = subprocess.Popen([HULL, "run", "--rootfs", ROOTFS, "--", "sh", "-c", "echo ready; exec sleep 600"],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        p.stdout.readline()
        time.sleep(1)
        out = subprocess.run(["pgrep", "-f", "-P", str(p.pid), "qemu-system"], capture_output=True, text=True)
        qemu = [int(x) for x in out.stdout.split()]
        q = sum(pss_kib(x) for x in qemu)
        h = pss_kib(p.pid)
        print(f"memory   idle sandbox PSS: QEMU {q / 1024:.1f} MiB + hull {h / 1024:.1f} MiB "
              f"= {(q + h) / 1024:.1f} MiB (guest -m 256M)")
    finally:
        p.send_signal(signal.SIGINT)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)


def main():
    for f in (HULL, KERNEL, FLOOR_INITRD, ROOTFS):
        if not os.path.exists(f):
            sys.exit(f"bench: {f} missing: run make bench")
    print(f"hull benchmarks ({os.uname().nodename}, {os.cpu_count()} CPUs, accel tcg)")
    try:
        bench_startup()
        bench_throughput()
        bench_memory()
    finally:
        shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
