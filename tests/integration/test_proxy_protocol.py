"""Listeners behind a load balancer through the real binary: the test is
the balancer, writing PROXY protocol headers (versions 1 and 2) by hand in
front of its clients' bytes on loopback.

Checked: the client a header names is the client of the decision line
(IPv4 and IPv6 clients, over an IPv4 and an IPv6 listener), of `clients:`,
of the per-client cap (three connections from the balancer, two clients:
the cap counts each client, never the balancer) and of client groups (a
lab exception admits a lab client only); a CONNECT tunnel follows its
header. A header from a source outside `proxy_protocol_from`, a missing,
garbled or late one closes the connection with a line on standard error
and nothing reaches the origin. A LOCAL header (a health check) gets FIN
and nothing else, with no decision line. The metrics count each outcome.
On an intercept listener the header's destination is the original
destination (judged, dialled, logged); one naming no destination, or
Embargo itself, is refused. On a tproxy listener (root only, for
IP_TRANSPARENT) the same.
"""

import os
import socket
import struct
import unittest

import harness
from harness import EmbargoTestCase, RawClient, wait_until

UPDATES = "s07.upd.kaspersky.com"
AFTER_CUTOFF = "2025-01-01T00:00:00Z"
BALANCER = "127.0.0.1"
STRANGER = "127.0.0.2"  # reaches the listener, but is no balancer
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst=None, sport=40000, dport=3128):
    family = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("fd00::1" if ":" in src else "10.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode()


def v2(src, dst, sport=40000, dport=3128, tlvs=b""):
    """A version 2 PROXY header over TCP; both addresses of SRC's family."""
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    block = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) +
             struct.pack("!HH", sport, dport) + tlvs)
    return (V2_SIG + bytes([0x21, 0x21 if fam == socket.AF_INET6 else 0x11]) +
            struct.pack("!H", len(block)) + block)


V2_LOCAL = V2_SIG + bytes([0x20, 0x00]) + b"\x00\x00"
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def request(url, agent="pp-test"):
    host = url.split("/")[2]
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n" % (url, host, agent)).encode()


def admin_get(port, path):
    with RawClient(port) as c:
        c.send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                % (path, port)).encode())
        return c.read_response()


class BalancedListenerTest(EmbargoTestCase):
    """An explicit-proxy listener on IPv4 and one on IPv6, both behind the
    test's balancer (127.0.0.1 and ::1), after the updates cutoff."""

    NOW = AFTER_CUTOFF
    TUNNEL_SERVERS = ("echo",)

    @classmethod
    def setUpClass(cls):
        cls.v6_port = harness.free_port()
        cls.admin_port = harness.free_port()
        super().setUpClass()

    @classmethod
    def new_embargo(cls, now="class", monitor=None, env=None, port=None, **config_kw):
        port = harness.free_port()
        extra = ("listen:\n"
                 "  - {address: \"127.0.0.1:%d\", proxy_protocol: true}\n"
                 "  - {address: \"[::1]:%d\", proxy_protocol: true}\n"
                 "proxy_protocol_from: [127.0.0.1/32, \"::1/128\"]\n"
                 "clients: [10.0.0.0/8, \"fd00::/8\"]\n"
                 "client_groups:\n  lab: [10.9.0.0/16]\n"
                 "exceptions:\n  - {host: %s, clients: [lab]}\n"
                 "limits:\n  max_connections_per_client: 2\n"
                 "admin:\n  listen: \"127.0.0.1:%d\"\n"
                 % (port, cls.v6_port, UPDATES, cls.admin_port))
        text = harness.make_config(connect_ports=cls.connect_ports(), extra=extra)
        e = harness.Embargo(cls.tmp, text, cls.dns.port, now=cls.NOW, port=port,
                            listen_arg=False)
        return e.start()

    def exchange(self, header, payload, source=BALANCER, host=harness.LOOPBACK, port=None):
        with RawClient(port or self.embargo.port, host=host, source=source) as c:
            c.send(header + payload)
            return c.read_response()

    def decision(self, agent):
        return self.embargo.wait_records(lambda r: r.get("user_agent") == agent)[-1]

    def test_the_header_names_the_client_of_the_decision_line_v1_ipv4(self):
        r = self.exchange(v1("10.1.2.3", sport=51000), request("http://%s/" % UPDATES, "v1-4"))
        self.assertEqual(r.status, 403)
        d = self.decision("v1-4")
        self.assertEqual(d["client"], "10.1.2.3:51000")
        self.assertEqual(d["event"], "deny")

    def test_the_header_names_the_client_of_the_decision_line_v2_ipv6(self):
        r = self.exchange(v2("fd00:1::5", "fd00:1::1", sport=52000),
                          request("http://%s/" % UPDATES, "v2-6"))
        self.assertEqual(r.status, 403)
        self.assertEqual(self.decision("v2-6")["client"], "[fd00:1::5]:52000")

    def test_an_ipv6_listener_takes_an_ipv4_client_and_the_reverse(self):
        r = self.exchange(v2("10.1.2.4", "10.0.0.1"), request("http://%s/" % UPDATES, "v6l-4"),
                          source="::1", host="::1", port=self.v6_port)
        self.assertEqual(r.status, 403)
        self.assertTrue(self.decision("v6l-4")["client"].startswith("10.1.2.4:"))
        r = self.exchange(v1("fd00:2::7"), request("http://%s/" % UPDATES, "v4l-6"))
        self.assertEqual(r.status, 403)
        self.assertTrue(self.decision("v4l-6")["client"].startswith("[fd00:2::7]:"))

    def test_allowed_traffic_flows_after_the_header_with_tlvs(self):
        tlvs = bytes([0x05, 0x00, 0x04]) + b"abcd"  # PP2_TYPE_UNIQUE_ID, skipped
        r = self.exchange(v2("10.1.2.5", "10.0.0.1", tlvs=tlvs), request(self.url(path="/x")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /x\n")

    def test_a_connect_tunnel_follows_its_header(self):
        port = self.tunnels["echo"].port
        with RawClient(self.embargo.port) as c:
            c.send(v1("10.1.2.6") + ("CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d"
                                     "\r\n\r\n" % (port, port)).encode())
            r = c.read_response("CONNECT")
            self.assertEqual(r.status, 200, r)
            c.send(b"through the tunnel")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_to_eof(), b"ECHO through the tunnel")

    def test_clients_judges_the_named_client_not_the_balancer(self):
        r = self.exchange(v1("192.0.2.7"), request(self.url(path="/acl"), "acl"))
        self.assertEqual(r.status, 403)
        self.assertIn("client address is not allowed", r.body.decode())
        self.origin.barrier()
        self.assertNotIn("/acl", [h["path"] for h in self.origin.heads])

    def test_a_lab_exception_admits_the_lab_client_and_nobody_else(self):
        r = self.exchange(v1("10.9.0.5"), request("http://%s:%d/upd" % (UPDATES, self.origin.port),
                                                  "lab"))
        self.assertEqual(r.status, 200, r)
        d = self.decision("lab")
        self.assertEqual((d["event"], d["client_group"]), ("log", "lab"))
        r = self.exchange(v1("10.1.9.5"), request("http://%s:%d/upd" % (UPDATES, self.origin.port),
                                                  "not-lab"))
        self.assertEqual(r.status, 403)
        self.assertNotIn("client_group", self.decision("not-lab"))

    def test_the_per_client_cap_counts_each_named_client_never_the_balancer(self):
        held = []
        try:
            for _ in range(2):  # the cap (2) of 10.1.1.1, kept open, each served once
                c = RawClient(self.embargo.port)
                held.append(c)
                c.send(v1("10.1.1.1") + request(self.url(path="/held")))
                self.assertEqual(c.read_response().status, 200)
            with RawClient(self.embargo.port) as c:  # a third of 10.1.1.1: closed
                c.send(v1("10.1.1.1") + request(self.url(path="/over")))
                self.assertEqual(c.read_to_eof(), b"")
            self.embargo.wait_stderr("client 10.1.1.1 holds 2 connections")
            # A fourth connection from the balancer, for another client, is served.
            r = self.exchange(v1("10.1.1.2"), request(self.url(path="/other")))
            self.assertEqual(r.status, 200)
            self.assertNotIn("/over", [h["path"] for h in self.origin.heads])
        finally:
            for c in held:
                c.close()

    def refused(self, source, data, why, host=harness.LOOPBACK, port=None):
        """DATA from SOURCE gets no answer, only EOF; WHY is logged; nothing
        of it reaches the origin (checked after an allowed request that must
        come after it)."""
        with RawClient(port or self.embargo.port, host=host, source=source) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                self.assertEqual(c.read_to_eof(), b"")
            except ConnectionResetError:
                pass  # closed with input unread: a reset is an end too
        self.embargo.wait_stderr(why)
        r = self.exchange(v1("10.1.2.8"), request(self.url(path="/after")))
        self.assertEqual(r.status, 200)
        self.assertNotIn("/refused", [h["path"] for h in self.origin.heads])

    def test_a_header_from_a_source_outside_proxy_protocol_from_is_refused(self):
        self.refused(STRANGER, v1("10.1.2.9") + request(self.url(path="/refused")),
                     "%s:" % STRANGER)
        self.embargo.wait_stderr("not in proxy_protocol_from")

    def test_a_missing_header_is_refused(self):
        self.refused(BALANCER, request(self.url(path="/refused")),
                     ": not a PROXY protocol header; closing")

    def test_a_garbled_header_is_refused(self):
        self.refused(BALANCER, b"PROXY TCP4 10.1.2.300 10.0.0.1 1 2\r\n" +
                     request(self.url(path="/refused")),
                     "invalid PROXY protocol header: v1: ")

    def test_a_header_not_whole_in_time_is_refused(self):
        self.refused(BALANCER, b"PROXY TCP4 10.1.2.10 ", "not whole within 3 s")

    def test_a_local_header_gets_fin_and_nothing_else(self):
        with RawClient(self.embargo.port) as c:
            c.send(V2_LOCAL + request(self.url(path="/local"), "local"))
            self.assertEqual(c.read_to_eof(), b"")
        # A positive barrier: a later request's line; lines are written in order.
        self.exchange(v1("10.1.2.12"), request("http://%s/" % UPDATES, "after-local"))
        self.decision("after-local")
        self.assertEqual([r for r in self.new_records() if r.get("user_agent") == "local"], [])
        self.origin.barrier()
        self.assertNotIn("/local", [h["path"] for h in self.origin.heads])

    def test_an_unknown_header_leaves_the_balancer_as_the_client(self):
        # The balancer (127.0.0.1) is not in clients: (10/8, fd00::/8).
        r = self.exchange(V1_UNKNOWN, request(self.url(path="/unknown")))
        self.assertEqual(r.status, 403)
        self.assertIn("client address is not allowed", r.body.decode())

    def test_the_metrics_count_every_outcome(self):
        def count(outcome):
            body = admin_get(self.admin_port, "/metrics").body.decode()
            for line in body.splitlines():
                if line.startswith('embargo_proxy_protocol_total{outcome="%s"}' % outcome):
                    return int(line.split()[-1])
            raise AssertionError("no %s series in\n%s" % (outcome, body))
        before = {o: count(o) for o in ("proxy", "local", "refused_source", "invalid")}
        self.exchange(v1("10.1.2.11"), request(self.url()))
        with RawClient(self.embargo.port) as c:
            c.send(V2_LOCAL)
            c.read_to_eof()
        with RawClient(self.embargo.port, source=STRANGER) as c:
            c.read_to_eof()
        with RawClient(self.embargo.port) as c:
            c.send(b"GET / HTTP/1.1\r\n\r\n")
            c.read_to_eof()
        for o in before:
            wait_until(lambda: count(o) == before[o] + 1, 5, what="%s counted once" % o)


class InterceptBehindBalancerTest(EmbargoTestCase):
    """An intercept listener behind the balancer: the header's destination
    is the original destination."""

    NOW = AFTER_CUTOFF
    MODE = "intercept"

    @classmethod
    def setUpClass(cls):
        if cls.MODE == "tproxy" and os.geteuid() != 0:
            raise unittest.SkipTest("a tproxy listener needs root (IP_TRANSPARENT)")
        super().setUpClass()

    @classmethod
    def new_embargo(cls, now="class", monitor=None, env=None, port=None, **config_kw):
        port = harness.free_port()
        extra = ("listen:\n"
                 "  - {address: \"127.0.0.1:%d\", mode: %s, proxy_protocol: true}\n"
                 "proxy_protocol_from: [127.0.0.1/32]\n" % (port, cls.MODE))
        text = harness.make_config(connect_ports=cls.connect_ports(), extra=extra)
        e = harness.Embargo(cls.tmp, text, cls.dns.port, now=cls.NOW, port=port,
                            listen_arg=False)
        return e.start()

    def send(self, header, host, path, agent):
        with RawClient(self.embargo.port) as c:
            c.send(header + ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                             "Connection: close\r\n\r\n" % (path, host, agent)).encode())
            return c.read_response()

    def test_the_header_destination_is_dialled_and_logged(self):
        hdr = v1("10.1.3.1", "127.0.0.1", 41000, self.origin.port)
        r = self.send(hdr, "allowed.test:%d" % self.origin.port, "/t", "t-ok")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /t\n")
        r = self.send(hdr, UPDATES, "/t", "t-deny")
        self.assertEqual(r.status, 403)
        d = self.embargo.wait_records(lambda x: x.get("user_agent") == "t-deny")[-1]
        self.assertEqual(d["client"], "10.1.3.1:41000")
        self.assertEqual(d["mode"], self.MODE)
        self.assertEqual(d["original_dst"], "127.0.0.1:%d" % self.origin.port)

    def test_an_unknown_header_has_no_destination_and_is_refused(self):
        with RawClient(self.embargo.port) as c:
            c.send(V1_UNKNOWN + b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            self.assertEqual(c.read_to_eof(), b"")
        self.embargo.wait_stderr("nor PROXY protocol destination")

    def test_a_header_naming_embargo_itself_is_refused(self):
        hdr = v1("10.1.3.2", "127.0.0.1", 41001, self.embargo.port)
        with RawClient(self.embargo.port) as c:
            c.send(hdr + b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            self.assertEqual(c.read_to_eof(), b"")
        self.embargo.wait_stderr("original destination 127.0.0.1:%d); refusing"
                                 % self.embargo.port)


class TproxyBehindBalancerTest(InterceptBehindBalancerTest):
    MODE = "tproxy"


if __name__ == "__main__":
    harness.main()
