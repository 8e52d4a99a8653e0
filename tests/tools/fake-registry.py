#!/usr/bin/python3
"""fake-registry.py ARCHIVE MODE PORTFILE: a registry that serves the one image of an
OCI archive (any repository, any tag) and misbehaves as MODE says; it listens on a
free loopback port and writes the port to PORTFILE. For what a real registry
(docker-registry) cannot be made to do on demand:

  500        every request answers 500
  hang       requests are read and never answered
  bad-blob   the layer blob comes with one byte changed
  drop-once  the first fetch of the layer stops halfway (the connection closes);
             a fetch with Range gets the rest (206); each Range is logged in PORTFILE.log
  bearer     the API wants a bearer token from /token, which wants basic alice:secret
"""
import base64
import hashlib
import json
import os
import socketserver
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

archive, mode, portfile = sys.argv[1:4]
blobs = {}
with tarfile.open(archive) as t:
    for m in t.getmembers():
        if m.isfile() and m.name.startswith("blobs/sha256/"):
            blobs["sha256:" + m.name.rsplit("/", 1)[1]] = t.extractfile(m).read()
    index = json.load(t.extractfile("index.json"))
top = index["manifests"][0]["digest"]
manifest = json.loads(blobs[top])
layer = manifest["layers"][0]["digest"] if "layers" in manifest else None
dropped = set()
TOKEN = "t0ken-" + hashlib.sha256(os.urandom(8)).hexdigest()[:8]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if mode == "500":
            return self.send(500, b"boom")
        if mode == "hang":
            time.sleep(3600)
            return
        if mode == "bearer":
            if self.path.startswith("/token"):
                want = "Basic " + base64.b64encode(b"alice:secret").decode()
                if self.headers.get("Authorization") != want:
                    return self.send(401, b"{}")
                return self.send(200, json.dumps({"token": TOKEN}).encode(), "application/json")
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                realm = "http://127.0.0.1:%d/token" % self.server.server_address[1]
                return self.send(401, b"{}", extra=[("WWW-Authenticate",
                                 'Bearer realm="%s",service="fake",scope="repository:x:pull"' % realm)])
        parts = self.path.split("/")
        if self.path == "/v2/" or self.path == "/v2":
            return self.send(200, b"{}")
        if len(parts) < 5 or parts[1] != "v2":
            return self.send(404)
        kind, ref = parts[-2], parts[-1]
        if kind == "manifests":
            d = ref if ref.startswith("sha256:") else top
            if d not in blobs:
                return self.send(404)
            mt = json.loads(blobs[d]).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
            return self.send(200, blobs[d], mt, [("Docker-Content-Digest", d)])
        if kind == "blobs" and ref in blobs:
            data = blobs[ref]
            if ref == layer and mode == "bad-blob":
                data = data[:50] + bytes([data[50] ^ 1]) + data[51:]
            rng = self.headers.get("Range")
            if ref == layer and mode == "drop-once":
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    with open(portfile + ".log", "a") as f:
                        f.write("range %d\n" % start)
                    body = data[start:]
                    self.send_response(206)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if ref not in dropped:
                    dropped.add(ref)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
            return self.send(200, data)
        return self.send(404)


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
