"""Vendor policy end to end: Kaspersky update and new-install hosts denied
after their cutoffs and logged before them, nothing sent towards a denied
destination (no TCP connection, no DNS query), CONNECT denies, exempt hosts,
monitor mode and configured exceptions."""

import socket
import ssl

import harness
from harness import (EmbargoTestCase, KASPERSKY_NEW_INSTALLS_CUTOFF, KASPERSKY_UPDATES_CUTOFF,
                     RawClient, curl)

LEGAL_REF = "89 FR 52434"


class PolicyAssertions(EmbargoTestCase):
    """Helpers shared by the policy classes (no tests of its own)."""

    def assert_denied(self, host, category, cutoff, embargo=None, path="/update.bin"):
        e = embargo or self.embargo
        r = self.get(self.url(host, path), embargo=e)
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        ps = r.header("Proxy-Status")
        self.assertIn(host, ps)
        self.assertIn(cutoff, ps)
        body = r.body.decode("utf-8")
        for needle in ("Kaspersky Lab", "kaspersky", category, cutoff, LEGAL_REF, host):
            self.assertIn(needle, body)
        recs = e.wait_records(lambda x: x.get("event") == "deny" and x.get("host") == host)
        d = recs[-1]
        self.assertEqual(d["action"], "deny")
        self.assertEqual(d["method"], "GET")
        self.assertEqual(d["port"], self.origin.port)
        self.assertEqual(d["matched_on"], "host")
        self.assertEqual(d["matched"], host)
        self.assertEqual(d["vendor"], "kaspersky")
        self.assertEqual(d["category"], category)
        self.assertEqual(d["cutoff"], cutoff)
        self.assertIs(d["after_cutoff"], True)
        self.assertEqual(d["rule_action"], "deny")
        self.assertEqual(d["status"], 403)
        self.assertEqual(d["listener"], e.listener)
        self.assertTrue(d["client"].startswith("127.0.0.1:"), d)
        self.assertRegex(d["rule"], r"kaspersky\.yaml:\d+$")
        self.assertIn("pattern", d)
        self.assertRegex(d["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertRegex(d["policy_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertIsInstance(d["conn"], int)
        return r, d

    def assert_logged_allowed(self, host, category, cutoff, embargo=None, path="/update.bin"):
        e = embargo or self.embargo
        r = self.get(self.url(host, path), embargo=e)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, ("ok %s\n" % path).encode())
        self.assertIsNone(r.header("Proxy-Status"))
        recs = e.wait_records(lambda x: x.get("event") == "log" and x.get("host") == host)
        d = recs[-1]
        self.assertEqual(d["action"], "log")
        self.assertEqual(d["vendor"], "kaspersky")
        self.assertEqual(d["category"], category)
        self.assertEqual(d["cutoff"], cutoff)
        self.assertEqual(d["matched"], host)
        self.assertNotIn("status", d)
        self.assertFalse(any(x.get("event") == "deny" and x.get("host") == host
                             for x in e.records()))
        return r, d

    def assert_no_upstream_traffic(self, host):
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection for %s" % host)
        self.assertEqual(self.origin.heads, [])
        self.assertNotIn(host, self.dns.queries(self.dns_mark), "a DNS query was sent for %s" % host)


class AfterCutoffTest(PolicyAssertions):
    """The real clock: both Kaspersky cutoffs have passed."""

    TLS = True

    def test_update_server_s07_denied_with_403_and_deny_line(self):
        self.assert_denied("s07.upd.kaspersky.com", "updates", KASPERSKY_UPDATES_CUTOFF)
        self.assert_no_upstream_traffic("s07.upd.kaspersky.com")

    def test_update_server_dnl01_denied_with_403_and_deny_line(self):
        r, d = self.assert_denied("dnl-01.geo.kaspersky.com", "updates", KASPERSKY_UPDATES_CUTOFF)
        self.assertEqual(d["pattern"], "dnl-[0-1][0-9].geo.kaspersky.com")
        self.assert_no_upstream_traffic("dnl-01.geo.kaspersky.com")

    def test_activation_server_denied_after_new_installs_cutoff(self):
        self.assert_denied("activation-v2.kaspersky.com", "new-installs",
                           KASPERSKY_NEW_INSTALLS_CUTOFF)
        self.assert_no_upstream_traffic("activation-v2.kaspersky.com")

    def test_denied_name_is_matched_case_and_trailing_dot_insensitively(self):
        r = self.get(self.url("S07.UPD.Kaspersky.COM.", "/x"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        self.assert_no_upstream_traffic("s07.upd.kaspersky.com")

    def test_connect_to_update_server_denied_with_403(self):
        with RawClient(self.embargo.port) as c:
            c.send(b"CONNECT s07.upd.kaspersky.com:443 HTTP/1.1\r\n"
                   b"Host: s07.upd.kaspersky.com:443\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        recs = self.embargo.wait_records(lambda x: x.get("event") == "deny" and
                                         x.get("method") == "CONNECT" and
                                         x.get("host") == "s07.upd.kaspersky.com")
        self.assertEqual(recs[-1]["port"], 443)
        self.assertEqual(recs[-1]["category"], "updates")
        self.assert_no_upstream_traffic("s07.upd.kaspersky.com")

    def test_curl_https_to_update_server_sees_failed_tunnel(self):
        p = curl(["--proxy", self.embargo.proxy_url, "https://dnl-01.geo.kaspersky.com/x"],
                 timeout=20)
        self.assertEqual(p.returncode, 56, p.stderr)
        self.assertIn(b"403", p.stderr)
        self.assert_no_upstream_traffic("dnl-01.geo.kaspersky.com")

    def test_connect_to_allowed_name_with_denied_sni_never_reaches_origin(self):
        # CONNECT names an allowed host, the ClientHello names an update
        # server: the tunnel is refused before the destination is dialled.
        with RawClient(self.embargo.port) as c:
            c.send(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n"
                   % (self.tls_origin.port, self.tls_origin.port))
            r = c.read_response("CONNECT")
            self.assertEqual(r.status, 200, r)
            ctx = ssl.create_default_context(cafile=self.cert)
            ctx.check_hostname = False
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                tls = ctx.wrap_socket(c.sock, server_hostname="s07.upd.kaspersky.com")
                tls.recv(1)
        recs = self.embargo.wait_records(lambda x: x.get("event") == "deny" and
                                         x.get("method") == "CONNECT")
        d = recs[-1]
        self.assertEqual(d["matched"], "s07.upd.kaspersky.com", d)
        self.assertEqual(d["matched_on"], "sni", d)
        self.assertEqual(d["category"], "updates", d)
        self.assertEqual(self.tls_origin.connections, 0)
        self.assertNotIn("s07.upd.kaspersky.com", self.dns.queries(self.dns_mark))

    def test_curl_https_to_allowed_host_passes_sni_check(self):
        url = "https://allowed.test:%d/tls" % self.tls_origin.port
        p = curl(["--proxy", self.embargo.proxy_url, "--cacert", self.cert, url], timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"ok /tls\n")

    def test_opentip_is_allowed_and_not_logged(self):
        r = self.get(self.url("opentip.kaspersky.com", "/lookup"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /lookup\n")
        self.assertEqual(self.origin.connections, 1)
        self.embargo.log_barrier()
        self.assertEqual(self.new_records(), [])

    def test_unlisted_host_is_allowed_and_not_logged(self):
        r = self.get(self.url("allowed.test", "/plain"))
        self.assertEqual(r.status, 200, r)
        self.embargo.log_barrier()
        self.assertEqual(self.new_records(), [])

    def test_cutoff_boundary_is_exact(self):
        # Ten seconds before the cutoff the rule logs; at the cutoff it denies.
        before = self.start_embargo(now="2024-09-29T03:59:50Z")
        self.assert_logged_allowed("s07.upd.kaspersky.com", "updates", KASPERSKY_UPDATES_CUTOFF,
                                   embargo=before)
        at = self.start_embargo(now=KASPERSKY_UPDATES_CUTOFF)
        self.origin.reset_counters()
        self.assert_denied("s07.upd.kaspersky.com", "updates", KASPERSKY_UPDATES_CUTOFF,
                           embargo=at)
        self.assertEqual(self.origin.connections, 0)


class BeforeUpdatesCutoffTest(PolicyAssertions):
    """--now 2024-09-01: updates are logged, new installs already denied."""

    NOW = "2024-09-01T00:00:00Z"

    def test_s07_allowed_with_log_line(self):
        r, d = self.assert_logged_allowed("s07.upd.kaspersky.com", "updates",
                                          KASPERSKY_UPDATES_CUTOFF)
        self.assertIs(d["after_cutoff"], False)
        self.assertEqual(d["rule_action"], "log")
        self.assertTrue(d["policy_time"].startswith("2024-09-01T00:0"), d)
        self.assertEqual(self.origin.connections, 1)
        self.assertIn("s07.upd.kaspersky.com", self.dns.queries(self.dns_mark))

    def test_dnl01_allowed_with_log_line(self):
        self.assert_logged_allowed("dnl-01.geo.kaspersky.com", "updates",
                                   KASPERSKY_UPDATES_CUTOFF)
        self.assertEqual(self.origin.connections, 1)

    def test_activation_already_denied(self):
        self.assert_denied("activation-v2.kaspersky.com", "new-installs",
                           KASPERSKY_NEW_INSTALLS_CUTOFF)
        self.assert_no_upstream_traffic("activation-v2.kaspersky.com")


class NewInstallsCutoffTest(PolicyAssertions):
    """--now 2024-08-01 denies activation; --now 2024-07-01 only logs it."""

    NOW = "2024-08-01T00:00:00Z"

    def test_activation_denied_on_2024_08_01(self):
        self.assert_denied("activation-v2.kaspersky.com", "new-installs",
                           KASPERSKY_NEW_INSTALLS_CUTOFF)
        self.assert_no_upstream_traffic("activation-v2.kaspersky.com")

    def test_activation_logged_on_2024_07_01(self):
        e = self.start_embargo(now="2024-07-01T00:00:00Z")
        r, d = self.assert_logged_allowed("activation-v2.kaspersky.com", "new-installs",
                                          KASPERSKY_NEW_INSTALLS_CUTOFF, embargo=e)
        self.assertIs(d["after_cutoff"], False)
        self.assertEqual(self.origin.connections, 1)


class MonitorModeTest(PolicyAssertions):
    """--monitor never denies; would-be denies are logged with monitor true."""

    MONITOR = True
    TLS = True
    TUNNEL_SERVERS = ("echo",)

    def test_update_servers_allowed_and_logged_as_monitor(self):
        for host in ("s07.upd.kaspersky.com", "dnl-01.geo.kaspersky.com",
                     "activation-v2.kaspersky.com"):
            with self.subTest(host=host):
                r = self.get(self.url(host, "/m"))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"ok /m\n")
                recs = self.embargo.wait_records(lambda x: x.get("host") == host)
                d = recs[-1]
                self.assertEqual(d["action"], "log", d)
                self.assertIs(d.get("monitor"), True, d)
                self.assertEqual(d["rule_action"], "deny", d)
                self.assertIs(d["after_cutoff"], True, d)
                self.assertNotEqual(d["event"], "deny", d)
        self.assertFalse([x for x in self.embargo.records() if x.get("event") == "deny"])

    def test_https_through_connect_not_denied_in_monitor_mode(self):
        # A real TLS client: the CONNECT and its ClientHello (SNI
        # s07.upd.kaspersky.com) pass, the origin answers.
        url = "https://s07.upd.kaspersky.com:%d/tls" % self.tls_origin.port
        p = curl(["--proxy", self.embargo.proxy_url, "-k", url], timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"ok /tls\n")
        self.assertEqual(self.tls_origin.connections, 1)
        recs = self.embargo.wait_records(lambda x: x.get("method") == "CONNECT")
        for d in recs:
            self.assertEqual(d["action"], "log", d)
            self.assertIs(d.get("monitor"), True, d)
            self.assertNotEqual(d["event"], "deny", d)


    def test_uninspectable_tunnel_not_denied_in_monitor_mode(self):
        # A CONNECT port whose ClientHello is inspected receives bytes that are
        # not TLS. tls_inspect.on_not_tls says deny; --monitor must turn that
        # into a logged pass-through like every other deny.
        echo = self.tunnels["echo"]
        e = self.start_embargo(tls_inspect_ports=[443, echo.port])
        with RawClient(e.port) as c:
            c.send(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.port)
            self.assertEqual(c.read_response("CONNECT").status, 200)
            c.send(b"plain bytes")
            c.sock.shutdown(socket.SHUT_WR)
            reply = c.read_to_eof()
        recs = e.wait_records(lambda x: x.get("method") == "CONNECT")
        self.assertEqual(reply, b"ECHO plain bytes", recs)
        for d in recs:
            self.assertEqual(d["action"], "log", d)
            self.assertIs(d.get("monitor"), True, d)


class ExceptionsTest(PolicyAssertions):
    """exceptions: entries win over the vendor list until they expire."""

    CONFIG_KW = {"exceptions": [
        {"host": "s07.upd.kaspersky.com", "reason": "migration window"},
        {"host": "dnl-01.geo.kaspersky.com", "expires": "2099-01-01T00:00:00Z",
         "reason": "long-lived"},
        {"host": "s08.upd.kaspersky.com", "expires": "2025-01-01T00:00:00Z",
         "reason": "expired"},
    ]}

    def _assert_exception_applies(self, host):
        r = self.get(self.url(host, "/exc"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /exc\n")
        recs = self.embargo.wait_records(lambda x: x.get("host") == host)
        d = recs[-1]
        self.assertEqual(d["event"], "log", d)
        self.assertEqual(d["action"], "log", d)
        self.assertEqual(d.get("exception"), host, d)
        self.assertRegex(d.get("exception_rule", ""), r"embargo-\d+\.yaml:\d+$")

    def test_exception_without_expiry_applies(self):
        self._assert_exception_applies("s07.upd.kaspersky.com")

    def test_exception_with_future_expiry_applies(self):
        self._assert_exception_applies("dnl-01.geo.kaspersky.com")

    def test_expired_exception_does_not_apply(self):
        self.assert_denied("s08.upd.kaspersky.com", "updates", KASPERSKY_UPDATES_CUTOFF)
        self.assert_no_upstream_traffic("s08.upd.kaspersky.com")

    def test_exception_does_not_leak_to_sibling_names(self):
        r = self.get(self.url("activation-v2.kaspersky.com", "/x"))
        self.assertEqual(r.status, 403, r)


class CnameChainTest(PolicyAssertions):
    """A name that is an alias (DNS CNAME) of an update server is judged by
    its chain: denied after resolution, before any connection."""

    DNS_CNAMES = (("mirror.test", "s07.upd.kaspersky.com"),
                  ("plain-alias.test", "allowed.test"))

    def test_alias_of_update_server_is_denied(self):
        r = self.get(self.url("mirror.test", "/update.bin"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.embargo.wait_records(lambda x: x.get("event") == "deny" and
                                      x.get("host") == "mirror.test")[-1]
        self.assertEqual(d["matched_on"], "cname", d)
        self.assertEqual(d["matched"], "s07.upd.kaspersky.com", d)
        self.assertEqual(d["category"], "updates", d)
        self.assertEqual(self.origin.connections, 0)

    def test_alias_of_allowed_host_is_allowed(self):
        r = self.get(self.url("plain-alias.test", "/a"))
        self.assertEqual((r.status, r.body), (200, b"ok /a\n"))


del PolicyAssertions  # helpers only; keep unittest from collecting it

if __name__ == "__main__":
    harness.main()
