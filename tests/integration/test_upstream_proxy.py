"""`upstream_proxy` through the real binary and a real Squid (Debian's) as
the site's parent proxy, on loopback.

Checked: plain HTTP goes to Squid in absolute form and reaches the origin
(Squid's access log, the origin's Via), on connections to Squid that are
pooled across destinations; CONNECT tunnels (TLS port, peeked first, and a
plain port) and intercepted TLS (an intercept listener fed its original
destination by a PROXY protocol header) become CONNECTs to Squid for the
destination's name; a denied request, tunnel or ClientHello never reaches
Squid (its access log, after a barrier request of the test's own); an
`except` destination goes direct. The parent's failures are 502s naming it
(`Proxy-Status: ...; next-hop="..."`): Squid refusing a CONNECT
(received-status=403; after a 200, a logged close), Squid failing to reach
the origin (503), Squid down, a parent name that does not resolve, Squid
asking for credentials Embargo was not given (407); with
`proxy_authorization_file` Squid's Basic authentication passes.
"""

import os
import socket
import ssl
import unittest

import harness
import squid
from harness import EmbargoTestCase, RawClient, curl

UPDATES = "s07.upd.kaspersky.com"
AFTER_CUTOFF = "2025-01-01T00:00:00Z"
NAMES = ("allowed.test", "other.test", "denied.test", "direct.test", UPDATES)


def v1(dst, dport, src="10.1.2.3"):
    return ("PROXY TCP4 %s %s 40000 %d\r\n" % (src, dst, dport)).encode()


class ParentTestCase(EmbargoTestCase):
    """An Embargo whose allowed traffic goes through a Squid of the class's;
    an explicit listener, and an intercept listener behind the test (as a
    balancer) for intercepted TLS."""

    NOW = AFTER_CUTOFF
    TLS = True
    TUNNEL_SERVERS = ("echo", "greet-first")
    DNS_RECORDS = (("denied.test", "127.0.0.1"), ("direct.test", "127.0.0.1"))
    SQUID_KW = {}
    UPSTREAM = None  # the upstream_proxy mapping's text; None: the class's Squid

    @classmethod
    def setUpClass(cls):
        why = squid.available()
        if why:
            raise unittest.SkipTest(why)
        super().setUpClass()

    @classmethod
    def start_squid(cls, **kw):
        s = squid.Squid(cls.tmp, hosts={n: "127.0.0.1" for n in NAMES},
                        deny_domains=["denied.test"], **kw)
        cls._cleanups_cls.append(s.stop)
        return s.start()

    @classmethod
    def upstream_text(cls):
        return ("upstream_proxy:\n  address: \"%s\"\n  except: [direct.test, 192.0.2.0/24]\n"
                % cls.squid.authority)

    @classmethod
    def new_embargo(cls, now="class", monitor=None, env=None, port=None, upstream=None,
                    **config_kw):
        if upstream is None:
            cls.squid = cls.start_squid(**cls.SQUID_KW)
            upstream = cls.upstream_text()
        port, intercept, admin = harness.free_port(), harness.free_port(), harness.free_port()
        extra = ("listen:\n"
                 "  - \"127.0.0.1:%d\"\n"
                 "  - {address: \"127.0.0.1:%d\", mode: intercept, proxy_protocol: true}\n"
                 "proxy_protocol_from: [127.0.0.1/32]\n"
                 "workers: 1\n"  # one pool of connections to the parent
                 "admin:\n  listen: \"127.0.0.1:%d\"\n%s"
                 % (port, intercept, admin, upstream))
        tls_ports = [443, cls.tls_origin.port]
        text = harness.make_config(connect_ports=cls.connect_ports(), extra=extra,
                                   tls_inspect_ports=tls_ports, **config_kw)
        e = harness.Embargo(cls.tmp, text, cls.dns.port, now=cls.NOW, port=port,
                            listen_arg=False)
        e.intercept_port, e.admin_port = intercept, admin
        return e.start()

    def squid_saw(self, needle):
        """Squid's request lines whose URL holds NEEDLE, after a barrier."""
        self.squid.barrier("http://127.0.0.1:%d%s" % (self.origin.port,
                                                       harness.Origin.BARRIER_PATH))
        return [r for r in self.squid.requests() if needle in r[1]]

    def assert_next_hop(self, r, error, received=None):
        ps = r.header("Proxy-Status") or ""
        self.assertTrue(ps.startswith("embargo; error=%s; next-hop=\"%s\"" %
                                      (error, self.squid.authority)), ps)
        if received is not None:
            self.assertIn("received-status=%d;" % received, ps)
        else:
            self.assertNotIn("received-status", ps)

    def tls_get(self, port, name, header=b""):
        """A TLS GET of / for NAME over a plain socket to PORT (HEADER first);
        the response's first bytes, or the SSL error."""
        s = socket.create_connection((harness.LOOPBACK, port), timeout=harness.IO_TIMEOUT)
        try:
            s.sendall(header)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            t = ctx.wrap_socket(s, server_hostname=name)
            t.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % name).encode())
            data = b""
            for _ in range(1000):
                b = t.recv(65536)
                if not b:
                    break
                data += b
            return data
        except (ssl.SSLError, ConnectionError) as e:
            return e
        finally:
            s.close()


class UpstreamProxyTest(ParentTestCase):

    def metric(self, series):
        with RawClient(self.embargo.admin_port) as c:
            c.send(("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                    % self.embargo.admin_port).encode())
            body = c.read_response().body.decode()
        for line in body.splitlines():
            if line.startswith(series + " "):
                return int(line.split()[-1])
        raise AssertionError("no %s in /metrics" % series)

    def test_plain_http_goes_through_the_parent_in_absolute_form(self):
        url = self.url("allowed.test", "/p1")
        r = self.get(url)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /p1\n")
        self.assertIn(("GET", url, 200), self.squid_saw("/p1"))
        via = dict(self.origin.heads[-1]["headers"]).get("Via", "")
        self.assertRegex(via, r"embargo/.*squid|squid.*embargo/", "Embargo, then Squid")

    def test_connections_to_the_parent_are_pooled_across_destinations(self):
        self.get(self.url("allowed.test", "/warm"))  # leaves one to the parent in the pool
        before = self.metric('embargo_upstream_connects_total{result="ok"}')
        for host in ("allowed.test", "other.test", "allowed.test"):
            self.assertEqual(self.get(self.url(host, "/pooled")).status, 200)
        self.assertEqual(self.metric('embargo_upstream_connects_total{result="ok"}'), before,
                         "three requests, no new connection")
        self.assertEqual(len(self.squid_saw("/pooled")), 3)

    def test_a_connect_to_a_tls_port_is_a_connect_to_the_parent(self):
        p = curl(["-k", "-x", self.embargo.proxy_url,
                  "https://allowed.test:%d/tls" % self.tls_origin.port], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"ok /tls\n")
        self.assertIn(("CONNECT", "allowed.test:%d" % self.tls_origin.port, 200),
                      self.squid_saw("allowed.test:%d" % self.tls_origin.port))

    def test_a_connect_to_a_plain_port_is_a_connect_to_the_parent(self):
        # A server that speaks first: its bytes may come with the parent's 200.
        port = self.tunnels["greet-first"].port
        with RawClient(self.embargo.port) as c:
            c.send(("CONNECT other.test:%d HTTP/1.1\r\nHost: other.test:%d\r\n\r\n"
                    % (port, port)).encode())
            self.assertEqual(c.read_response("CONNECT").status, 200)
            self.assertEqual(c.read_to_eof(), harness.TCPServer.GREETING)
        self.assertIn(("CONNECT", "other.test:%d" % port, 200),
                      self.squid_saw("other.test:%d" % port))

    def test_intercepted_tls_is_a_connect_to_the_parent_for_its_name(self):
        hdr = v1("127.0.0.1", self.tls_origin.port)
        data = self.tls_get(self.embargo.intercept_port, "allowed.test", hdr)
        self.assertIsInstance(data, bytes, data)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
        self.assertIn(("CONNECT", "allowed.test:%d" % self.tls_origin.port, 200),
                      self.squid_saw("allowed.test:%d" % self.tls_origin.port))

    def test_nothing_denied_reaches_the_parent(self):
        r = self.get(self.url(UPDATES, "/upd"))
        self.assertEqual(r.status, 403)
        p = curl(["-k", "-x", self.embargo.proxy_url,
                  "https://%s:%d/" % (UPDATES, self.tls_origin.port)], timeout=30)
        self.assertNotEqual(p.returncode, 0)
        intercepted = self.tls_get(self.embargo.intercept_port, UPDATES,
                                   v1("127.0.0.1", self.tls_origin.port))
        self.assertNotIsInstance(intercepted, bytes, "the intercepted hello is refused")
        self.assertEqual(self.squid_saw(UPDATES), [])
        self.assertEqual(len(self.embargo.wait_records(
            lambda x: x.get("event") == "deny" and x.get("host") == UPDATES, count=3)), 3)

    def test_an_except_destination_goes_direct(self):
        r = self.get(self.url("direct.test", "/direct"))
        self.assertEqual(r.status, 200)
        self.assertEqual(self.squid_saw("/direct"), [])
        via = dict(self.origin.heads[-1]["headers"]).get("Via", "")
        self.assertIn("embargo/", via)
        self.assertNotIn("squid", via)

    def test_the_parent_refusing_a_connect_is_a_502_naming_it(self):
        port = self.tunnels["echo"].port
        before = self.tunnels["echo"].connections
        with RawClient(self.embargo.port) as c:
            c.send(("CONNECT denied.test:%d HTTP/1.1\r\nHost: denied.test:%d\r\n\r\n"
                    % (port, port)).encode())
            r = c.read_response("CONNECT")
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "destination_unavailable", 403)
        self.assertIn("answered 403 to CONNECT denied.test:%d" % port, r.header("Proxy-Status"))
        self.assertEqual(self.tunnels["echo"].connections, before)

    def test_the_parent_refusing_a_tls_tunnel_after_its_200_is_a_logged_close(self):
        p = curl(["-k", "-x", self.embargo.proxy_url,
                  "https://denied.test:%d/" % self.tls_origin.port], timeout=30)
        self.assertNotEqual(p.returncode, 0)
        d = self.embargo.wait_records(lambda x: x.get("event") == "error" and
                                      x.get("host") == "denied.test")[-1]
        self.assertEqual(d["error"], "destination_unavailable")
        self.assertIn("answered 403 to CONNECT", d["detail"])
        self.assertEqual(self.tls_origin.connections, 0)

    def test_the_parent_failing_to_reach_the_origin_is_a_502_with_its_status(self):
        r = self.get(self.url("allowed.test", "/gone", port=harness.free_port()))
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "destination_unavailable", 503)

    def test_config_check_shows_the_parent(self):
        p = harness.subprocess.run([harness.BINARY, "config", "check", self.embargo.config_path],
                                   stdin=harness.subprocess.DEVNULL, stdout=harness.subprocess.PIPE,
                                   stderr=harness.subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Upstream proxy: %s, direct for direct.test, 192.0.2.0/24 (upstream_proxy)\n"
                      % self.squid.authority, p.stdout.decode())

    def test_a_plain_http_refusal_of_the_parent_is_passed_on(self):
        # Embargo cannot tell a parent's 403 from the origin's: it is passed on.
        r = self.get(self.url("denied.test", "/x"))
        self.assertEqual(r.status, 403)
        self.assertIsNotNone(r.header("X-Squid-Error"))
        self.assertIsNone(r.header("Proxy-Status"))


class ParentByNameTest(ParentTestCase):
    """An intercepted connection the parent is asked to reach by the name
    it claims: every address of that name is judged, not only the original
    destination, since the parent may connect to any of them."""

    DNS_RECORDS = ParentTestCase.DNS_RECORDS + (("sneaky.test", "127.0.0.5"),)
    VENDOR = ("vendor: testnet\nname: Test network\nreference: \"integration test\"\n"
              "categories:\n  updates:\n    cutoff: 2020-01-01T00:00:00Z\n"
              "    networks: [127.0.0.5/32]\n")

    @classmethod
    def new_embargo(cls, **kw):
        with open(os.path.join(cls.tmp, "testnet.yaml"), "w") as f:
            f.write(cls.VENDOR)
        return super().new_embargo(vendors=["builtin: kaspersky", "file: testnet.yaml"], **kw)

    def test_a_claimed_name_resolving_into_a_vendor_network_is_denied(self):
        # Dialled directly, the connection would go to its original
        # destination (127.0.0.1); through the parent it would go wherever
        # the name leads: 127.0.0.5, a vendor network.
        data = self.tls_get(self.embargo.intercept_port, "sneaky.test",
                            v1("127.0.0.1", self.tls_origin.port))
        self.assertNotIsInstance(data, bytes, "refused with an alert")
        d = self.embargo.wait_records(lambda x: x.get("host") == "sneaky.test")[-1]
        self.assertEqual((d["event"], d["matched_on"], d["vendor"]), ("deny", "address", "testnet"))
        self.assertEqual(self.squid_saw("sneaky.test"), [])


class ParentDownTest(ParentTestCase):
    """The parent's address answers nothing: its port is closed."""

    @classmethod
    def new_embargo(cls, **kw):
        cls.squid = squid.Squid(cls.tmp, port=harness.free_port())  # never started
        return super().new_embargo(upstream="upstream_proxy: {address: \"%s\"}\n"
                                   % cls.squid.authority, **kw)

    def test_plain_http_gets_a_502_naming_the_parent(self):
        r = self.get(self.url("allowed.test", "/down"))
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "connection_refused")
        self.assertEqual(self.origin.heads, [])

    def test_a_connect_gets_a_502_naming_the_parent(self):
        port = self.tunnels["echo"].port
        with RawClient(self.embargo.port) as c:
            c.send(("CONNECT other.test:%d HTTP/1.1\r\n\r\n" % port).encode())
            r = c.read_response("CONNECT")
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "connection_refused")


class ParentNameTest(ParentTestCase):
    """The parent is named, and its name does not resolve."""

    @classmethod
    def new_embargo(cls, **kw):
        cls.squid = squid.Squid(cls.tmp, address="nx.test", port=3128)  # never started
        return super().new_embargo(upstream="upstream_proxy: {address: \"nx.test:3128\"}\n",
                                   **kw)

    def test_a_parent_name_that_does_not_resolve_is_a_502(self):
        r = self.get(self.url("allowed.test", "/nx"))
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "dns_error")
        self.assertIn("the upstream proxy's name nx.test: NXDOMAIN", r.body.decode())


class ParentAuthTest(ParentTestCase):
    """Squid asks for Basic credentials: Embargo sends them from
    proxy_authorization_file; without the file, Squid's 407 is a 502."""

    SQUID_KW = {"credentials": ("embargo", "s3cret-parent")}

    @classmethod
    def upstream_text(cls):
        path = os.path.join(cls.tmp, "parent.auth")
        with open(path, "w") as f:
            f.write("Basic ZW1iYXJnbzpzM2NyZXQtcGFyZW50\n")  # embargo:s3cret-parent
        return ("upstream_proxy:\n  address: \"%s\"\n  proxy_authorization_file: %s\n"
                % (cls.squid.authority, path))

    def test_credentials_from_the_file_pass_for_http_and_connect(self):
        self.assertEqual(self.get(self.url("allowed.test", "/authed")).status, 200)
        p = curl(["-k", "-x", self.embargo.proxy_url,
                  "https://allowed.test:%d/authed-tls" % self.tls_origin.port], timeout=30)
        self.assertEqual(p.stdout, b"ok /authed-tls\n", p.stderr)

    def test_without_credentials_the_parent_s_407_is_a_502_that_says_so(self):
        e = self.start_embargo(upstream="upstream_proxy: {address: \"%s\"}\n"
                               % self.squid.authority)
        r = self.get(self.url("allowed.test", "/no-auth"), embargo=e)
        self.assertEqual(r.status, 502)
        self.assert_next_hop(r, "destination_unavailable", 407)
        self.assertIn("proxy_authorization_file", r.body.decode())
        self.assertEqual(self.origin.heads, [])


if __name__ == "__main__":
    harness.main()
