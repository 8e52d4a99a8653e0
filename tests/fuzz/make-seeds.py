#!/usr/bin/env python3
"""Write the seed corpora for hull's fuzzers (tests/fuzz/corpus/<fuzzer>/).

Seeds are hand-built protobuf/ttrpc frames and QMP lines: valid messages of every
kind the parsers see, plus the hostile shapes the tests name (oversize frames, bad
lengths, wrong field types, unknown methods). Run again after changing the protos."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def vi(field, n):
    return varint(field << 3) + varint(n)


def frame(sid, typ, payload, flags=0, length=None):
    return struct.pack(">IIBB", len(payload) if length is None else length, sid, typ, flags) + payload


def request(sid, method, payload=b"", service="hull.agent.v1.Agent", flags=0):
    return frame(sid, 1, ld(1, service) + ld(2, method) + ld(3, payload), flags)


def response(sid, code=0, msg="", payload=b""):
    status = (vi(1, code) if code else b"") + (ld(2, msg) if msg else b"")
    return frame(sid, 2, ld(1, status) + ld(2, payload))


def oci(args, env=(), cwd="/", uid=0, gid=0, terminal=False, hostname="box"):
    import json as _json
    return _json.dumps({"process": {"args": list(args), "env": list(env), "cwd": cwd, "terminal": terminal,
                                    "user": {"uid": uid, "gid": gid}},
                        "hostname": hostname, "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}})


def storage(tag, readonly=False, overlay=True):
    return ld(1, tag) + ld(2, "9p") + (vi(3, 1) if readonly else b"") + (vi(4, 1) if overlay else b"")


def create(cid="job", args=("echo", "hi"), mounts=(), root="hull-root", config=None, **kw):
    body = ld(1, cid) + ld(2, storage(root))
    for tag, dest in mounts:
        body += ld(5, ld(1, storage(tag)) + ld(2, dest))
    return body + ld(6, config if config is not None else oci(args, **kw))


def write(fuzzer, name, data):
    d = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    cr = ld(1, "job")
    # ---- agent requests (host -> guest) ----
    a = "agent-request"
    write(a, "check", request(1, "Check"))
    write(a, "create", request(3, "CreateContainer", create(env=("PATH=/bin",))))
    write(a, "create-volume", request(3, "CreateContainer", create(mounts=(("vol0", "/ws"),))))
    nic = ld(1, "52:54:00:12:34:56") + ld(2, "10.0.2.15/24") + ld(2, "fd00::15/64") + vi(3, 1500)
    write(a, "network", request(3, "ConfigureNetwork", ld(1, nic) + ld(2, ld(1, "default") + ld(2, "10.0.2.2")) + ld(2, ld(1, "10.1.0.0/16"))))
    nic_mac = ld(1, "52:54:00:12:34:56")
    routes = ld(2, ld(1, "10.1.1.1/32") + ld(3, "52:54:00:12:34:56")) + ld(2, ld(1, "default") + ld(2, "fd00::1") + ld(3, "52:54:00:12:34:56"))
    neighs = ld(3, ld(1, "10.1.1.1") + ld(2, "aa:bb:cc:dd:ee:ff") + ld(3, "52:54:00:12:34:56")) + ld(3, ld(1, "fd00::1") + ld(2, "zz") + ld(3, "52:54:00:12:34:56"))
    write(a, "network-pod", request(3, "ConfigureNetwork", ld(1, nic_mac + ld(2, "10.1.1.2/24")) + routes + neighs))
    write(a, "port-forward", request(9, "PortForward", vi(1, 8080)) + frame(9, 3, vi(4, 1 << 20) + ld(2, "GET / HTTP/1.0\r\n\r\n") + vi(3, 1)) + request(11, "PortForward", vi(1, 8080)) + request(11, "PortForward", vi(1, 80)))
    write(a, "port-forward-bad", request(9, "PortForward", vi(1, 0)) + request(11, "PortForward", vi(1, 70000)) + request(13, "PortForward", b"\xff"))
    write(a, "network-bad", request(3, "ConfigureNetwork", ld(1, ld(1, "zz:zz") + ld(2, "10.0.2.15")) + ld(2, ld(1, "x") + ld(2, "gw"))))
    erofs_root = ld(2, "erofs") + ld(6, "hull-l0") + ld(6, "hull-l1")
    write(a, "create-erofs-layers", request(3, "CreateContainer", ld(1, "job") + ld(2, erofs_root) + ld(6, oci(("true",)))))
    write(a, "create-erofs-bad-serial", request(3, "CreateContainer", ld(1, "job") + ld(2, ld(2, "erofs") + ld(6, "../x")) + ld(6, oci(("true",)))))
    write(a, "create-subpath-root", request(3, "CreateContainer", ld(1, "c1") + ld(2, storage("hull-shared", overlay=False) + ld(5, "c1/rootfs")) + ld(6, oci(("true",)))))
    write(a, "create-dotdot-volume", request(3, "CreateContainer", create(mounts=(("vol0", "/../etc"),))))
    write(a, "create-bad-id", request(3, "CreateContainer", create(cid="../x")))
    write(a, "create-empty-args", request(3, "CreateContainer", create(args=())))
    write(a, "create-bad-env", request(3, "CreateContainer", create(env=("NOEQUALS",))))
    write(a, "create-relative-cwd", request(3, "CreateContainer", create(cwd="tmp")))
    write(a, "create-bad-tag", request(3, "CreateContainer", create(root="a,b")))
    write(a, "create-wrong-type", request(3, "CreateContainer", vi(1, 5)))
    file_mount = ld(5, ld(1, storage("hull-files")) + ld(2, "/etc/resolv.conf") + vi(3, 1) + ld(4, "f0"))
    write(a, "create-file-mount", request(3, "CreateContainer", create() + file_mount))
    write(a, "create-bad-subpath", request(3, "CreateContainer", create() + ld(5, ld(1, storage("hull-files")) + ld(2, "/x") + ld(4, "../etc"))))
    write(a, "create-no-config", request(3, "CreateContainer", ld(1, "job") + ld(2, storage("hull-root"))))
    write(a, "create-bad-config", request(3, "CreateContainer", create(config='{"process": {"args": 7}}')))
    write(a, "create-tty", request(3, "CreateContainer", create(terminal=True)))
    write(a, "start", request(5, "StartContainer", cr))
    write(a, "exec", request(5, "ExecProcess", cr + ld(2, "x1") + ld(3, '{"args": ["id"], "cwd": "/", "user": {"uid": 0, "gid": 0}}')))
    write(a, "exec-bad-process", request(5, "ExecProcess", cr + ld(2, "x1") + ld(3, '{"args": 1}')))
    write(a, "exec-bad-id", request(5, "ExecProcess", cr + ld(2, "../x") + ld(3, "{}")))
    write(a, "start-process", request(5, "StartProcess", cr + ld(2, "x1")))
    write(a, "wait-exec", request(9, "WaitProcess", cr + ld(2, "x1")))
    write(a, "stats", request(9, "StatsContainer", cr))
    write(a, "update", request(9, "UpdateContainer", cr + ld(2, '{"pids": {"limit": 5}}')))
    write(a, "pause", request(9, "PauseContainer", cr))
    write(a, "resume", request(9, "ResumeContainer", cr))
    write(a, "pids", request(9, "ListProcesses", cr))
    write(a, "attach-then-data", request(7, "AttachStdio", cr, ) + frame(7, 3, vi(4, 1 << 20)))
    write(a, "wait", request(9, "WaitProcess", cr))
    write(a, "signal", request(11, "SignalProcess", cr + vi(2, 15)))
    write(a, "signal-out-of-range", request(11, "SignalProcess", cr + vi(2, 9999)))
    write(a, "resize", request(13, "ResizePty", cr + vi(2, 40) + vi(3, 120)))
    write(a, "remove", request(15, "RemoveContainer", cr))
    write(a, "destroy", request(17, "DestroySandbox"))
    write(a, "unknown-method", request(19, "Frobnicate"))
    write(a, "unknown-service", request(21, "Check", service="containerd.task.v2.Task"))
    write(a, "oversize", frame(23, 1, b"", length=5 << 20) + request(25, "Check"))
    write(a, "truncated", request(1, "Check")[:-3])
    write(a, "data-unknown-stream", frame(99, 3, ld(2, "stdin bytes")))
    write(a, "unknown-type", frame(1, 9, b"\x00"))
    write(a, "garbage-payload", frame(1, 1, b"\xff\xff\xff\xff\x0f"))
    # Whole lives, driven through the stub engine (container-stub.c picks a child's
    # script by args[0]): create answered at READY, attach, start answered at exec, wait.
    credit = frame(7, 3, vi(4, 1 << 20))
    stdin = frame(7, 3, ld(2, "input line\n") + vi(3, 1))
    life = (request(3, "CreateContainer", create(args=("cat",))) + request(5, "Check") +
            request(7, "AttachStdio", cr, flags=2) + credit + stdin + request(9, "StartContainer", cr) +
            request(11, "WaitProcess", cr) + request(13, "SignalProcess", cr + vi(2, 15)) +
            request(15, "StatsContainer", cr))
    write(a, "life", life)
    execp = '{"args": ["%s"], "cwd": "/", "user": {"uid": 0, "gid": 0}%s}'
    write(a, "life-exec", life + request(17, "ExecProcess", cr + ld(2, "x1") + ld(3, execp % ("id", ""))) +
          request(19, "AttachStdio", cr + ld(2, "x1")) + frame(19, 3, vi(4, 4096)) +
          request(21, "StartProcess", cr + ld(2, "x1")) + request(23, "WaitProcess", cr + ld(2, "x1")) +
          request(25, "ExecProcess", cr + ld(2, "t1") + ld(3, execp % ("sh", ', "terminal": true'))) +
          request(27, "ResizePty", cr + ld(2, "t1") + vi(2, 40) + vi(3, 120)) +
          request(29, "ExecProcess", cr + ld(2, "h1") + ld(3, execp % ("hang", ""))) +
          request(31, "ExecProcess", cr + ld(2, "f1") + ld(3, execp % ("fail", ""))) +
          request(33, "RemoveContainer", cr))
    write(a, "create-hang-remove", request(3, "CreateContainer", create(args=("hang",))) +
          request(5, "CreateContainer", create(args=("hang",))) + request(7, "Check") +
          request(9, "StartContainer", cr) + request(11, "AttachStdio", cr) +
          request(13, "WaitProcess", cr) + request(15, "RemoveContainer", cr) +
          request(17, "CreateContainer", create(args=("echo",))))
    write(a, "create-fail", request(3, "CreateContainer", create(args=("fail",))) +
          request(5, "CreateContainer", create(args=("fail",))))
    write(a, "start-missing", request(3, "CreateContainer", create(args=("missing",))) +
          request(7, "AttachStdio", cr) + credit + request(9, "StartContainer", cr) +
          request(11, "WaitProcess", cr) + request(13, "RemoveContainer", cr))
    write(a, "attach-cancel", request(3, "CreateContainer", create(args=("sh",), terminal=True)) +
          request(7, "AttachStdio", cr) + frame(7, 3, vi(5, 1)) + frame(7, 3, ld(2, "after cancel")) +
          request(9, "AttachStdio", cr) + request(11, "ResizePty", cr + vi(2, 40) + vi(3, 120)))
    write(a, "port-forward-cancel", request(9, "PortForward", vi(1, 8080)) + frame(9, 3, vi(5, 1)) +
          frame(9, 3, ld(2, "dropped")) + request(11, "PortForward", vi(1, 8080)) +
          frame(11, 3, vi(4, 1 << 40)))
    # Sync (SyncRequest: realtime_ns 1, entropy 2, nics 4 of NicRename{from_mac 1, to_mac 2},
    # hostname 5). The clock is a fixed recent time, not time.time(): seeds stay the same
    # from run to run.
    now_ns = 1760000000 * 10**9
    rnd = lambda n: bytes((i * 37 + 11) & 0xFF for i in range(n))
    rename = lambda frm="52:54:00:aa:bb:cc", to="52:54:00:12:34:56": ld(4, ld(1, frm) + ld(2, to))

    def sync(realtime=now_ns, entropy=rnd(64), nics=(rename(),), hostname="sandbox-1"):
        return ((vi(1, realtime) if realtime is not None else b"") + ld(2, entropy) +
                b"".join(nics) + (ld(5, hostname) if hostname is not None else b""))
    write(a, "sync", request(1, "Sync", sync()))
    write(a, "sync-minimal", request(1, "Sync", sync(nics=(), hostname=None)))
    write(a, "sync-entropy-bounds", request(1, "Sync", sync(entropy=rnd(32))) +
          request(3, "Sync", sync(entropy=rnd(512))) + request(5, "Sync", sync(entropy=rnd(31))) +
          request(7, "Sync", sync(entropy=rnd(513))))
    write(a, "sync-entropy-short", request(1, "Sync", sync(entropy=rnd(8))))
    write(a, "sync-entropy-long", request(1, "Sync", sync(entropy=rnd(600))))
    write(a, "sync-realtime-zero", request(1, "Sync", sync(realtime=0)))
    write(a, "sync-realtime-missing", request(1, "Sync", sync(realtime=None)))
    write(a, "sync-realtime-negative", request(1, "Sync", sync(realtime=(1 << 64) - now_ns)))  # 10-byte varint
    write(a, "sync-realtime-minus-one", request(1, "Sync", sync(realtime=(1 << 64) - 1)))
    write(a, "sync-bad-mac", request(1, "Sync", sync(nics=(rename(frm="zz:zz"),))))
    write(a, "sync-bad-to-mac", request(1, "Sync", sync(nics=(rename(), rename(to="52:54:00:12:34:5g")))))
    write(a, "sync-nic-empty", request(1, "Sync", sync(nics=(ld(4, b""),))))
    write(a, "sync-nics-16", request(1, "Sync", sync(nics=tuple(rename(frm="52:54:00:aa:bb:%02x" % i) for i in range(16)))))
    write(a, "sync-too-many-nics", request(1, "Sync", sync(nics=tuple(rename(frm="52:54:00:aa:bb:%02x" % i) for i in range(17)))))
    write(a, "sync-hostname-64", request(1, "Sync", sync(hostname="h" * 64)))
    write(a, "sync-hostname-long", request(1, "Sync", sync(hostname="h" * 70)))
    write(a, "sync-hostname-space", request(1, "Sync", sync(hostname="my host")))
    write(a, "sync-garbage", request(1, "Sync", b"\x12\x40" + rnd(3)))  # entropy says 64 bytes, has 3
    write(a, "sync-wrong-type", request(1, "Sync", vi(2, 5) + ld(1, "now")))
    # A restored sandbox's first calls: Sync, then its network, then its container; and
    # the same after a refused Sync. The fuzzer's ConfigureNetwork looks the MAC up in the
    # host's /sys/class/net: "-lo" names lo's, which every host has, so it validates.

    def restored(mac):
        net = ld(1, ld(1, mac) + ld(2, "10.0.2.15/24") + vi(3, 1500)) + ld(2, ld(1, "default") + ld(2, "10.0.2.2"))
        return (request(3, "ConfigureNetwork", net) + request(5, "CreateContainer", create(args=("cat",))) +
                request(7, "AttachStdio", cr, flags=2) + credit + stdin + request(9, "StartContainer", cr) +
                request(11, "WaitProcess", cr) + request(13, "Check"))
    lo = "00:00:00:00:00:00"
    write(a, "life-sync", request(1, "Sync", sync()) + restored("52:54:00:12:34:56") +
          request(15, "Sync", sync(nics=(), hostname="")))
    write(a, "life-sync-lo", request(1, "Sync", sync(nics=(rename(to=lo),))) + restored(lo))
    write(a, "life-sync-refused", request(1, "Sync", sync(entropy=rnd(8))) + restored("52:54:00:12:34:56"))

    # ---- ttrpc frames, either direction ----
    t = "ttrpc-frame"
    write(t, "request", b"\x05" + request(1, "Check"))
    write(t, "response", b"\x01" + response(1, payload=ld(1, "0.1.0")))
    write(t, "error-response", b"\x10" + response(3, 5, "container 'x' not found"))
    write(t, "data", b"\x02" + frame(7, 3, vi(1, 1) + ld(2, b"\x00\x01binary")))
    write(t, "oversize", b"\x03" + frame(1, 1, b"", length=0xFFFFFFFF))
    write(t, "two", b"\x00" + request(1, "Check") + request(3, "DestroySandbox"))

    # ---- Task API requests to the ttrpc server ----
    srv = "ttrpc-server"
    task = "containerd.task.v2.Task"
    meta = ld(5, ld(1, "containerd-namespace-ttrpc") + ld(2, "k8s.io"))
    write(srv, "state", frame(1, 1, ld(1, task) + ld(2, "State") + ld(3, ld(1, "c1")) + meta))
    write(srv, "wait-twice", request(1, "Wait", ld(1, "c1"), service=task) + request(3, "Wait", b"", service=task))
    write(srv, "unknown", request(1, "Checkpoint", b"", service=task))
    write(srv, "bad-payload", request(1, "State", b"\xff\xff\xff", service=task))
    write(srv, "oversize", frame(1, 1, b"", length=5 << 20) + request(3, "State", ld(1, "c1"), service=task))
    write(srv, "truncated", request(1, "State", ld(1, "c1"), service=task)[:-2])

    # ---- the guest's side of a started container (fuzz-pod-guest.c) ----
    # Byte 0: bits 0-1 the sinks (0 taking, 1 stuck, 2 none), the rest how often the
    # frames are fed. Streams: 1 AttachStdio, 3 StartContainer (answered by the
    # harness), 5 WaitProcess.
    r = "pod-guest"
    out = lambda sid, fd, data=b"", eof=False, credit=0: frame(sid, 3, vi(1, fd) + (ld(2, data) if data else b"") + (vi(3, 1) if eof else b"") + (vi(4, credit) if credit else b""))
    run = out(1, 0, credit=1 << 20) + out(1, 1, b"hello\n") + out(1, 2, b"oops\n") + out(1, 1, eof=True) + out(1, 2, eof=True) + response(1) + response(5, payload=vi(1, 3))
    write(r, "run", bytes([0]) + run)
    write(r, "run-stuck-sink", bytes([1]) + run)
    write(r, "run-no-sink", bytes([2]) + run)
    chunk = out(1, 1, b"x" * 60000)
    write(r, "flood-past-credit", bytes([1 | (63 << 2)]) + chunk)
    write(r, "tiny-frames", bytes([0 | (8 << 2)]) + out(1, 1, b"y") * 4000)
    write(r, "wait-impossible", bytes([0]) + response(5, payload=vi(1, 1000)))
    write(r, "wait-negative-signal", bytes([0]) + response(5, payload=vi(2, (1 << 64) - 5)))
    write(r, "wait-signal", bytes([0]) + response(5, payload=vi(2, 9) + vi(3, 1)))
    write(r, "wait-error", bytes([0]) + response(5, 13, "boom"))
    write(r, "data-unopened-stream", bytes([0]) + out(7, 1, b"z"))
    write(r, "reply-unopened-stream", bytes([0]) + response(1001))
    write(r, "request-from-guest", bytes([0]) + request(1, "Check"))
    write(r, "oversize", bytes([0]) + frame(1, 3, b"", length=6 << 20))
    write(r, "bad-stdio-frame", bytes([0]) + frame(1, 3, b"\xff\xff\xff"))
    write(r, "output-fd3", bytes([0]) + out(1, 3, b"w"))
    write(r, "late-frames", bytes([0]) + response(1) + out(1, 1, b"after the end"))

    # ---- QMP ----
    q = "qmp-reply"
    g = b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\r\n'
    write(q, "session", g + b'{"return": {}, "id": 1}\r\n{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 1}}\r\n'
          b'{"return": {"status": "running", "running": true}, "id": 2}\r\n')
    write(q, "error", g + b'{"return": {}, "id": 1}\n{"id": 2, "error": {"class": "GenericError", "desc": "x"}}\n')
    write(q, "not-object", b"[1,2,3]\n")
    write(q, "bad-greeting", b'{"hello": true}\n')
    write(q, "nested", g + b'{"return": {}, "id": 1}\n' + b'{"return": ' + b"[" * 200 + b"]" * 200 + b', "id": 2}\n')
    write(q, "long-line", g + b'{"return": "' + b"x" * 5000 + b'", "id": 1}\n')
    write(q, "no-newline", g[:-2])


if __name__ == "__main__":
    main()


# ---- OCI config.json: good and bad specs. The bad ones double as the unit test's
# cases (tests/unit/oci-cases.txt: file, then the error the parser must give).
import copy
import json

BASE = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0, "additionalGids": [10], "umask": 18},
        "args": ["sh", "-c", "echo hi"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {s: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                         for s in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
        "oomScoreAdj": 100,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "box",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro", "rprivate"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/kcore", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys"],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "resources": {"memory": {"limit": 67108864, "swap": 134217728}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                      "pids": {"limit": 64}},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                                 {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]},
    },
    "annotations": {"io.kubernetes.cri.container-type": "container"},
}


def mutate(path, value):
    spec = copy.deepcopy(BASE)
    *parents, last = path
    o = spec
    for p in parents:
        o = o[p]
    if value is DELETE:
        del o[last]
    else:
        o[last] = value
    return spec


DELETE = object()

OCI_CASES = [
    # (name, mutated spec or raw bytes, expected error substring or None for "parses")
    ("good-full", BASE, None),
    ("good-minimal", {"process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}, None),
    ("good-unknown-fields", mutate(["process", "somethingNew"], {"x": 1}), None),
    ("missing-process", mutate(["process"], DELETE), "process: missing"),
    ("process-not-object", mutate(["process"], "sh"), "process: want an object, got string"),
    ("uid-string", mutate(["process", "user", "uid"], "0"), "process.user.uid: want an integer, got string"),
    ("uid-negative", mutate(["process", "user", "uid"], -1), "process.user.uid: -1 is negative"),
    ("uid-huge", mutate(["process", "user", "uid"], 1 << 40), "process.user.uid: 1099511627776 is over"),
    ("args-empty", mutate(["process", "args"], []), "process.args: missing or empty"),
    ("args-not-strings", mutate(["process", "args"], ["sh", 1]), "process.args[1]: want a string, got integer"),
    ("env-no-equals", mutate(["process", "env"], ["PATH"]), "process.env[0]: 'PATH' is not KEY=VALUE"),
    ("cwd-relative", mutate(["process", "cwd"], "tmp"), "process.cwd: 'tmp' is not an absolute path"),
    ("unknown-capability", mutate(["process", "capabilities", "bounding"], ["CAP_WARP_DRIVE"]),
     "process.capabilities.bounding[0]: unknown capability 'CAP_WARP_DRIVE'"),
    ("unknown-rlimit", mutate(["process", "rlimits"], [{"type": "RLIMIT_FUN", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type: unknown rlimit 'RLIMIT_FUN'"),
    ("rlimit-soft-over-hard", mutate(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}]),
     "process.rlimits[0]: soft limit above hard limit"),
    ("oom-out-of-range", mutate(["process", "oomScoreAdj"], 5000), "process.oomScoreAdj: 5000 out of range"),
    ("umask-not-mode", mutate(["process", "user", "umask"], 4096), "process.user.umask"),
    ("unknown-seccomp-action", mutate(["linux", "seccomp", "defaultAction"], "SCMP_ACT_PARTY"),
     "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_PARTY'"),
    ("unknown-seccomp-op", mutate(["linux", "seccomp", "syscalls"], [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]),
     "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_ABOUT'"),
    ("seccomp-arg-index", mutate(["linux", "seccomp", "syscalls"], [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                                     "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
     "linux.seccomp.syscalls[0].args[0].index: 9 is over 5"),
    ("unknown-arch", mutate(["linux", "seccomp", "architectures"], ["SCMP_ARCH_Z80"]), "unknown 'SCMP_ARCH_Z80'"),
    ("mount-dotdot", mutate(["mounts"], [{"destination": "/../etc", "type": "tmpfs", "source": "tmpfs"}]),
     "mounts[0].destination: '/../etc' escapes the rootfs"),
    ("mount-relative", mutate(["mounts"], [{"destination": "etc", "type": "tmpfs", "source": "tmpfs"}]),
     "mounts[0].destination: 'etc' is not an absolute path"),
    ("mount-duplicate", mutate(["mounts"], [{"destination": "/x", "type": "tmpfs", "source": "a"},
                                            {"destination": "/x", "type": "tmpfs", "source": "b"}]),
     "mounts[1].destination: '/x' is mounted twice"),
    ("bind-without-source", mutate(["mounts"], [{"destination": "/x", "type": "bind", "options": ["rbind"]}]),
     "mounts[0].source: a bind mount needs a source"),
    ("masked-escape", mutate(["linux", "maskedPaths"], ["/proc/../../etc/shadow"]), "escapes the rootfs"),
    ("namespace-unknown", mutate(["linux", "namespaces"], [{"type": "time-travel"}]),
     "linux.namespaces[0].type: unknown namespace 'time-travel'"),
    ("namespace-twice", mutate(["linux", "namespaces"], [{"type": "pid"}, {"type": "pid"}]),
     "linux.namespaces[1].type: 'pid' given twice"),
    ("memory-huge-negative", mutate(["linux", "resources", "memory", "limit"], -5), "linux.resources.memory.limit: -5 out of range"),
    ("memory-swap-below-limit", mutate(["linux", "resources", "memory", "swap"], 1024), "linux.resources.memory.swap: below limit"),
    ("cpu-shares-huge", mutate(["linux", "resources", "cpu", "shares"], 1 << 62), "linux.resources.cpu.shares"),
    ("sysctl-path", mutate(["linux", "sysctl"], {"../../etc/passwd": "x"}), "linux.sysctl: '../../etc/passwd' is not a sysctl name"),
    ("annotation-not-string", mutate(["annotations"], {"a": 1}), "annotations.a: want a string, got integer"),
    ("hostname-long", mutate(["hostname"], "h" * 100), "hostname: longer than 64 bytes"),
    ("not-json", b"{\"process\": ", "config.json: not JSON at byte"),
    ("array-top", b"[1, 2]", "config.json: want an object, got array"),
    ("good-userns", mutate(["linux", "uidMappings"], [{"containerID": 0, "hostID": 100000, "size": 65536}]), None),
    ("mapping-empty", mutate(["linux", "gidMappings"], [{"containerID": 0, "hostID": 100000, "size": 0}]),
     "linux.gidMappings[0]: empty or past 2^32"),
    ("mapping-missing-field", mutate(["linux", "uidMappings"], [{"containerID": 0, "size": 1}]),
     "linux.uidMappings[0]: wants containerID, hostID and size"),
    ("args-too-many", mutate(["process", "args"], ["x"] * 5000), "process.args: 5000 entries, at most 4096"),
]


def write_oci():
    lines = []
    for name, spec, expect in OCI_CASES:
        data = spec if isinstance(spec, bytes) else json.dumps(spec, indent=1).encode()
        write("oci-spec", name + ".json", data)
        write("bundle-config", name + ".json", data)  # the host reads the same files
        lines.append(f"{name}.json\t{expect or 'OK'}")
    with open(os.path.join(HERE, "..", "unit", "oci-cases.txt"), "w") as f:
        f.write("# file<TAB>the error oci_spec_parse must give (a substring), or OK\n")
        f.write("\n".join(lines) + "\n")


write_oci()


# ---- the containerd shim: its config file, bundle config.json, Task requests ----
def write_shim():
    c = "shim-config"
    write(c, "good.toml", b'# hull shim\nkernel = "/usr/local/lib/hull/vmlinuz"\ninitrd = "/i.cpio"\n'
          b'cpus = 2\nmemory = "512M"\naccel = "tcg"\nmachine = "q35"\nchannel = "serial"\n'
          b'log_level = "debug"\nboot_timeout = "45s"\n')
    write(c, "bad-value.toml", b'cpus = many\n')
    write(c, "unknown-key.toml", b'[hull]\nkernal = "/k"\n')
    write(c, "unterminated.toml", b'kernel = "/k\n')
    write(c, "escaped.toml", b'kernel = "/k\\"x"\n')
    write(c, "relative-path.toml", b'kernel = "vmlinuz"\n')
    write(c, "trailing.toml", b'memory = "1G" junk\ncpus = 1 # ok\n')
    write(c, "nul.toml", b'cpus = 1\x00\n')
    write(c, "crlf.toml", b'cpus = 4\r\nmemory = 1G\r\n')

    s = "shim-spec"
    cri = copy.deepcopy(BASE)
    cri["mounts"] += [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid"]},
                      {"destination": "/dev/shm/", "type": "bind", "source": "/run/shm-of-pod", "options": ["rbind", "ro"]},
                      {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/pod/hosts"}]
    cri["linux"]["namespaces"] = [{"type": "network", "path": "/var/run/netns/cni-1"},
                                  {"type": "ipc", "path": "/proc/12/ns/ipc"}, {"type": "pid"}]
    cri["annotations"] = {"io.kubernetes.cri.container-type": "container",
                          "io.kubernetes.cri.sandbox-id": "ab" * 32}
    cri["linux"]["cgroupsPath"] = "/k8s.io/" + "cd" * 32
    write(s, "cri-container.json", json.dumps(cri).encode())
    for name, spec, _ in OCI_CASES[:12]:
        write(s, name + ".json", spec if isinstance(spec, bytes) else json.dumps(spec).encode())
    write(s, "not-object.json", b"[1]")
    write(s, "namespaces-not-array.json", b'{"linux": {"namespaces": {"type": "network"}}, "mounts": 3}')

    t = "task-service"
    task = "containerd.task.v2.Task"

    def call(sid, method, payload=b""):
        return request(sid, method, payload, service=task)

    def any_(url, value):
        return ld(1, url) + ld(2, value)

    mount = ld(1, "overlay") + ld(2, "overlay") + ld(4, "lowerdir=/a") + ld(4, "ro")
    opts = any_("runtimeoptions.v1.Options", ld(2, "/etc/hull/shim.toml"))
    write(t, "create", call(1, "Create", ld(1, "c2") + ld(2, "/nonexistent/b2") + ld(3, mount) +
                         ld(6, "/nonexistent/fifo") + ld(10, opts)))
    write(t, "create-exists", call(1, "Create", ld(1, "c1") + ld(2, "/b")))
    write(t, "create-bad-id", call(1, "Create", ld(1, "../x") + ld(2, "/b")))
    write(t, "start-exec", call(1, "Start", ld(1, "c1") + ld(2, "e1")))
    write(t, "state-wait", call(1, "State", ld(1, "c1")) + call(3, "Wait", ld(1, "c1") + ld(2, "e1")))
    write(t, "kill", call(1, "Kill", ld(1, "c1") + vi(3, 15) + vi(4, 1)))
    write(t, "kill-bad-signal", call(1, "Kill", ld(1, "c1") + vi(3, 99)))
    write(t, "exec-start", call(1, "Exec", ld(1, "c1") + ld(2, "e2") + ld(7, any_(
        "types.containerd.io/opencontainers/runtime-spec/1/Process", '{"args":["true"],"cwd":"/"}'))) +
        call(3, "Start", ld(1, "c1") + ld(2, "e2")))
    write(t, "delete-exec", call(1, "Delete", ld(1, "c1") + ld(2, "e1")))
    write(t, "delete-running", call(1, "Delete", ld(1, "c1")))
    write(t, "pids-stats", call(1, "Pids", ld(1, "c1")) + call(3, "Stats", ld(1, "c1")))
    write(t, "pause-resume", call(1, "Pause", ld(1, "c1")) + call(3, "Resume", ld(1, "c1")))
    write(t, "update", call(1, "Update", ld(1, "c1") + ld(2, any_("x", '{"memory":{"limit":1}}'))))
    write(t, "resize-closeio", call(1, "ResizePty", ld(1, "c1") + vi(3, 80) + vi(4, 24)) +
          call(3, "CloseIO", ld(1, "c1") + ld(2, "e1") + vi(3, 1)))
    write(t, "connect-shutdown", call(1, "Connect", ld(1, "c1")) + call(3, "Shutdown", ld(1, "c1")))
    write(t, "no-task", call(1, "State", ld(1, "ghost")) + call(3, "Checkpoint", ld(1, "c1")))
    write(t, "garbage", call(1, "Create", b"\xff\xff\xff\x01"))


write_shim()


# ---- images: manifests, configs, references; layer tars ----
def write_images():
    import gzip
    import io
    import tarfile
    d = "sha256:" + "0123456789abcdef" * 4
    s = "image-spec"
    write(s, "index", b"\x00" + json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                            "manifests": [{"digest": d, "size": 3, "platform": {"os": "linux", "architecture": "amd64"},
                                                           "annotations": {"io.containerd.image.name": "x/y:z"}}]}).encode())
    write(s, "manifest", b"\x00" + json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 1},
                                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d, "size": 9}]}).encode())
    write(s, "docker-list", b"\x00" + json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                                                  "manifests": [{"digest": d, "size": 3}]}).encode())
    write(s, "bad-digest", b"\x00" + b'{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}')
    write(s, "config", b"\x01" + json.dumps({"os": "linux", "architecture": "amd64",
                                             "config": {"Entrypoint": ["a"], "Cmd": ["b"], "Env": ["A=1"], "User": "1:2",
                                                        "WorkingDir": "/w", "StopSignal": "SIGTERM"},
                                             "rootfs": {"type": "layers", "diff_ids": [d]}}).encode())
    write(s, "config-null", b"\x01" + b'{"config":null,"rootfs":{"diff_ids":null}}')
    write(s, "challenge", b"\x03" + b'Bearer realm="https://auth.example/token",service="reg",scope="repository:x:pull"')
    write(s, "challenge-odd", b"\x03" + b'Bearer realm="ftp://x",scope="' + b"a" * 2000 + b'"')
    for i, ref in enumerate(["busybox", "localhost:5000/a/b:c", "ghcr.io/o/r@" + d, "UPPER", "a//b", "x:" + "t" * 200]):
        write(s, "ref%d" % i, b"\x02" + ref.encode())

    def tar(entries, compress=False):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, kind, arg in entries:
                ti = tarfile.TarInfo(name)
                data = None
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                elif kind == "sym":
                    ti.type, ti.linkname = tarfile.SYMTYPE, arg
                elif kind == "hard":
                    ti.type, ti.linkname = tarfile.LNKTYPE, arg
                elif kind == "chr":
                    ti.type = tarfile.CHRTYPE
                else:
                    data = arg or b"x"
                    ti.size = len(data)
                t.addfile(ti, io.BytesIO(data) if data is not None else None)
        raw = buf.getvalue()
        return gzip.compress(raw, mtime=0) if compress else raw
    L = "image-layer"
    write(L, "plain", tar([("a", "dir", None), ("a/b", "file", b"hi"), ("l", "sym", "a/b"), ("h", "hard", "a/b")]))
    write(L, "gzip", tar([("f", "file", b"zip")], compress=True))
    write(L, "whiteouts", tar([("d", "dir", None), ("d/x", "file", None), ("d/.wh..wh..opq", "file", None),
                               (".wh.f", "file", None), ("d/.wh.x", "file", None)]))
    write(L, "dotdot", tar([("../escape", "file", None)]))
    write(L, "absolute", tar([("/abs", "file", None)]))
    write(L, "sym-escape", tar([("s", "sym", "/"), ("s/tmp/x", "file", None), ("t", "sym", "../.."), ("t/y", "file", None)]))
    write(L, "hard-escape", tar([("h", "hard", "../../etc/passwd"), ("g", "hard", "/etc/passwd")]))
    write(L, "wh-escape", tar([("r", "sym", "/"), ("r/.wh.canary", "file", None), ("q", "sym", ".."), ("q/.wh.canary", "file", None)]))
    write(L, "device", tar([("dev", "dir", None), ("dev/c", "chr", None)]))
    write(L, "garbage", b"\x1f\x8b\x08\x00" + b"\xff" * 40)


def write_cni():
    c = "cni-result"
    write(c, "result-1.0", json.dumps({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}],
                                       "ips": [{"address": "10.88.0.5/16", "gateway": "10.88.0.1", "interface": 0}, {"address": "fd00::5/64"}],
                                       "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.88.0.1"], "search": ["svc.cluster.local"], "options": ["ndots:5"]}}).encode())
    write(c, "result-newline", json.dumps({"ips": [{"address": "x"}], "dns": {"nameservers": ["1.1.1.1\nnameserver 6.6.6.6", "8.8.8.8"], "search": [1, None]}}).encode())
    write(c, "error", json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "invalid subnet", "details": "not-a-subnet"}).encode())
    write(c, "not-json", b'{"ips": [')
    write(c, "conflist", json.dumps({"cniVersion": "1.0.0", "name": "hulltest", "plugins": [
        {"type": "bridge", "bridge": "br0", "isGateway": True, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}).encode())
    write(c, "conf-single", json.dumps({"cniVersion": "0.4.0", "name": "one", "type": "ptp", "ipam": {"type": "static"}}).encode())
    write(c, "conflist-bad-type", json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../../bin/sh"}, 7]}).encode())


write_images()
write_cni()
