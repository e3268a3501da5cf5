"""Regression tests for what attacks on the proxy found, one class per
defect, each test naming the defect it pins:

- defect 2: cloud metadata addresses outside 169.254.0.0/16 (Alibaba's
  100.100.100.200, AWS's IPv6 IMDS fd00:ec2::254, Azure's WireServer
  168.63.129.16) passed the internal-destination check, and a broad
  internal.allow range opened the metadata addresses inside it;
- defect 3: IPv6 translator forms (NAT64, 6to4, SIIT) of one of this host's
  own IPv4 addresses passed;
- defect 4: --resolver on the command line was not validated like the
  config file's resolvers (port 99999 became 34463);
- defect 5: `listen: []` was accepted and the proxy served nothing;
- defect 6: file-descriptor exhaustion was silent;
- defect 8: the connection-limit warning was written once per refused
  connection, and one client could take every slot;
- a proxy started as root kept running as root;
- ClientHello edge cases: a server_name list mixing a host_name with
  another name type was judged on the host name alone; a raw UTF-8 SNI
  and an IP-literal SNI were refused as malformed instead of being judged
  (as their IDNA A-label, as an address).

No test dials anything outside 127.0.0.0/8: the addresses under test are
refused as internal, and a guard vendor list also denies every one of them
by address, so a build without the fix answers 403 http_request_denied on
policy (a different, failing result) instead of dialling.
"""

import os
import pwd
import select
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import test_tls_inspect as ti
from test_admin import admin_get, parse_metrics
from harness import (LOOPBACK, Embargo, EmbargoTestCase, RawClient, http_get, make_config,
                     wait_until)

GUARDED = (
    "100.100.100.200/32", "168.63.129.16/32", "169.254.0.0/16", "fd00:ec2::/64",
    "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "::ffff:0:0/96",
)


def guard_vendor_file(workdir):
    """A vendor list that denies every address these tests ask for."""
    path = os.path.join(workdir, "guard.yaml")
    with open(path, "w") as f:
        f.write("vendor: guard\nname: address guard\nreference: \"integration test\"\n"
                "categories:\n  guarded:\n    cutoff: 2020-01-01T00:00:00Z\n    networks:\n")
        for n in GUARDED:
            f.write("      - %s\n" % n)
    return path


def host_ipv4_addresses():
    """This host's IPv4 addresses outside 127.0.0.0/8 (from `ip -4 -o addr`)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10, check=False).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return []
    addrs = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            a = parts[parts.index("inet") + 1].split("/")[0]
            if not a.startswith("127."):
                addrs.append(a)
    return addrs


def v4_hex(a):
    b = socket.inet_aton(a)
    return "%02x%02x:%02x%02x" % tuple(b)


HOST_V4 = host_ipv4_addresses()


def own_translator_forms():
    """(name, IPv6 form) of this host's first non-loopback IPv4 address."""
    if not HOST_V4:
        return ()
    a = HOST_V4[0]
    b = socket.inet_aton(a)
    return (
        ("own-nat64.test", "64:ff9b::%s" % v4_hex(a)),
        ("own-nat64-local.test", "64:ff9b:1:%02x%02x:%02x:%02x00::" % (b[0], b[1], b[2], b[3])),
        ("own-6to4.test", "2002:%s::1" % v4_hex(a)),
        ("own-siit.test", "::ffff:0:%s" % v4_hex(a)),
    )


# Names resolving to the addresses under test (never dialled, see above).
RECORDS = (
    ("ali.test", "100.100.100.200"),
    ("imds6.test", "fd00:ec2::254"),
    ("wire.test", "168.63.129.16"),
    ("imds.test", "169.254.169.254"),
    ("ecs.test", "169.254.170.2"),
    ("meta-nat64.test", "64:ff9b::6464:64c8"),
    ("linklocal.test", "169.254.1.1"),
) + own_translator_forms() + ((("own.test", HOST_V4[0]),) if HOST_V4 else ())


class GuardedCase(EmbargoTestCase):
    """An embargo whose vendor lists include the address guard; names in
    RECORDS resolve to the addresses under test."""

    NOW = "2025-06-01T00:00:00Z"
    DNS_RECORDS = RECORDS

    @classmethod
    def new_embargo(cls, **kw):
        kw.setdefault("vendors", ["builtin: kaspersky", "file: " + guard_vendor_file(cls.tmp)])
        return super().new_embargo(**kw)

    def assert_prohibited(self, url, embargo=None):
        r = self.get(url, embargo=embargo)
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")

    def assert_guard_denied(self, url, embargo=None):
        """Not refused as internal: the guard list denies it by address."""
        r = self.get(url, embargo=embargo)
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")


class MetadataAddresses(GuardedCase):
    """Defect 2: cloud metadata endpoints in every family are refused."""

    def test_metadata_addresses_outside_link_local_are_refused(self):
        """Defect 2: Alibaba's 100.100.100.200 (in 100.64.0.0/10), AWS's
        fd00:ec2::254 (a ULA) and Azure's 168.63.129.16 were reachable."""
        for host in ("ali.test", "imds6.test", "wire.test", "imds.test", "ecs.test"):
            with self.subTest(host=host):
                self.assert_prohibited("http://%s/latest/meta-data/" % host)

    def test_translator_forms_of_metadata_addresses_are_refused(self):
        """Defect 2: the NAT64 form of 100.100.100.200 is refused too."""
        self.assert_prohibited("http://meta-nat64.test/")

    def test_broad_internal_allow_does_not_open_metadata(self):
        """Defect 2: internal.allow covering a metadata address with a range
        (100.64.0.0/10, 169.254.0.0/16, fd00::/8) leaves it refused; naming
        the exact address opens it (then the guard list denies it by
        address, so nothing is dialled)."""
        broad = self.start_embargo(
            extra="internal:\n  allow: [127.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16, fd00::/8]",
            allow_loopback=False)
        for host in ("ali.test", "imds.test", "imds6.test"):
            with self.subTest(host=host):
                self.assert_prohibited("http://%s/" % host, embargo=broad)
        # Other addresses in those ranges are opened by the range.
        self.assert_guard_denied("http://linklocal.test/", embargo=broad)
        exact = self.start_embargo(
            extra="internal:\n  allow: [127.0.0.0/8, 100.100.100.200/32, fd00:ec2::254/128]",
            allow_loopback=False)
        self.assert_guard_denied("http://ali.test/", embargo=exact)
        self.assert_guard_denied("http://imds6.test/", embargo=exact)
        self.assert_prohibited("http://imds.test/", embargo=exact)


class OwnAddressTranslatorForms(GuardedCase):
    """Defect 3: translator forms of this host's own IPv4 addresses."""

    def test_translator_forms_of_own_addresses_are_refused(self):
        """Defect 3: 64:ff9b::a.b.c.d, 64:ff9b:1::/48, 6to4 and SIIT forms of
        one of this host's own (non-loopback) IPv4 addresses passed."""
        if not HOST_V4:
            self.skipTest("this host has no IPv4 address outside 127.0.0.0/8")
        # The plain address is this host's: refused as before.
        self.assert_prohibited("http://own.test/")
        for name, v6 in own_translator_forms():
            with self.subTest(form=name, addr=v6):
                self.assert_prohibited("http://%s/" % name)

def sni_guard_file(workdir):
    """A vendor list denying one IDNA name and one address, by the forms the
    proxy must judge them as."""
    path = os.path.join(workdir, "sniguard.yaml")
    with open(path, "w") as f:
        f.write("vendor: sniguard\nname: server name guard\nreference: \"integration test\"\n"
                "categories:\n  guarded:\n    cutoff: 2020-01-01T00:00:00Z\n"
                "    hosts:\n      - xn--bcher-kva.example.org\n"
                "    networks:\n      - 192.0.2.77/32\n")
    return path


def sni_list_ext(entries):
    """A server_name extension listing (name_type, name bytes) ENTRIES."""
    body = b"".join(ti.struct.pack(">BH", t, len(n)) + n for t, n in entries)
    return (ti.EXT_SERVER_NAME, ti.struct.pack(">H", len(body)) + body)


class ClientHelloEdgeCases(EmbargoTestCase):
    """ClientHello edge cases from a replay of real captures."""

    NOW = "2025-06-01T00:00:00Z"
    TLS = True
    CONFIG_KW = {"extra": "access_log: true"}

    def open_tunnel(self):
        c = RawClient(self.embargo.port)
        target = b"allowed.test:%d" % self.tls_origin.port
        c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
        r = c.read_response("CONNECT")
        self.assertEqual(r.status, 200, r)
        return c

    def tunnel_record(self, since=None):
        """The first CONNECT line made since the mark SINCE (this test's start)."""
        since = self.log_mark if since is None else since

        def got():
            recs = [x for x in self.embargo.records(since) if x.get("method") == "CONNECT"]
            return recs[0] if recs else None
        return wait_until(got, 10.0, 0.02, "a CONNECT decision log line")

    def assert_origin_untouched(self):
        """A dial started before the refusal would be counted before the
        origin's barrier."""
        self.tls_origin.barrier()
        self.assertEqual(self.tls_origin.connections, getattr(self, "origin_mark", 0),
                         "the TLS origin saw a connection")

    @classmethod
    def new_embargo(cls, **kw):
        kw.setdefault("vendors", ["builtin: kaspersky", "file: " + sni_guard_file(cls.tmp)])
        return super().new_embargo(**kw)

    def crafted(self, entries):
        """A real Python hello for allowed.test with its server_name replaced."""
        msg, _ = ti.records_payload(ti.python_hello("allowed.test"))
        head, exts = ti.split_hello(msg)
        return ti.build_hello(head, [sni_list_ext(entries)] +
                              [x for x in exts if x[0] != ti.EXT_SERVER_NAME])

    def setUp(self):
        super().setUp()
        self.origin_mark = 0

    def send_hello(self, hello, refused):
        """Sends HELLO through a CONNECT to the TLS origin; returns the log line."""
        self.origin_mark = self.tls_origin.connections
        self.log_mark = self.embargo.log_mark()
        with self.open_tunnel() as c:
            c.send(hello)
            if refused:
                self.assertEqual(c.read_to_eof(), ti.ACCESS_DENIED_ALERT)
        return self.tunnel_record()

    def assert_refused_malformed(self, d, reason):
        self.assertEqual((d["event"], d["tls"]), ("deny", "malformed"), d)
        self.assertEqual(d.get("tls_reason"), reason, d)
        self.assert_origin_untouched()

    def test_host_name_next_to_another_name_type_is_malformed(self):
        """ClientHello (a): a list with an allowed host_name and an entry of
        another type naming a banned host was judged on the host name alone."""
        for entries in ([(0, b"allowed.test"), (1, ti.DENIED_SNI.encode())],
                        [(1, ti.DENIED_SNI.encode()), (0, b"allowed.test")]):
            with self.subTest(order=[t for t, _ in entries]):
                mark = self.embargo.log_mark()
                with self.open_tunnel() as c:
                    c.send(self.crafted(entries))
                    self.assertEqual(c.read_to_eof(), ti.ACCESS_DENIED_ALERT)
                d = self.tunnel_record(since=mark)
                self.assert_refused_malformed(
                    d, "server_name list mixes host_name with another name type")

    def test_raw_utf8_sni_is_judged_as_its_a_label(self):
        """ClientHello (b): a raw UTF-8 SNI (as Node sends) was refused as
        malformed; it is converted with IDNA and judged as its A-label."""
        d = self.send_hello(self.crafted([(0, "b\u00fccher.example.org".encode())]), True)
        self.assertEqual((d["event"], d["tls"], d["matched_on"], d["matched"]),
                         ("deny", "hello", "sni", "xn--bcher-kva.example.org"), d)
        self.assertEqual(d["sni"], ["xn--bcher-kva.example.org"], d)
        self.assert_origin_untouched()

    def test_raw_utf8_sni_of_an_allowed_name_passes(self):
        """ClientHello (b): a convertible U-label SNI not on any list is allowed
        (logged as its A-label) and the tunnel is dialled."""
        mark = self.embargo.log_mark()
        with self.open_tunnel() as c:
            c.send(self.crafted([(0, "B\u00fcCHER.allowed.test".encode())]))
            wait_until(lambda: self.tls_origin.connections >= 1, 5.0, 0.02, "the origin dialled")
        d = self.tunnel_record(since=mark)
        self.assertEqual((d["event"], d["tls"]), ("access", "hello"), d)
        self.assertEqual(d["sni"], ["xn--bcher-kva.allowed.test"], d)

    def test_sni_that_does_not_convert_is_malformed(self):
        """ClientHello (b): only a name IDNA cannot convert is malformed."""
        d = self.send_hello(self.crafted([(0, b"\xff\xfe.example.org")]), True)
        self.assert_refused_malformed(
            d, "host name is not UTF-8 that IDNA converts to an A-label")

    def test_ip_literal_sni_is_judged_as_an_address(self):
        """ClientHello (c): an IP-literal SNI was refused as malformed; it is
        judged like any address (vendor networks, internal ranges) and tagged."""
        d = self.send_hello(self.crafted([(0, b"192.0.2.77")]), True)
        self.assertEqual((d["event"], d["tls"], d["matched_on"], d["matched"], d["vendor"]),
                         ("deny", "hello", "address", "192.0.2.77", "sniguard"), d)
        self.assertIn("sni_ip", d["tags"], d)
        self.assert_origin_untouched()
        # An internal address is refused like an internal destination (an
        # error line, as every such refusal), with the alert.
        d = self.send_hello(self.crafted([(0, b"169.254.169.254")]), True)
        self.assertEqual((d["event"], d["tls"], d["error"]),
                         ("error", "hello", "destination_ip_prohibited"), d)
        self.assertEqual(d.get("detail"), "server name 169.254.169.254 is an internal address", d)
        self.assert_origin_untouched()

    def test_ip_literal_sni_on_no_list_passes_tagged(self):
        """ClientHello (c): an IP-literal SNI nobody lists is allowed, tagged."""
        mark = self.embargo.log_mark()
        with self.open_tunnel() as c:
            c.send(self.crafted([(0, b"198.51.100.7")]))
            wait_until(lambda: self.tls_origin.connections >= 1, 5.0, 0.02, "the origin dialled")
        d = self.tunnel_record(since=mark)
        self.assertEqual((d["event"], d["tls"], d["sni"]), ("access", "hello", ["198.51.100.7"]), d)
        self.assertIn("sni_ip", d["tags"], d)
        # A non-canonical literal is still malformed.
        d = self.send_hello(self.crafted([(0, b"127.1")]), True)
        self.assert_refused_malformed(d, "host name is an IP literal that is not canonical")



# ---- a HelloRetryRequest and the second ClientHello ---------------------------

HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def hello13(sni, group=0x001D, share_len=32):
    """A TLS 1.3 ClientHello for SNI offering x25519 and secp256r1, with a key
    share for GROUP only (random bytes: a server that wants another group
    answers with a HelloRetryRequest before it looks at them)."""
    def ext(t, d):
        return struct.pack(">HH", t, len(d)) + d
    name = sni.encode()
    sa = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    share = struct.pack(">HH", group, share_len) + os.urandom(share_len)
    exts = b"".join([
        ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name),
        ext(10, struct.pack(">HHH", 4, 0x001D, 0x0017)),
        ext(13, struct.pack(">H", 2 * len(sa)) + b"".join(struct.pack(">H", x) for x in sa)),
        ext(43, b"\x02\x03\x04"),
        ext(45, b"\x01\x01"),
        ext(51, struct.pack(">H", len(share)) + share),
    ])
    ciphers = b"\x13\x01\x13\x02\x13\x03"
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) +
            struct.pack(">H", len(ciphers)) + ciphers + b"\x01\x00" +
            struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


class HelloRetryRequestTest(EmbargoTestCase):
    """ClientHello edge case: after a HelloRetryRequest the client sends a
    second hello, which used to be relayed unseen. A real OpenSSL server that
    only takes P-256 answers an x25519 key share with an HRR."""

    CONFIG_KW = {"extra": "access_log: true"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cert, cls.key = harness.make_cert(cls.tmp, "allowed.test")
        cls.hrr_port = harness.free_port()
        cls.s_server_log = open(os.path.join(cls.tmp, "s_server.log"), "wb")
        cls.addClassCleanup(cls.s_server_log.close)
        cls.s_server = subprocess.Popen(
            [harness.OPENSSL, "s_server", "-accept", "%s:%d" % (LOOPBACK, cls.hrr_port),
             "-cert", cls.cert, "-key", cls.key, "-groups", "P-256", "-tls1_3", "-www",
             "-naccept", "100"], stdin=subprocess.DEVNULL, stdout=cls.s_server_log,
            stderr=subprocess.STDOUT, preexec_fn=harness.tied_to_parent)
        cls.addClassCleanup(cls.stop_s_server)

        def listening():
            try:
                socket.create_connection((LOOPBACK, cls.hrr_port), 1).close()
                return True
            except OSError:
                return False
        wait_until(listening, 10, what="openssl s_server to listen")
        cls.hrr_embargo = None
        cls.addClassCleanup(lambda: cls.hrr_embargo is not None and cls.hrr_embargo.stop())
        cls.hrr_embargo = cls.new_embargo(connect_ports=[cls.hrr_port],
                                          tls_inspect_ports=[cls.hrr_port])

    @classmethod
    def stop_s_server(cls):
        if cls.s_server.poll() is None:
            cls.s_server.terminate()
            cls.s_server.wait(timeout=10)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.hrr_embargo.check_clean_exit()
        finally:
            super().tearDownClass()

    def test_second_hello_with_the_same_name_completes_the_handshake(self):
        mark = self.hrr_embargo.log_mark()
        p = subprocess.run(
            [harness.OPENSSL, "s_client", "-proxy", "%s:%d" % (LOOPBACK, self.hrr_embargo.port),
             "-connect", "allowed.test:%d" % self.hrr_port, "-servername", "allowed.test",
             "-groups", "X25519:P-256", "-tls1_3", "-CAfile", self.cert, "-ign_eof"],
            input=b"GET / HTTP/1.0\r\n\r\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=30)
        out = p.stdout.decode("latin-1") + p.stderr.decode("latin-1")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("HTTP/1.0 200 ok", out)  # s_server -www answered through the tunnel
        recs = self.hrr_embargo.wait_records(lambda r: r.get("event") == "access", count=2,
                                             since=mark)
        self.assertEqual(recs[-1]["sni"], ["allowed.test"])
        self.assertNotIn("sni_changed", recs[-1].get("tags", []))

    def test_second_hello_naming_another_server_is_denied(self):
        with RawClient(self.hrr_embargo.port) as c:
            target = b"allowed.test:%d" % self.hrr_port
            c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
            self.assertEqual(c.read_response("CONNECT").status, 200)
            c.send(hello13("allowed.test"))
            flight = c._readn(5 + 4 + 2 + 32)  # record header, handshake header, version, random
            self.assertEqual(flight[0], 0x16)
            self.assertEqual(flight[5 + 4 + 2:], HRR_RANDOM, "the server did not ask to retry")
            c.sock.settimeout(2)
            try:  # the rest of the server's flight, if any
                c.sock.recv(65536)
            except socket.timeout:
                pass
            c.send(hello13("s07.upd.kaspersky.com", 0x0017, 65))
            rest = c.read_to_eof()
        self.assertTrue(rest.endswith(ti.ACCESS_DENIED_ALERT) or rest == ti.ACCESS_DENIED_ALERT,
                        rest[-20:])
        d = self.hrr_embargo.wait_records(lambda r: r.get("event") == "deny")[-1]
        self.assertIn("sni_changed", d["tags"], d)
        self.assertEqual(d["sni"], ["s07.upd.kaspersky.com"], d)
        self.assertEqual(d["error"], "tls_alert_access_denied", d)

class LiveEcho(harness.LoopbackTCPServer):
    """Echoes every chunk as it arrives, until EOF or 60 s per connection."""

    def __init__(self):
        super().__init__(128, 0.2)
        self.connections = 0

    def _accepted(self, pair):
        self.connections += 1
        threading.Thread(target=self._handle, args=(pair[0],), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(0.5)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                try:
                    b = conn.recv(65536)
                except socket.timeout:
                    continue
                if not b:
                    break
                conn.sendall(b)
        except OSError:
            pass
        finally:
            conn.close()


def stderr_lines(embargo, needle):
    return [l for l in embargo.stderr_text().splitlines() if needle in l]


class ConnectionLimits(EmbargoTestCase):
    """Defect 8 and the per-client cap."""

    ADMIN_PORT = harness.free_port()
    CONFIG_KW = {"limits": {"max_connections": 3},
                 "extra": "admin: {listen: 127.0.0.1:%d}" % ADMIN_PORT}

    def limit_pauses(self):
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        return m['embargo_accept_pauses_total{reason="max_connections"}']

    def held(self, n, port=None, source=LOOPBACK):
        """N connections with a partial request head (held by the proxy)."""
        out = []
        for _ in range(n):
            c = RawClient(port or self.embargo.port)
            self.addCleanup(c.close)
            out.append(c)
        return out

    def test_connection_limit_pauses_accept_and_warns_once_a_second(self):
        """Defect 8: a flood over limits.max_connections wrote one stderr line
        per refused connection and each was accepted and closed; accepting
        now pauses (the clients wait) and resumes when a slot frees."""
        holders = self.held(3)
        for c in holders:
            c.send(b"GET http://allowed.test:%d/ HTTP/1.1\r\nHo" % self.origin.port)
        harness.wait_until(lambda: sum(harness.listen_backlogs(self.embargo.port)) == 0, 10,
                           what="the proxy to take the first three")
        pauses = self.limit_pauses()
        t0 = time.monotonic()
        flood = []
        for _ in range(200):
            c = socket.create_connection((LOOPBACK, self.embargo.port), timeout=5)
            self.addCleanup(c.close)
            flood.append(c)
        harness.wait_until(lambda: harness.accept_paused(self.embargo.port, pauses,
                                                         self.limit_pauses()),
                           10, what="every worker to pause on the flood")
        # Waiting, not closed: no EOF (nor anything else) on any of them.
        self.assertEqual(select.select(flood, [], [], 0)[0], [])
        self.embargo.wait_stderr("connection limit")
        lines = stderr_lines(self.embargo, "connection limit")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(len(lines), 1, self.embargo.stderr_text())
        self.assertLessEqual(len(lines), int(elapsed) + 2, lines)
        # A slot frees: a waiting client is served. Each worker accepts from
        # its own queue (SO_REUSEPORT), in no order across queues, so the
        # other waiting clients leave first (each is accepted, seen closed
        # and its slot freed at once) and flood[0] is served when its turn
        # comes.
        for c in flood[1:]:
            c.close()
        first = flood[0]
        first.sendall(b"GET http://allowed.test:%d/health HTTP/1.1\r\nHost: allowed.test\r\n"
                      b"Connection: close\r\n\r\n" % self.origin.port)
        holders[0].close()
        data, eof = harness.read_to_eof(first, timeout=20)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        for c in flood:
            c.close()
        for c in holders:
            c.close()
        harness.wait_until(lambda: self._healthy_once(), 15.0, 0.1, "the proxy to serve again")

    def _healthy_once(self):
        try:
            r = http_get(self.embargo.port, self.url(path="/health"))
        except (ConnectionError, OSError):
            return False
        return r.status == 200

    def test_one_client_cannot_take_every_slot(self):
        """Per-client cap: limits.max_connections_per_client connections from
        one address, then further ones are closed (warned about once a
        second); another client address is still served."""
        e = self.start_embargo(limits={"max_connections": 100, "max_connections_per_client": 2},
                               extra="")
        mine = self.held(2, port=e.port)
        for c in mine:
            c.send(b"GET http://allowed.test:%d/ HTTP/1.1\r\nHo" % self.origin.port)
        # The proxy has taken them (each worker has its own accept queue, so
        # a later connection could otherwise be taken first).
        harness.wait_until(lambda: sum(harness.listen_backlogs(e.port)) == 0, 10,
                           what="the proxy to accept the first two connections")
        # Each further one carries a whole request: refused, it is closed
        # unanswered; served (no cap), its answer comes at once.
        for i in range(30):
            c = RawClient(e.port)
            self.addCleanup(c.close)
            try:
                c.send(b"GET http://allowed.test:%d/health HTTP/1.1\r\nHost: allowed.test\r\n"
                       b"Connection: close\r\n\r\n" % self.origin.port)
                data, eof = harness.read_to_eof(c.sock, timeout=10)
            except (ConnectionResetError, BrokenPipeError):
                data, eof = b"", True
            self.assertEqual((data[:40], eof), (b"", True),
                             "connection %d over the per-client cap was served" % (i + 3))
        e.wait_stderr("max_connections_per_client")
        lines = stderr_lines(e, "max_connections_per_client")
        self.assertGreaterEqual(len(lines), 1, e.stderr_text())
        self.assertLessEqual(len(lines), 3, lines)
        # Another machine (another loopback address) is served meanwhile.
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(other.close)
        other.settimeout(10)
        other.bind(("127.0.0.2", 0))
        other.connect((LOOPBACK, e.port))
        other.sendall(b"GET http://allowed.test:%d/health HTTP/1.1\r\nHost: allowed.test\r\n"
                      b"Connection: close\r\n\r\n" % self.origin.port)
        data, _ = harness.read_to_eof(other, timeout=10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        # The cap frees with the connections.
        for c in mine:
            c.close()
        harness.wait_until(lambda: self._healthy_on(e), 10.0, 0.1, "the client to be served")

    def _healthy_on(self, e):
        try:
            return http_get(e.port, self.url(path="/health")).status == 200
        except (ConnectionError, OSError):
            return False


class DescriptorExhaustion(EmbargoTestCase):
    """Defect 6: running out of file descriptors is visible and survivable."""

    NOFILE = 48

    @classmethod
    def setUpClass(cls):
        cls.echo = LiveEcho()  # before the embargo whose connect_ports name it
        cls.addClassCleanup(cls.echo.stop)
        cls.echo.start()
        super().setUpClass()

    @classmethod
    def connect_ports(cls):
        return [443, cls.echo.port]

    @classmethod
    def new_embargo(cls, **kw):
        # The binary runs under a low descriptor limit (set for the child only).
        wrapper = os.path.join(cls.tmp, "embargo-nofile.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nulimit -n %d || exit 99\nexec %s \"$@\"\n"
                    % (cls.NOFILE, harness.BINARY))
        os.chmod(wrapper, 0o755)
        real, harness.BINARY = harness.BINARY, wrapper
        try:
            return super().new_embargo(**kw)
        finally:
            harness.BINARY = real

    def open_tunnel(self, timeout):
        """A CONNECT tunnel to the echo server, or None if no 200 came in TIMEOUT."""
        s = socket.create_connection((LOOPBACK, self.embargo.port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.echo.port)
        s.settimeout(timeout)
        try:
            head = s.recv(4096)
        except socket.timeout:
            return s, None
        return s, head

    def test_exhaustion_is_logged_accept_pauses_and_resumes(self):
        """Defect 6: under a low ulimit -n clients got 502s and resets while
        stderr stayed silent. Now accepting pauses (clients wait), a warning
        says why at most once a second, open tunnels keep working, and the
        waiting client is served once descriptors free up."""
        tunnels, waiting, statuses = [], None, []
        for _ in range(self.NOFILE):
            s, head = self.open_tunnel(2.0)
            if head is None:
                waiting = s
                break
            statuses.append(head.split(b"\r\n", 1)[0])
            if not head.startswith(b"HTTP/1.1 200"):
                break
            tunnels.append(s)
        self.assertIsNotNone(waiting, "never ran out: %r" % statuses)
        self.assertTrue(all(x.startswith(b"HTTP/1.1 200") for x in statuses), statuses)
        self.assertGreater(len(tunnels), 5)
        self.embargo.wait_stderr("out of file descriptors")
        lines = stderr_lines(self.embargo, "out of file descriptors")
        self.assertTrue(lines, self.embargo.stderr_text())
        self.assertLessEqual(len(lines), 3, lines)
        # Existing tunnels keep working.
        for i, t in enumerate(tunnels):
            t.settimeout(10)
            t.sendall(b"ping %d\n" % i)
            self.assertEqual(t.recv(100), b"ping %d\n" % i)
        # Free some descriptors: the waiting client is served.
        for t in tunnels[:3]:
            t.close()
        waiting.settimeout(10)
        head = waiting.recv(4096)
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        waiting.sendall(b"late\n")
        self.assertEqual(waiting.recv(100), b"late\n")
        self.embargo.wait_stderr("accepting on")
        for t in tunnels:
            t.close()
        waiting.close()


def proc_ids(pid):
    """(uids, gids, groups) from /proc/PID/status."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                ids[k] = [int(x) for x in v.split()]
    return ids["Uid"], ids["Gid"], ids["Groups"]


def free_privileged_port():
    """A port below 1024 nothing listens on (127.0.0.1), or None."""
    for port in range(1010, 900, -1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
                return port
            except OSError:
                continue
    return None


class Privileges(EmbargoTestCase):
    """Started as root, Embargo binds its listeners, then runs as `user`."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: the privilege drop only happens when started as root")
        super().setUpClass()

    def test_root_start_binds_a_privileged_port_then_runs_as_nobody(self):
        """Privileges: a proxy started as root kept running as root. With the
        built-in `user: nobody` it binds port < 1024 first, then drops every
        id and supplementary group, and serves."""
        port = free_privileged_port()
        if port is None:
            self.skipTest("no free port below 1024 on 127.0.0.1")
        e = self.start_embargo(port=port)
        nobody = pwd.getpwnam("nobody")
        uids, gids, groups = proc_ids(e.proc.pid)
        self.assertEqual(uids, [nobody.pw_uid] * 4)
        self.assertEqual(gids, [nobody.pw_gid] * 4)
        self.assertEqual(groups, [nobody.pw_gid])
        e.wait_stderr("running as user nobody")
        r = http_get(port, self.url(path="/health"))
        self.assertEqual(r.status, 200, r)

    def test_explicit_user_option_and_config_key(self):
        """Privileges: `--user` and the `user:` key name the account."""
        e = self.start_embargo(extra="user: root")
        uids, _, _ = proc_ids(e.proc.pid)
        self.assertEqual(uids, [0] * 4, "user: root keeps root deliberately")
        e.wait_stderr("running as root because `user: root` says so")
        e2 = Embargo(self.tmp, make_config(extra="user: root"), self.dns.port,
                     extra_args=["--user", "nobody"]).start()
        self.addCleanup(e2.check_clean_exit)
        uids, _, _ = proc_ids(e2.proc.pid)
        self.assertEqual(uids, [pwd.getpwnam("nobody").pw_uid] * 4, "--user overrides the file")

    def test_unknown_user_stops_the_start(self):
        """Privileges: a user that does not exist is an error, not root."""
        path = os.path.join(self.tmp, "nouser.yaml")
        with open(path, "w") as f:
            f.write("user: embargo-no-such-user\n")
        rc, err = run_bounded(["run", "--config", path, "--listen",
                               "%s:%d" % (LOOPBACK, harness.free_port()), "--log", os.devnull])
        self.assertNotIn(rc, (0, None), err)
        self.assertIn("user embargo-no-such-user: no such user", err)
        self.assertNotIn("listening on", err)


def run_bounded(args, timeout=15.0):
    """Runs the binary with ARGS; (returncode, stderr). A process still
    running after TIMEOUT seconds is ended (its own Popen) and reported with
    returncode None."""
    p = subprocess.Popen([harness.BINARY] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
        return None, err.decode("utf-8", "replace")


class CommandLineValidation(unittest.TestCase):
    """Defects 4 and 5: bad endpoints and empty listener lists are refused."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embargo-cli-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp], check=False))

    def test_resolver_option_is_validated_like_the_config_file(self):
        """Defect 4: --resolver 127.0.0.1:99999 started (queries went to port
        34463); port 0 and malformed addresses started too. Each must exit 2
        with the config file's reason."""
        port = harness.free_port()
        cases = {
            "127.0.0.1:99999": "invalid port in '127.0.0.1:99999' (expected ip:port, port 1 to 65535)",
            "127.0.0.1:0": "invalid port in '127.0.0.1:0' (expected ip:port, port 1 to 65535)",
            "127.0.0.1": "invalid port in '127.0.0.1' (expected ip:port, port 1 to 65535)",
            "localhost:53": "expected \"ip:port\" or \"[v6]:port\", got 'localhost:53'",
            "300.1.1.1:53": "expected \"ip:port\" or \"[v6]:port\", got '300.1.1.1:53'",
            "[::1:53": "expected \"ip:port\" or \"[v6]:port\", got '[::1:53'",
        }
        for value, reason in cases.items():
            with self.subTest(resolver=value):
                rc, err = run_bounded(["run", "--listen", "%s:%d" % (LOOPBACK, port),
                                       "--resolver", value, "--log", os.devnull])
                self.assertEqual(rc, 2, err)
                self.assertIn("--resolver: " + reason, err)
                self.assertNotIn("listening on", err)
                rc, err = run_bounded(["check", "--resolver", value, "--no-resolve",
                                       "example.org"])
                self.assertEqual(rc, 2, err)
                self.assertIn("--resolver: " + reason, err)
        # The same reason the config file gives for the same entry.
        path = os.path.join(self.tmp, "r.yaml")
        with open(path, "w") as f:
            f.write("resolvers: [\"127.0.0.1:99999\"]\n")
        rc, err = run_bounded(["config", "check", path])
        self.assertEqual(rc, 2, err)
        self.assertIn(cases["127.0.0.1:99999"], err)

    def test_empty_listener_list_is_a_config_error(self):
        """Defect 5: `listen: []` passed `config check` and the proxy started,
        serving nothing. It is a file:line:col error in both."""
        path = os.path.join(self.tmp, "empty.yaml")
        with open(path, "w") as f:
            f.write("# no listeners\nlisten: []\n")
        rc, err = run_bounded(["config", "check", path])
        self.assertEqual(rc, 2, err)
        self.assertIn("%s:2:9: listen: at least one listener is needed" % path, err)
        rc, err = run_bounded(["run", "--config", path, "--log", os.devnull])
        self.assertEqual(rc, 2, err)
        self.assertIn("%s:2:9: listen:" % path, err)


if __name__ == "__main__":
    harness.main()
