"""Addresses, networks and CNAME chains: names judged by the CNAME chain
they resolve through and by the addresses they resolve to (strong and hint
vendor networks, IP literals), DNS failures, internal destinations refused
before dialling, the resolver cache (one query per name within its TTL, a
fresh query once the clamped TTL has run out, one query for concurrent
lookups of one name) and `embargo check` showing the chain."""

import calendar
import os
import signal
import socket
import struct
import sys
import threading
import time

import harness
from harness import (EmbargoTestCase, Dnsmasq, Embargo, KASPERSKY_UPDATES_CUTOFF, LOOPBACK,
                     Origin, curl, http_get, make_config, pattern_bytes, wait_until)

STRONG_NET = "127.77.0.0/16"
STRONG_ADDR = "127.77.0.1"
HINT_NET = "127.78.0.0/16"
HINT_ADDR = "127.78.0.1"
DENIED = "s07.upd.kaspersky.com"


def vendor_file(workdir):
    """A test vendor list whose networks are loopback prefixes."""
    path = os.path.join(workdir, "netvendor.yaml")
    with open(path, "w") as f:
        f.write("vendor: netvendor\n"
                "name: Network Test Vendor\n"
                "reference: \"integration test\"\n"
                "categories:\n"
                "  infra:\n"
                "    cutoff: 2024-01-01T00:00:00Z\n"
                "    networks:\n"
                "      - %s\n"
                "      - { prefix: %s, confidence: hint }\n" % (STRONG_NET, HINT_NET))
    return path


# ---- DNS on the wire ---------------------------------------------------------------


def _skip_name(msg, pos):
    for _ in range(128):
        n = msg[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + n
    raise ValueError("name too long")


def dns_a(port, name, timeout=1.0):
    """The IPv4 addresses 127.0.0.1:PORT answers for NAME (None on timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(harness._dns_query_packet(name, 1, 0x5151), (LOOPBACK, port))
        try:
            msg = s.recv(4096)
        except socket.timeout:
            return None
    qd, an = struct.unpack(">HH", msg[4:8])
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos) + 4
    out = []
    for _ in range(an):
        pos = _skip_name(msg, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(msg[pos:pos + 4]))
        pos += rdlen
    return out


class SlowDns(harness.LoopbackDns):
    """An authoritative-ish UDP DNS server on loopback that answers every A
    query with 127.0.0.1 (TTL 60) and every other type with no data, each
    after DELAY seconds. dnsmasq forwards a domain to it."""

    def answer(self, msg, q):
        answer = b""
        if q.qtype == 1:
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + \
                socket.inet_aton(LOOPBACK)
        return msg[:2] + b"\x85\x80" + struct.pack(">HHHH", 1, 1 if answer else 0, 0, 0) + \
            msg[12:q.end] + answer

    def count(self, name):
        with self.lock:
            return [q for q in self.queries if q[0] == name]


def typed_queries(dns, since, name):
    """The query types dnsmasq logged for NAME after SINCE (after a flush barrier)."""
    dns.queries(since)  # waits until every earlier query is in the log
    with open(dns.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        parts = line.split()
        for i, p in enumerate(parts):
            if p.startswith("query[") and i + 2 < len(parts) and parts[i + 1] == name \
                    and parts[i + 2] == "from":
                out.append(p[len("query["):-1])
    return out


# ---- the tests ----------------------------------------------------------------------


class ResolutionTest(EmbargoTestCase):
    """One embargo with the built-in list plus a test vendor list whose
    networks are loopback prefixes (loopback destinations allowed)."""

    DNS_CNAMES = (("alias.test", DENIED),
                  ("hop1.test", "hop2.test"),
                  ("hop2.test", DENIED),
                  ("clean-alias.test", "allowed.test"))
    DNS_RECORDS = (("strongnet.test", STRONG_ADDR),
                   ("hintnet.test", HINT_ADDR))

    @classmethod
    def new_embargo(cls, **kw):
        kw.setdefault("vendors", ["builtin: kaspersky", "file: " + vendor_file(cls.tmp)])
        return super().new_embargo(**kw)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Origins inside the test networks, on the class origin's port.
        cls.strong_origin = Origin(host=STRONG_ADDR, port=cls.origin.port)
        cls.addClassCleanup(cls.strong_origin.stop)
        cls.strong_origin.start()
        cls.hint_origin = Origin(host=HINT_ADDR, port=cls.origin.port)
        cls.addClassCleanup(cls.hint_origin.stop)
        cls.hint_origin.start()

    def setUp(self):
        super().setUp()
        self.strong_origin.reset_counters()
        self.hint_origin.reset_counters()

    def deny_line(self, host, embargo=None):
        e = embargo or self.embargo
        return e.wait_records(lambda x: x.get("event") == "deny" and x.get("host") == host)[-1]

    def assert_nothing_dialled(self):
        """After a refusal: a connection to either origin made before the
        refusal was answered would be counted before each origin's barrier."""
        self.origin.barrier()
        self.strong_origin.barrier()
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection")
        self.assertEqual(self.strong_origin.connections, 0, "the strong-net origin saw one")

    # -- CNAME chains

    def test_cname_to_update_server_denied(self):
        r = self.get(self.url("alias.test", "/u"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.deny_line("alias.test")
        self.assertEqual(d["matched_on"], "cname", d)
        self.assertEqual(d["matched"], DENIED, d)
        self.assertEqual((d["vendor"], d["category"]), ("kaspersky", "updates"), d)
        self.assertEqual(d["cnames"], [DENIED], d)
        self.assertEqual(d["addresses"], ["127.0.0.1"], d)
        self.assertEqual(d["status"], 403, d)
        self.assert_nothing_dialled()
        # The alias itself was resolved: that is how the chain became known.
        self.assertIn("alias.test", self.dns.queries(self.dns_mark))

    def test_two_step_cname_chain_denied(self):
        r = self.get(self.url("hop1.test", "/u"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.deny_line("hop1.test")
        self.assertEqual(d["matched_on"], "cname", d)
        self.assertEqual(d["matched"], DENIED, d)
        self.assertEqual(d["cnames"], ["hop2.test", DENIED], d)  # in chain order
        self.assertEqual(d["addresses"], ["127.0.0.1"], d)
        self.assert_nothing_dialled()

    def test_cname_to_allowed_name_is_allowed(self):
        r = self.get(self.url("clean-alias.test", "/c"))
        self.assertEqual((r.status, r.body), (200, b"ok /c\n"), r)
        self.embargo.log_barrier()
        self.assertEqual(self.new_records(), [])

    def test_connect_to_alias_denied_with_403_before_the_200(self):
        r = harness.RawClient(self.embargo.port)
        with r:
            r.send(b"CONNECT hop1.test:443 HTTP/1.1\r\nHost: hop1.test:443\r\n\r\n")
            resp = r.read_response()
        self.assertEqual(resp.status, 403, resp)
        d = self.deny_line("hop1.test")
        self.assertEqual((d["method"], d["matched_on"]), ("CONNECT", "cname"), d)

    # -- vendor networks

    def test_name_in_strong_network_denied_on_address(self):
        r = self.get(self.url("strongnet.test", "/n"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.deny_line("strongnet.test")
        self.assertEqual(d["matched_on"], "address", d)
        self.assertEqual(d["matched"], STRONG_ADDR, d)
        self.assertEqual((d["vendor"], d["category"]), ("netvendor", "infra"), d)
        self.assertEqual(d["pattern"], STRONG_NET, d)
        self.assertRegex(d["rule"], r"netvendor\.yaml:\d+$")
        self.assertEqual(d["addresses"], [STRONG_ADDR], d)
        self.assertNotIn("confidence", d)
        self.assert_nothing_dialled()

    def test_name_in_hint_network_allowed_and_logged_as_hint(self):
        r = self.get(self.url("hintnet.test", "/h"))
        self.assertEqual((r.status, r.body), (200, b"ok /h\n"), r)
        self.assertEqual(self.hint_origin.connections, 1)
        d = self.embargo.wait_records(lambda x: x.get("host") == "hintnet.test")[-1]
        self.assertEqual((d["event"], d["action"]), ("log", "log"), d)
        self.assertEqual(d["confidence"], "hint", d)
        self.assertEqual(d["matched_on"], "address", d)
        self.assertEqual(d["matched"], HINT_ADDR, d)
        self.assertEqual(d["pattern"], HINT_NET, d)
        self.assertEqual(d["rule_action"], "deny", d)
        self.assertEqual(d["addresses"], [HINT_ADDR], d)
        self.assertNotIn("status", d)

    def test_ip_literal_in_strong_network_denied(self):
        r = self.get("http://%s:%d/lit" % (STRONG_ADDR, self.origin.port))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.deny_line(STRONG_ADDR)
        self.assertEqual(d["matched_on"], "address", d)
        self.assertEqual(d["matched"], STRONG_ADDR, d)
        self.assertEqual(d["vendor"], "netvendor", d)
        self.assert_nothing_dialled()
        self.assertEqual(self.dns.queries(self.dns_mark), [], "an IP literal was resolved")

    def test_ip_literal_outside_the_networks_allowed(self):
        r = self.get("http://127.0.0.1:%d/lit" % self.origin.port)
        self.assertEqual((r.status, r.body), (200, b"ok /lit\n"), r)

    # -- DNS failures

    def test_nxdomain_is_502_with_rcode(self):
        r = self.get(self.url("nx.test", "/"))
        self.assertEqual(r.status, 502, r)
        ps = r.header("Proxy-Status")
        self.assert_proxy_status(r, "dns_error")
        self.assertIn("error=dns_error", ps)
        self.assertIn("rcode=NXDOMAIN", ps)
        self.assertIn("nx.test", ps)
        self.assertEqual(self.origin.connections, 0)

    def test_dns_timeout_is_504(self):
        # dns_timeout: the resolver's own timeout answered, not the client's.
        r = self.get("http://slow.hole.example/")
        self.assertEqual(r.status, 504, r)
        self.assert_proxy_status(r, "dns_timeout")

    # -- internal destinations (loopback not allowed here)

    def _internal_embargo(self):
        e = self.start_embargo(allow_loopback=False)
        self.assertNotIn("internal:", e.config_text)
        return e

    def test_name_resolving_to_loopback_refused_by_default(self):
        e = self._internal_embargo()
        r = http_get(e.port, self.url("allowed.test", "/in"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        self.assertIn("127.0.0.1", r.header("Proxy-Status"))
        d = e.wait_records(lambda x: x.get("host") == "allowed.test")[-1]
        self.assertEqual((d["event"], d["error"], d["status"]),
                         ("error", "destination_ip_prohibited", 403), d)
        self.origin.barrier()
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection")

    def test_literal_loopback_and_metadata_refused_by_default(self):
        e = self._internal_embargo()
        # The same check on a literal that is safe to reach if it failed ...
        r = http_get(e.port, "http://127.0.0.1:%d/in" % self.origin.port)
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        self.origin.barrier()
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection")
        # ... and only then the cloud metadata address (refused before any dial).
        r = http_get(e.port, "http://169.254.169.254/latest/meta-data/")
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        d = e.wait_records(lambda x: x.get("host") == "169.254.169.254")[-1]
        self.assertEqual((d["event"], d["error"], d["status"]),
                         ("error", "destination_ip_prohibited", 403), d)

    def test_cname_to_loopback_refused_by_default(self):
        e = self._internal_embargo()
        r = http_get(e.port, self.url("clean-alias.test", "/in"))
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "destination_ip_prohibited")
        self.origin.barrier()
        self.assertEqual(self.origin.connections, 0)

    # -- the cache

    def test_second_request_within_ttl_sends_no_query(self):
        # Each response closes its upstream connection, so the second request
        # cannot ride a pooled connection and must look the name up again.
        r1 = self.get(self.url("other.test", "/close/3"))
        self.assertEqual((r1.status, r1.body), (200, pattern_bytes(3, 1)), r1)
        first = self.dns.queries(self.dns_mark).count("other.test")
        self.assertGreaterEqual(first, 1)
        r2 = self.get(self.url("other.test", "/close/3"))
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(self.origin.connections, 2, "the second request reused a connection")
        self.assertEqual(self.dns.queries(self.dns_mark).count("other.test"), first,
                         "the cached answer was not used")

    # -- requests on pooled upstream connections
    #
    # A pooled connection skips resolution (its addresses were judged when it
    # was opened), but every request on it must still be judged on the facts
    # that connection was opened for: the CNAME chain and the addresses, at
    # the current policy time, with a log line for every log decision.

    def before_the_cutoff(self, margins=(5, 20, 60)):
        """An embargo whose policy clock starts MARGIN seconds before the
        updates cutoff, and the log line of its first request to alias.test,
        made before the cutoff: an embargo that started too slowly (a loaded
        machine, a sanitizer build) to answer before it is stopped and the
        next, larger margin tried."""
        cutoff = calendar.timegm(time.strptime(KASPERSKY_UPDATES_CUTOFF, "%Y-%m-%dT%H:%M:%SZ"))
        for margin in margins:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff - margin))
            e = self.start_embargo(now=now)
            mark = e.log_mark()
            r = http_get(e.port, self.url("alias.test", "/before"))
            d = e.wait_records(lambda x: x.get("host") == "alias.test", since=mark)[-1]
            if not d["after_cutoff"]:
                self.assertEqual((r.status, r.body), (200, b"ok /before\n"), r)
                self.assertEqual((d["event"], d["matched_on"]), ("log", "cname"), d)
                return e, d, cutoff
            e.check_clean_exit()
        self.fail("no embargo answered before the cutoff, even %d s ahead of it" % margins[-1])

    def test_pooled_request_rejudged_on_cname_after_cutoff(self):
        e, d, cutoff = self.before_the_cutoff()
        self.assertEqual(self.origin.connections, 1)
        self.assertEqual([h["path"] for h in self.origin.heads], ["/before"])
        # Wait until the policy clock has passed the updates cutoff.
        t = time.strptime(d["policy_time"], "%Y-%m-%dT%H:%M:%SZ")
        left = cutoff - calendar.timegm(t)
        self.assertGreater(left, 0)
        time.sleep(left + 1.2)
        r = http_get(e.port, self.url("alias.test", "/after"))
        self.assertEqual(r.status, 403, "an alias of an update server was served after the "
                         "cutoff on a pooled connection: %r" % (r,))
        d = e.wait_records(lambda x: x.get("host") == "alias.test" and
                           x.get("event") == "deny")[-1]
        self.assertEqual((d["matched_on"], d["matched"]), ("cname", DENIED), d)
        self.assertEqual([h["path"] for h in self.origin.heads], ["/before"])

    def test_pooled_requests_each_logged_cname(self):
        e = self.start_embargo(now="2024-09-01T00:00:00Z")  # updates: log
        for i in range(3):
            r = http_get(e.port, self.url("alias.test", "/k%d" % i))
            self.assertEqual(r.status, 200, r)
        # (today the three requests share one pooled upstream connection)
        recs = e.wait_records(lambda x: x.get("host") == "alias.test", count=3, timeout=3.0)
        for d in recs:
            self.assertEqual((d["event"], d["matched_on"]), ("log", "cname"), d)

    def test_pooled_requests_each_logged_hint_address(self):
        e = self.start_embargo()
        for i in range(3):
            r = http_get(e.port, "http://hintnet.test:%d/k%d" % (self.origin.port, i))
            self.assertEqual(r.status, 200, r)
        recs = e.wait_records(lambda x: x.get("host") == "hintnet.test", count=3, timeout=3.0)
        for d in recs:
            self.assertEqual((d["event"], d["confidence"]), ("log", "hint"), d)

    # -- embargo check

    def _check(self, *dests):
        return harness.embargo_check(self.dns.port, dests)

    def test_check_prints_chain_and_denies_on_cname(self):
        rc, out, err = self._check("alias.test")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("alias.test:443: DENY", out)
        self.assertRegex(out, r"chain:\s+-> s07\.upd\.kaspersky\.com")
        self.assertRegex(out, r"addresses:\s+127\.0\.0\.1")
        self.assertIn("matched:   s07.upd.kaspersky.com (cname)", out)
        self.assertIn("category:  updates", out)

    def test_check_two_step_chain(self):
        rc, out, err = self._check("hop1.test")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("hop1.test:443: DENY", out)
        self.assertRegex(out, r"chain:\s+-> hop2\.test -> s07\.upd\.kaspersky\.com\n")
        self.assertIn("matched:   s07.upd.kaspersky.com (cname)", out)

    def test_check_allowed_alias(self):
        rc, out, err = self._check("clean-alias.test")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("clean-alias.test:443: ALLOW", out)
        self.assertIn("-> allowed.test", out)


class CacheExpiryTest(EmbargoTestCase):
    """A second embargo resolving through a dnsmasq whose answers the test
    changes (an --addn-hosts file re-read on SIGHUP, TTL 30 s) and which
    forwards slow.example to a server that answers after a delay. That
    embargo clamps TTLs to at most 1 s."""

    DELAY = 0.6

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.slow = SlowDns(cls.DELAY)
        cls.addClassCleanup(cls.slow.stop)
        cls.slow.start()
        cls.hosts_path = os.path.join(cls.tmp, "moving.hosts")
        cls.write_hosts("127.0.0.1")
        cls.dns2 = Dnsmasq(cls.tmp, hosts=(), name="dnsmasq-moving", extra_args=[
            "--addn-hosts=" + cls.hosts_path, "--local-ttl=30",
            "--server=/slow.example/%s#%d" % (LOOPBACK, cls.slow.port)])
        cls.addClassCleanup(cls.dns2.stop)
        cls.dns2.start()
        cls.origin_b = Origin(host="127.0.0.2", port=cls.origin.port)
        cls.addClassCleanup(cls.origin_b.stop)
        cls.origin_b.start()
        cfg = make_config(timeouts={"resolve": "5s"},
                          extra="access_log: true\ndns:\n  min_ttl: 0s\n  max_ttl: 1s")
        cls.moving = Embargo(cls.tmp, cfg, cls.dns2.port)
        cls.addClassCleanup(cls.moving.stop)
        cls.moving.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.moving.check_clean_exit()
        except AssertionError:
            sys.stderr.write(cls.moving.diagnostics() + "\n")
            raise
        finally:
            super().tearDownClass()

    @classmethod
    def write_hosts(cls, addr):
        tmp = cls.hosts_path + ".new"
        with open(tmp, "w") as f:
            f.write("%s moving.test\n" % addr)
        os.replace(tmp, cls.hosts_path)

    def setUp(self):
        super().setUp()
        self._extra_embargos.append(self.moving)  # diagnostics on failure
        self.origin_b.reset_counters()

    def test_expired_answer_is_not_reused(self):
        mark = self.dns2.mark()
        log_mark = self.moving.log_mark()
        r = http_get(self.moving.port, "http://moving.test:%d/close/2" % self.origin.port)
        t_first = time.monotonic()
        self.assertEqual((r.status, r.body), (200, pattern_bytes(2, 1)), r)
        self.assertEqual((self.origin.connections, self.origin_b.connections), (1, 0))
        self.assertEqual(typed_queries(self.dns2, mark, "moving.test").count("A"), 1)
        # The record moves to 127.0.0.2 (dnsmasq re-reads its hosts file on SIGHUP).
        self.write_hosts("127.0.0.2")
        self.dns2.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: dns_a(self.dns2.port, "moving.test", 0.3) == ["127.0.0.2"],
                   5.0, 0.05, "dnsmasq to serve the new address")
        # Past the 1 s ceiling (dnsmasq said 30 s) the answer must be fetched again.
        mark = self.dns2.mark()  # after this test's own queries
        left = t_first + 1.5 - time.monotonic()
        if left > 0:
            time.sleep(left)
        r = http_get(self.moving.port, "http://moving.test:%d/close/2" % self.origin.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.origin_b.connections, 1,
                         "the second request did not go to the new address")
        self.assertEqual(self.origin.connections, 1,
                         "the second request reused the expired address")
        self.assertEqual(typed_queries(self.dns2, mark, "moving.test").count("A"), 1)
        recs = self.moving.wait_records(lambda x: x.get("host") == "moving.test", count=2,
                                        since=log_mark)
        self.assertEqual([x.get("addresses") for x in recs], [["127.0.0.1"], ["127.0.0.2"]],
                         recs)

    def test_concurrent_lookups_share_one_query(self):
        name = "burst.slow.example"
        mark = self.dns2.mark()
        url = "http://%s:%d/burst" % (name, self.origin.port)
        results = [None] * 5

        def one(i):
            results[i] = curl(["--proxy", self.moving.proxy_url, url], timeout=20)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=40)
        elapsed = time.monotonic() - t0
        for p in results:
            self.assertIsNotNone(p)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, b"ok /burst\n")
        self.assertGreaterEqual(elapsed, self.DELAY)
        types = typed_queries(self.dns2, mark, name)
        self.assertEqual(types.count("A"), 1, types)
        self.assertLessEqual(types.count("AAAA"), 1, types)
        self.assertEqual(len([q for q in self.slow.count(name) if q[1] == 1]), 1)


if __name__ == "__main__":
    harness.main()
