"""A bundle server that does not play by the rules, through the real binary.

The list bundle is signed, so the server at `lists.url` is not trusted with
its content; it must not be able to do anything else to Embargo either. A
TLS server on loopback (its own CA, given as `lists.ca_file`) answers each
fetch with bytes a test scripts, one TLS record per piece:

- Regression: a NUL byte in the answer's head made the fetcher's own head
  parser walk off its buffer (strstr stopped at the NUL and returned NULL)
  and the process died of SIGSEGV: `embargo lists fetch`, and the proxy
  itself, whose schedule runs the same fetch. The answer is now parsed by
  the proxy's HTTP/1 parser (llhttp): refused as `fetch_failed`.
- A signed bundle sent chunked, in thousands of small chunks each in a
  record of its own, is decoded and applied.
- Regression: a chunked answer was decoded again from its first chunk after
  every read that ended like a last chunk, so a server sending many small
  chunks made the work grow with the square of what it sent, on a thread
  that noticed neither its 60 s deadline nor a stop while data kept coming:
  SIGTERM did not end the proxy. Each byte is now parsed once, and the
  deadline and a stop are checked at every read.
- Regression: a fetched bundle was compared with the one in force only, so
  with a newer one cached (by `embargo lists fetch` beside the proxy) a
  replayed older bundle was applied and overwrote the cache.

Everything listens on 127.0.0.1; needs the openssl command.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

import harness
from harness import EmbargoTestCase, free_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
VENDORS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "config", "vendors")


def run(cmd, check=True, timeout=60):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def make_certs(tmp):
    """A CA and a certificate for IP:127.0.0.1 it signed: (ca, cert, key)."""
    o = harness.OPENSSL
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.crt")
    run([o, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Embargo hostile lists CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"])
    key, csr, crt = (os.path.join(tmp, "server." + e) for e in ("key", "csr", "crt"))
    ext = os.path.join(tmp, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run([o, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    run([o, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
         "2", "-extfile", ext, "-out", crt])
    return ca, crt, key


class ScriptedServer:
    """TLS on 127.0.0.1: reads each request's head, then sends what
    `answer(server, sock, path)` sends and closes. `records` counts the
    pieces sent, `paths` the requests' paths."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = None  # answer(server, socket, request path)
        self.records = 0
        self.requests = 0
        self.paths = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw):
        raw.settimeout(20)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                head = b""
                for _ in range(100):
                    if b"\r\n\r\n" in head:
                        break
                    data = s.recv(4096)
                    if not data:
                        return
                    head += data
                self.requests += 1
                path = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else ""
                self.paths.append(path)
                self.answer(self, s, path)
        except (OSError, ssl.SSLError):
            pass  # the client went away: what the stop test expects

    def send(self, s, piece):
        s.sendall(piece)
        self.records += 1

    def stopped(self):
        return self._stop.is_set()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.sock.close()


class HostileServerTest(EmbargoTestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which(harness.OPENSSL) is None and not os.access(harness.OPENSSL, os.X_OK):
            raise unittest.SkipTest("openssl not installed")
        cls.lists_tmp = tempfile.mkdtemp(prefix="embargo-hostile-")
        try:
            os.chmod(cls.lists_tmp, 0o755)
            cls.ca, cert, key = make_certs(cls.lists_tmp)
            cls.key = os.path.join(cls.lists_tmp, "lists.key")
            run([harness.BINARY, "lists", "keygen", "--key", cls.key])
            cls.bundles = {}
            for serial in (100, 150, 200):
                out = os.path.join(cls.lists_tmp, "%d.bundle" % serial)
                run([harness.BINARY, "lists", "sign", VENDORS, "--key", cls.key, "--serial",
                     str(serial), "--output", out])
                with open(out, "rb") as f:
                    cls.bundles[serial] = f.read()
            cls.bundle = cls.bundles[100]
            cls.server = ScriptedServer(cert, key)
            super().setUpClass()
        except BaseException:
            cls._teardown_lists()
            raise

    @classmethod
    def _teardown_lists(cls):
        if getattr(cls, "server", None) is not None:
            cls.server.stop()
        shutil.rmtree(cls.lists_tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._teardown_lists()

    def setUp(self):
        super().setUp()
        self.cache = tempfile.mkdtemp(dir=self.lists_tmp, prefix="cache-")
        self.server.records = self.server.requests = 0
        self.server.paths = []

    def lists_yaml(self, path="/lists.bundle", interval="1h"):
        return ("user: root\nlists:\n  url: https://127.0.0.1:%d%s\n  pubkey: %s\n"
                "  cache_dir: %s\n  ca_file: %s\n  interval: %s\n"
                % (self.server.port, path, self.key + ".pub", self.cache, self.ca, interval))

    def fetch_once(self, path="/lists.bundle"):
        cfg = os.path.join(self.lists_tmp, "fetch.yaml")
        with open(cfg, "w") as f:
            f.write(self.lists_yaml(path))
        return run([harness.BINARY, "lists", "fetch", "-c", cfg], check=False, timeout=120)

    def test_a_nul_in_the_answer_head_is_refused_not_a_crash(self):
        """Regression: SIGSEGV in the fetcher's head parser."""
        cases = (  # the answer, and what it comes to
            (b"HTTP/1.1 200 OK\x00\r\nContent-Length: 5\r\n\r\nhello",
             ": malformed: not a list bundle"),  # a reason phrase is not looked at
            (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
             ": fetch_failed: not an HTTP/1.x answer: "))
        for head, outcome in cases:
            self.server.answer = lambda srv, s, path, head=head: srv.send(s, head)
            p = self.fetch_once()
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 1, (head, err))
            self.assertIn(outcome, err)
            for marker in harness.SANITIZER_MARKERS:
                self.assertNotIn(marker, err)
            self.assertFalse(os.path.exists(os.path.join(self.cache, "lists.bundle")))

    def test_a_bundle_in_many_small_chunks_is_applied(self):
        def chunked(srv, s, path):
            srv.send(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: close\r\n\r\n")
            for i in range(0, len(self.bundle), 7):
                piece = self.bundle[i:i + 7]
                srv.send(s, b"%x\r\n%s\r\n" % (len(piece), piece))
            srv.send(s, b"0\r\n\r\n")

        self.server.answer = chunked
        p = self.fetch_once()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b": applied: serial 100 ", p.stdout)
        with open(os.path.join(self.cache, "lists.bundle"), "rb") as f:
            self.assertEqual(f.read(), self.bundle)

    def test_a_stop_ends_a_fetch_whose_answer_keeps_coming(self):
        """Regression: SIGTERM did not end the proxy while its fetch worked
        through a stream of small chunks. Each chunk's data ends like a last
        chunk ("0" CRLF CRLF), which made the old decoder start again from
        the first chunk after every record."""
        def endless(srv, s, path):
            srv.send(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\n0\r\n\r\n")
            for _ in range(3000000):  # at most 30 MB; the client's close ends it first
                if srv.stopped():
                    return
                srv.send(s, b"\r\n5\r\n0\r\n\r\n")  # a chunk's end, the next one whole

        self.server.answer = endless
        e = self.start_embargo(extra=self.lists_yaml())
        wait_until(lambda: self.server.records >= 30000, 60,
                   what="the fetch to be 30000 records into its answer")
        e.check_clean_exit()
        self.assertEqual(self.server.requests, 1)

    def test_a_bundle_older_than_the_cached_one_never_replaces_it(self):
        """Regression: the proxy compared a fetched bundle with the one in
        force only. When the cache was ahead of it (`embargo lists fetch`
        run by a timer cached serial 200, the reload not done yet), a
        replayed serial 150 was applied and overwrote the cache: the newer
        lists were gone. It is refused as a rollback, and the cached bundle
        is what a reload puts in force."""
        with open(os.path.join(self.cache, "lists.bundle"), "wb") as f:
            f.write(self.bundles[100])
        serving = {"/lists.bundle": self.bundles[100], "/timer.bundle": self.bundles[200]}

        def by_path(srv, s, path):
            body = serving.get(path, b"")
            srv.send(s, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        self.server.answer = by_path
        e = self.start_embargo(extra=self.lists_yaml(interval="1s"))
        self.assertIn("lists: vendor lists from bundle serial 100", e.stderr_text())
        e.wait_stderr("serial 100, the bundle in force")
        # The timer's update: serial 200 cached beside the running proxy.
        p = self.fetch_once("/timer.bundle")
        self.assertIn(b": applied: serial 200 ", p.stdout, p.stderr)
        serving["/lists.bundle"] = self.bundles[150]  # an older bundle replayed
        text = e.wait_stderr("bundle refused (rollback)", timeout=30)
        self.assertIn("serial 150 (created ", text)
        self.assertIn("is not above serial 200 in the cache (not yet in force)", text)
        with open(os.path.join(self.cache, "lists.bundle"), "rb") as f:
            self.assertEqual(f.read(), self.bundles[200])
        self.assertNotIn("bundle serial 150 in force", e.stderr_text())
        # Served again, the cached bundle is put in force.
        serving["/lists.bundle"] = self.bundles[200]
        e.wait_stderr("lists: bundle serial 200 in force", timeout=30)


if __name__ == "__main__":
    harness.main()
