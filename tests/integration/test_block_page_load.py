"""The block page under load: the minted-leaf cache stays within
certs.cache_entries under 10,000 distinct denied names (RSS printed, the
cache's own counters checked, eviction seen from outside as a new leaf for
an evicted name), and allowed requests keep flowing during a burst of 1,000
distinct denied names (p50/p99 latency printed before and during the burst;
no timing is asserted)."""

import multiprocessing
import re
import socket
import ssl
import threading
import time

import unittest

import harness
from harness import RawClient
from test_block_page import BlockPageCase

CACHE_BOUND = 500
NAMES = 10_000
BURST = 1_000
WORKERS = 4

_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_ctx.check_hostname = False
_ctx.verify_mode = ssl.CERT_NONE


def client_hello(name):
    """A real ClientHello (Python's ssl) naming NAME."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _ctx.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def denied_hello(port, name):
    """CONNECT NAME:443 and its ClientHello in one write; waits for the 200
    and the first TLS bytes of Embargo's answer (minting happened), then
    closes. Returns True if they came."""
    with socket.create_connection((harness.LOOPBACK, port), timeout=30) as s:
        s.sendall(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n%s"
                  % (name.encode(), name.encode(), client_hello(name)))
        buf = b""
        for _ in range(1000):
            b = s.recv(65536)
            if not b:
                break
            buf += b
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep and len(rest) >= 5:
                return head.startswith(b"HTTP/1.1 200") and rest[0] == 0x16
    return False


def leaf_der(port, name):
    """The certificate Embargo presents for NAME (full handshake, no verification)."""
    c = RawClient(port)
    try:
        c.send(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (name.encode(), name.encode()))
        r = c.read_response("CONNECT")
        assert r.status == 200, r
        with _ctx.wrap_socket(c.sock, server_hostname=name) as t:
            return t.getpeercert(binary_form=True)
    finally:
        c.close()


def _denied_name(arg):
    port, name = arg
    try:
        return name if not denied_hello(port, name) else None
    except OSError as e:
        return "%s: %r" % (name, e)


def denied_burst(port, names, workers=WORKERS):
    """Sends the CONNECT and ClientHello of every name in NAMES from WORKERS
    processes (the measuring thread of this process keeps its interpreter to
    itself); returns the names that got no TLS answer."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        out = pool.map(_denied_name, [(port, n) for n in names], chunksize=16)
    return [x for x in out if x is not None]


def sanitized_binary():
    """Whether the binary under test is an ASan build (it carries the runtime)."""
    with open(harness.BINARY, "rb") as f:
        return b"__asan_init" in f.read()


def connect_ms(port, target):
    """Milliseconds from sending CONNECT TARGET to reading its response; and the status."""
    t0 = time.monotonic()
    with RawClient(port) as c:
        c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
        r = c.read_response("CONNECT")
    return (time.monotonic() - t0) * 1000, r.status


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


class Sink(harness.LoopbackTCPServer):
    """Accepts (with a deep backlog) and closes at once: a destination whose
    own speed never shows in the proxy's latency."""

    def __init__(self):
        super().__init__(backlog=1024, timeout=0.2)

    def _accepted(self, pair):
        pair[0].close()


class BlockPageLoadTest(BlockPageCase):

    @classmethod
    def setUpClass(cls):
        if harness.BINARY and sanitized_binary():
            # The same code paths run under ASan in test_block_page; the
            # load figures mean something on the release build only.
            raise unittest.SkipTest("load test runs on the release build only")
        cls.sink = Sink().start()
        try:
            super().setUpClass()
        except BaseException:
            cls.sink.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sink.stop()

    @classmethod
    def connect_ports(cls):
        return super().connect_ports() + [cls.sink.port]

    @classmethod
    def new_embargo(cls, **kw):
        kw.setdefault("cache_entries", CACHE_BOUND)
        return super().new_embargo(**kw)

    def test_cache_stays_within_its_bound_under_10000_names(self):
        e = self.start_embargo()
        first = leaf_der(e.port, "first.bump.test")
        self.assertEqual(first, leaf_der(e.port, "first.bump.test"), "not served from the cache")
        rss0 = e.rss_kb()
        start = time.monotonic()
        failures = denied_burst(e.port, ["n%d.bump.test" % i for i in range(NAMES)])
        took = time.monotonic() - start
        self.assertEqual(failures[:10], [])
        rss1 = e.rss_kb()
        last = "n%d.bump.test" % (NAMES - 1)
        self.assertEqual(leaf_der(e.port, last), leaf_der(e.port, last), "recent name not cached")
        self.assertNotEqual(leaf_der(e.port, "first.bump.test"), first, "evicted name still cached")
        rss2 = e.rss_kb()
        print("\n%d distinct denied names in %.1fs (%.0f/s); RSS %d kB before, %d kB after, "
              "%d kB at the end (cache bound %d)" % (NAMES, took, NAMES / took, rss0, rss1, rss2,
                                                     CACHE_BOUND))
        self.assertTrue(e.alive())
        e.check_clean_exit()
        m = re.search(r"block-page certificates: (\d+) minted, (\d+) from the cache, (\d+) evicted, "
                      r"(\d+) cached \(bound (\d+)\)", e.stderr_text())
        self.assertIsNotNone(m, e.stderr_text()[-2000:])
        minted, hits, evicted, cached, bound = map(int, m.groups())
        print("cache counters: %d minted, %d hits, %d evicted, %d cached (bound %d)"
              % (minted, hits, evicted, cached, bound))
        self.assertEqual(bound, CACHE_BOUND)
        self.assertLessEqual(cached, CACHE_BOUND)
        self.assertGreaterEqual(minted, NAMES + 2)
        self.assertEqual(minted - evicted, cached)

    def allowed_latencies(self, port, stop, out):
        """Allowed CONNECTs (resolve, dial, 200; a fresh connection each) until
        STOP is set: (milliseconds, status) into OUT."""
        target = "allowed.test:%d" % self.sink.port
        for _ in range(100_000):
            if stop.is_set():
                return
            out.append(connect_ms(port, target))

    def test_allowed_requests_during_a_burst_of_1000_denied_names(self):
        e = self.start_embargo()
        target = "allowed.test:%d" % self.sink.port
        base = [connect_ms(e.port, target) for _ in range(300)]
        stop = threading.Event()
        during = []
        t = threading.Thread(target=self.allowed_latencies, args=(e.port, stop, during), daemon=True)
        t.start()
        start = time.monotonic()
        failures = denied_burst(e.port, ["burst%d.bump.test" % i for i in range(BURST)])
        took = time.monotonic() - start
        stop.set()
        t.join(timeout=60)
        self.assertEqual(failures[:10], [])
        self.assertGreater(len(during), 10, "too few allowed requests during the burst")
        self.assertEqual({s for _, s in base + during}, {200})
        b = [ms for ms, _ in base]
        d = [ms for ms, _ in during]
        print("\nallowed CONNECTs: before the burst p50 %.2f ms, p99 %.2f ms (%d requests); "
              "during %d denied names minted in %.1fs: p50 %.2f ms, p99 %.2f ms (%d requests); "
              "p99 added latency %.2f ms"
              % (percentile(b, 50), percentile(b, 99), len(b), BURST, took, percentile(d, 50),
                 percentile(d, 99), len(d), percentile(d, 99) - percentile(b, 99)))


if __name__ == "__main__":
    harness.main()
