#!/usr/bin/python3
"""Pods through containerd's CRI plugin, hull (clones of a template, and cold boots:
the hull-cold handler) beside runc in the same run: pod start latency (RunPodSandbox ->
first container running), pod teardown (StopPodSandbox + RemovePodSandbox), and host
memory of an idle pod (PSS of the VM and the shim for hull, of the shim, pause and
container for runc). Starts its own containerd; prints figures; asserts nothing.
Debian's python3 (python3-grpcio)."""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = sys.argv[1]
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
sys.path.insert(0, os.path.join(BUILD, "tests", "cri"))
import grpc  # noqa: E402
import cri_pb2 as cri  # noqa: E402
from benchlib import pss_kib  # noqa: E402

BB = "docker.io/library/busybox:latest"


class CRI:
    def __init__(self, sock):
        self.ch = grpc.insecure_channel("unix://" + sock)
        self.svc = cri.DESCRIPTOR.services_by_name["RuntimeService"]

    def __call__(self, method, req):
        m = self.svc.methods_by_name[method]
        resp = getattr(cri, m.output_type.name)
        f = self.ch.unary_unary("/runtime.v1.RuntimeService/" + method,
                                request_serializer=type(req).SerializeToString,
                                response_deserializer=resp.FromString)
        return f(req, timeout=180)


def pids_matching(pattern):
    out = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def descendants(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    kids = [int(x) for x in out.stdout.split()]
    return kids + [d for k in kids for d in descendants(k)]


def pod_config(name, logdir):
    c = cri.PodSandboxConfig()
    c.metadata.name, c.metadata.uid, c.metadata.namespace = name, "uid-" + name, "bench"
    # A network of its own (the CNI bridge of tests/tools/ctd-config.sh), for both
    # runtimes: hull refuses host-network pods (docs/kubernetes.md).
    c.log_directory = logdir
    c.linux.security_context.namespace_options.network = cri.POD
    return c


def start_pod(api, handler, name, logdir):
    """RunPodSandbox, then one container running sleep: the time until it runs."""
    os.makedirs(logdir, exist_ok=True)
    pc = pod_config(name, logdir)
    t0 = time.monotonic()
    sid = api("RunPodSandbox", cri.RunPodSandboxRequest(config=pc, runtime_handler=handler)).pod_sandbox_id
    cc = cri.ContainerConfig(command=["sleep", "600"], log_path="c.log")
    cc.metadata.name = "c"
    cc.image.image = BB
    cid = api("CreateContainer", cri.CreateContainerRequest(pod_sandbox_id=sid, config=cc,
                                                             sandbox_config=pc)).container_id
    api("StartContainer", cri.StartContainerRequest(container_id=cid))
    return sid, time.monotonic() - t0


def stop_pod(api, sid):
    t0 = time.monotonic()
    api("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=sid))
    api("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=sid))
    return time.monotonic() - t0


def main():
    w = tempfile.mkdtemp(prefix="hull-pods.", dir="/tmp")
    env = dict(os.environ, PATH=BUILD + ":" + os.environ["PATH"], HULL_STATE_DIR=os.path.join(w, "hull"))
    subprocess.run([os.path.join(TOP, "tests", "tools", "ctd-config.sh"), w], check=True)
    log = open(os.path.join(w, "containerd.log"), "w")
    ctd = subprocess.Popen(["containerd", "--config", os.path.join(w, "config.toml")], env=env,
                           stdout=log, stderr=log, start_new_session=True)
    sock = os.path.join(w, "c.sock")
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        for img in ("images/busybox", "tests/images/pause"):
            subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "images", "import",
                            os.path.join(BUILD, img + ".tar")],
                           check=True, stdout=subprocess.DEVNULL)
        api = CRI(sock)
        handlers = ("runc", "hull", "hull-cold")
        starts = {h: [] for h in handlers}
        stops = {h: [] for h in handlers}
        # The pods' template, built once before anything is timed.
        sid, _ = start_pod(api, "hull", "warm", os.path.join(w, "logs", "warm"))
        stop_pod(api, sid)
        for i in range(RUNS):
            for handler in handlers:
                sid, t = start_pod(api, handler, f"{handler}-{i}", os.path.join(w, "logs", f"{handler}{i}"))
                starts[handler].append(t)
                stops[handler].append(stop_pod(api, sid))
        m = {h: statistics.median(v) for h, v in starts.items()}
        s = {h: statistics.median(v) for h, v in stops.items()}
        print(f"pods     CRI pod start (RunPodSandbox -> container running), n={RUNS}")
        print(f"           hull (clone) median {m['hull'] * 1000:7.0f} ms   ratio hull/runc {m['hull'] / m['runc']:.2f}x")
        print(f"           hull (cold)  median {m['hull-cold'] * 1000:7.0f} ms   ratio hull/runc {m['hull-cold'] / m['runc']:.2f}x")
        print(f"           runc         median {m['runc'] * 1000:7.0f} ms")
        print(f"pods     CRI pod teardown (StopPodSandbox + RemovePodSandbox)")
        print(f"           hull (clone) median {s['hull'] * 1000:7.0f} ms")
        print(f"           hull (cold)  median {s['hull-cold'] * 1000:7.0f} ms")
        print(f"           runc         median {s['runc'] * 1000:7.0f} ms   ratio hull/runc {s['hull'] / s['runc']:.2f}x")

        # Host memory of an idle pod, after it settled.
        mem = {}
        for handler in handlers:
            sid, _ = start_pod(api, handler, f"{handler}-mem", os.path.join(w, "logs", f"{handler}-mem"))
            time.sleep(3)
            shims = pids_matching(f"-id {sid} ")
            procs = set(shims)
            for p in shims:
                procs.update(descendants(p))
            mem[handler] = (sum(pss_kib(p) for p in procs), len(procs))
            if handler.startswith("hull"):
                q = sum(pss_kib(p) for p in procs if "qemu" in open(f"/proc/{p}/comm").read())
                mem["qemu-" + handler] = q
            stop_pod(api, sid)
        print(f"memory   idle pod PSS (guest -m 256M; shim and its children)")
        for h in ("hull", "hull-cold"):
            print(f"           {h + (' (clone)' if h == 'hull' else ''):<12} {mem[h][0] / 1024:6.1f} MiB over "
                  f"{mem[h][1]} processes (QEMU {mem['qemu-' + h] / 1024:.1f} MiB)")
        print(f"           runc         {mem['runc'][0] / 1024:6.1f} MiB over {mem['runc'][1]} processes")
    finally:
        ctd.send_signal(signal.SIGTERM)
        try:
            ctd.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ctd.kill()
        subprocess.run(["pkill", "-9", "-f", "--", w], stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        with open("/proc/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(w)]
        for p in sorted(points, reverse=True):
            subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
