"""An origin for the network-namespace tests, run inside the origin
namespace: HTTP on port 80 and HTTPS on port 443, both families (one
dual-stack socket each). Every accepted connection is appended to a log
file as one JSON line {"peer": ip, "port": server port} and every request
as {"peer": ip, "port": ..., "path": ..., "host": ...}, so the test can
count who connected.

    python3 netns_origin.py LOGFILE CERT KEY

GET /big?size=N   N bytes of the harness's deterministic pattern (seed 7)
GET /anything     "ok HOST PATH\\n"
It runs until killed (the test ends it by its PID) or for at most 30 min.
"""

import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

import harness

LOG, CERT, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
_lock = threading.Lock()


def record(**kw):
    with _lock, open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        host = self.headers.get("Host", "")
        record(peer=self.client_address[0], port=self.server.server_address[1],
               path=u.path, host=host)
        if u.path == "/big":
            size = int(urllib.parse.parse_qs(u.query).get("size", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for piece in harness.pattern_pieces(size, 7):
                self.wfile.write(piece)
            return
        body = ("ok %s %s\n" % (host, u.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, tls):
        self.tls = tls
        super().__init__(("::", port), Handler, bind_and_activate=False)
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.server_bind()
        self.server_activate()
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(CERT, KEY)

    def get_request(self):
        sock, addr = self.socket.accept()
        peer = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
        record(peer=peer, port=self.server_address[1], accepted=True)
        if self.tls:
            sock = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, (peer,) + tuple(addr[1:])

    def finish_request(self, request, client_address):
        if self.tls:
            try:
                request.settimeout(20)
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)


servers = [Server(80, False), Server(443, True)]
for s in servers:
    threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
print("ready", flush=True)
time.sleep(1800)
