"""Defect 4: the admin endpoint could be driven by a web page and starved by
idle sockets.

- `POST /reload` with `Origin: http://evil.example` and `Content-Type:
  text/plain` (what a browser sends cross-origin without a preflight) was
  executed;
- `GET /policy` with `Host: rebind.evil.example` was served (DNS rebinding
  reads /policy and /metrics; the loopback endpoint has no token by
  default);
- 70 idle connections left /healthz answering 0 of 3 times, so the
  liveness probe failed for anyone on the host or in the pod.

Now a foreign Origin gets 403, a Host that does not name the endpoint 421,
a POST that is not application/json 415 (none of them does anything), a
connection must send its request head within 3 s, and beyond 8 connections
of one client (64 in all) the oldest one still waiting for its request is
closed, so a probe always gets in.
"""

import os
import socket

import harness
from harness import EmbargoTestCase, free_port
from test_admin import admin_extra, admin_get, parse_metrics


class AdminDefences(EmbargoTestCase):
    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Started as root, embargo runs as `nobody`: a reload reads as that user.
        os.chmod(cls.tmp, 0o755)

    def reloads(self):
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        return m['embargo_reloads_total{result="success"}'] + \
            m['embargo_reloads_total{result="failure"}']

    def test_foreign_origin_cannot_reload(self):
        """Defect 4: a cross-origin POST /reload (text/plain, no preflight)
        was executed."""
        before = self.reloads()
        st, _, body = admin_get(self.ADMIN_PORT, "/reload", method="POST",
                                headers={"Origin": "http://evil.example",
                                         "Content-Type": "text/plain"})
        self.assertEqual(st, 403, body)
        self.assertEqual(body, b"requests from another origin are refused\n")
        for origin in ("http://evil.example", "null", "https://127.0.0.1:%d" % self.ADMIN_PORT,
                       "http://127.0.0.1:%d" % (self.ADMIN_PORT + 1), "http://127.0.0.1"):
            with self.subTest(origin=origin):
                st, _, _ = admin_get(self.ADMIN_PORT, "/reload", method="POST",
                                     headers={"Origin": origin})
                self.assertEqual(st, 403)
                self.assertEqual(admin_get(self.ADMIN_PORT, "/policy",
                                           headers={"Origin": origin})[0], 403)
        self.assertEqual(self.reloads(), before, "nothing was reloaded")
        # The endpoint's own origin is fine (a browser pointed at it).
        st, _, body = admin_get(self.ADMIN_PORT, "/reload", method="POST",
                                headers={"Origin": "http://127.0.0.1:%d" % self.ADMIN_PORT})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.reloads(), before + 1)

    def test_post_needs_a_type_no_page_can_send_without_a_preflight(self):
        before = self.reloads()
        for ctype in ("text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "text/plain; charset=utf-8", None):
            with self.subTest(content_type=ctype):
                st, _, body = admin_get(self.ADMIN_PORT, "/reload", method="POST",
                                        headers={"Content-Type": ctype})
                self.assertEqual(st, 415, body)
                self.assertEqual(body, b"POST needs Content-Type: application/json\n")
        self.assertEqual(self.reloads(), before, "nothing was reloaded")
        st, _, body = admin_get(self.ADMIN_PORT, "/reload", method="POST",
                                headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(st, 200, body)
        self.assertEqual(self.reloads(), before + 1)

    def test_a_rebound_host_reads_nothing(self):
        """Defect 4: GET /policy with Host: rebind.evil.example was served."""
        for host in ("rebind.evil.example", "rebind.evil.example:%d" % self.ADMIN_PORT,
                     "127.0.0.1:%d" % (self.ADMIN_PORT + 1), "127.0.0.2:%d" % self.ADMIN_PORT,
                     "localhost.evil.example:%d" % self.ADMIN_PORT):
            for path in ("/policy", "/metrics", "/readyz"):
                with self.subTest(host=host, path=path):
                    st, _, body = admin_get(self.ADMIN_PORT, path, headers={"Host": host})
                    self.assertEqual(st, 421, body)
                    self.assertNotIn(b"version", body)
                    self.assertNotIn(b"embargo_", body)

    def test_the_endpoints_own_names_are_answered(self):
        """Its address, localhost on loopback, and the names in admin.names."""
        name, port = "embargo.example.internal", free_port()
        self.start_embargo(extra=admin_extra(port, "  names: [%s]\n" % name))
        for host in ("127.0.0.1:%d" % port, "127.0.0.1", "localhost:%d" % port, "LOCALHOST",
                     "%s:%d" % (name, port), name.upper()):
            with self.subTest(host=host):
                self.assertEqual(admin_get(port, "/policy", headers={"Host": host})[0], 200)
        st, _, _ = admin_get(port, "/policy", headers={"Origin": "http://%s:%d" % (name, port)})
        self.assertEqual(st, 200)
        st, _, _ = admin_get(self.ADMIN_PORT, "/policy",
                             headers={"Host": "%s:%d" % (name, self.ADMIN_PORT)})
        self.assertEqual(st, 421, "a name the configuration does not list")

    def test_http11_without_host_is_refused(self):
        st, _, body = admin_get(self.ADMIN_PORT, "/healthz", headers={"Host": None})
        self.assertEqual((st, body), (400, b"a Host header is required\n"))

    def test_idle_connections_do_not_starve_the_probe(self):
        """Defect 4: 70 idle connections left /healthz answering 0 of 3."""
        idle = []
        try:
            for _ in range(72):
                idle.append(socket.create_connection(("127.0.0.1", self.ADMIN_PORT), timeout=10))
            answers = [admin_get(self.ADMIN_PORT, "/healthz") for _ in range(3)]
            self.assertEqual([(st, body) for st, _, body in answers], [(200, b"ok\n")] * 3)
            # The idle ones were closed to make room, oldest first: at most
            # 8 per client address stay open.
            closed = 0
            for s in idle[:60]:
                data, eof = harness.read_to_eof(s, timeout=10)
                self.assertEqual(data, b"")
                closed += eof
            self.assertEqual(closed, 60)
        finally:
            for s in idle:
                s.close()

    def answered_and_left_open(self, sources):
        """One connection from each address of SOURCES: its request answered
        (the response read up to the endpoint's FIN), then left open, as a
        client that never closes leaves it. Returns the sockets."""
        held = []
        request = ("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % self.ADMIN_PORT).encode()
        for src in sources:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
            s.settimeout(10)
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.ADMIN_PORT))
            s.sendall(request)
        for s in held:
            data, eof = harness.read_to_eof(s, timeout=10)
            self.assertTrue(eof and data.startswith(b"HTTP/1.1 200 "), data)
        return held

    def test_answered_connections_left_open_do_not_starve_the_probe(self):
        """Regression: a connection whose answer was written but that the
        client never closed counted as busy until the endpoint's 2 s
        linger ended, so 8 of them from one address (or 64 from several)
        refused every new connection of that address (of every address).
        They are closed to make room like idle ones."""
        one_client = ["127.0.0.1"] * 8
        eight_clients = ["127.0.0.%d" % (2 + i // 8) for i in range(64)]
        for sources in (one_client, eight_clients):
            held = self.answered_and_left_open(sources)
            try:
                st, _, body = admin_get(self.ADMIN_PORT, "/healthz")
                self.assertEqual((st, body), (200, b"ok\n"), len(sources))
            finally:
                for s in held:
                    s.close()


if __name__ == "__main__":
    harness.main()
