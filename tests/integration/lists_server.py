"""An HTTPS server for list bundles, run by test_lists.py inside its network
namespace: GET /NAME answers the file DIR/NAME as it is at that moment (the
test swaps files with os.replace), 404 when it is missing. Every request is
appended to LOG as one JSON line {"path": ..., "status": ...}.

    python3 lists_server.py DIR CERT KEY ADDRESS PORT LOG

It prints "ready" once listening and runs until killed (the test ends it by
its PID) or for at most 30 minutes.
"""

import http.server
import json
import os
import ssl
import sys
import threading

DIR, CERT, KEY, ADDRESS, PORT, LOG = sys.argv[1:7]
_lock = threading.Lock()


def record(**kw):
    with _lock, open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        name = os.path.basename(self.path.split("?", 1)[0])
        try:
            with open(os.path.join(DIR, name), "rb") as f:
                body = f.read()
            status = 200
        except OSError:
            body, status = b"not found\n", 404
        record(path=self.path, status=status)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server((ADDRESS, int(PORT)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Timer(1800, server.shutdown).start()
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
