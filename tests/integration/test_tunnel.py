"""CONNECT tunnels to a raw TCP server: half-close in both directions, bytes
sent along with the CONNECT head, a bulk transfer both ways, and a slow
reader that gets every byte in order while both directions stream."""

import hashlib
import socket
import threading
import time

import harness
from harness import EmbargoTestCase, RawClient, pattern_bytes, pattern_pieces, pattern_sha256, \
    wait_until

MB = 1 << 20


class StreamEchoServer(harness.LoopbackTCPServer):
    """Echoes what it reads as it reads it, and passes the client's FIN back."""

    def __init__(self):
        super().__init__(8, 0.2)
        self.start()

    def _accepted(self, pair):
        threading.Thread(target=self._echo, args=(pair[0],), daemon=True).start()

    def _echo(self, conn):
        conn.settimeout(30)
        try:
            for _ in range(1_000_000):
                data = conn.recv(256 * 1024)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()


class TunnelTest(EmbargoTestCase):
    TUNNEL_SERVERS = ("echo", "greet-first")

    @classmethod
    def setUpClass(cls):
        cls.stream_echo = StreamEchoServer()  # before the embargo whose connect_ports name it
        try:
            super().setUpClass()
        except BaseException:
            cls.stream_echo.stop()
            raise

    @classmethod
    def connect_ports(cls):
        return super().connect_ports() + [cls.stream_echo.port]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.stream_echo.stop()

    def _open_tunnel(self, port, host="allowed.test", extra=b""):
        c = RawClient(self.embargo.port)
        c.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port,
                                                                   host.encode(), port) + extra)
        r = c.read_response("CONNECT")
        self.assertEqual(r.status, 200, r)
        return c

    def test_client_half_close_reply_still_arrives(self):
        echo = self.tunnels["echo"]
        data = pattern_bytes(100_000, 31)
        with self._open_tunnel(echo.port) as c:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)  # the server answers only after our FIN
            reply = c.read_to_eof()
        self.assertEqual(reply, b"ECHO " + data)
        self.assertEqual(echo.saw_eof[-1:], [True])

    def test_server_half_close_client_can_still_send(self):
        srv = self.tunnels["greet-first"]
        before = len(srv.received)
        data = pattern_bytes(50_000, 32)
        with self._open_tunnel(srv.port) as c:
            greeting = c.read_to_eof()  # the server's FIN is passed on ...
            self.assertEqual(greeting, srv.GREETING)
            c.send(data)  # ... while this direction keeps flowing
            c.sock.shutdown(socket.SHUT_WR)
            wait_until(lambda: len(srv.received) > before, 10.0, 0.02, "server to read to EOF")
            self.assertTrue(c.at_eof(5.0), "tunnel not closed after both sides finished")
        self.assertEqual(srv.received[before], data)
        self.assertTrue(srv.saw_eof[before])

    def test_bytes_sent_with_connect_head_are_relayed(self):
        echo = self.tunnels["echo"]
        c = RawClient(self.embargo.port)
        with c:
            c.send(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\nearly bytes" % echo.port)
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response("CONNECT")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(c.read_to_eof(), b"ECHO early bytes")

    def test_connect_to_literal_address(self):
        echo = self.tunnels["echo"]
        with self._open_tunnel(echo.port, host="127.0.0.1") as c:
            c.send(b"literal")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_to_eof(), b"ECHO literal")

    def test_bulk_transfer_both_ways(self):
        echo = self.tunnels["echo"]
        size = 8 << 20
        data = pattern_bytes(size, 33)
        with self._open_tunnel(echo.port) as c:
            view = memoryview(data)
            for off in range(0, size, 1 << 20):
                c.send(view[off:off + (1 << 20)])
            c.sock.shutdown(socket.SHUT_WR)
            reply = c.read_to_eof()
        self.assertEqual(len(reply), size + 5)
        self.assertTrue(reply == b"ECHO " + data, "echoed bytes differ")

    def test_slow_reader_gets_every_byte_in_order_both_ways(self):
        # The client reads in bursts with pauses while it keeps sending, so
        # both of embargo's writes (to the client, to the server) keep
        # meeting full socket buffers: whatever a write could not take at
        # once must follow in order, nothing twice, nothing lost.
        size, seed = 24 * MB, 34
        with self._open_tunnel(self.stream_echo.port) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sender = threading.Thread(target=self._send_then_shut, args=(c.sock, size, seed),
                                      daemon=True)
            sender.start()
            got, digest = self._read_slowly(c.sock, size)
            sender.join(30)
        self.assertEqual(got, size)
        self.assertEqual(digest, pattern_sha256(size, seed), "echoed bytes differ")

    @staticmethod
    def _send_then_shut(sock, size, seed):
        try:
            for piece in pattern_pieces(size, seed):
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the reader's assertions say what went wrong

    @staticmethod
    def _read_slowly(sock, size):
        """Reads to EOF (bounded in time and count), pausing after each MB."""
        h, got, since_pause = hashlib.sha256(), 0, 0
        sock.settimeout(10.0)
        deadline = time.monotonic() + 60
        for _ in range(10_000_000):
            if time.monotonic() > deadline:
                break
            data = sock.recv(65536)
            if not data:
                break
            h.update(data)
            got += len(data)
            since_pause += len(data)
            if since_pause >= MB:
                since_pause = 0
                time.sleep(0.02)
        return got, h.hexdigest()

    def test_non_tls_bytes_on_inspected_port_refused_before_dialling(self):
        echo = self.tunnels["echo"]
        e = self.start_embargo(tls_inspect_ports=[443, echo.port])
        before = echo.connections
        with RawClient(e.port) as c:
            c.send(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.port)
            self.assertEqual(c.read_response("CONNECT").status, 200)
            c.send(b"GET / HTTP/1.1\r\n\r\n")
            self.assertEqual(c.read_to_eof(), b"")
        d = e.wait_records(lambda x: x.get("event") == "deny")[-1]
        self.assertEqual(d["method"], "CONNECT")
        self.assertEqual(d.get("tls"), "not_tls", d)
        self.assertEqual(echo.connections, before, "the destination was dialled")

    def test_tunnel_is_not_logged_for_allowed_host(self):
        echo = self.tunnels["echo"]
        with self._open_tunnel(echo.port) as c:
            client_port = c.sock.getsockname()[1]
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_to_eof(), b"ECHO ")
            # A tunnel_closed line would be made as the proxy closes its side.
            wait_until(lambda: not harness.socket_held(self.embargo.port, client_port), 10,
                       what="the proxy to close the tunnel")
        self.embargo.log_barrier()
        self.assertEqual(self.new_records(), [])
        self.assert_healthy()


if __name__ == "__main__":
    harness.main()
