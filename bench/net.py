#!/usr/bin/python3
"""Networking, host <-> pod VM beside host <-> plain network namespace, in one run: TCP
throughput (64 MiB pushed from the host into a receiver) and request latency (HTTP GETs
of a small file, a connection each). Both ends run the same programs (the demo rootfs'
busybox nc and httpd): in the VM joined to its namespace with taps and tc mirred, and
directly in a second namespace (the floor: veth alone). Needs root; prints figures,
asserts nothing."""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = sys.argv[1]
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
ROOTFS = os.path.join(BUILD, "rootfs-demo")
BUSYBOX = os.path.join(ROOTFS, "bin", "busybox")
MIB = 1 << 20
PUSH = 64 * MIB
GETS = 200
tag = str(os.getpid() % 100000)


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def make_ns(name, host_if, sub):
    """A namespace with a veth, host end 10.216.SUB.1, namespace end .2."""
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", name)
    sh("ip", "addr", "add", f"10.216.{sub}.1/24", "dev", host_if)
    sh("ip", "link", "set", host_if, "up")
    sh("ip", "netns", "exec", name, "ip", "addr", "add", f"10.216.{sub}.2/24", "dev", "eth0")
    sh("ip", "netns", "exec", name, "ip", "link", "set", "eth0", "up")
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    return f"10.216.{sub}.2"


def wait_port(ip, port, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{ip}:{port} never answered")


def push(ip, port):
    """Seconds to push PUSH bytes and see the receiver close (it has read them all)."""
    buf = b"\0" * MIB
    s = socket.create_connection((ip, port), timeout=60)
    t0 = time.monotonic()
    for _ in range(PUSH // MIB):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    t = time.monotonic() - t0
    s.close()
    return t


def get(ip, port):
    t0 = time.monotonic()
    s = socket.create_connection((ip, port), timeout=30)
    s.sendall(b"GET /x HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
    return time.monotonic() - t0


# The receiver: a fresh nc per connection (it exits at EOF, which the sender sees).
SERVER = ("mkdir -p /tmp/www && echo hello >/tmp/www/x && httpd -p 8080 -h /tmp/www && "
          "while true; do nc -l -p 5001 >/dev/null; done")


def measure(ip):
    wait_port(ip, 8080)
    wait_port(ip, 5001)
    time.sleep(0.5)
    pushes = []
    for _ in range(RUNS):
        pushes.append(push(ip, 5001))
        time.sleep(0.2)  # the next nc to listen
        wait_port(ip, 5001)
        time.sleep(0.2)
    lat = [get(ip, 8080) for _ in range(GETS)]
    return PUSH / MIB / statistics.median(pushes), statistics.median(lat) * 1000


def main():
    if os.geteuid() != 0:
        print("net      skipped: namespaces and taps need root")
        return
    ns_vm, ns_floor = "hbvm" + tag, "hbfl" + tag
    procs = []
    work = tempfile.mkdtemp(prefix="hull-bench-net.")
    env = dict(os.environ, HULL_STATE_DIR=os.path.join(work, "state"))
    try:
        ip_vm = make_ns(ns_vm, "hbv" + tag, 1)
        ip_floor = make_ns(ns_floor, "hbf" + tag, 2)
        procs.append(subprocess.Popen(
            [os.path.join(BUILD, "hull"), "run", "--rootfs", ROOTFS, f"--net=ns:/run/netns/{ns_vm}",
             "--", "sh", "-c", SERVER], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns_floor, BUSYBOX, "sh", "-c",
             SERVER.replace("httpd", BUSYBOX + " httpd").replace("nc -l", BUSYBOX + " nc -l")
             .replace("mkdir", BUSYBOX + " mkdir").replace("/tmp/www", os.path.join(work, "www"))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        vm = measure(ip_vm)
        floor = measure(ip_floor)
        print(f"net      TCP push host -> receiver, {PUSH // MIB} MiB, n={RUNS} (median)")
        print(f"           pod VM (tap + tc mirred, TCG)  {vm[0]:8.1f} MiB/s")
        print(f"           plain netns (veth)             {floor[0]:8.1f} MiB/s   ratio VM/floor {vm[0] / floor[0]:.3f}x")
        print(f"net      HTTP GET latency, a connection each, n={GETS} (median)")
        print(f"           pod VM                         {vm[1]:8.2f} ms")
        print(f"           plain netns                    {floor[1]:8.2f} ms   ratio VM/floor {vm[1] / floor[1]:.1f}x")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 9) if p.args[0] == "ip" else p.send_signal(2)
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in (ns_vm, ns_floor):
            sh("ip", "netns", "del", ns, check=False)
        for i in ("hbv" + tag, "hbf" + tag):
            sh("ip", "link", "del", i, check=False)
        subprocess.run(["rm", "-rf", work])


main()
