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


def request(sid, method, payload=b"", service="hull.agent.v1.Agent"):
    return frame(sid, 1, ld(1, service) + ld(2, method) + ld(3, payload))


def response(sid, code=0, msg="", payload=b""):
    status = (vi(1, code) if code else b"") + (ld(2, msg) if msg else b"")
    return frame(sid, 2, ld(1, status) + ld(2, payload))


def process(args, env=(), cwd="/", uid=0, gid=0, terminal=False):
    p = b"".join(ld(1, a) for a in args) + b"".join(ld(2, e) for e in env) + ld(3, cwd)
    p += vi(4, uid) + vi(5, gid) + (vi(7, 1) if terminal else b"")
    return p


def storage(tag, readonly=False, overlay=True):
    return ld(1, tag) + ld(2, "9p") + (vi(3, 1) if readonly else b"") + (vi(4, 1) if overlay else b"")


def create(cid="job", args=("echo", "hi"), mounts=(), hostname="box", root="hull-root", **kw):
    body = ld(1, cid) + ld(2, storage(root)) + ld(3, process(args, **kw)) + ld(4, hostname)
    for tag, dest in mounts:
        body += ld(5, ld(1, storage(tag)) + ld(2, dest))
    return body


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
    write(a, "create-dotdot-volume", request(3, "CreateContainer", create(mounts=(("vol0", "/../etc"),))))
    write(a, "create-bad-id", request(3, "CreateContainer", create(cid="../x")))
    write(a, "create-empty-args", request(3, "CreateContainer", create(args=())))
    write(a, "create-bad-env", request(3, "CreateContainer", create(env=("NOEQUALS",))))
    write(a, "create-relative-cwd", request(3, "CreateContainer", create(cwd="tmp")))
    write(a, "create-bad-tag", request(3, "CreateContainer", create(root="a,b")))
    write(a, "create-wrong-type", request(3, "CreateContainer", vi(1, 5)))
    write(a, "create-tty", request(3, "CreateContainer", create(terminal=True)))
    write(a, "start", request(5, "StartContainer", cr))
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

    # ---- ttrpc frames, either direction ----
    t = "ttrpc-frame"
    write(t, "request", b"\x05" + request(1, "Check"))
    write(t, "response", b"\x01" + response(1, payload=ld(1, "0.1.0")))
    write(t, "error-response", b"\x10" + response(3, 5, "container 'x' not found"))
    write(t, "data", b"\x02" + frame(7, 3, vi(1, 1) + ld(2, b"\x00\x01binary")))
    write(t, "oversize", b"\x03" + frame(1, 1, b"", length=0xFFFFFFFF))
    write(t, "two", b"\x00" + request(1, "Check") + request(3, "DestroySandbox"))

    # ---- agent replies (guest -> host) ----
    r = "agent-reply"
    write(r, "check", response(1, payload=ld(1, "0.1.0") + vi(2, 1) + vi(3, 900)))
    write(r, "stdio", frame(3, 3, vi(1, 1) + ld(2, "out")) + frame(3, 3, vi(1, 2) + vi(3, 1)) + response(3))
    write(r, "wait-exit", response(5, payload=vi(1, 42)))
    write(r, "wait-signal", response(5, payload=vi(2, 9)))
    write(r, "wait-negative", response(5, payload=vi(1, (1 << 64) - 1)))
    write(r, "error", response(1, 13, "boom"))
    write(r, "unknown-stream", response(1001))
    write(r, "oversize", frame(3, 3, b"", length=6 << 20))

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
