"""Memory stays bounded when a client reads slower than the origin sends:
a 200 MB download read slowly for a bounded time, over plain HTTP and
through a CONNECT tunnel. Asserts embargo's resident set size and how far
the origin got ahead of the client (a memory bound, not a timing one)."""

import os
import socket
import time

import harness
from harness import EmbargoTestCase, pattern_pieces

MB = 1 << 20
RSS_LIMIT_KB = 100 * 1024
READ_SECONDS = 8.0
# Whatever sits in kernel socket buffers (four of them between origin and
# client) plus embargo's own per-direction buffer; generous on purpose.
MAX_AHEAD = 64 * MB


def _sanitizer_env():
    # ASan keeps freed blocks in a quarantine (256 MB by default) that would
    # show up as resident memory; bound it so RSS measures embargo's own
    # buffering. Options already set by the caller are kept.
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=16"}


class BackpressureTest(EmbargoTestCase):
    EMBARGO_ENV = _sanitizer_env()

    @classmethod
    def setUpClass(cls):
        cls.bulk = BulkServer()  # before the embargo whose connect_ports name it
        try:
            super().setUpClass()
        except BaseException:
            cls.bulk.stop()
            raise

    @classmethod
    def connect_ports(cls):
        return [443, cls.bulk.port]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.bulk.stop()

    def _slow_read(self, sock, first=b""):
        """Reads slowly for READ_SECONDS, sampling embargo's RSS; returns
        (bytes received, max RSS kB)."""
        got = len(first)
        max_rss = self.embargo.rss_kb()
        deadline = time.monotonic() + READ_SECONDS
        next_sample = 0.0
        sock.settimeout(2.0)
        for _ in range(1_000_000):
            now = time.monotonic()
            if now > deadline:
                break
            if now >= next_sample:
                max_rss = max(max_rss, self.embargo.rss_kb())
                next_sample = now + 0.2
            try:
                b = sock.recv(16384)
            except socket.timeout:
                continue
            if not b:
                break
            got += len(b)
            time.sleep(0.005)
        max_rss = max(max_rss, self.embargo.rss_kb())
        return got, max_rss

    def _small_buffer_socket(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(10)
        s.connect((harness.LOOPBACK, self.embargo.port))
        return s

    def _assert_bounded(self, got, sent, max_rss, base_rss):
        msg = ("client read %.1f MB, origin sent %.1f MB, embargo RSS %d kB (at start %d kB)"
               % (got / MB, sent / MB, max_rss, base_rss))
        print("\n  " + msg)
        self.assertGreater(got, 1 * MB, "the download did not make progress: " + msg)
        self.assertLess(sent, 200 * MB, "the origin sent everything to a slow reader: " + msg)
        self.assertLess(sent - got, MAX_AHEAD, msg)
        self.assertLess(max_rss, RSS_LIMIT_KB, msg)

    def test_slow_reader_http_download_200mb(self):
        base_rss = self.embargo.rss_kb()
        s = self._small_buffer_socket()
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                      % self.url(path="/bytes/%d?seed=41" % (200 * MB)).encode())
            got, max_rss = self._slow_read(s)
        finally:
            s.close()
        sent = self.origin.bytes_sent
        self._assert_bounded(got, sent, max_rss, base_rss)
        self.assert_healthy()

    def test_slow_reader_tunnel_200mb(self):
        base_rss = self.embargo.rss_kb()
        s = self._small_buffer_socket()
        try:
            s.sendall(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.bulk.port)
            head = b""
            for _ in range(100):
                head += s.recv(4096)
                if b"\r\n\r\n" in head:
                    break
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            first = head.split(b"\r\n\r\n", 1)[1]
            got, max_rss = self._slow_read(s, first)
        finally:
            s.close()
        sent = self.bulk.sent
        self._assert_bounded(got, sent, max_rss, base_rss)
        self.assert_healthy()


class BulkServer(harness.LoopbackTCPServer):
    """Sends 200 MB to each connection as fast as the peer takes it."""

    def __init__(self):
        super().__init__(8, 0.2)
        self.sent = 0
        self.start()

    def _accepted(self, pair):
        import threading
        threading.Thread(target=self._send, args=(pair[0],), daemon=True).start()

    def _send(self, conn):
        conn.settimeout(30)
        try:
            for p in pattern_pieces(200 * MB, 42, 64 * 1024):
                if self._stop.is_set():
                    break
                conn.sendall(p)
                self.sent += len(p)
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    harness.main()
