#!/usr/bin/python3
"""portforward.py URL PORT REQUEST-FILE: what `kubectl port-forward` does with the URL a
CRI PortForward call returned, over the streaming server's WebSocket protocol
(v4.channel.k8s.io: each port has a data and an error channel, every message starts
with its channel's byte, and each channel's first message is the port, 2 bytes little
endian). Sends REQUEST-FILE's bytes into the pod's PORT, writes what comes back to
stdout until the server closes. Exit 1 with the error channel's text on stderr."""
import base64
import os
import socket
import struct
import sys
import urllib.parse


class Conn:
    """The socket, and bytes that came with the upgrade's reply."""

    def __init__(self, sock, rest):
        self.sock, self.buf = sock, rest

    def sendall(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def send_frame(s, opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(head + mask + masked)


def read_frame(s):
    b0, b1 = s.recv_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", s.recv_exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", s.recv_exact(8))[0]
    mask = s.recv_exact(4) if b1 & 0x80 else None
    payload = s.recv_exact(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    url, port = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
    with open(sys.argv[3], "rb") as f:
        request = f.read()
    s = socket.create_connection((url.hostname, url.port or 80), timeout=120)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {url.path}?port={port} HTTP/1.1\r\nHost: {url.netloc}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("portforward: the server closed during the upgrade")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("portforward: no upgrade: " + head.decode(errors="replace"))
    s = Conn(s, rest)
    seen_port = [False, False]
    errors = b""
    sent = False
    out = sys.stdout.buffer
    last_channel = None
    while True:
        opcode, payload = read_frame(s)
        if opcode == 8:  # close
            break
        if opcode == 9:  # ping
            send_frame(s, 10, payload)
            continue
        if opcode == 0 and last_channel is not None:  # a continuation
            channel, data = last_channel, payload
        elif opcode in (1, 2) and payload:
            channel, data = payload[0], payload[1:]
        else:
            continue
        last_channel = channel
        if channel > 1:
            sys.exit(f"portforward: a message on channel {channel}")
        if not seen_port[channel]:
            if len(data) < 2 or struct.unpack("<H", data[:2])[0] != port:
                sys.exit(f"portforward: channel {channel} did not start with port {port}")
            seen_port[channel] = True
            data = data[2:]
        if channel == 0:
            out.write(data)
        else:
            errors += data
        if not sent and all(seen_port):
            send_frame(s, 2, b"\x00" + request)
            sent = True
    out.flush()
    if errors:
        sys.stderr.write(errors.decode(errors="replace") + "\n")
        sys.exit(1)


main()
