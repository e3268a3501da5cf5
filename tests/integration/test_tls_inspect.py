"""ClientHello inspection of CONNECT tunnels: a Kaspersky SNI behind an
allowed CONNECT authority is refused with a TLS alert before dialling; a
hello split over several records or dribbled one byte at a time is still
judged (and forwarded intact when allowed); what cannot be inspected (not
TLS, malformed, too large, too slow) is refused; hellos without SNI, monitor
mode, ALPN evidence, JA4 rules and a large download through an inspected
tunnel."""

import os
import re
import socket
import ssl
import struct
import subprocess
import time

import harness
from harness import (EmbargoTestCase, RawClient, client_env, curl, file_sha256, pattern_sha256,
                     wait_until)

JA4_RE = r"^t(13|12|11|10|s3|s2|00)[di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$"
DENIED_SNI = "s07.upd.kaspersky.com"
# The fatal access_denied alert at record version TLS 1.0 (0x0301), which is
# what OpenSSL-based clients put on their first record.
ACCESS_DENIED_ALERT = b"\x15\x03\x01\x00\x02\x02\x31"

EXT_SERVER_NAME = 0
EXT_PADDING = 21


# ---- ClientHello bytes ---------------------------------------------------------


def records_payload(flight):
    """The handshake bytes carried by the TLS records in FLIGHT, and the first
    record's version bytes."""
    out = bytearray()
    pos = 0
    version = flight[1:3]
    for _ in range(64):
        if pos >= len(flight):
            break
        if flight[pos] != 0x16:
            raise ValueError("not a handshake record at %d" % pos)
        n = struct.unpack(">H", flight[pos + 3:pos + 5])[0]
        out += flight[pos + 5:pos + 5 + n]
        pos += 5 + n
    return bytes(out), version


def reframe(flight, pieces):
    """The same handshake message in PIECES handshake records of nearly equal size."""
    msg, version = records_payload(flight)
    step = -(-len(msg) // pieces)
    chunks = [msg[i:i + step] for i in range(0, len(msg), step)]
    assert len(chunks) == pieces, (len(msg), pieces)
    return b"".join(b"\x16" + version + struct.pack(">H", len(c)) + c for c in chunks)


def split_hello(msg):
    """(head, extensions) of a ClientHello handshake message MSG: HEAD is
    everything up to the extensions length, EXTENSIONS a list of (type, body)."""
    assert msg[0] == 1, "not a ClientHello"
    pos = 4 + 2 + 32
    pos += 1 + msg[pos]                                    # session_id
    pos += 2 + struct.unpack(">H", msg[pos:pos + 2])[0]   # cipher_suites
    pos += 1 + msg[pos]                                    # compression_methods
    head = msg[4:pos]
    total = struct.unpack(">H", msg[pos:pos + 2])[0]
    pos += 2
    end = pos + total
    exts = []
    for _ in range(256):
        if pos >= end:
            break
        t, n = struct.unpack(">HH", msg[pos:pos + 4])
        exts.append((t, msg[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return head, exts


def build_hello(head, exts, version=b"\x03\x01", ext_len_delta=0):
    """A one-record ClientHello from HEAD and EXTS; EXT_LEN_DELTA corrupts
    the extensions length."""
    blob = b"".join(struct.pack(">HH", t, len(b)) + b for t, b in exts)
    body = head + struct.pack(">H", len(blob) + ext_len_delta) + blob
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + version + struct.pack(">H", len(hs)) + hs


def sni_ext(name):
    n = name.encode()
    return (EXT_SERVER_NAME, struct.pack(">HBH", len(n) + 3, 0, len(n)) + n)


class MemoryTLSClient:
    """A Python ssl client over memory BIOs: the test decides how its first
    flight goes on the wire, then the handshake completes over a plain socket."""

    def __init__(self, cafile, server_hostname, alpn=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            ctx.load_verify_locations(cafile)
        if server_hostname is None or not cafile:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE if not cafile else ssl.CERT_REQUIRED
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)

    def first_flight(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def _pump_out(self, sock):
        data = self.out.read()
        if data:
            sock.sendall(data)

    def finish_handshake(self, sock):
        for _ in range(200):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump_out(sock)
                b = sock.recv(65536)
                if not b:
                    raise ConnectionError("peer closed during the TLS handshake")
                self.inc.write(b)
        else:
            raise AssertionError("TLS handshake did not finish")
        self._pump_out(sock)

    def request(self, sock, path, host="allowed.test"):
        """Sends GET PATH with Connection: close; returns the raw response."""
        self.obj.write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                        % (path, host)).encode())
        self._pump_out(sock)
        resp = bytearray()
        for _ in range(10000):
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    break
                resp += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            b = sock.recv(65536)
            if not b:
                self.inc.write_eof()
                continue
            self.inc.write(b)
        return bytes(resp)


def python_hello(sni=DENIED_SNI):
    return MemoryTLSClient(None, sni).first_flight()


# ---- the tests -----------------------------------------------------------------


class InspectAssertions(EmbargoTestCase):
    """Shared helpers (no tests of their own)."""

    TLS = True
    CONFIG_KW = {"extra": "access_log: true"}

    def open_tunnel(self, embargo=None, host="allowed.test", port=None):
        e = embargo or self.embargo
        port = port or self.tls_origin.port
        c = RawClient(e.port)
        c.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
               % (host.encode(), port, host.encode(), port))
        r = c.read_response("CONNECT")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(bytes(c.buf), b"", "bytes after the 200")
        return c

    def tunnel_record(self, pred=lambda x: True, embargo=None, since=None):
        """The first CONNECT line made during this test (or since the mark
        SINCE) that satisfies PRED."""
        e = embargo or self.embargo
        if embargo is None and since is None:
            since = self.log_mark

        def got():
            recs = [x for x in e.records(since)
                    if x.get("method") == "CONNECT" and pred(x)]
            return recs[0] if recs else None
        return wait_until(got, 10.0, 0.02, "a CONNECT decision log line")

    def assert_sni_deny(self, d, sni=DENIED_SNI, host="allowed.test"):
        self.assertEqual(d["event"], "deny", d)
        self.assertEqual(d["action"], "deny", d)
        self.assertEqual(d["host"], host, d)
        self.assertEqual(d["port"], self.tls_origin.port, d)
        self.assertEqual(d["matched_on"], "sni", d)
        self.assertEqual(d["matched"], sni, d)
        self.assertEqual(d["vendor"], "kaspersky", d)
        self.assertEqual(d["category"], "updates", d)
        self.assertEqual(d["tls"], "hello", d)
        self.assertEqual(d["sni"], [sni], d)
        self.assertIn("sni_mismatch", d.get("tags", []), d)
        self.assertRegex(d.get("ja4", ""), JA4_RE)
        self.assertEqual(d["error"], "tls_alert_access_denied", d)
        self.assertNotIn("status", d)

    def assert_origin_untouched(self):
        """A dial started before the refusal would be counted before the
        origin's barrier."""
        self.tls_origin.barrier()
        self.assertEqual(self.tls_origin.connections, 0, "the TLS origin saw a connection")

    def openssl_client(self, proxy_port, servername=None, extra=()):
        if not os.access(harness.OPENSSL, os.X_OK):
            self.skipTest("openssl CLI not installed")
        args = [harness.OPENSSL, "s_client", "-connect", "allowed.test:%d" % self.tls_origin.port,
                "-proxy", "127.0.0.1:%d" % proxy_port, "-CAfile", self.cert]
        args += ["-servername", servername] if servername else ["-noservername"]
        args += list(extra)
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=client_env())
        return p, (p.stdout + p.stderr).decode("utf-8", "replace")

    def send_dribbled(self, sock, data):
        """One byte per send, with Nagle off and a pause so that reads see them apart."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(0.001)


class SniTest(InspectAssertions):
    """The SNI is judged along with the CONNECT authority."""

    def test_config_inspects_the_tls_origin_port(self):
        port = str(self.tls_origin.port)
        text = self.embargo.config_text
        self.assertRegex(text, r"connect_ports: \[[^\]]*\b%s\b" % port)
        self.assertRegex(text, r"tls_inspect:\n  ports: \[[^\]]*\b%s\b" % port)

    def test_openssl_kaspersky_sni_behind_allowed_authority_gets_alert(self):
        p, out = self.openssl_client(self.embargo.port, DENIED_SNI)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("alert access denied", out)
        d = self.tunnel_record()
        self.assert_sni_deny(d)
        self.assertIn("TLS1.3", d.get("tls_versions", []), d)
        self.assert_origin_untouched()
        self.assertNotIn(DENIED_SNI, self.dns.queries(self.dns_mark))

    def test_curl_connect_to_allowed_authority_with_kaspersky_sni_refused(self):
        # curl names s07 in its URL (and so in its SNI), but --connect-to
        # makes it tunnel to allowed.test.
        port = self.tls_origin.port
        p = curl(["--proxy", self.embargo.proxy_url, "--cacert", self.cert,
                  "--connect-to", "%s:%d:allowed.test:%d" % (DENIED_SNI, port, port),
                  "https://%s:%d/x" % (DENIED_SNI, port)], timeout=20)
        self.assertEqual(p.returncode, 35, p.stderr)
        self.assertIn(b"access denied", p.stderr)
        d = self.tunnel_record()
        self.assert_sni_deny(d)
        self.assertIn("h2", d.get("alpn", []), d)
        self.assert_origin_untouched()

    def test_raw_alert_bytes_and_close(self):
        with self.open_tunnel() as c:
            c.send(python_hello(DENIED_SNI))
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        self.assert_sni_deny(self.tunnel_record())
        self.assert_origin_untouched()

    def _crafted(self, first_exts, drop=(EXT_SERVER_NAME,), more=()):
        """A real Python hello (for allowed.test) with its extensions edited."""
        msg, _ = records_payload(python_hello("allowed.test"))
        head, exts = split_hello(msg)
        return build_hello(head, list(first_exts) + [x for x in exts if x[0] not in drop] +
                           list(more))

    def test_sni_is_normalised_before_judging(self):
        with self.open_tunnel() as c:
            c.send(self._crafted([sni_ext("S07.UPD.Kaspersky.COM.")]))
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        self.assert_sni_deny(self.tunnel_record())
        self.assert_origin_untouched()

    def test_every_name_of_a_multi_name_sni_is_judged(self):
        names = [b"allowed.test", DENIED_SNI.encode()]
        body = b"".join(struct.pack(">BH", 0, len(n)) + n for n in names)
        ext = (EXT_SERVER_NAME, struct.pack(">H", len(body)) + body)
        with self.open_tunnel() as c:
            c.send(self._crafted([ext]))
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        d = self.tunnel_record()
        self.assertEqual((d["event"], d["matched_on"], d["matched"]),
                         ("deny", "sni", DENIED_SNI), d)
        self.assertEqual(d["sni"], ["allowed.test", DENIED_SNI], d)
        self.assertIn("sni_multiple", d["tags"], d)
        self.assert_origin_untouched()

    def test_ech_extension_is_logged_and_passed(self):
        # An encrypted_client_hello extension (0xfe0d) the origin ignores.
        with self.open_tunnel() as c:
            c.send(self._crafted([], drop=(), more=[(0xfe0d, b"\0" * 40)]))
            c.sock.settimeout(10)
            self.assertEqual(c.sock.recv(1)[:1], b"\x16")  # the origin's ServerHello
        d = self.tunnel_record()
        self.assertEqual((d["event"], d["action"]), ("log", "log"), d)  # tls_inspect.on_ech: log
        self.assertIs(d["ech"], True, d)
        self.assertIn("ech", d["tags"], d)
        self.assertEqual(d["sni"], ["allowed.test"], d)
        self.assertEqual(d.get("detail"), "tls_inspect.on_ech", d)
        wait_until(lambda: self.tls_origin.connections == 1, 5.0, 0.02, "the origin dialled")

    def test_hello_without_sni_is_allowed_and_tagged(self):
        client = MemoryTLSClient(self.cert, None)
        with self.open_tunnel() as c:
            c.send(client.first_flight())
            client.finish_handshake(c.sock)
            resp = client.request(c.sock, "/nosni")
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:200])
        self.assertTrue(resp.endswith(b"ok /nosni\n"), resp[-200:])
        d = self.tunnel_record()
        self.assertEqual(d["event"], "log", d)  # tls_inspect.on_no_sni: log
        self.assertEqual(d["action"], "log", d)
        self.assertEqual(d["tls"], "hello", d)
        self.assertIn("no_sni", d.get("tags", []), d)
        self.assertFalse(d.get("sni"), d)
        self.assertRegex(d.get("ja4", ""), r"^t13i")
        self.assertEqual(self.tls_origin.connections, 1)

    def test_openssl_noservername_is_allowed(self):
        p, out = self.openssl_client(self.embargo.port, None)
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        d = self.tunnel_record()
        self.assertIn("no_sni", d.get("tags", []), d)
        self.assertEqual(self.tls_origin.connections, 1)

    def test_curl_alpn_is_logged(self):
        url = "https://allowed.test:%d/alpn" % self.tls_origin.port
        for args, alpn in (([], ["h2", "http/1.1"]), (["--http1.1"], ["http/1.1"])):
            with self.subTest(args=args):
                mark = self.embargo.log_mark()
                p = curl(["--proxy", self.embargo.proxy_url, "--cacert", self.cert] + args + [url],
                         timeout=20)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout, b"ok /alpn\n")
                d = self.tunnel_record(embargo=self.embargo, since=mark)
                self.assertEqual(d["event"], "access", d)
                self.assertEqual(d["action"], "allow", d)
                self.assertEqual(d["tls"], "hello", d)
                self.assertEqual(d["sni"], ["allowed.test"], d)
                self.assertEqual(d["alpn"], alpn, d)
                self.assertNotIn("sni_mismatch", d.get("tags", []), d)
                self.assertRegex(d["ja4"], JA4_RE)
                self.assertEqual(d["ja4"][8:10], "h2" if alpn[0] == "h2" else "h1", d)

    def test_large_download_through_inspected_tunnel(self):
        size = 50 << 20
        out = os.path.join(self.tmp, "tls-download.bin")
        url = "https://allowed.test:%d/bytes/%d?seed=41" % (self.tls_origin.port, size)
        p = curl(["--proxy", self.embargo.proxy_url, "--cacert", self.cert, "-o", out, url],
                 timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        digest, n = file_sha256(out)
        os.unlink(out)
        self.assertEqual(n, size)
        self.assertEqual(digest, pattern_sha256(size, 41))
        self.assertEqual(self.tunnel_record()["tls"], "hello")


class FragmentedHelloTest(InspectAssertions):
    """A hello split over several TLS records and TCP segments."""

    def _deliver(self, c, data, dribble):
        if dribble:
            self.send_dribbled(c.sock, data)
        else:
            c.send(data)

    def _allowed_case(self, pieces, dribble):
        mark = self.embargo.log_mark()
        self.tls_origin.reset_counters()
        client = MemoryTLSClient(self.cert, "allowed.test")
        wire = reframe(client.first_flight(), pieces)
        with self.open_tunnel() as c:
            self._deliver(c, wire, dribble)
            client.finish_handshake(c.sock)
            resp = client.request(c.sock, "/split-%d" % pieces)
        self.assertTrue(resp.startswith(b"HTTP/1.1 200"), resp[:200])
        self.assertTrue(resp.endswith(b"ok /split-%d\n" % pieces), resp[-200:])
        self.assertEqual(self.tls_origin.connections, 1)
        d = self.tunnel_record(embargo=self.embargo, since=mark)
        self.assertEqual(d["event"], "access", d)
        self.assertEqual((d["tls"], d["sni"]), ("hello", ["allowed.test"]), d)

    def _denied_case(self, pieces, dribble):
        mark = self.embargo.log_mark()
        self.tls_origin.reset_counters()
        wire = reframe(python_hello(DENIED_SNI), pieces)
        with self.open_tunnel() as c:
            self._deliver(c, wire, dribble)
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        self.assert_sni_deny(self.tunnel_record(embargo=self.embargo, since=mark))
        self.assert_origin_untouched()

    def test_two_records_allowed_handshake_completes(self):
        self._allowed_case(2, False)

    def test_three_records_allowed_handshake_completes(self):
        self._allowed_case(3, False)

    def test_three_records_dribbled_allowed_handshake_completes(self):
        self._allowed_case(3, True)

    def test_one_record_dribbled_allowed_handshake_completes(self):
        self._allowed_case(1, True)

    def test_two_records_kaspersky_sni_denied(self):
        self._denied_case(2, False)

    def test_three_records_kaspersky_sni_denied(self):
        self._denied_case(3, False)

    def test_two_records_dribbled_kaspersky_sni_denied(self):
        self._denied_case(2, True)

    def test_three_records_dribbled_kaspersky_sni_denied(self):
        self._denied_case(3, True)


class UninspectableTest(InspectAssertions):
    """What the parser cannot judge is refused (the default on_* actions)."""

    def test_not_tls_closes_tunnel(self):
        with self.open_tunnel() as c:
            c.send(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            self.assertEqual(c.read_to_eof(), b"")  # no alert to a client that is not TLS
        d = self.tunnel_record()
        self.assertEqual((d["event"], d["action"]), ("deny", "deny"), d)
        self.assertEqual(d["tls"], "not_tls", d)
        self.assertEqual(d["error"], "tunnel_closed", d)
        self.assert_origin_untouched()

    def test_malformed_extensions_length_gets_alert(self):
        msg, _ = records_payload(python_hello("allowed.test"))
        head, exts = split_hello(msg)
        bad = build_hello(head, exts, ext_len_delta=+40)
        with self.open_tunnel() as c:
            c.send(bad)
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        d = self.tunnel_record()
        self.assertEqual(d["event"], "deny", d)
        self.assertEqual(d["tls"], "malformed", d)
        self.assertEqual(d["tls_reason"], "extensions length runs past the hello", d)
        self.assertEqual(d["error"], "tls_alert_access_denied", d)
        self.assertIn("on_malformed", d.get("detail", ""), d)
        self.assert_origin_untouched()

    def test_malformed_session_id_gets_alert(self):
        msg, _ = records_payload(python_hello("allowed.test"))
        head, exts = split_hello(msg)
        sid_at = 2 + 32
        self.assertEqual(head[sid_at], 32)  # OpenSSL sends a 32-byte compat session id
        bad_head = head[:sid_at] + b"\x21" + head[sid_at + 1:]
        with self.open_tunnel() as c:
            c.send(build_hello(bad_head, exts))
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        d = self.tunnel_record()
        self.assertEqual(d["tls"], "malformed", d)
        self.assertIn("session_id", d["tls_reason"], d)
        self.assert_origin_untouched()

    def test_hello_larger_than_max_hello_refused(self):
        port = self.tls_origin.port
        e = self.start_embargo(tls_inspect_ports=None, extra=(
            "access_log: true\ntls_inspect:\n  ports: [443, %d]\n  max_hello: 512" % port))
        msg, _ = records_payload(python_hello("allowed.test"))
        head, exts = split_hello(msg)
        unpadded = [x for x in exts if x[0] != EXT_PADDING]
        # A hello that fits passes on the same proxy ...
        small = build_hello(head, unpadded)
        self.assertLess(len(small), 512)
        with self.open_tunnel(embargo=e) as c:
            c.send(small)
            d = self.tunnel_record(embargo=e)
        self.assertEqual((d["event"], d["tls"]), ("access", "hello"), d)
        wait_until(lambda: self.tls_origin.connections == 1, 5.0, 0.02, "the origin dialled")
        # ... and one padded past max_hello gets the alert.
        self.tls_origin.reset_counters()
        mark = e.log_mark()
        big = build_hello(head, unpadded + [(EXT_PADDING, b"\0" * 1200)])
        with self.open_tunnel(embargo=e) as c:
            c.send(big)
            self.assertEqual(c.read_to_eof(), ACCESS_DENIED_ALERT)
        d = self.tunnel_record(embargo=e, since=mark)
        self.assertEqual(d["event"], "deny", d)
        self.assertEqual(d["tls"], "too_large", d)
        self.assertEqual(d["error"], "tls_alert_access_denied", d)
        self.assertIn("on_too_large", d.get("detail", ""), d)
        self.assert_origin_untouched()

    def test_silent_client_times_out(self):
        port = self.tls_origin.port
        e = self.start_embargo(tls_inspect_ports=None, extra=(
            "tls_inspect:\n  ports: [443, %d]\n  timeout: 1s" % port))
        with self.open_tunnel(embargo=e) as c:
            t0 = time.monotonic()
            self.assertTrue(c.at_eof(10.0), "tunnel still open 10 s after the 200")
            elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.8)
        # Closed by tls_inspect.timeout (the log says so), not by the 20 s
        # tunnel_idle or the client's own read timeout.
        d = self.tunnel_record(embargo=e)
        self.assertEqual((d["event"], d["action"]), ("deny", "deny"), d)
        self.assertEqual(d["tls"], "timeout", d)
        self.assertEqual(d["error"], "tunnel_closed", d)
        self.assert_origin_untouched()

    def test_partial_hello_times_out(self):
        port = self.tls_origin.port
        e = self.start_embargo(tls_inspect_ports=None, extra=(
            "tls_inspect:\n  ports: [443, %d]\n  timeout: 1s" % port))
        hello = python_hello("allowed.test")
        with self.open_tunnel(embargo=e) as c:
            c.send(hello[:len(hello) // 2])
            self.assertTrue(c.at_eof(10.0), "tunnel still open 10 s after the 200")
        d = self.tunnel_record(embargo=e)
        self.assertEqual(d["tls"], "timeout", d)
        self.assert_origin_untouched()


class MonitorTest(InspectAssertions):
    """--monitor turns an SNI deny into a logged pass-through."""

    MONITOR = True

    def test_kaspersky_sni_passes_and_is_logged_as_monitor(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False  # the origin's certificate names allowed.test
        with self.open_tunnel() as c:
            tls = ctx.wrap_socket(c.sock, server_hostname=DENIED_SNI)
            tls.sendall(b"GET /mon HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
            resp = bytearray()
            for _ in range(1000):
                b = tls.recv(65536)
                if not b:
                    break
                resp += b
            tls.close()
        self.assertTrue(resp.endswith(b"ok /mon\n"), bytes(resp[-200:]))
        self.assertEqual(self.tls_origin.connections, 1)
        d = self.tunnel_record()
        self.assertEqual((d["event"], d["action"]), ("log", "log"), d)
        self.assertIs(d.get("monitor"), True, d)
        self.assertEqual(d["rule_action"], "deny", d)
        self.assertEqual((d["matched_on"], d["matched"]), ("sni", DENIED_SNI), d)
        self.assertIn("sni_mismatch", d.get("tags", []), d)
        self.assertNotIn("error", d)
        self.assertFalse([x for x in self.embargo.records() if x.get("event") == "deny"])


class Ja4RuleTest(InspectAssertions):
    """A JA4 entry in a vendor list denies a client by its fingerprint alone."""

    def test_ja4_captured_from_access_line_then_denied(self):
        # 1. The fingerprint of `openssl s_client`, as an access line records it.
        p, out = self.openssl_client(self.embargo.port, "allowed.test")
        self.assertEqual(p.returncode, 0, out)
        d = self.tunnel_record()
        self.assertEqual(d["event"], "access", d)
        ja4 = d["ja4"]
        self.assertRegex(ja4, JA4_RE)
        self.assertTrue(ja4.startswith("t13d"), ja4)
        # 2. A vendor list naming that fingerprint.
        path = os.path.join(self.tmp, "ja4-vendor.yaml")
        with open(path, "w") as f:
            f.write("vendor: testja4\nname: JA4 Test Vendor\nreference: \"integration test\"\n"
                    "categories:\n  updater:\n    cutoff: 2024-01-01T00:00:00Z\n"
                    "    ja4:\n      - %s\n" % ja4)
        e = self.start_embargo(vendors=["builtin: kaspersky", "file: %s" % path])
        # 3. The same client, an allowed name and an allowed SNI: denied on ja4.
        self.tls_origin.reset_counters()
        p, out = self.openssl_client(e.port, "allowed.test")
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("alert access denied", out)
        d = self.tunnel_record(embargo=e)
        self.assertEqual(d["event"], "deny", d)
        self.assertEqual(d["matched_on"], "ja4", d)
        self.assertEqual(d["matched"], ja4, d)
        self.assertEqual(d["ja4"], ja4, d)
        self.assertEqual((d["vendor"], d["category"]), ("testja4", "updater"), d)
        self.assertEqual(d["sni"], ["allowed.test"], d)
        self.assertNotIn("sni_mismatch", d.get("tags", []), d)
        self.assertRegex(d["rule"], r"ja4-vendor\.yaml:\d+$")
        self.assert_origin_untouched()
        # 4. Another client (curl: ALPN h2, so another fingerprint) still passes.
        mark = e.log_mark()
        url = "https://allowed.test:%d/other" % self.tls_origin.port
        c = curl(["--proxy", e.proxy_url, "--cacert", self.cert, url], timeout=20)
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(c.stdout, b"ok /other\n")
        d = self.tunnel_record(embargo=e, since=mark)
        self.assertEqual(d["event"], "access", d)


del InspectAssertions  # helpers only

if __name__ == "__main__":
    harness.main()
