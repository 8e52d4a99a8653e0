#!/usr/bin/python3
"""fake-dns.py ADDR PORT IP: a DNS server for tests. Answers A queries for names under
hull.test with IP, NXDOMAIN for the rest; prints "ready" once bound."""
import socket, struct, sys

def answer(q, ip):
    tid, flags, qd = struct.unpack("!HHH", q[:6])
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
        i += 1 + q[i]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    name = ".".join(labels).lower()
    ok = name.endswith("hull.test")
    hdr = struct.pack("!HHHHHH", tid, 0x8180 if ok else 0x8183, 1, 1 if ok and qtype == 1 else 0, 0, 0)
    if not ok or qtype != 1:
        return hdr + question
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ip)
    return hdr + question + rr

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    try:
        s.sendto(answer(q, sys.argv[3]), peer)
    except (IndexError, struct.error):
        pass
