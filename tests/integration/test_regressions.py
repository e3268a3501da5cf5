"""Regression tests for defects found in review, one test (or a few) per
defect, each named after what went wrong:

- a Connection header naming Content-Length or Transfer-Encoding made the
  proxy drop the framing field, so a request body reached the origin as a
  second, unchecked request (and a response lost its length);
- a request with Upgrade was sent to the origin, and answered, twice;
- a v4-mapped AAAA answer (::ffff:a.b.c.d) escaped the comparisons with
  this host's own addresses (so a name could point back at the proxy's
  own listener);
- a POST was sent again after a pooled connection closed under it;
- a slow but progressing upload was cut by the response timeout;
- an error page was written into a response body already streaming;
- a request head with a Transfer-Encoding not ending in chunked reached the
  origin before the 400;
- a keep-alive connection still delivering its last response to a slow
  reader was closed by the idle timeout;
- the log line of a request retried on a fresh connection, after its pooled
  one closed, read the CNAME it had matched from a freed DNS answer
  (heap use-after-free, seen under AddressSanitizer);
- a 101 from an origin (to a request whose Upgrade Embargo had stripped) was
  not refused: the parser went on as if the response head had been passed
  on, the client got no status line, and a kept-alive client's next
  response answered the wrong request;
- a close-delimited response with a Transfer-Encoding other than chunked
  (gzip) lost its Transfer-Encoding while the still-encoded body was passed
  on.

Most tests talk to a scripted origin that parses requests itself, so they
see exactly the bytes the proxy forwarded.
"""

import select
import socket
import threading
import time

import harness
from harness import IO_TIMEOUT, LOOPBACK, EmbargoTestCase, RawClient, wait_until

# ---- a scripted origin ------------------------------------------------------------


class Drop:
    """Script result: read the request, then close without answering."""


class Early:
    """Script result: send DATA as soon as the head has arrived (before the
    body), then read whatever else comes until the proxy closes (or, with
    CLOSE, close at once: a response delimited by the end of the
    connection)."""

    def __init__(self, data, close=False):
        self.data = data
        self.close = close


DROP = Drop()


def ok(body, extra=b""):
    if isinstance(body, str):
        body = body.encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
            % (len(body), extra)) + body


class ScriptedOrigin:
    """A raw HTTP/1.1 origin on 127.0.0.1 driven by SCRIPT(request).

    It parses each request the way an origin would (the head, then a body
    framed by Content-Length or chunked, none otherwise) and records it in
    `requests` as a dict: conn (1-based connection number), n (1-based
    request number on that connection), line, method, path, headers (list of
    (name, value)), body. SCRIPT gets the request as soon as its head has
    arrived and returns bytes to send once the body is read, a function of
    the request (body read) returning them, DROP, or Early.
    Unparseable input is recorded as a request with method None and ends the
    connection.
    """

    MAX_REQUESTS_PER_CONN = 100

    def __init__(self, script):
        self.script = script
        self.sock = harness.loopback_listener(16, 0.1)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []
        self.closed = []  # connection numbers whose handler has finished
        self.waiting = {}  # connection number: its reader, while waiting for a head
        self._stop = threading.Event()
        self._threads = []
        self._conns = []

    def start(self):
        t = threading.Thread(target=self._serve, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        self.sock.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked in recv
            except OSError:
                pass
        for t in list(self._threads):
            t.join(timeout=5)

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def snapshot(self):
        with self.lock:
            return [dict(r) for r in self.requests]

    def _drained(self):
        with self.lock:
            conns = list(self._conns)
            done = set(self.closed)
            waiting = dict(self.waiting)
        for n, conn in enumerate(conns, 1):
            if n in done:
                continue
            reader = waiting.get(n)
            if reader is None or reader.buf:
                return False  # parsing, answering, or holding part of a head
            try:
                if select.select([conn], [], [], 0)[0]:
                    return False  # bytes (or the end) not read yet
            except (OSError, ValueError):
                pass  # closed under us: nothing more to read
        return True

    def wait_drained(self):
        """A positive barrier for "nothing else reached this origin": waits
        until every connection's handler has ended, or waits for the next
        head with nothing buffered and nothing unread on its socket. Bytes
        the proxy wrote before this call (on loopback, a write lands in the
        receiving socket at once) have then all been parsed, and any request
        among them recorded."""
        wait_until(self._drained, 10.0, 0.01, "the scripted origin to parse what it was sent")

    def _serve(self):
        harness.serve_until_stopped(self._stop, self.sock.accept, self._accepted, seconds=600)

    def _accepted(self, pair):
        conn = pair[0]
        with self.lock:
            self.connections += 1
            n = self.connections
            self._conns.append(conn)
        t = threading.Thread(target=self._handle, args=(conn, n), daemon=True)
        t.start()
        self._threads.append(t)

    def _handle(self, conn, conn_no):
        conn.settimeout(IO_TIMEOUT)
        reader = _SockReader(conn)
        try:
            for n in range(1, self.MAX_REQUESTS_PER_CONN + 1):
                if not self._one(conn, reader, conn_no, n):
                    break
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.lock:
                self.closed.append(conn_no)

    def _one(self, conn, reader, conn_no, n):
        with self.lock:
            self.waiting[conn_no] = reader
        try:
            head = reader.read_head()
        finally:
            with self.lock:
                self.waiting.pop(conn_no, None)
        if head is None:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip(), v.strip()))
        req = {"conn": conn_no, "n": n, "line": lines[0], "headers": headers, "body": b"",
               "method": parts[0] if len(parts) == 3 else None,
               "path": parts[1] if len(parts) == 3 else None}

        def field(name):
            return ", ".join(v for k, v in headers if k.lower() == name)

        with self.lock:
            self.requests.append(req)
        if req["method"] is None:
            return False
        action = self.script(req)
        if isinstance(action, Early):
            conn.sendall(action.data)
            if not action.close:
                reader.drain()
            return False
        if "chunked" in field("transfer-encoding").lower():
            body = reader.read_chunked()
        else:
            body = reader.read_exact(int(field("content-length") or "0"))
        with self.lock:
            req["body"] = body
        if isinstance(action, Drop):
            return False
        if callable(action):
            action = action(req)
        conn.sendall(action)
        return True


class _SockReader:
    """Buffered, bounded reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            return False
        self.buf += b
        return True

    def _take(self, delim):
        """The buffered bytes before DELIM, taken with DELIM from the buffer;
        None if DELIM is not buffered yet."""
        i = self.buf.find(delim)
        if i < 0:
            return None
        out = bytes(self.buf[:i])
        del self.buf[:i + len(delim)]
        return out

    def read_head(self):
        """The next head (up to the blank line), or None at a clean EOF."""
        for _ in range(10000):
            head = self._take(b"\r\n\r\n")
            if head is not None:
                return head
            if len(self.buf) > 65536:
                raise ValueError("head too long")
            if not self._fill():
                if self.buf:
                    raise ConnectionError("EOF inside a head")
                return None
        raise ValueError("no head")

    def read_line(self):
        for _ in range(10000):
            line = self._take(b"\r\n")
            if line is not None:
                return line
            if len(self.buf) > 8192 or not self._fill():
                raise ConnectionError("no line")
        raise ValueError("no line")

    def read_exact(self, n):
        for _ in range(100000):
            if len(self.buf) >= n:
                break
            if not self._fill():
                raise ConnectionError("EOF in body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_chunked(self):
        body = bytearray()
        for _ in range(100000):
            size = int(self.read_line().split(b";")[0].strip(), 16)
            if size == 0:
                for _ in range(100):
                    if self.read_line() == b"":
                        return bytes(body)
                raise ValueError("too many trailer lines")
            body += self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise ValueError("bad chunk end")
        raise ValueError("too many chunks")

    def drain(self):
        for _ in range(100000):
            if not self._fill():
                return
            self.buf.clear()


class SmallWindowClient(RawClient):
    """A RawClient whose socket has a small receive buffer (set before
    connecting, so the TCP window stays small)."""

    def __init__(self, port, rcvbuf=64 * 1024, timeout=IO_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.buf = bytearray()
        self.eof = False
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((LOOPBACK, port))
        except OSError:
            self.sock.close()
            raise


def field(headers, name):
    """All values of NAME in a list of (name, value), comma-joined; None if absent."""
    vals = [v for k, v in headers if k.lower() == name.lower()]
    return ", ".join(vals) if vals else None


# ---- the tests ------------------------------------------------------------------------


class RegressionTest(EmbargoTestCase):
    """One embargo with loopback destinations allowed; a fresh scripted
    origin per test (so no pooled connection crosses tests)."""

    DNS_RECORDS = (("mapped.test", "::ffff:127.0.0.1"),)
    # Judged on its CNAME: an update server, logged (not denied) before the
    # updates cutoff.
    DNS_CNAMES = (("via-cname.test", "dnl-01.geo.kaspersky.com"),)

    def scripted(self, script):
        o = ScriptedOrigin(script).start()
        self.addCleanup(o.stop)
        return o

    def target(self, origin, path, host="allowed.test"):
        return "http://%s:%d%s" % (host, origin.port, path)

    def request(self, origin, path, method="GET", extra=b"", body=b"", host="allowed.test",
                version=b"HTTP/1.1"):
        return (b"%s %s %s\r\nHost: %s:%d\r\n" % (
            method.encode(), self.target(origin, path, host).encode(), version, host.encode(),
            origin.port) + extra + b"\r\n" + body)

    @staticmethod
    def smuggled(origin):
        """A request in origin form, as it would be hidden in a body."""
        return b"GET /smuggled HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % origin.port

    def upload_then_after(self, o, body, extra):
        """On one connection, POST /upload with BODY and the header lines
        EXTRA, then GET /after; both must be answered 200 by origin O. The
        requests O saw, once /after has arrived and O has parsed everything
        it was sent (wait_drained)."""
        with RawClient(self.embargo.port) as c:
            c.send(self.request(o, "/upload", "POST", body=body, extra=extra))
            r1 = c.read_response()
            c.send(self.request(o, "/after"))
            r2 = c.read_response()
        self.assertEqual((r1.status, r1.body), (200, b"ok /upload\n"), r1)
        self.assertEqual((r2.status, r2.body), (200, b"ok /after\n"), r2)
        wait_until(lambda: "/after" in o.paths(), 5.0, what="the origin to see /after")
        o.wait_drained()
        return o.snapshot()

    # -- 1. Connection naming framing fields

    def test_connection_content_length_does_not_smuggle_body_as_request(self):
        o = self.scripted(lambda req: ok("ok %s\n" % req["path"]))
        body = self.smuggled(o)
        reqs = self.upload_then_after(o, body, (
            b"Connection: content-length\r\nContent-Length: %d\r\n" % len(body)))
        self.assertNotIn("/smuggled", [r["path"] for r in reqs],
                         "the request body reached the origin as a request")
        self.assertEqual([(r["method"], r["path"]) for r in reqs],
                         [("POST", "/upload"), ("GET", "/after")])
        self.assertEqual(field(reqs[0]["headers"], "Content-Length"), str(len(body)))
        self.assertEqual(reqs[0]["body"], body)

    def test_connection_transfer_encoding_does_not_strip_chunked_framing(self):
        o = self.scripted(lambda req: ok("ok %s\n" % req["path"]))
        inner = self.smuggled(o)
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
        reqs = self.upload_then_after(o, chunked, (
            b"Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n"))
        self.assertEqual([(r["method"], r["path"]) for r in reqs],
                         [("POST", "/upload"), ("GET", "/after")],
                         "the origin saw other requests: %r" % [r["line"] for r in reqs])
        self.assertIn("chunked", (field(reqs[0]["headers"], "Transfer-Encoding") or "").lower())
        self.assertEqual(reqs[0]["body"], inner)

    def test_response_connection_content_length_keeps_response_length(self):
        o = self.scripted(lambda req: ok("hello", b"Connection: content-length\r\n"))
        with RawClient(self.embargo.port, timeout=10) as c:
            for i in range(2):
                c.send(self.request(o, "/r%d" % i))
                _, status, _, headers, raw = c.read_head()
                self.assertEqual(status, 200, raw)
                self.assertEqual(field(headers, "Content-Length"), "5",
                                 "response %d lost its Content-Length: %r" % (i, raw))
                self.assertEqual(c._readn(5), b"hello")
        self.assertEqual(o.paths(), ["/r0", "/r1"])

    # -- 3. Upgrade

    def test_upgrade_request_is_sent_and_answered_once(self):
        o = self.scripted(lambda req: ok("ok %s\n" % req["path"]))
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/ws", extra=(
                b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")) +
                self.request(o, "/after", extra=b"Connection: close\r\n"))
            r1 = c.read_response()
            r2 = c.read_response()
            rest = c.read_to_eof()
        self.assertEqual((r1.status, r1.body), (200, b"ok /ws\n"), r1)
        self.assertEqual((r2.status, r2.body), (200, b"ok /after\n"), r2)
        self.assertEqual(rest, b"", "more than one response per request")
        o.wait_drained()
        reqs = o.snapshot()
        self.assertEqual([r["path"] for r in reqs], ["/ws", "/after"])
        self.assertIsNone(field(reqs[0]["headers"], "Upgrade"), reqs[0])
        self.assertNotIn("upgrade", (field(reqs[0]["headers"], "Connection") or "").lower())

    # -- 5. retries on a pooled connection closed under the request

    def _warm_then(self, method, path):
        """Warms a pooled connection to a fresh origin that closes it,
        unanswered, on its second request; then sends METHOD PATH (empty
        body) on a keep-alive client connection. Returns (origin, response)."""
        def script(req):
            if req["conn"] == 1 and req["n"] == 2:
                return DROP
            return ok("ok %s %s\n" % (req["method"], req["path"]))
        o = self.scripted(script)
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/warm"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok GET /warm\n"), r)
            c.send(self.request(o, path, method, extra=b"Content-Length: 0\r\n"))
            r = c.read_response()
        o.wait_drained()
        return o, r

    def test_post_after_origin_closed_the_kept_upstream_goes_on_a_new_connection(self):
        # The client's previous upstream is kept for its next request; the
        # origin closing it meanwhile must retire it, so a POST (which is
        # never retried) is not sent on a dead connection.
        o = self.scripted(lambda req: Early(ok("ok %s %s\n" % (req["method"], req["path"])),
                                            close=True))
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/first"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok GET /first\n"), r)
            deadline = time.monotonic() + 5
            while 1 not in o.closed and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # the origin's FIN reaches the proxy
            c.send(self.request(o, "/order", "POST", extra=b"Content-Length: 2\r\n", body=b"hi"))
            r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"ok POST /order\n"), r)
        self.assertEqual([(x["conn"], x["path"]) for x in o.snapshot()], [(1, "/first"), (2, "/order")])

    def test_requests_sent_while_a_response_is_awaited_are_answered_in_order(self):
        # The client connection is still read while the origin is slow to
        # answer; what arrives meanwhile, in pieces, waits for its turn.
        def slow(req):
            time.sleep(0.3 if req["path"] == "/slow" else 0)
            return ok("ok %s\n" % req["path"])
        o = self.scripted(lambda req: slow)
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/slow"))
            time.sleep(0.1)
            second = self.request(o, "/second") + self.request(o, "/third")
            c.send(second[:10])
            time.sleep(0.05)
            c.send(second[10:])
            bodies = [c.read_response().body for _ in range(3)]
        self.assertEqual(bodies, [b"ok /slow\n", b"ok /second\n", b"ok /third\n"])
        self.assertEqual(o.paths(), ["/slow", "/second", "/third"])

    def test_post_not_retried_after_pooled_connection_closes(self):
        o, r = self._warm_then("POST", "/order")
        posts = [(x["conn"], x["n"]) for x in o.snapshot() if x["method"] == "POST"]
        self.assertEqual(posts, [(1, 2)], "the POST reached the origin %d times" % len(posts))
        self.assertEqual(r.status, 502, r)
        self.assert_proxy_status(r, "http_protocol_error")
        self.assertEqual(o.connections, 1)

    def test_get_retried_once_after_pooled_connection_closes(self):
        # (the retry itself is older than the fix; it must survive it)
        o, r = self._warm_then("GET", "/again")
        self.assertEqual((r.status, r.body), (200, b"ok GET /again\n"), r)
        gets = [(x["conn"], x["n"]) for x in o.snapshot() if x["path"] == "/again"]
        self.assertEqual(gets, [(1, 2), (2, 1)])

    def test_retry_after_pooled_close_logs_cname_it_matched_without_reading_freed_answer(self):
        # The verdict matched on the CNAME but did not deny (before the
        # cutoff). The pooled connection is dropped under the second request;
        # the retry finds the origin gone, and the 502's log line names the
        # CNAME that matched. It used to point into the DNS answer the retry
        # had freed.
        e = self.start_embargo(now="2024-08-01T00:00:00Z")
        holder = {}

        def script(req):
            if req["conn"] == 1 and req["n"] == 2:
                # Stop listening at once (shutdown wakes the accept in
                # progress), so the retry's connect is refused.
                holder["o"].sock.shutdown(socket.SHUT_RDWR)
                return DROP
            return ok("ok %s\n" % req["path"])
        o = holder["o"] = self.scripted(script)
        with RawClient(e.port, timeout=10) as c:
            c.send(self.request(o, "/warm", host="via-cname.test"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok /warm\n"), r)
            c.send(self.request(o, "/again", host="via-cname.test"))
            r = c.read_response()
        self.assertEqual(r.status, 502, r)
        self.assert_proxy_status(r, "connection_refused")
        recs = e.wait_records(lambda d: d.get("status") == 502)
        d = recs[-1]
        self.assertEqual((d["matched_on"], d["matched"]), ("cname", "dnl-01.geo.kaspersky.com"), d)
        self.assertEqual((d["action"], d["vendor"], d["category"]), ("log", "kaspersky", "updates"), d)
        self.assertTrue(e.alive(), "embargo died:\n" + e.stderr_text()[-3000:])

    # -- 6. slow uploads and the response timeout

    def test_slow_progressing_upload_not_cut_by_response_timeout(self):
        e = self.start_embargo(timeouts={"response": "2s"})
        o = self.scripted(lambda req: lambda full: ok("got %d\n" % len(full["body"])))
        pieces = [b"piece-%d;" % i for i in range(6)]
        body = b"".join(pieces)
        t0 = time.monotonic()
        with RawClient(e.port, timeout=15) as c:
            c.send(self.request(o, "/upload", "POST",
                                extra=b"Content-Length: %d\r\n" % len(body)))
            try:
                for i, p in enumerate(pieces):
                    if i:
                        time.sleep(1.0)
                    c.send(p)
            except (BrokenPipeError, ConnectionResetError):
                self.fail("the proxy closed the connection %.1fs into a progressing upload"
                          % (time.monotonic() - t0))
            r = c.read_response()
        self.assertGreater(time.monotonic() - t0, 4.5)
        self.assertEqual((r.status, r.body), (200, b"got %d\n" % len(body)), r)
        self.assertEqual([x["body"] for x in o.snapshot()], [body])

    # -- 7. no error page inside a streaming response

    def test_bad_chunk_after_response_started_closes_instead_of_400(self):
        total = 100000
        o = self.scripted(lambda req: Early(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total + b"A" * 1000))
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/stream", "POST", body=b"5\r\nhello\r\n",
                                extra=b"Transfer-Encoding: chunked\r\n"))
            _, status, _, _, _ = c.read_head()
            self.assertEqual(status, 200)
            self.assertEqual(c._readn(1000), b"A" * 1000)
            c.send(b"zz-not-a-chunk-size\r\n\r\n")
            rest = c.read_to_eof()  # the proxy must close: socket timeout otherwise
        self.assertNotIn(b"HTTP/1.1 400", rest, "an error page was written into the body")
        self.assertNotIn(b"HTTP/1.", rest)
        self.assertLess(1000 + len(rest), total, "the body was not cut short")
        self.assertEqual(o.paths(), ["/stream"])
        self.assert_healthy()

    # -- 8. request framing refused before anything is forwarded

    def test_transfer_encoding_without_chunked_never_reaches_origin(self):
        o = self.scripted(lambda req: ok("ok %s\n" % req["path"]))
        with RawClient(self.embargo.port, timeout=10) as c:
            # A pooled connection is ready, so nothing waits on DNS or dialling.
            c.send(self.request(o, "/warm"))
            self.assertEqual(c.read_response().status, 200)
            c.send(self.request(o, "/te", "POST", body=b"abcdef",
                                extra=b"Transfer-Encoding: gzip\r\n"))
            r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.assert_proxy_status(r, "http_request_error")
        o.wait_drained()
        self.assertEqual(o.paths(), ["/warm"], "the refused request reached the origin")


    # -- 4. v4-mapped answers are judged as the IPv4 address they are

    def test_v4_mapped_answer_for_own_listener_is_refused_as_self(self):
        # Loopback is allowed here, so only the "is this the proxy itself"
        # check stands between the request and a loop through the listener.
        r = self.get("http://mapped.test:%d/loop" % self.embargo.port)
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        self.assertIn(b"the destination is this proxy", r.body)
        self.embargo.wait_records(lambda x: x.get("host") == "mapped.test", since=self.log_mark)
        self.embargo.log_barrier()
        recs = [x for x in self.new_records() if x.get("host") == "mapped.test"]
        self.assertEqual([(x["event"], x.get("error")) for x in recs],
                         [("error", "destination_ip_prohibited")],
                         "the request looped through the proxy: %r" % recs)

    # -- an idle keep-alive connection still delivering its last response

    def test_idle_timeout_does_not_cut_response_still_being_delivered(self):
        # The whole response fits in the proxy's buffer, so the exchange
        # ends upstream at once and the connection turns idle while most of
        # the body (far more than socket buffers hold) still waits for a
        # client that reads nothing for well over timeouts.idle.
        size, seed = 24 << 20, 31
        e = self.start_embargo(timeouts={"idle": "1s"}, limits={"buffer": 64 << 20})
        with SmallWindowClient(e.port, timeout=15) as c:
            c.send(b"GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n" % (
                self.url(path="/bytes/%d?seed=%d" % (size, seed)).encode(), self.origin.port))
            wait_until(lambda: self.origin.bytes_sent >= size, 10.0,
                       what="the origin to send the whole response")
            time.sleep(2.5)
            try:
                r = c.read_response()
            except ConnectionError as ex:
                self.fail("the response was cut while the client was still reading it: %s" % ex)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.body), size)
            self.assertEqual(r.body, harness.pattern_bytes(size, seed))


class ResponseContractTest(EmbargoTestCase):
    """Responses Embargo must refuse or pass on whole, from a scripted origin."""

    def scripted(self, script):
        o = ScriptedOrigin(script).start()
        self.addCleanup(o.stop)
        return o

    def request(self, origin, path, extra=b""):
        return (b"GET http://allowed.test:%d%s HTTP/1.1\r\nHost: allowed.test:%d\r\n%s\r\n"
                % (origin.port, path.encode(), origin.port, extra))

    def test_origin_101_is_a_502_and_the_next_response_answers_the_next_request(self):
        def script(req):
            if req["path"] == "/switch":
                return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\nraw-websocket-bytes")
            return ok("ok %s\n" % req["path"])
        o = self.scripted(script)
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/switch", b"Connection: Upgrade\r\nUpgrade: websocket\r\n"))
            r = c.read_response()
            self.assertEqual(r.status, 502, r)
            self.assert_proxy_status(r, "http_protocol_error")
            self.assertNotIn(b"raw-websocket-bytes", r.body)
            rest = c.read_to_eof()
        self.assertNotIn(b"HTTP/1.1 101", rest)
        self.assertNotIn(b"raw-websocket-bytes", rest)
        # A new connection is served normally, and in order.
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/a") + self.request(o, "/b"))
            r1, r2 = c.read_response(), c.read_response()
        self.assertEqual((r1.status, r1.body, r2.status, r2.body),
                         (200, b"ok /a\n", 200, b"ok /b\n"))

    def test_close_delimited_gzip_response_keeps_its_transfer_encoding(self):
        import gzip
        payload = gzip.compress(b"compressed body " * 200)
        o = self.scripted(lambda req: Early(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n"
            b"Connection: close\r\n\r\n" + payload, close=True))
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(self.request(o, "/gz"))
            _, status, _, headers, raw = c.read_head()
            body = c.read_to_eof()
        self.assertEqual(status, 200, raw)
        self.assertEqual((field(headers, "Transfer-Encoding") or "").lower(), "gzip", raw)
        self.assertIsNone(field(headers, "Content-Length"), raw)
        self.assertEqual(body, payload)
        self.assertEqual(gzip.decompress(body), b"compressed body " * 200)


class V4MappedTest(EmbargoTestCase):
    """Default internal-destination policy (loopback not allowed): a name
    whose only record is AAAA ::ffff:127.0.0.1 is refused like 127.0.0.1.
    (The address ranges were always matched on the unmapped address; what
    the mapping let through were the comparisons with this host's own
    addresses, pinned by the listener test above.)"""

    DNS_RECORDS = (("mapped.test", "::ffff:127.0.0.1"),)
    CONFIG_KW = {"allow_loopback": False}

    def test_v4_mapped_loopback_answer_is_internal(self):
        self.assertNotIn("internal:", self.embargo.config_text)
        r = self.get(self.url("mapped.test", "/mapped"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        d = self.embargo.wait_records(lambda x: x.get("host") == "mapped.test")[-1]
        self.assertEqual((d["event"], d["error"], d["status"]),
                         ("error", "destination_ip_prohibited", 403), d)
        self.origin.barrier()
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection")
        self.assertEqual(self.origin.heads, [])


if __name__ == "__main__":
    harness.main()
