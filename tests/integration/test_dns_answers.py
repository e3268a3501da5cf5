"""Crafted DNS answers: CNAME chains and addresses that a plain resolver
setup (dnsmasq) cannot produce. A small UDP DNS server on loopback answers
with upper-case and mixed-case CNAME targets, chains of up to 20 links and
targets that are not host names; others resolve only to IPv6 addresses that
embed an internal IPv4 address (NAT64 64:ff9b::/96 and 64:ff9b:1::/48,
IPv4-compatible ::/96, IPv4-translated ::ffff:0:0/96, 6to4 2002::/16).

Pinned behaviour:
  - every CNAME target is normalised (lower case, no trailing dot) before it
    is judged and logged;
  - a chain is judged whole up to 16 links; a longer chain, or a target that
    is not a valid host name, makes the answer unusable: 502 dns_error
    ("unusable CNAME chain") and no connection;
  - 64:ff9b::a.b.c.d with an internal a.b.c.d, and ::a.b.c.d, are internal
    destinations: 403 destination_ip_prohibited before anything is dialled.

Nothing here talks to anything outside 127.0.0.0/8: the DNS server and the
origin listen on 127.0.0.1 only. The IPv6 destinations are never dialled:
they are refused as internal, and a guard vendor list also denies
64:ff9b::/96 and ::/96 by address, so a build without the internal check
refuses them on policy (a different, failing status) instead of dialling.
"""

import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import unittest

import harness
from harness import LOOPBACK, Embargo, Origin, http_get, make_config

NOW = "2025-06-01T00:00:00Z"  # past the Kaspersky updates cutoff: those names are denied
UPDATES = "s07.upd.kaspersky.com"
DNL = "dnl-01.geo.kaspersky.com"
UNUSABLE = "unusable CNAME chain"


# ---- a DNS server answering from a table of crafted records -----------------------------


def labels_of(name):
    """NAME as a tuple of wire labels: a str is split on dots (one trailing
    dot is the root, as in a zone file); a tuple of bytes is used as is."""
    if isinstance(name, tuple):
        return name
    if name.endswith("."):
        name = name[:-1]
    return tuple(l.encode("ascii") for l in name.split(".")) if name else ()


class _Writer:
    """A DNS message under construction, with name compression (exact-case
    suffixes), so that a 20-link chain still fits in 512 bytes of UDP."""

    def __init__(self, head):
        self.buf = bytearray(head)
        self.offsets = {}

    def name(self, labels):
        for i in range(len(labels)):
            suffix = labels[i:]
            off = self.offsets.get(suffix)
            if off is not None:
                self.buf += struct.pack(">H", 0xC000 | off)
                return
            if len(self.buf) < 0x3FFF:
                self.offsets[suffix] = len(self.buf)
            self.buf += bytes([len(labels[i])]) + labels[i]
        self.buf += b"\0"

    def rr(self, owner, rtype, rdata_fn):
        self.name(owner)
        self.buf += struct.pack(">HHI", rtype, 1, 60)
        at = len(self.buf)
        self.buf += b"\0\0"
        rdata_fn()
        struct.pack_into(">H", self.buf, at, len(self.buf) - at - 2)


class ChainDns(harness.LoopbackDns):
    """UDP DNS server on 127.0.0.1 answering from ZONE: name -> dict with
      chain       CNAME targets in order, each a str or a tuple of raw labels;
      a, aaaa     addresses of the last name in the chain;
      aaaa_chain  also put the chain in AAAA answers (as real servers do);
                  by default an AAAA answer is a bare NODATA.
    Other names get NXDOMAIN. Every query is recorded as (name, qtype)."""

    def __init__(self, zone):
        super().__init__()
        self.zone = {k.lower(): v for k, v in zone.items()}

    def answer(self, msg, q):
        labels, qname, qtype = q.labels, q.name, q.qtype
        w = _Writer(msg[:2] + b"\x85\x80" + struct.pack(">HHHH", 1, 0, 0, 0))
        w.buf += msg[12:q.end]
        w.offsets[labels] = 12
        spec = self.zone.get(qname)
        if spec is None:
            w.buf[3] = 0x83  # NXDOMAIN
            return bytes(w.buf)
        owner, count = labels, 0
        if qtype == 1 or spec.get("aaaa_chain"):
            for target in spec.get("chain", ()):
                t = labels_of(target)
                w.rr(owner, 5, lambda t=t: w.name(t))
                owner, count = t, count + 1
        if qtype == 1:
            for a in spec.get("a", ()):
                w.rr(owner, 1, lambda a=a: w.buf.extend(socket.inet_aton(a)))
                count += 1
        elif qtype == 28:
            for a in spec.get("aaaa", ()):
                w.rr(owner, 28, lambda a=a: w.buf.extend(socket.inet_pton(socket.AF_INET6, a)))
                count += 1
        struct.pack_into(">H", w.buf, 6, count)
        assert len(w.buf) <= 512, "answer for %s is %d bytes" % (qname, len(w.buf))
        return bytes(w.buf)

    def names_queried(self):
        with self.lock:
            return [q[0] for q in self.queries]


def links(prefix, n, last):
    """A chain of N links: prefix01.test, prefix02.test, ..., then LAST."""
    return ["%s%02d.test" % (prefix, i) for i in range(1, n)] + [last]


ZONE = {
    # Normalisation
    "upper.test": {"chain": ["DNL-01.GEO.KASPERSKY.COM"], "a": [LOOPBACK]},
    "upper-full.test": {"chain": ["DNL-01.GEO.KASPERSKY.COM"], "a": [LOOPBACK],
                        "aaaa_chain": True},
    "dot.test": {"chain": ["Dnl-01.Geo.Kaspersky.Com."], "a": [LOOPBACK]},
    "mixed.test": {"chain": ["Hop.Mixed.TEST.", "S07.Upd.Kaspersky.Com."], "a": [LOOPBACK]},
    "clean.test": {"chain": ["Allowed.Test."], "a": [LOOPBACK]},
    # Length
    "long12.test": {"chain": links("a", 12, UPDATES), "a": [LOOPBACK]},
    "long12-full.test": {"chain": links("b", 12, "S07.UPD.Kaspersky.com."), "a": [LOOPBACK],
                         "aaaa_chain": True},
    "deny16.test": {"chain": links("c", 16, UPDATES), "a": [LOOPBACK]},
    "ok16.test": {"chain": links("d", 16, "allowed.test"), "a": [LOOPBACK]},
    "ok17.test": {"chain": links("e", 17, "allowed.test"), "a": [LOOPBACK]},
    "long20.test": {"chain": links("f", 20, "allowed.test"), "a": [LOOPBACK]},
    # Targets that are not host names (c-ares passes these through)
    "slash.test": {"chain": ["a/b.test"], "a": [LOOPBACK]},
    "ipname.test": {"chain": ["1.2.3.4"], "a": [LOOPBACK]},
    "hyphen.test": {"chain": ["-x.test"], "a": [LOOPBACK]},
    "hexlabel.test": {"chain": ["a.0x7f"], "a": [LOOPBACK]},
    "root.test": {"chain": [()], "a": [LOOPBACK]},
    "badmid.test": {"chain": ["ok.test", "a/b.test", "allowed.test"], "a": [LOOPBACK]},
    # Several addresses: nothing listens on the first two (connection refused)
    "multi.test": {"a": ["127.0.0.2", "127.0.0.3", LOOPBACK]},
    # Addresses that embed internal IPv4 addresses
    "nat64.test": {"aaaa": ["64:ff9b::7f00:1"]},              # 127.0.0.1
    "nat64-meta.test": {"aaaa": ["64:ff9b::a9fe:a9fe"]},      # 169.254.169.254
    "nat64-ext.test": {"aaaa": ["64:ff9b::cb00:7101"]},       # 203.0.113.1: not internal
    "compat.test": {"aaaa": ["::7f00:1"]},                    # ::127.0.0.1
    "nat64-local.test": {"aaaa": ["64:ff9b:1:7f00:0:100::"]}, # /48 local-use, 127.0.0.1
    "siit.test": {"aaaa": ["::ffff:0:7f00:1"]},               # IPv4-translated 127.0.0.1
    "sixtofour.test": {"aaaa": ["2002:7f00:1::1"]},           # 6to4 of 127.0.0.1
    "compat-meta.test": {"aaaa": ["::a9fe:a9fe"]},
    "nat64-cname.test": {"chain": ["Target.Nat64.Test."], "aaaa": ["64:ff9b::7f00:1"],
                         "aaaa_chain": True},
}


def guard_vendor_file(workdir):
    """A vendor list denying the IPv6 forms by address (see the module doc)."""
    path = os.path.join(workdir, "v6guard.yaml")
    with open(path, "w") as f:
        f.write("vendor: v6guard\n"
                "name: IPv6 embedding guard\n"
                "reference: \"integration test\"\n"
                "categories:\n"
                "  embedded:\n"
                "    cutoff: 2020-01-01T00:00:00Z\n"
                "    networks:\n"
                "      - 64:ff9b::/96\n"
                "      - 64:ff9b:1::/48\n"
                "      - ::ffff:0:0/96\n"
                "      - 2002::/16\n"
                "      - ::/96\n")
    return path


# ---- the tests ---------------------------------------------------------------------------


class DnsAnswersCase(unittest.TestCase):
    """The DNS server, an origin on 127.0.0.1 and one embargo per class."""

    ALLOW_LOOPBACK = True
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embargo-dnsans-")
        cls.dns = cls.origin = cls.embargo = None
        try:
            cls.dns = ChainDns(ZONE).start()
            cls.origin = Origin().start()
            cls.vendors = ["builtin: kaspersky", "file: " + guard_vendor_file(cls.tmp)]
            cls.embargo = cls.new_embargo()
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def new_embargo(cls, **kw):
        kw.setdefault("vendors", cls.vendors)
        kw.setdefault("allow_loopback", cls.ALLOW_LOOPBACK)
        return Embargo(cls.tmp, make_config(**kw), cls.dns.port, now=NOW).start()

    @classmethod
    def _cleanup(cls):
        for obj in (cls.embargo, cls.origin, cls.dns):
            if obj is not None:
                try:
                    obj.stop()
                except Exception as e:  # keep cleaning up
                    sys.stderr.write("cleanup failed: %r\n" % (e,))
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.embargo is not None:
                try:
                    cls.embargo.check_clean_exit()
                except AssertionError:
                    sys.stderr.write(cls.embargo.diagnostics() + "\n")
                    raise
        finally:
            cls._cleanup()

    def setUp(self):
        self.origin.reset_counters()
        self.log_mark = self.embargo.test_mark = self.embargo.log_mark()

    def tearDown(self):
        self.assertEqual(self.dns.errors, [], "the DNS server could not answer a query")

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            if self.embargo is not None:
                sys.stderr.write("\n==== diagnostics for %s ====\n%s\n"
                                 % (self.id(), self.embargo.diagnostics()))
        return out

    # ---- helpers

    def url(self, host, path="/"):
        return "http://%s:%d%s" % (host, self.origin.port, path)

    def get(self, host, path="/"):
        return http_get(self.embargo.port, self.url(host, path))

    def record(self, host):
        """The decision log line for this test's request to HOST."""
        return self.embargo.wait_records(lambda x: x.get("host") == host)[-1]

    def assert_proxy_status(self, r, error):
        ps = r.header("Proxy-Status")
        self.assertIsNotNone(ps, "no Proxy-Status in %r" % (r,))
        self.assertTrue(ps.startswith("embargo; error=%s;" % error), ps)
        return ps

    def assert_nothing_dialled(self):
        self.origin.barrier()  # a connection made before it is counted by now
        self.assertEqual(self.origin.connections, 0, "the origin saw a connection")


class CnameChainTest(DnsAnswersCase):
    """Loopback destinations allowed (internal.allow: 127.0.0.0/8), so the
    chain is what is judged."""

    def assert_denied_on_cname(self, host, matched, cnames):
        r = self.get(host, "/u")
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.record(host)
        self.assertEqual((d["event"], d["status"]), ("deny", 403), d)
        self.assertEqual((d["matched_on"], d["matched"]), ("cname", matched), d)
        self.assertEqual((d["vendor"], d["category"]), ("kaspersky", "updates"), d)
        self.assertEqual(d["cnames"], cnames, d)
        self.assertEqual(d["addresses"], [LOOPBACK], d)
        self.assert_nothing_dialled()
        return d

    def assert_unusable(self, host):
        r = self.get(host, "/x")
        self.assertEqual(r.status, 502, r)
        ps = self.assert_proxy_status(r, "dns_error")
        self.assertIn(host, ps)
        self.assertIn(UNUSABLE, ps)
        d = self.record(host)
        self.assertEqual((d["event"], d["error"], d["status"]), ("error", "dns_error", 502), d)
        self.assertNotIn("cnames", d, "an unusable chain was logged as if judged")
        self.assert_nothing_dialled()
        self.assertIn(host, self.dns.names_queried())

    # -- normalisation

    def test_upper_case_cname_target_denied_and_logged_lower_case(self):
        self.assert_denied_on_cname("upper.test", DNL, [DNL])

    def test_upper_case_chain_also_in_the_aaaa_answer(self):
        # A real server repeats the chain in the AAAA (NODATA) answer: the
        # chain must still be one link, judged once.
        self.assert_denied_on_cname("upper-full.test", DNL, [DNL])

    def test_mixed_case_absolute_target_denied(self):
        self.assert_denied_on_cname("dot.test", DNL, [DNL])

    def test_mixed_case_two_step_chain_denied_in_order(self):
        self.assert_denied_on_cname("mixed.test", UPDATES, ["hop.mixed.test", UPDATES])

    def test_each_resolved_address_is_tried_in_turn(self):
        # The answer lists two addresses where nothing listens before the
        # origin's; the request still succeeds, on the third address.
        r = self.get("multi.test", "/m")
        self.assertEqual((r.status, r.body), (200, b"ok /m\n"), r)
        self.assertEqual(self.origin.connections, 1)
        for dead in ("127.0.0.2", "127.0.0.3"):
            self.embargo.wait_stderr(re.compile(r"connect to multi\.test:%d \(%s\) failed"
                                                % (self.origin.port, re.escape(dead))))

    def test_mixed_case_alias_of_allowed_name_is_served(self):
        r = self.get("clean.test", "/c")
        self.assertEqual((r.status, r.body), (200, b"ok /c\n"), r)
        self.assertEqual(self.origin.connections, 1)
        self.embargo.log_barrier()
        self.assertEqual([x for x in self.embargo.records(since=self.log_mark)
                          if x.get("host") == "clean.test"], [])

    # -- length

    def test_twelve_link_chain_judged_whole(self):
        d = self.assert_denied_on_cname("long12.test", UPDATES, links("a", 12, UPDATES))
        self.assertEqual(len(d["cnames"]), 12)

    def test_twelve_link_chain_repeated_in_aaaa_answer_judged_whole(self):
        self.assert_denied_on_cname("long12-full.test", UPDATES, links("b", 12, UPDATES))

    def test_sixteen_links_are_judged(self):
        self.assert_denied_on_cname("deny16.test", UPDATES, links("c", 16, UPDATES))
        r = self.get("ok16.test", "/16")
        self.assertEqual((r.status, r.body), (200, b"ok /16\n"), r)

    def test_seventeen_links_refused(self):
        self.assert_unusable("ok17.test")

    def test_twenty_link_chain_refused_as_dns_error(self):
        self.assert_unusable("long20.test")
        # A second request is refused the same way (from the cache or not).
        r = self.get("long20.test", "/again")
        self.assertEqual(r.status, 502, r)
        self.assertIn(UNUSABLE, self.assert_proxy_status(r, "dns_error"))
        self.assert_nothing_dialled()

    def test_connect_through_a_twenty_link_chain_refused(self):
        with harness.RawClient(self.embargo.port) as c:
            c.send(b"CONNECT long20.test:443 HTTP/1.1\r\nHost: long20.test:443\r\n\r\n")
            r = c.read_response("CONNECT")
        self.assertEqual(r.status, 502, r)
        self.assertIn(UNUSABLE, self.assert_proxy_status(r, "dns_error"))

    # -- targets that are not host names

    def test_cname_target_not_a_host_name_refused(self):
        for host in ("slash.test", "ipname.test", "hyphen.test", "hexlabel.test", "root.test",
                     "badmid.test"):
            with self.subTest(host=host):
                self.origin.reset_counters()
                self.assert_unusable(host)

    # -- the IPv6 forms are refused even where IPv4 loopback is allowed

    def test_loopback_allow_does_not_cover_nat64_or_compatible_forms(self):
        self.assertIn("127.0.0.0/8", self.embargo.config_text)
        for host in ("nat64.test", "compat.test"):
            with self.subTest(host=host):
                r = self.get(host, "/v6")
                self.assertEqual(r.status, 403, r)
                self.assert_proxy_status(r, "destination_ip_prohibited")
                d = self.record(host)
                self.assertEqual((d["event"], d["error"]), ("error", "destination_ip_prohibited"),
                                 d)

    # -- embargo check

    def _check(self, *dests):
        return harness.embargo_check(self.dns.port, dests, ("--now", NOW))

    def test_check_denies_upper_case_cname(self):
        rc, out, err = self._check("upper.test")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("upper.test:443: DENY", out)
        self.assertRegex(out, r"chain:\s+-> dnl-01\.geo\.kaspersky\.com\n")
        self.assertIn("matched:   dnl-01.geo.kaspersky.com (cname)", out)
        self.assertNotIn("DNL-01", out)

    def test_check_shows_twelve_link_chain_and_refuses_twenty(self):
        rc, out, err = self._check("long12.test", "long20.test", "slash.test")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("long12.test:443: DENY", out)
        self.assertIn("chain:     -> " + " -> ".join(links("a", 12, UPDATES)) + "\n", out)
        self.assertIn("matched:   %s (cname)" % UPDATES, out)
        for host in ("long20.test", "slash.test"):
            block = out.split(host + ":443:", 1)[1].split("\n", 2)[1]
            self.assertIn("resolved:  failed (%s)" % UNUSABLE, block, out)


class InternalV6Test(DnsAnswersCase):
    """The default internal ranges: no internal.allow at all."""

    ALLOW_LOOPBACK = False

    def setUp(self):
        super().setUp()
        self.assertNotIn("internal:", self.embargo.config_text)

    def assert_internal(self, host, url=None, shown=None):
        r = http_get(self.embargo.port, url or self.url(host, "/in"))
        self.assertEqual(r.status, 403, r)
        ps = self.assert_proxy_status(r, "destination_ip_prohibited")
        if shown:
            self.assertIn(shown, ps)
        d = self.record(host)
        self.assertEqual((d["event"], d["error"], d["status"]),
                         ("error", "destination_ip_prohibited", 403), d)
        self.assertNotEqual(d.get("vendor"), "v6guard", d)
        self.assert_nothing_dialled()

    def test_nat64_of_loopback_refused(self):
        self.assert_internal("nat64.test", shown="64:ff9b::7f00:1")

    def test_nat64_of_metadata_address_refused(self):
        self.assert_internal("nat64-meta.test", shown="64:ff9b::a9fe:a9fe")

    def test_nat64_behind_a_cname_refused(self):
        self.assert_internal("nat64-cname.test", shown="64:ff9b::7f00:1")

    def test_ipv4_compatible_loopback_refused(self):
        self.assert_internal("compat.test")

    def test_ipv4_compatible_metadata_address_refused(self):
        self.assert_internal("compat-meta.test")

    def test_local_use_nat64_of_loopback_refused(self):
        self.assert_internal("nat64-local.test")

    def test_ipv4_translated_loopback_refused(self):
        self.assert_internal("siit.test")

    def test_6to4_of_loopback_refused(self):
        self.assert_internal("sixtofour.test")

    def test_literals_refused_without_resolving(self):
        # A literal is judged by address before the internal check, so the
        # guard list would answer first: these go to an embargo without it.
        # Gate: only a build that refuses the resolved forms as internal
        # (the same check) is sent literals, so that none is ever dialled.
        for host in ("nat64.test", "compat.test"):
            r = self.get(host, "/gate")
            ps = r.header("Proxy-Status") or ""
            if r.status != 403 or "error=destination_ip_prohibited" not in ps:
                self.fail("%s is not refused as internal (%s %s); not sending literals"
                          % (host, r.status, ps))
        e = self.new_embargo(vendors=["builtin: kaspersky"])
        self.addCleanup(e.check_clean_exit)
        before = len(self.dns.names_queried())
        for lit in ("64:ff9b::7f00:1", "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "::7f00:1",
                    "::127.0.0.1"):
            with self.subTest(literal=lit):
                url = "http://[%s]:%d/lit" % (lit, self.origin.port)
                r = http_get(e.port, url)
                self.assertEqual(r.status, 403, r)
                self.assert_proxy_status(r, "destination_ip_prohibited")
        recs = e.wait_records(lambda x: x.get("event") is not None, count=5)
        self.assertEqual(len(recs), 5, recs)
        for d in recs:
            self.assertEqual((d["event"], d["error"]), ("error", "destination_ip_prohibited"), d)
        self.assert_nothing_dialled()
        self.assertEqual(len(self.dns.names_queried()), before, "an IP literal was resolved")

    def test_nat64_of_external_address_is_not_internal(self):
        # Not refused as internal; the guard list denies it by address, so
        # nothing is dialled here either.
        r = self.get("nat64-ext.test", "/ext")
        self.assertEqual(r.status, 403, r)
        self.assert_proxy_status(r, "http_request_denied")
        d = self.record("nat64-ext.test")
        self.assertEqual((d["event"], d["matched_on"], d["vendor"]),
                         ("deny", "address", "v6guard"), d)
        self.assertEqual(d["addresses"], ["64:ff9b::cb00:7101"], d)
        self.assert_nothing_dialled()


if __name__ == "__main__":
    harness.main()
