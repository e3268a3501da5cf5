"""The admin endpoint through the real binary: /healthz, /readyz (and a
vendor list passing its max_age), /metrics checked by promtool and against
what the test did, /policy, the bearer token, `embargo status` and
`embargo reload`, and the endpoint refused through the proxy itself."""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import harness
from harness import EmbargoTestCase, RawClient, free_port, http_get

PROMTOOL = shutil.which("promtool")


def admin_get(port, path, method="GET", token=None, timeout=10, headers=None):
    """One request to the admin endpoint; returns (status, headers text, body bytes).
    HEADERS (name: value; None leaves a field out) replace the defaults: Host
    127.0.0.1:PORT and, for a POST, Content-Type: application/json (the
    endpoint refuses the types a web page could send)."""
    fields = {"Host": "127.0.0.1:%d" % port, "Connection": "close", "Content-Length": "0"}
    if method == "POST":
        fields["Content-Type"] = "application/json"
    if token is not None:
        fields["Authorization"] = "Bearer " + token
    fields.update(headers or {})
    lines = ["%s %s HTTP/1.1" % (method, path)]
    lines += ["%s: %s" % (k, v) for k, v in fields.items() if v is not None]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


def parse_metrics(text):
    """{'name{labels}': value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def admin_extra(port, more=""):
    return "admin:\n  listen: 127.0.0.1:%d\n%s" % (port, more)


class AdminEndpointTest(EmbargoTestCase):
    NOW = "2025-06-01T00:00:00Z"  # Kaspersky updates denied; the shipped list not yet stale
    TUNNEL_SERVERS = ("echo",)
    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT)}

    def metrics(self):
        st, _, body = admin_get(self.ADMIN_PORT, "/metrics")
        self.assertEqual(st, 200)
        return body.decode()

    def test_healthz_and_readyz(self):
        self.assertEqual(admin_get(self.ADMIN_PORT, "/healthz")[0], 200)
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual((st, body), (200, b"ready\n"))

    def test_unknown_path_and_wrong_method(self):
        self.assertEqual(admin_get(self.ADMIN_PORT, "/nope")[0], 404)
        st, head, _ = admin_get(self.ADMIN_PORT, "/reload")
        self.assertEqual(st, 405)
        self.assertIn("Allow: POST", head)
        self.assertEqual(admin_get(self.ADMIN_PORT, "/metrics", method="DELETE")[0], 405)

    def test_garbage_gets_400_and_endpoint_survives(self):
        with socket.create_connection(("127.0.0.1", self.ADMIN_PORT), timeout=5) as s:
            s.sendall(b"\x00\x01 nonsense\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400"))
        self.assertEqual(admin_get(self.ADMIN_PORT, "/healthz")[0], 200)

    def test_metrics_pass_promtool(self):
        if PROMTOOL is None:
            self.skipTest("promtool not installed (Debian package prometheus)")
        http_get(self.embargo.port, self.url())  # some traffic, so series are not all zero
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=self.metrics().encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode())

    def test_metrics_count_what_the_test_did(self):
        before = parse_metrics(self.metrics())
        sent = 0
        allowed, denied, tunnels = 5, 3, 2
        for _ in range(allowed):
            req = ("GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\nConnection: close\r\n\r\n"
                   % (self.url(path="/x"), self.origin.port)).encode()
            with RawClient(self.embargo.port) as c:
                c.send(req)
                self.assertEqual(c.read_response().status, 200)
            sent += len(req)
        for _ in range(denied):
            req = (b"GET http://s07.upd.kaspersky.com/ HTTP/1.1\r\n"
                   b"Host: s07.upd.kaspersky.com\r\nConnection: close\r\n\r\n")
            with RawClient(self.embargo.port) as c:
                c.send(req)
                self.assertEqual(c.read_response().status, 403)
            sent += len(req)
        echoed = 0
        for i in range(tunnels):
            port = self.tunnels["echo"].port
            head = ("CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n"
                    % (port, port)).encode()
            payload = b"tunnel payload %d " % i * 50
            with RawClient(self.embargo.port) as c:
                c.send(head)
                self.assertEqual(c.read_response("CONNECT").status, 200)
                c.send(payload)
                c.sock.shutdown(socket.SHUT_WR)
                data = c.read_to_eof()
                self.assertEqual(data, b"ECHO " + payload)
            sent += len(head) + len(payload)
            echoed += len(b"ECHO " + payload)
        after = parse_metrics(self.metrics())

        def delta(key):
            return after.get(key, 0) - before.get(key, 0)

        lst = 'listener="127.0.0.1:%d",mode="proxy"' % self.embargo.port
        self.assertEqual(delta("embargo_client_connections_total{%s}" % lst),
                         allowed + denied + tunnels)
        self.assertEqual(delta('embargo_requests_total{kind="forward"}'), allowed + denied)
        self.assertEqual(delta('embargo_requests_total{kind="connect"}'), tunnels)
        self.assertEqual(delta("embargo_tunnels_total"), tunnels)
        self.assertEqual(delta('embargo_decisions_total{vendor="kaspersky",category="updates",'
                               'action="deny",matched_on="host"}'), denied)
        self.assertEqual(delta('embargo_bytes_received_total{from="client"}'), sent)
        self.assertGreaterEqual(delta('embargo_bytes_received_total{from="upstream"}'), echoed)
        connects = sum(delta('embargo_upstream_connects_total{result="%s"}' % r)
                       for r in ("ok", "timeout", "error"))
        self.assertGreaterEqual(connects, tunnels)
        self.assertEqual(delta("embargo_upstream_connect_seconds_count"), connects)
        self.assertEqual(after["embargo_client_connections_active{%s}" % lst], 0)
        self.assertEqual(after['embargo_log_lines_dropped_total{stream="decision"}'], 0)
        version = [k for k in after if k.startswith("embargo_policy_info{")]
        self.assertEqual(len(version), 1)
        rec = self.embargo.wait_records(lambda r: r.get("event") == "deny")[-1]
        self.assertIn('version="%s"' % rec["policy_version"], version[0])

    def test_metrics_count_client_hellos(self):
        before = parse_metrics(self.metrics())
        for _ in range(2):  # port 443 is inspected: these bytes are not a TLS handshake
            with RawClient(self.embargo.port) as c:
                c.send(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
                self.assertEqual(c.read_response("CONNECT").status, 200)
                c.send(b"NOT TLS AT ALL\r\n\r\n")
                c.read_to_eof()
        after = parse_metrics(self.metrics())
        self.assertEqual(after['embargo_tls_hello_total{outcome="not_tls"}'] -
                         before['embargo_tls_hello_total{outcome="not_tls"}'], 2)
        self.assertEqual(after["embargo_tls_hello_wait_seconds_count"] -
                         before["embargo_tls_hello_wait_seconds_count"], 2)

    def test_policy_summary(self):
        st, _, body = admin_get(self.ADMIN_PORT, "/policy")
        self.assertEqual(st, 200)
        p = json.loads(body)
        self.assertRegex(p["version"], r"^[0-9a-f]{16}$")
        k = [v for v in p["vendors"] if v["id"] == "kaspersky"][0]
        cats = {c["name"]: c for c in k["categories"]}
        self.assertEqual(cats["updates"]["cutoff"], harness.KASPERSKY_UPDATES_CUTOFF)
        self.assertTrue(cats["updates"]["in_force"])
        self.assertEqual(cats["updates"]["action_now"], "deny")
        names = [s["name"] for s in p["sources"]]
        self.assertIn(self.embargo.config_path, names)
        with open(self.embargo.config_path, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual([s["sha256"] for s in p["sources"]
                          if s["name"] == self.embargo.config_path], [want])
        self.assertGreater(p["entries"]["host"], 0)
        self.assertIsNone(p["last_reload_error"])

    def test_admin_is_refused_through_the_proxy(self):
        r = http_get(self.embargo.port, "http://127.0.0.1:%d/metrics" % self.ADMIN_PORT)
        self.assertEqual(r.status, 403)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        self.assertIn(b"this proxy", r.body)

    def test_status_command(self):
        p = subprocess.run([harness.BINARY, "status", "--config", self.embargo.config_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("readiness:       ready", out)
        self.assertRegex(out, r"policy:\s+[0-9a-f]{16} loaded ")

    def test_every_decision_line_names_its_policy_version(self):
        http_get(self.embargo.port, "http://s08.upd.kaspersky.com/")
        rec = self.embargo.wait_records(lambda r: r.get("host") == "s08.upd.kaspersky.com")[-1]
        _, _, body = admin_get(self.ADMIN_PORT, "/policy")
        self.assertEqual(rec["policy_version"], json.loads(body)["version"])


class TokenTest(EmbargoTestCase):
    NOW = "2025-06-01T00:00:00Z"
    ADMIN_PORT = free_port()
    TOKEN = "s3cret-token-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.token_dir = harness.tempfile.mkdtemp(prefix="embargo-token-")
        cls.addClassCleanup(shutil.rmtree, cls.token_dir, True)
        cls.token_path = os.path.join(cls.token_dir, "admin.token")
        with open(cls.token_path, "w") as f:
            f.write(cls.TOKEN + "\n")
        cls.CONFIG_KW = {"extra": admin_extra(cls.ADMIN_PORT, "  token_file: %s\n" % cls.token_path)}
        super().setUpClass()
        # Started as root, embargo runs as `nobody`: a reload reads as that user.
        os.chmod(cls.tmp, 0o755)
        os.chmod(cls.token_dir, 0o755)

    def test_token_is_required_on_every_path(self):
        for path in ("/healthz", "/readyz", "/metrics", "/policy"):
            st, head, _ = admin_get(self.ADMIN_PORT, path)
            self.assertEqual(st, 401, path)
            self.assertIn("WWW-Authenticate: Bearer", head)
            self.assertEqual(admin_get(self.ADMIN_PORT, path, token="wrong")[0], 401, path)
            self.assertEqual(admin_get(self.ADMIN_PORT, path, token=self.TOKEN + "x")[0], 401)
            self.assertEqual(admin_get(self.ADMIN_PORT, path, token=self.TOKEN)[0], 200, path)
        self.assertEqual(admin_get(self.ADMIN_PORT, "/reload", method="POST")[0], 401)

    def test_status_and_reload_use_the_token_file(self):
        for cmd in ("status", "reload"):
            p = subprocess.run([harness.BINARY, cmd, "--config", self.embargo.config_path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 0, (cmd, p.stdout, p.stderr))
        p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % self.ADMIN_PORT],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1, "no token: not ready")
        p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % self.ADMIN_PORT,
                            "--token-file", self.token_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)


STALE_LIST = """vendor: acme
reviewed: 2024-06-01
max_age: 90d
categories:
  updates:
    cutoff: 2024-07-01T00:00:00Z
    hosts: [upd.acme.test]
"""


class ReadinessTest(EmbargoTestCase):
    """A vendor list older than its max_age is a warning in /readyz, which
    stays 200, unless readiness.stale_lists is unready; the time is the
    policy clock (--now)."""

    @classmethod
    def setUpClass(cls):
        cls.list_dir = harness.tempfile.mkdtemp(prefix="embargo-lists-")
        cls.addClassCleanup(shutil.rmtree, cls.list_dir, True)
        os.chmod(cls.list_dir, 0o755)  # read again by reloads, as `nobody`
        cls.list_path = os.path.join(cls.list_dir, "acme.yaml")
        with open(cls.list_path, "w") as f:
            f.write(STALE_LIST)
        cls.ADMIN_PORT = free_port()
        cls.CONFIG_KW = {"vendors": ["file: %s" % cls.list_path],
                         "extra": admin_extra(cls.ADMIN_PORT)}
        cls.NOW = "2024-08-29T12:00:00Z"  # 89.5 days after the review
        super().setUpClass()

    def stale_reason(self):
        return (b"vendor list acme (%s) is stale: reviewed 2024-06-01T00:00:00Z, max_age 90d, "
                b"past it since 2024-08-30T00:00:00Z; still enforced" % self.list_path.encode())

    def test_fresh_list_is_ready(self):
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual((st, body), (200, b"ready\n"))
        p = json.loads(admin_get(self.ADMIN_PORT, "/policy")[2])
        acme = p["vendors"][0]
        self.assertEqual((acme["reviewed"], acme["max_age"], acme["stale"], acme["stale_since"]),
                         ("2024-06-01T00:00:00Z", "90d", False, None))

    def test_stale_list_is_a_warning_and_still_enforced(self):
        port = free_port()
        e = self.start_embargo(now="2024-08-30T00:00:01Z", extra=admin_extra(port))
        st, _, body = admin_get(port, "/readyz")
        self.assertEqual(st, 200, body)
        self.assertEqual(body, b"ready\nwarning: " + self.stale_reason() + b"\n")
        p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"list acme:", p.stdout)
        self.assertIn(b"STALE, still enforced", p.stdout)
        # Still serving: a stale list is reported, not dropped.
        self.assertEqual(http_get(e.port, "http://upd.acme.test/").status, 403)

    def test_stale_list_is_not_ready_when_the_config_says_so(self):
        port = free_port()
        e = self.start_embargo(now="2024-08-30T00:00:01Z",
                               extra=admin_extra(port) + "readiness: {stale_lists: unready}\n")
        st, _, body = admin_get(port, "/readyz")
        self.assertEqual(st, 503)
        self.assertIn(b"not ready: " + self.stale_reason(), body)
        p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"stale", p.stdout)
        self.assertEqual(admin_get(port, "/healthz")[0], 200, "never a liveness failure")
        self.assertEqual(http_get(e.port, "http://upd.acme.test/").status, 403)


class ResolverReadinessTest(EmbargoTestCase):
    """/readyz follows the last DNS query: a timeout makes it 503, the next
    answered query makes it ready again. No probe traffic of its own."""

    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT), "timeouts": {"resolve": "1s"}}

    def test_a_resolver_timeout_is_not_ready_until_an_answer(self):
        self.assertEqual(admin_get(self.ADMIN_PORT, "/readyz")[0], 200)
        r = http_get(self.embargo.port, "http://x.%s/" % harness.DNS_HOLE_DOMAIN)
        self.assertEqual(r.status, 504)
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual(st, 503)
        self.assertIn(b"not ready: resolver not answering: the last lookup failed (timeout)", body)
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        self.assertGreaterEqual(m['embargo_dns_queries_total{status="timeout"}'], 1)
        self.assertEqual(http_get(self.embargo.port, self.url(host="other.test")).status, 200)
        self.assertEqual(admin_get(self.ADMIN_PORT, "/readyz")[0], 200)


class AdminConfigTest(unittest.TestCase):
    def test_admin_on_a_proxy_port_is_refused(self):
        tmp = harness.tempfile.mkdtemp(prefix="embargo-admin-")
        try:
            port = free_port()
            path = os.path.join(tmp, "c.yaml")
            with open(path, "w") as f:
                f.write("admin: {listen: 127.0.0.1:%d}\n" % port)
            p = subprocess.run([harness.BINARY, "run", "--config", path, "--listen",
                                "127.0.0.1:%d" % port], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 2)
            self.assertIn(("%s:1:17: admin.listen: 127.0.0.1:%d is the proxy listener "
                           "127.0.0.1:%d" % (path, port, port)).encode(), p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_status_without_an_endpoint_is_a_usage_error(self):
        p = subprocess.run([harness.BINARY, "status"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"no admin endpoint", p.stderr)

    def test_status_of_nothing_listening_fails(self):
        p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % free_port()],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"not reachable", p.stdout)


if __name__ == "__main__":
    harness.main()
