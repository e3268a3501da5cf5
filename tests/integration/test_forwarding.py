"""HTTP forwarding and CONNECT relaying of allowed traffic: large downloads
byte for byte, keep-alive and upstream reuse, pipelining with a deny in the
middle, request and response body framings, HTTP/1.0 clients and hop-by-hop
field handling."""

import json
import os
import threading

import harness
from harness import EmbargoTestCase, RawClient, curl, file_sha256, pattern_bytes, pattern_sha256

MB = 1 << 20


class DownloadTest(EmbargoTestCase):
    """50 MB through the proxy, plain HTTP and HTTPS over CONNECT."""

    TLS = True

    def _curl_to_file(self, args, name):
        out = os.path.join(self.tmp, name)
        p = curl(args + ["-o", out, "-w", "%{http_code}"], timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"200")
        digest, n = file_sha256(out)
        os.unlink(out)
        return digest, n

    def test_50mb_plain_http_download_is_byte_identical(self):
        size, seed = 50 * MB, 7
        digest, n = self._curl_to_file(
            ["-x", self.embargo.proxy_url, self.url(path="/bytes/%d?seed=%d" % (size, seed))],
            "plain.bin")
        self.assertEqual(n, size)
        self.assertEqual(digest, pattern_sha256(size, seed))
        self.assertEqual(self.origin.connections, 1)
        self.embargo.log_barrier()
        self.assertEqual(self.new_records(), [])

    def test_50mb_https_download_over_connect_is_byte_identical(self):
        size, seed = 50 * MB, 8
        url = "https://allowed.test:%d/bytes/%d?seed=%d" % (self.tls_origin.port, size, seed)
        digest, n = self._curl_to_file(
            ["--proxy", self.embargo.proxy_url, "--cacert", self.cert, url], "tls.bin")
        self.assertEqual(n, size)
        self.assertEqual(digest, pattern_sha256(size, seed))
        self.assertEqual(self.tls_origin.connections, 1)
        self.assertEqual(self.tls_origin.heads[0]["path"], "/bytes/%d?seed=%d" % (size, seed))


class KeepAliveTest(EmbargoTestCase):
    """Keep-alive client connections, upstream reuse and per-request checks."""

    def _req(self, host, path, extra=b""):
        return (b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n" % (
            self.url(host, path).encode(), host.encode(), self.origin.port) + extra + b"\r\n")

    def test_sequential_requests_reuse_one_upstream_connection(self):
        with RawClient(self.embargo.port) as c:
            for i in range(3):
                c.send(self._req("allowed.test", "/seq%d" % i))
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b"ok /seq%d\n" % i)
        self.assertEqual([h["path"] for h in self.origin.heads], ["/seq0", "/seq1", "/seq2"])
        # One upstream connection carried all three (it may be a pooled one
        # from an earlier test, so count client addresses, not accepts).
        self.assertEqual(len({h["client"] for h in self.origin.heads}), 1, self.origin.heads)
        self.assertLessEqual(self.origin.connections, 1)

    def test_client_keeps_its_upstream_while_another_client_uses_the_same_origin(self):
        # Affinity: between its requests a client holds the upstream it used,
        # so a second client interleaving requests to the same origin gets
        # its own, and each client's requests stay on one connection.
        with RawClient(self.embargo.port) as a, RawClient(self.embargo.port) as b:
            for i in range(2):
                for name, c in (("a", a), ("b", b)):
                    c.send(self._req("allowed.test", "/%s%d" % (name, i)))
                    r = c.read_response()
                    self.assertEqual((r.status, r.body), (200, b"ok /%s%d\n" % (name.encode(), i)))
        peer = {h["path"]: h["client"] for h in self.origin.heads}
        self.assertEqual(peer["/a0"], peer["/a1"], self.origin.heads)
        self.assertEqual(peer["/b0"], peer["/b1"], self.origin.heads)
        self.assertNotEqual(peer["/a0"], peer["/b0"], self.origin.heads)

    def test_each_request_on_a_connection_gets_its_own_check(self):
        with RawClient(self.embargo.port) as c:
            c.send(self._req("allowed.test", "/a"))
            r1 = c.read_response()
            c.send(self._req("other.test", "/b"))
            r2 = c.read_response()
            c.send(self._req("s07.upd.kaspersky.com", "/c"))
            r3 = c.read_response()
            c.send(self._req("allowed.test", "/d"))
            r4 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, b"ok /a\n"))
        self.assertEqual((r2.status, r2.body), (200, b"ok /b\n"))
        self.assertEqual(r3.status, 403, r3)
        self.assert_proxy_status(r3, "http_request_denied")
        self.assertEqual((r4.status, r4.body), (200, b"ok /d\n"))
        # other.test got its own upstream; the second allowed.test request
        # reused the first one; the denied host got nothing.
        peers = [h["client"] for h in self.origin.heads]
        self.assertEqual(len(peers), 3)
        self.assertEqual(peers[0], peers[2])
        self.assertNotEqual(peers[0], peers[1])
        self.assertLessEqual(self.origin.connections, 2)
        hosts = [dict((k.lower(), v) for k, v in h["headers"])["host"] for h in self.origin.heads]
        p = self.origin.port
        self.assertEqual(hosts, ["allowed.test:%d" % p, "other.test:%d" % p, "allowed.test:%d" % p])
        self.assertEqual(len(self.embargo.wait_records(
            lambda x: x.get("event") == "deny" and x.get("host") == "s07.upd.kaspersky.com")), 1)

    def test_allowed_request_after_deny_before_cutoff_is_logged_on_same_connection(self):
        e = self.start_embargo(now="2024-09-01T00:00:00Z")
        with RawClient(e.port) as c:
            c.send(self._req("allowed.test", "/a"))
            self.assertEqual(c.read_response().status, 200)
            c.send(self._req("dnl-01.geo.kaspersky.com", "/u"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok /u\n"))
        recs = e.wait_records(lambda x: x.get("event") == "log")
        self.assertEqual([x["host"] for x in recs], ["dnl-01.geo.kaspersky.com"])

    def test_pipelined_allowed_then_denied_answered_in_order(self):
        size, seed = 300000, 11
        reqs = (self._req("allowed.test", "/bytes/%d?seed=%d" % (size, seed)) +
                self._req("s07.upd.kaspersky.com", "/update"))
        with RawClient(self.embargo.port) as c:
            c.send(reqs)
            r1 = c.read_response()
            r2 = c.read_response()
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r1.body, pattern_bytes(size, seed))
        self.assertEqual(r2.status, 403, r2)
        self.assert_proxy_status(r2, "http_request_denied")
        self.assertIn(b"s07.upd.kaspersky.com", r2.body)
        self.assertEqual([h["path"] for h in self.origin.heads], ["/bytes/%d?seed=%d" % (size, seed)])

    def test_pipelined_denied_then_allowed_answered_in_order(self):
        reqs = (self._req("dnl-01.geo.kaspersky.com", "/update") +
                self._req("allowed.test", "/after") + self._req("allowed.test", "/last"))
        with RawClient(self.embargo.port) as c:
            c.send(reqs)
            r1 = c.read_response()
            r2 = c.read_response()
            r3 = c.read_response()
        self.assertEqual(r1.status, 403, r1)
        self.assertEqual((r2.status, r2.body), (200, b"ok /after\n"))
        self.assertEqual((r3.status, r3.body), (200, b"ok /last\n"))
        self.assertEqual([h["path"] for h in self.origin.heads], ["/after", "/last"])


class BodiesTest(EmbargoTestCase):
    """Request and response bodies in every framing."""

    def _upload_file(self, size, seed):
        path = os.path.join(self.tmp, "upload-%d-%d.bin" % (size, seed))
        with open(path, "wb") as f:
            for p in harness.pattern_pieces(size, seed):
                f.write(p)
        self.addCleanup(os.unlink, path)
        return path

    def _assert_upload_result(self, out, size, seed):
        res = json.loads(out)
        self.assertEqual(res, {"sha256": pattern_sha256(size, seed), "length": size})

    def test_5mb_upload_with_content_length_arrives_intact(self):
        size, seed = 5 * MB, 21
        path = self._upload_file(size, seed)
        p = curl(["-x", self.embargo.proxy_url, "--data-binary", "@" + path,
                  "-H", "Content-Type: application/octet-stream", self.url(path="/upload")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self._assert_upload_result(p.stdout, size, seed)
        h = dict((k.lower(), v) for k, v in self.origin.heads[0]["headers"])
        self.assertEqual(h["content-length"], str(size))

    def test_5mb_upload_chunked_arrives_intact(self):
        size, seed = 5 * MB, 22
        path = self._upload_file(size, seed)
        p = curl(["-x", self.embargo.proxy_url, "-T", path, "-H", "Transfer-Encoding: chunked",
                  self.url(path="/upload")])
        self.assertEqual(p.returncode, 0, p.stderr)
        self._assert_upload_result(p.stdout, size, seed)
        h = dict((k.lower(), v) for k, v in self.origin.heads[0]["headers"])
        self.assertIn("chunked", h.get("transfer-encoding", ""))

    def test_raw_chunked_upload_with_odd_chunks_then_keepalive(self):
        size, seed = 200001, 23
        data = pattern_bytes(size, seed)
        sizes = (1, 2, 3, 4093, 65536, 77, 100000)
        body = bytearray()
        pos = i = 0
        while pos < size:
            n = min(sizes[i % len(sizes)], size - pos)
            ext = b";ext=1" if i % 3 == 0 else b""
            body += b"%X%s\r\n" % (n, ext) + data[pos:pos + n] + b"\r\n"
            pos += n
            i += 1
        body += b"0\r\n\r\n"
        head = (b"POST %s HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                % self.url(path="/upload").encode())
        with RawClient(self.embargo.port) as c:
            # Split awkwardly across writes, including inside chunk-size lines.
            blob = head + bytes(body)
            for cut in range(0, len(blob), 70001):
                c.send(blob[cut:cut + 70001])
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self._assert_upload_result(r.body, size, seed)
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url(path="/next").encode())
            r2 = c.read_response()
            self.assertEqual((r2.status, r2.body), (200, b"ok /next\n"))

    def test_chunked_response_arrives_intact(self):
        size, seed = 3 * MB + 5, 24
        p = curl(["-x", self.embargo.proxy_url, self.url(path="/chunked/%d?seed=%d" % (size, seed))])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout), size)
        self.assertEqual(p.stdout, pattern_bytes(size, seed))

    def test_chunked_response_keeps_connection_usable(self):
        size, seed = 500000, 25
        with RawClient(self.embargo.port) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                   % self.url(path="/chunked/%d?seed=%d" % (size, seed)).encode())
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, pattern_bytes(size, seed))
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url(path="/again").encode())
            r2 = c.read_response()
            self.assertEqual((r2.status, r2.body), (200, b"ok /again\n"))

    def test_read_until_close_response_arrives_intact(self):
        size, seed = 4 * MB + 1, 26
        p = curl(["-x", self.embargo.proxy_url, self.url(path="/close/%d?seed=%d" % (size, seed))])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout), size)
        self.assertEqual(p.stdout, pattern_bytes(size, seed))

    def test_http10_client_gets_a_correct_response(self):
        size, seed = 100000, 27
        with RawClient(self.embargo.port) as c:
            c.send(b"GET %s HTTP/1.0\r\n\r\n" % self.url(path="/bytes/%d?seed=%d" % (size, seed)).encode())
            r = c.read_response()
            self.assertTrue(c.at_eof(), "connection left open after an HTTP/1.0 exchange")
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.version, ("HTTP/1.0", "HTTP/1.1"))
        self.assertEqual(r.body, pattern_bytes(size, seed))

    def test_http10_client_gets_chunked_response_unchunked(self):
        size, seed = 200000, 28
        with RawClient(self.embargo.port) as c:
            c.send(b"GET %s HTTP/1.0\r\n\r\n" % self.url(path="/chunked/%d?seed=%d" % (size, seed)).encode())
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        self.assertEqual(r.body, pattern_bytes(size, seed))

    def test_head_request_gets_no_body(self):
        with RawClient(self.embargo.port) as c:
            c.send(b"HEAD %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url(path="/bytes/1000").encode())
            r = c.read_response("HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "1000")
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url(path="/x").encode())
            r2 = c.read_response()
            self.assertEqual((r2.status, r2.body), (200, b"ok /x\n"))


class HopByHopTest(EmbargoTestCase):
    """Hop-by-hop fields stay on their hop; Via and Host are set."""

    def test_request_hop_by_hop_fields_removed_and_via_added(self):
        req = (b"GET %s HTTP/1.1\r\n"
               b"Host: wrong.example\r\n"
               b"Connection: keep-alive, X-Hop-One\r\n"
               b"X-Hop-One: secret\r\n"
               b"Proxy-Connection: keep-alive\r\n"
               b"Keep-Alive: timeout=5\r\n"
               b"TE: trailers\r\n"
               b"Trailer: X-T\r\n"
               b"Upgrade: websocket\r\n"
               b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
               b"Via: 1.1 upstream-cache\r\n"
               b"X-End-To-End: kept\r\n"
               b"\r\n") % self.url(path="/headers").encode()
        with RawClient(self.embargo.port) as c:
            c.send(req)
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.origin.heads), 1)
        head = self.origin.heads[0]
        names = [k.lower() for k, _ in head["headers"]]
        for gone in ("x-hop-one", "proxy-connection", "keep-alive", "te", "trailer", "upgrade",
                     "proxy-authorization"):
            self.assertNotIn(gone, names, head["headers"])
        fields = dict((k.lower(), v) for k, v in head["headers"])
        self.assertNotIn("x-hop-one", fields.get("connection", "").lower())
        self.assertEqual(names.count("host"), 1)
        self.assertEqual(fields["host"], "allowed.test:%d" % self.origin.port)
        self.assertEqual(fields["x-end-to-end"], "kept")
        via = ", ".join(v for k, v in head["headers"] if k.lower() == "via")
        self.assertIn("embargo", via)
        self.assertIn("upstream-cache", via)
        self.assertEqual(head["path"], "/headers")

    def test_host_is_the_normalised_url_authority(self):
        r = self.get(self.url("ALLOWED.test", "/headers"), headers=[("X-Probe", "1")])
        self.assertEqual(r.status, 200, r)
        fields = dict((k.lower(), v) for k, v in self.origin.heads[0]["headers"])
        self.assertEqual(fields["host"], "allowed.test:%d" % self.origin.port)

    def test_response_hop_by_hop_fields_removed_and_via_added(self):
        with RawClient(self.embargo.port) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url(path="/hop").encode())
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"hop\n"))
        names = [k.lower() for k, _ in r.headers]
        self.assertNotIn("x-resp-hop", names, r.headers)
        self.assertNotIn("keep-alive", names, r.headers)
        self.assertEqual(r.header("X-End-To-End"), "kept")
        self.assertIn("embargo", r.header("Via", ""))

    def test_request_already_through_this_embargo_is_refused_as_loop(self):
        # Learn the Via element this instance adds, then send it back.
        r = self.get(self.url(path="/headers"))
        self.assertEqual(r.status, 200, r)
        via = [v for k, v in self.origin.heads[0]["headers"] if k.lower() == "via"][-1]
        own = via.split(",")[-1].strip()
        self.assertIn("embargo", own)
        self.origin.reset_counters()
        r = self.get(self.url(path="/loop"), headers=[("Via", "1.0 somewhere, " + own)])
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        self.assertEqual(self.origin.connections, 0)



class ConcurrencyTest(EmbargoTestCase):
    """Many clients at once, allowed and denied mixed: every answer right."""

    def test_parallel_mixed_clients(self):
        errors = []
        results = []
        lock = threading.Lock()

        def worker(n):
            try:
                for i in range(6):
                    host = ("allowed.test", "s07.upd.kaspersky.com", "other.test")[(n + i) % 3]
                    size = 1000 + 997 * n + i
                    r = self.get(self.url(host, "/bytes/%d?seed=%d" % (size, n)))
                    ok = (r.status == 403) if "kaspersky" in host else (
                        r.status == 200 and r.body == pattern_bytes(size, n))
                    with lock:
                        results.append(ok)
                        if not ok:
                            errors.append((host, size, r))
            except Exception as e:  # reported below
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads), "workers did not finish")
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 24 * 6)
        self.embargo.wait_records(lambda x: x.get("event") == "deny", count=48, since=self.log_mark)
        self.embargo.log_barrier()
        self.assertEqual(len([x for x in self.new_records() if x.get("event") == "deny"]), 48)
        self.assert_healthy()


if __name__ == "__main__":
    harness.main()
