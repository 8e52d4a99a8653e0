#!/usr/bin/python3
"""wsexec.py URL OUTDIR [--stdin FILE] [--resize WxH] [--protocol P] [--until TEXT]: what the API
server does with the URL a CRI Exec or Attach call returned, over the streaming
server's WebSocket protocol (Debian's python3-websocket): stdin's bytes on channel 0,
a terminal size on channel 4, and OUTDIR/stdout, OUTDIR/stderr and OUTDIR/status (the
error channel: a JSON metav1.Status) written from channels 1, 2 and 3 until the server
closes (or stdout holds TEXT: an attach to a container that goes on). Exit 0 when the
connection ended cleanly."""
import json
import os
import sys

import websocket


def main():
    url, out = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    stdin = resize = until = None
    proto = "v4.channel.k8s.io"
    while args:
        a = args.pop(0)
        if a == "--stdin":
            stdin = open(args.pop(0), "rb").read()
        elif a == "--resize":
            w, h = args.pop(0).split("x")
            resize = json.dumps({"Width": int(w), "Height": int(h)}).encode()
        elif a == "--protocol":
            proto = args.pop(0)
        elif a == "--until":
            until = args.pop(0).encode()
    ws = websocket.create_connection(url.replace("http://", "ws://", 1), subprotocols=[proto],
                                     timeout=60)
    files = {1: open(os.path.join(out, "stdout"), "wb"), 2: open(os.path.join(out, "stderr"), "wb"),
             3: open(os.path.join(out, "status"), "wb")}
    if resize is not None:
        ws.send_binary(b"\x04" + resize)
    if stdin is not None:
        ws.send_binary(b"\x00" + stdin)
    if proto == "v5.channel.k8s.io" and stdin is not None:
        ws.send_binary(b"\xff\x00")  # v5: close stdin
    seen = b""
    while True:
        try:
            op, data = ws.recv_data(control_frame=False)
        except websocket.WebSocketConnectionClosedException:
            break
        if op == websocket.ABNF.OPCODE_CLOSE or not data:
            break
        if data[0] in files:
            files[data[0]].write(data[1:])
            files[data[0]].flush()
        if data[0] == 1 and until is not None:
            seen += data[1:]
            if until in seen:
                ws.close()
                break
    for f in files.values():
        f.close()


main()
