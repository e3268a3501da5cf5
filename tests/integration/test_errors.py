"""Bad input costs the sender, never the proxy: malformed targets, oversized
and slow heads, request smuggling shapes, forbidden ports, forwarding to
the proxy itself, DNS and connect failures, and the client ACL. Every case
gets its status, an RFC 9209 Proxy-Status, an error log line, and a
follow-up request on a fresh connection still succeeds."""

import select
import socket
import time

import harness
from harness import EmbargoTestCase, RawClient, free_port
from test_admin import admin_get, parse_metrics


class MalformedInputTest(EmbargoTestCase):
    CONFIG_KW = {
        "timeouts": {"request_head": "1s", "resolve": "1s"},
        "limits": {"max_head": 8192},
    }

    def _exchange(self, raw, method="GET"):
        with RawClient(self.embargo.port) as c:
            c.send(raw)
            return c.read_response(method)

    def _assert_error(self, raw, status, error, origin_untouched=True):
        mark = self.embargo.log_mark()
        r = self._exchange(raw)
        self.assertEqual(r.status, status, "%r -> %r %r" % (raw[:120], r, r.body))
        self.assert_proxy_status(r, error)
        recs = self.embargo.wait_records(
            lambda x: x.get("event") == "error" and x.get("status") == status and
            x.get("error") == error, since=mark)
        self.assertIn("detail", recs[-1])
        if origin_untouched:
            self.assertEqual(self.origin.connections, 0, "the origin saw a connection")
        self.assert_healthy()
        self.origin.reset_counters()
        return r

    def _get(self, target, extra=b""):
        return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (target, extra)

    def test_bad_host_syntax_is_400(self):
        for target in (b"http://bad_host!.test/", b"http://a..b.test/", b"http://-x.test/",
                       b"http://%41llowed.test/", b"http://[::1/", b"http://allowed.test:99999/",
                       b"http:///path", b"ftp://allowed.test/"):
            with self.subTest(target=target):
                self._assert_error(self._get(target), 400, "http_request_error")

    def test_non_canonical_ip_literals_are_400(self):
        for target in (b"http://0x7f.1/", b"http://2130706433/", b"http://127.1/",
                       b"http://0177.0.0.1/", b"http://127.0.0.01/"):
            with self.subTest(target=target):
                self._assert_error(self._get(target), 400, "http_request_error")

    def test_userinfo_is_400(self):
        target = b"http://user:pass@allowed.test:%d/" % self.origin.port
        self._assert_error(self._get(target), 400, "http_request_error")

    def test_raw_non_ascii_host_is_400(self):
        self._assert_error(self._get("http://bücher.test/".encode("utf-8")), 400,
                           "http_request_error")

    def test_origin_form_is_400(self):
        raw = b"GET /index.html HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % self.origin.port
        r = self._assert_error(raw, 400, "http_request_error")
        self.assertIn(b"proxy", r.body.lower())

    def test_oversized_head_is_431(self):
        raw = self._get(b"http://allowed.test:%d/" % self.origin.port,
                        b"X-Big: " + b"a" * 10000 + b"\r\n")
        self._assert_error(raw, 431, "http_request_error")

    def test_many_header_lines_over_the_limit_is_431(self):
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(1500))
        self._assert_error(self._get(b"http://allowed.test:%d/" % self.origin.port, extra), 431,
                           "http_request_error")

    def test_slow_head_is_408(self):
        with RawClient(self.embargo.port) as c:
            t0 = time.monotonic()
            c.send(b"GET http://allowed.test:%d/ HTTP/1.1\r\nHost: allo" % self.origin.port)
            r = c.read_response()
            elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 408, r)
        self.assert_proxy_status(r, "http_request_error")
        self.assertGreater(elapsed, 0.8)  # not before timeouts.request_head (1 s)
        self.assertEqual(self.origin.connections, 0)
        self.assert_healthy()

    def test_slow_heads_do_not_stall_other_clients(self):
        # Heads may take 30 s here: a healthy request served while every
        # slow one is still pending (unanswered, open) did not wait on them.
        e = self.start_embargo(timeouts={"request_head": "30s", "resolve": "1s"})
        stalled = [RawClient(e.port) for _ in range(5)]
        try:
            for c in stalled:
                c.send(b"GET http://allowed.test/ HTTP/1.1\r\nHo")
            self.assert_healthy(e)
            ready, _, _ = select.select([c.sock for c in stalled], [], [], 0)
            self.assertEqual(ready, [], "a slow head was answered or closed before the "
                             "healthy request: it waited on them")
        finally:
            for c in stalled:
                c.close()

    def test_content_length_with_transfer_encoding_is_400(self):
        raw = (b"POST http://allowed.test:%d/upload HTTP/1.1\r\nHost: allowed.test\r\n"
               b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % self.origin.port)
        self._assert_error(raw, 400, "http_request_error")

    def test_duplicate_differing_content_length_is_400(self):
        raw = (b"POST http://allowed.test:%d/upload HTTP/1.1\r\nHost: allowed.test\r\n"
               b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" % self.origin.port)
        self._assert_error(raw, 400, "http_request_error")

    def test_garbage_request_line_is_400(self):
        self._assert_error(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
                           400, "http_request_error")

    def test_connect_to_port_25_is_403(self):
        r = self._assert_error(b"CONNECT allowed.test:25 HTTP/1.1\r\nHost: allowed.test:25\r\n\r\n",
                               403, "http_request_denied")
        self.assertIn(b"25", r.body)

    def test_connect_without_port_is_400(self):
        self._assert_error(b"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400,
                           "http_request_error")

    def test_request_to_own_listener_by_address_is_403(self):
        self._assert_error(self._get(b"http://127.0.0.1:%d/" % self.embargo.port), 403,
                           "destination_ip_prohibited")

    def test_request_to_own_listener_by_name_is_403(self):
        self._assert_error(self._get(b"http://allowed.test:%d/" % self.embargo.port), 403,
                           "destination_ip_prohibited")

    def test_connect_to_own_listener_is_403(self):
        port = free_port()
        e = self.start_embargo(port=port, connect_ports=[443, port])
        for target in (b"127.0.0.1:%d" % port, b"allowed.test:%d" % port):
            with self.subTest(target=target):
                r = http_exchange(e.port, b"CONNECT %s HTTP/1.1\r\nHost: x\r\n\r\n" % target,
                                  "CONNECT")
                self.assertEqual(r.status, 403, r)
                self.assert_proxy_status(r, "destination_ip_prohibited")
        self.assert_healthy(e)

    def test_nxdomain_is_502_dns_error(self):
        r = self._assert_error(self._get(b"http://nx.test/"), 502, "dns_error")
        self.assertIn("nx.test", r.header("Proxy-Status"))
        self.assertIn("nx.test", self.dns.queries(self.dns_mark))

    def test_dns_timeout_is_504(self):
        # dns_timeout: the resolver's own timeout answered, not the client's.
        self._assert_error(self._get(b"http://slow.hole.example/"), 504, "dns_timeout")

    def test_connection_refused_is_502(self):
        closed = free_port()
        self._assert_error(self._get(b"http://allowed.test:%d/" % closed), 502,
                           "connection_refused")

    def test_pipelined_garbage_after_good_request(self):
        raw = (b"GET http://allowed.test:%d/one HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
               b"GARBAGE\x00\x01 nonsense\r\n\r\n" % self.origin.port)
        with RawClient(self.embargo.port) as c:
            c.send(raw)
            r1 = c.read_response()
            r2 = c.read_response()
            self.assertTrue(c.at_eof(5.0))
        self.assertEqual((r1.status, r1.body), (200, b"ok /one\n"))
        self.assertEqual(r2.status, 400, r2)
        self.assert_healthy()

    def test_client_closing_mid_head_does_not_hurt(self):
        for i in range(20):
            with RawClient(self.embargo.port) as c:
                c.send(b"GET http://allowed.test/%d HTTP/1.1\r\nHost: a" % i)
        with RawClient(self.embargo.port) as c:  # reset mid-head
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.send(b"GET http://allowed.test/ HTTP/1.1\r\n")
        self.assert_healthy()


class UpstreamFailureTest(EmbargoTestCase):
    """The destination misbehaves: errors come from the proxy, which stays up."""

    ADMIN_PORT = free_port()
    CONFIG_KW = {"timeouts": {"response": "1s", "idle": "1s"},
                 "limits": {"max_connections": 8},
                 "extra": "admin: {listen: 127.0.0.1:%d}" % ADMIN_PORT}

    def limit_pauses(self):
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        return m['embargo_accept_pauses_total{reason="max_connections"}']

    def test_malformed_response_is_502(self):
        r = self.get(self.url(path="/garbage"))
        self.assertEqual(r.status, 502, r)
        self.assert_proxy_status(r, "http_protocol_error")
        self.embargo.wait_records(lambda x: x.get("event") == "error" and x.get("status") == 502,
                                  since=self.log_mark)
        self.assert_healthy()

    def test_truncated_response_is_cut_short_for_the_client(self):
        with RawClient(self.embargo.port) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                   % self.url(path="/truncate").encode())
            with self.assertRaises(ConnectionError):
                c.read_response()  # the client must see the message end early
        self.assert_healthy()

    def test_silent_destination_is_504(self):
        # The origin answers only once the gate opens, after the 504: the
        # answer came from timeouts.response, never from the origin.
        gate = self.origin.gate("silent")
        self.addCleanup(gate.set)
        r = self.get(self.url(path="/gate/silent"))
        self.assertEqual(r.status, 504, r)
        self.assert_proxy_status(r, "connection_read_timeout")
        self.assertEqual([h["path"] for h in self.origin.heads], ["/gate/silent"])
        self.assertNotIn("/gate/silent", self.origin.done, "the origin answered before the 504")
        gate.set()
        self.assert_healthy()

    def test_idle_keepalive_connection_is_closed_after_idle_timeout(self):
        with RawClient(self.embargo.port) as c:
            for i in range(2):  # usable while not idle for longer than timeouts.idle
                c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                       % self.url(path="/i%d" % i).encode())
                self.assertEqual(c.read_response().status, 200)
                time.sleep(0.3)
            t0 = time.monotonic()
            self.assertTrue(c.at_eof(6.0), "idle connection not closed")
            self.assertGreater(time.monotonic() - t0, 0.3)

    def test_connection_limit_pauses_extra_clients_and_recovers(self):
        held = []
        try:
            for _ in range(8):
                c = RawClient(self.embargo.port)
                c.send(b"GET http://allowed.test/ HTTP/1.1\r\nHo")
                held.append(c)
            harness.wait_until(lambda: sum(harness.listen_backlogs(self.embargo.port)) == 0, 10,
                               what="the proxy to take the first eight")
            pauses = self.limit_pauses()
            extra = RawClient(self.embargo.port)
            held.append(extra)
            extra.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
                       % self.url(path="/waited").encode())
            # Over limits.max_connections: not served (and not closed) until a
            # slot frees, once the proxy has paused on it.
            harness.wait_until(lambda: self.limit_pauses() > pauses, 10,
                               what="the proxy to pause accepting")
            self.assertEqual(select.select([extra.sock], [], [], 0)[0], [],
                             "a connection over limits.max_connections was served or closed")
            self.assertEqual(self.origin.heads, [])
            held[0].close()
            extra.sock.settimeout(harness.IO_TIMEOUT)
            self.assertEqual(extra.read_response().status, 200)
        finally:
            for c in held:
                c.close()
        harness.wait_until(lambda: self._healthy_once(), 10.0, 0.1, "the proxy to serve again")

    def _healthy_once(self):
        try:
            r = harness.http_get(self.embargo.port, self.url(path="/health"))
        except (ConnectionError, OSError):
            return False
        return r.status == 200


def http_exchange(port, raw, method="GET"):
    with RawClient(port) as c:
        c.send(raw)
        return c.read_response(method)


class ClientAclTest(EmbargoTestCase):
    """clients: [10.0.0.0/8] turns loopback clients away with a 403."""

    CONFIG_KW = {"clients": ["10.0.0.0/8"]}

    def test_loopback_client_gets_403(self):
        with RawClient(self.embargo.port) as c:
            c.send(b"GET http://allowed.test:%d/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                   % self.origin.port)
            r = c.read_response()
            self.assertTrue(c.at_eof(5.0), "connection kept open for a refused client")
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        self.assertEqual(self.origin.connections, 0)
        recs = self.embargo.wait_records(lambda x: x.get("event") == "error" and
                                         x.get("status") == 403)
        self.assertTrue(recs[-1]["client"].startswith("127.0.0.1:"))

    def test_curl_is_refused(self):
        p = harness.curl(["-x", self.embargo.proxy_url, "-o", "/dev/null", "-w", "%{http_code}",
                          self.url(path="/")], timeout=20)
        self.assertEqual(p.stdout, b"403", p.stderr)
        self.assertEqual(self.origin.connections, 0)
        self.assertTrue(self.embargo.alive())


if __name__ == "__main__":
    harness.main()
