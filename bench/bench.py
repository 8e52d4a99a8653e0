#!/usr/bin/env python3
"""hull benchmarks: startup from a template and cold against a QEMU boot floor, stdio
throughput against the raw channel, host memory of idle sandboxes (clones and cold),
sandboxes started at once, and how many idle sandboxes the machine holds. Prints
figures; asserts nothing."""
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
AGENTCTL = os.path.join(BUILD, "tests", "agentctl")
KERNEL = os.path.join(BUILD, "guest", "vmlinuz")
FLOOR_INITRD = os.path.join(BUILD, "bench", "initramfs-floor.cpio")
ROOTFS = os.path.join(BUILD, "rootfs-demo")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
# On tmpfs, as /run/hull is: template RAM files are host memory, not disk pages.
STATE = tempfile.mkdtemp(prefix="hull-bench.", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
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


def time_hull_true(cold=False):
    t0 = time.monotonic()
    p = subprocess.run([HULL, "run"] + (["--no-template"] if cold else []) + ["--rootfs", ROOTFS, "--", "true"],
                       env=ENV, capture_output=True, text=True, timeout=120)
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


def print_phases(phases):
    for k in ("vmm_start_ms", "boot_ms", "job_ms", "teardown_ms"):
        if k in phases:
            print(f"           {k[:-3]:<22} median {median(phases[k]):7.0f} ms")


def bench_startup():
    floors, walls, colds, phases, cphases = [], [], [], {}, {}
    time_hull_true()  # the template, built once before anything is timed
    for _ in range(RUNS):
        # Interleaved so all three see the same machine load.
        floors.append(time_floor())
        w, ph = time_hull_true()
        walls.append(w)
        for k, v in ph.items():
            phases.setdefault(k, []).append(v)
        w, ph = time_hull_true(cold=True)
        colds.append(w)
        for k, v in ph.items():
            cphases.setdefault(k, []).append(v)
    f, w, c = median(floors), median(walls), median(colds)
    print(f"startup  hull run -- true (clone of a template)  median {w * 1000:7.0f} ms   (n={RUNS})")
    print_phases(phases)
    print(f"startup  hull run --no-template -- true (boot)   median {c * 1000:7.0f} ms")
    print_phases(cphases)
    print(f"floor    QEMU boot+poweroff                    median {f * 1000:7.0f} ms")
    print(f"ratio    clone / cold boot   {w / c:.2f}x   (goal: <= 0.15x)")
    print(f"ratio    cold boot / floor   {c / f:.2f}x   (goal: <= 1.3x)")
    print(f"ratio    clone / floor       {w / f:.2f}x")


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


def hull_d(name, *args):
    p = subprocess.run([HULL, "run", "-d", "--name", name] + list(args) + ["--rootfs", ROOTFS, "--", "sleep", "100000"],
                       env=ENV, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"hull run -d {name}: {p.stderr.strip()}")


def hull_rm(names):
    for i in range(0, len(names), 16):
        ps = [subprocess.Popen([HULL, "rm", "-f", n], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for n in names[i:i + 16]]
        for p in ps:
            p.wait(timeout=120)


def sandbox_pids(name):
    """The detached sandbox's hull process and its QEMU."""
    out = subprocess.run(["pgrep", "-f", "--", f"{ENV['HULL_STATE_DIR']}/{name}/"], capture_output=True, text=True)
    qemu = [int(x) for x in out.stdout.split()]
    hull = []
    for q in qemu:
        with open(f"/proc/{q}/stat") as f:
            hull.append(int(f.read().rsplit(")", 1)[1].split()[1]))
    return qemu, hull


def cpu_ticks(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t


def idle_figures(names, seconds=10):
    """PSS per sandbox (QEMU, hull) and CPU per sandbox over seconds, once they settled."""
    time.sleep(5)
    qemus, hulls = [], []
    for n in names:
        q, h = sandbox_pids(n)
        qemus += q
        hulls += h
    a = cpu_ticks(qemus + hulls)
    time.sleep(seconds)
    b = cpu_ticks(qemus + hulls)
    n = len(names)
    q = sum(pss_kib(x) for x in qemus) / n / 1024
    h = sum(pss_kib(x) for x in hulls) / n / 1024
    cpu = (b - a) / os.sysconf("SC_CLK_TCK") / seconds / n * 100
    return q, h, cpu


def template_ram_mib(qemu):
    """The resident size of the RAM file the clone QEMU maps (its template's)."""
    with open(f"/proc/{qemu}/maps") as f:
        for line in f:
            path = line.split(None, 5)[5].strip() if len(line.split(None, 5)) > 5 else ""
            if "/.templates/" in path and path.endswith("/ram"):
                return os.stat(path).st_blocks * 512 / (1 << 20)
    return float("nan")


def children(pid):
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def ready_clones(n, seconds=10):
    """n clones at agent-ready (tests/tools/agentctl: restore, Check, then idle, no
    container): what a warm pool would hold. PSS of QEMU and of the host process each."""
    script = os.path.join(STATE, "ready-script")
    with open(script, "w") as f:
        f.write(f"check\nsleep {(seconds + 40) * 1000}\n")
    ps = [subprocess.Popen([AGENTCTL, "--rootfs", ROOTFS, script], env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
    try:
        for p in ps:
            if p.stdout.readline().strip() != "check ok":
                raise RuntimeError("agentctl: a clone did not answer Check")
        time.sleep(10)
        qemus = [q for p in ps for q in children(p.pid)]
        hosts = [p.pid for p in ps]
        a = cpu_ticks(qemus + hosts)
        time.sleep(seconds)
        b = cpu_ticks(qemus + hosts)
        q = sum(pss_kib(x) for x in qemus) / n / 1024
        h = sum(pss_kib(x) for x in hosts) / n / 1024
        return q, h, (b - a) / os.sysconf("SC_CLK_TCK") / seconds / n * 100
    finally:
        for p in ps:
            p.terminate()
        for p in ps:
            p.wait(timeout=60)


def bench_memory():
    clones = [f"mem-clone-{i}" for i in range(10)]
    colds = [f"mem-cold-{i}" for i in range(3)]
    try:
        for n in clones:
            hull_d(n)
        q, h, cpu = idle_figures(clones)
        ram = template_ram_mib(sandbox_pids(clones[0])[0][0])
        print(f"memory   idle clone PSS, 10 of one template, each running a container: QEMU {q:.1f} MiB"
              f" + hull {h:.1f} MiB = {q + h:.1f} MiB each (goal: <= 25 MiB), CPU {cpu:.2f}% of a core each")
        print(f"           the template's RAM file: {ram:.1f} MiB resident, once")
        hull_rm(clones)
        q, h, cpu = ready_clones(10)
        print(f"memory   idle clone PSS, 10 at agent-ready (no container; a warm pool's): QEMU {q:.1f} MiB"
              f" + host process {h:.1f} MiB = {q + h:.1f} MiB each, CPU {cpu:.2f}% of a core each")
        for n in colds:
            hull_d(n, "--no-template")
        q, h, cpu = idle_figures(colds)
        print(f"memory   idle cold-booted PSS, 3 of them:    QEMU {q:.1f} MiB + hull {h:.1f} MiB "
              f"= {q + h:.1f} MiB each, CPU {cpu:.2f}% of a core each (guest -m 256M)")
    finally:
        hull_rm(clones + colds)


def start_at_once(names, *args):
    t0 = time.monotonic()
    ps = [subprocess.Popen([HULL, "run", "-d", "--name", n] + list(args) + ["--rootfs", ROOTFS, "--", "sleep", "100000"],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in names]
    failed = 0
    for p in ps:
        p.wait(timeout=600)
        failed += p.returncode != 0
    return time.monotonic() - t0, failed


def ready_at_once(n, cold=False):
    """n sandboxes through the pod core at once (tests/tools/agentctl: boot, Check, stop):
    the time until every one answered Check."""
    script = os.path.join(STATE, "check-script")
    with open(script, "w") as f:
        f.write("check\n")
    env = dict(ENV, HULL_TEMPLATE="false") if cold else ENV
    t0 = time.monotonic()
    ps = [subprocess.Popen([AGENTCTL, "--rootfs", ROOTFS, script], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
    last, failed = t0, 0
    for p in ps:
        ok = any(line.strip() == "check ok" for line in p.stdout)
        if ok:
            last = max(last, time.monotonic())
        failed += not ok
        p.wait(timeout=600)
    return last - t0, failed


def bench_burst():
    burst = [f"burst-{i}" for i in range(20)]
    ready_at_once(1)  # the template exists, whatever ran before
    try:
        t, failed = ready_at_once(20)
        print(f"burst    20 clones started at once (to Check):    {t * 1000:5.0f} ms, {20 / t:5.1f} sandboxes/s"
              f" (goal: >= 20/s){f', {failed} failed' if failed else ''}")
        t, failed = ready_at_once(10, cold=True)
        print(f"burst    10 cold boots at once (to Check):        {t * 1000:5.0f} ms, {10 / t:5.1f} sandboxes/s"
              f"{f', {failed} failed' if failed else ''}")
        t, failed = start_at_once(burst)
        print(f"burst    20 hull run -d at once (job running):    {t * 1000:5.0f} ms, {20 / t:5.1f} sandboxes/s"
              f"{f', {failed} failed' if failed else ''}")
    finally:
        hull_rm(burst)


def bench_capacity():
    """Idle clones started one after another until the next takes over 5 s (or the cap)."""
    cap = int(os.environ.get("BENCH_CAPACITY_MAX", "400"))
    names, last = [], 0.0
    try:
        while len(names) < cap:
            n = f"cap-{len(names)}"
            t0 = time.monotonic()
            try:
                hull_d(n)
            except RuntimeError as e:
                print(f"capacity start {len(names) + 1} failed: {str(e)[:200]}")
                break
            names.append(n)
            last = time.monotonic() - t0
            if last > 5:
                break
        q, h, cpu = idle_figures(names, seconds=20)
        with open("/proc/meminfo") as f:
            avail = [int(line.split()[1]) for line in f if line.startswith("MemAvailable:")][0]
        why = "the cap (BENCH_CAPACITY_MAX)" if len(names) >= cap and last <= 5 else "a start took over 5 s"
        print(f"capacity {len(names)} idle clones held (stopped at {why}; goal: >= 300);"
              f" last start {last * 1000:.0f} ms")
        print(f"           each: PSS QEMU {q:.1f} MiB + hull {h:.1f} MiB, CPU {cpu:.2f}% of a core;"
              f" MemAvailable after: {avail / (1 << 20):.1f} GiB")
    finally:
        hull_rm(names)


def main():
    for f in (HULL, AGENTCTL, KERNEL, FLOOR_INITRD, ROOTFS):
        if not os.path.exists(f):
            sys.exit(f"bench: {f} missing: run make bench")
    print(f"hull benchmarks ({os.uname().nodename}, {os.cpu_count()} CPUs, accel tcg)")
    only = os.environ.get("BENCH_ONLY", "startup,throughput,memory,burst,capacity").split(",")
    try:
        for name in only:
            globals()[f"bench_{name}"]()
    finally:
        shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    main()
