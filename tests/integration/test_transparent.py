"""Transparent interception in a network built of namespaces, with the real
kernel: a client namespace routes through an egress namespace (a router
running the real embargo behind the rules `embargo rules` prints, loaded
with nft) to an origin namespace (HTTP on 80, HTTPS on 443, dnsmasq). The
client talks to the origin's address directly, never to a proxy; the
egress redirects TCP 80/443 to an intercept listener (NAT REDIRECT) in one
class and to a tproxy listener (TPROXY) in the other, over IPv4 and IPv6.

Checked: allowed names download 50 MB byte-identical over HTTP and HTTPS;
a Kaspersky update name gets the TLS alert over HTTPS and the 403 over HTTP,
and the origin sees no connection for any deny; an address in a vendor
network with no name is judged on the address; two Host values on one
kept-alive connection are each judged; a claimed name that does not
resolve to the original destination is logged as dst_mismatch and still
dialled to the original destination only; Embargo's own connections reach
the origin from the egress address exactly once (not intercepted again);
a transparent listener reached directly is refused. With an IPv4
listener only, the rules (nft, and iptables-restore/ip6tables-restore
input) reject IPv6 TCP 80/443: a banned Host or SNI over IPv6 is refused
before it reaches the origin, while IPv4 is judged as ever.
Sidecar rules with `mark:` set (nft and iptables, loaded into the egress
as into a pod) exempt Embargo by its mark, not by uid: a process running
as uid 10001 is redirected and judged, and Embargo's own dials reach the
origin once.

Needs root (network namespaces, veth, nftables). Reported skipped, with
the reason, where the machine cannot build the network.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import SANITIZER_MARKERS, wait_until

V4 = {"client": "10.203.1.2", "egress_c": "10.203.1.1", "egress_o": "10.203.2.1",
      "origin": "10.203.2.2", "vendor": "10.203.66.10", "nowhere": "10.203.2.99"}
V6 = {"client": "fd00:203:1::2", "egress_c": "fd00:203:1::1", "egress_o": "fd00:203:2::1",
      "origin": "fd00:203:2::2", "vendor": "fd00:203:66::10", "nowhere": "fd00:203:2::99"}
BIG = 50 * 1000 * 1000
UPDATES = "s07.upd.kaspersky.com"

VENDOR_LIST = """vendor: testnet
name: Test vendor network
reference: "integration test"
categories:
  updates:
    cutoff: 2020-01-01T00:00:00Z
    networks:
      - 10.203.66.0/24
      - fd00:203:66::/64
"""


def run(cmd, check=True, timeout=30, **kw):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def skip_reason():
    if os.geteuid() != 0:
        return "needs root for network namespaces and nftables"
    for tool in ("ip", "nft", "curl", "openssl", harness.DNSMASQ):
        if shutil.which(tool) is None and not os.access(tool, os.X_OK):
            return "%s not installed" % tool
    name = "embt-probe-%d" % os.getpid()
    p = subprocess.run(["ip", "netns", "add", name], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        return "cannot create a network namespace: %s" % p.stderr.decode().strip()
    subprocess.run(["ip", "netns", "del", name], timeout=10)
    return None


class Net:
    """Three namespaces joined by two veth pairs; everything made here is
    removed by close()."""

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.c, self.e, self.o = "embt-c-" + tag, "embt-e-" + tag, "embt-o-" + tag
        self.links = ("ec" + tag, "ce" + tag, "eo" + tag, "oe" + tag)
        self.made = []

    def ns(self, name, *cmd, check=True, timeout=30):
        return run(["ip", "netns", "exec", name] + list(cmd), check=check, timeout=timeout)

    def build(self):
        ec, ce, eo, oe = self.links
        for n in (self.c, self.e, self.o):
            run(["ip", "netns", "add", n])
            self.made.append(n)
            self.ns(n, "ip", "link", "set", "lo", "up")
        run(["ip", "link", "add", ce, "netns", self.c, "type", "veth", "peer", "name", ec,
             "netns", self.e])
        run(["ip", "link", "add", oe, "netns", self.o, "type", "veth", "peer", "name", eo,
             "netns", self.e])
        plan = ((self.c, ce, [V4["client"] + "/24"], [V6["client"] + "/64"]),
                (self.e, ec, [V4["egress_c"] + "/24"], [V6["egress_c"] + "/64"]),
                (self.e, eo, [V4["egress_o"] + "/24"], [V6["egress_o"] + "/64"]),
                (self.o, oe, [V4["origin"] + "/24", V4["vendor"] + "/24"],
                 [V6["origin"] + "/64", V6["vendor"] + "/64"]))
        for n, dev, v4s, v6s in plan:
            for a in v4s:
                self.ns(n, "ip", "addr", "add", a, "dev", dev)
            for a in v6s:
                self.ns(n, "ip", "-6", "addr", "add", a, "dev", dev, "nodad")
            self.ns(n, "ip", "link", "set", dev, "up")
        self.ns(self.c, "ip", "route", "add", "default", "via", V4["egress_c"])
        self.ns(self.c, "ip", "-6", "route", "add", "default", "via", V6["egress_c"])
        self.ns(self.o, "ip", "route", "add", "default", "via", V4["egress_o"])
        self.ns(self.o, "ip", "-6", "route", "add", "default", "via", V6["egress_o"])
        self.ns(self.e, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1")
        return self

    def pids(self):
        """PIDs of processes still inside the namespaces made here."""
        out = []
        for n in self.made:
            p = subprocess.run(["ip", "netns", "pids", n], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
            out += [int(x) for x in p.stdout.split()]
        return out

    def close(self):
        """Removes the namespaces; a process left inside one (started there
        by this test, and not stopped by its own PID) is killed first, so
        that nothing outlives the network it was part of."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for n in reversed(self.made):
            subprocess.run(["ip", "netns", "del", n], timeout=30)
        self.made = []


class Proc:
    """A process started in a namespace, ended by its own PID."""

    def __init__(self, net, ns, args, workdir, name):
        self.out = os.path.join(workdir, name + ".out")
        self.err_path = os.path.join(workdir, name + ".err")
        self._o = open(self.out, "wb")
        self._e = open(self.err_path, "wb")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdin=subprocess.DEVNULL,
                                  stdout=self._o, stderr=self._e, env=env,
                                  preexec_fn=harness.tied_to_parent)

    def text(self):
        return harness.read_text(self.out)

    def stderr(self):
        return harness.read_text(self.err_path)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self._o.close()
        self._e.close()
        return self.p.returncode


class Rig(unittest.TestCase):
    """The network of namespaces, the origin, dnsmasq and embargo on the
    egress behind the rules `embargo rules` prints; no tests of its own."""

    MODE = None  # "intercept" or "tproxy"
    PORT = None
    LISTEN = ("0.0.0.0", "[::]")  # the transparent listeners' addresses
    CLIENTS = "10.203.1.0/24, \"fd00:203:1::/64\""
    EXTRA_CONFIG = ""
    FORMAT = "nft"  # or "iptables"
    RULES_ARGS = ()  # more `embargo rules` arguments
    DNS_RECORDS = ()  # more (name, IPv4, IPv6) records the origin's dnsmasq answers

    @classmethod
    def setUpClass(cls):
        """Builds the network and starts the origin, dnsmasq and embargo in
        it. What is undone is registered as class cleanups before anything
        is made, so a set-up that fails part way (a peer that does not
        start in time) leaves nothing running: unittest runs class cleanups
        when setUpClass raises, and after tearDownClass."""
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="embargo-netns-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.procs = []
        cls.embargo = None
        cls.net = Net()
        cls.addClassCleanup(cls.net.close)
        cls.addClassCleanup(cls._stop_procs)
        cls._setup()

    @classmethod
    def _setup(cls):
        cls.net.build()
        cls.cert, cls.key = harness.make_cert(cls.tmp, "allowed.test")
        cls.origin_log = os.path.join(cls.tmp, "origin.jsonl")
        here = os.path.dirname(os.path.abspath(__file__))
        cls.origin = cls.start(cls.net.o, [sys.executable, os.path.join(here, "netns_origin.py"),
                                           cls.origin_log, cls.cert, cls.key], "origin")
        dns = [harness.DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", "--bind-interfaces", "--listen-address=" + V4["origin"],
               "--port=53", "--pid-file=", "--cache-size=0", "--user=root"]
        for name, v4, v6 in (("allowed.test", V4["origin"], V6["origin"]),
                             (UPDATES, V4["origin"], V6["origin"]),
                             ("elsewhere.test", V4["nowhere"], V6["nowhere"])) + cls.DNS_RECORDS:
            dns.append("--host-record=%s,%s,%s" % (name, v4, v6))
        cls.dns = cls.start(cls.net.o, dns, "dnsmasq")
        wait_until(lambda: os.path.exists(cls.origin_log) or "ready" in cls.origin.text(), 10,
                   what="the origin to start")
        vendors = os.path.join(cls.tmp, "testnet.yaml")
        with open(vendors, "w") as f:
            f.write(VENDOR_LIST)
        cls.config = os.path.join(cls.tmp, "embargo.yaml")
        with open(cls.config, "w") as f:
            f.write("listen:\n" +
                    "".join("  - {address: \"%s:%d\", mode: %s}\n" % (a, cls.PORT, cls.MODE)
                            for a in cls.LISTEN) +
                    "resolvers: [\"%s:53\"]\n"
                    "clients: [%s]\n"
                    "access_log: true\n"
                    "vendors:\n  - builtin: kaspersky\n  - file: testnet.yaml\n"
                    % (V4["origin"], cls.CLIENTS) + cls.EXTRA_CONFIG)
        cls.log = os.path.join(cls.tmp, "decisions.jsonl")
        cls.embargo = cls.start(cls.net.e, [harness.BINARY, "run", "--config", cls.config,
                                            "--log", cls.log], "embargo")
        wait_until(lambda: cls.embargo.stderr().count("listening on") >= len(cls.LISTEN) or
                   cls.embargo.p.poll() is not None, harness.STARTUP_TIMEOUT,
                   what="embargo to listen")
        if cls.embargo.p.poll() is not None:
            raise AssertionError("embargo exited:\n" + cls.embargo.stderr())
        cls.load_rules()

    @classmethod
    def load_rules(cls):
        """Loads what `embargo rules` prints for FORMAT (nft; iptables: the
        IPv4 and the IPv6 rules, with iptables-restore and ip6tables-restore)
        into the egress, and runs the policy routing the rules ask for."""
        args = [harness.BINARY, "rules", "--config", cls.config, "--format", cls.FORMAT,
                "--mode", cls.MODE] + list(cls.RULES_ARGS)
        loads = [("nft", [])]
        if cls.FORMAT == "iptables":
            for tool in ("iptables-restore", "ip6tables-restore"):
                if shutil.which(tool) is None:
                    raise unittest.SkipTest("%s not installed" % tool)
            loads = [("iptables-restore", []), ("ip6tables-restore", ["--ipv6"])]
        cls.rules_text = cls.rules_stderr = ""
        for tool, extra in loads:
            p = run(args + extra)
            text = p.stdout.decode()
            path = os.path.join(cls.tmp, tool + ".rules")
            with open(path, "w") as f:
                f.write(text)
            if tool == "nft":
                cls.net.ns(cls.net.e, "nft", "-f", path)
            else:
                with open(path, "rb") as f:
                    subprocess.run(["ip", "netns", "exec", cls.net.e, tool], stdin=f, check=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            for line in text.splitlines():  # the policy routing the file asks for
                if line.startswith("#   ip "):
                    cls.net.ns(cls.net.e, *line[4:].split())
            cls.rules_text += text
            cls.rules_stderr += p.stderr.decode()

    @classmethod
    def start(cls, ns, args, name):
        p = Proc(cls.net, ns, args, cls.tmp, name)
        cls.procs.append(p)
        return p

    @classmethod
    def _stop_procs(cls):
        for p in reversed(cls.procs):
            p.stop()

    @classmethod
    def tearDownClass(cls):
        """Checks that embargo exits cleanly; the class cleanups then stop
        the rest and remove the network."""
        rc = cls.embargo.stop()
        err = cls.embargo.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("embargo stderr has %r:\n%s" % (m, err[-5000:]))
        if rc != 0:
            raise AssertionError("embargo exited %s:\n%s" % (rc, err[-5000:]))

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            sys.stderr.write("\n==== embargo stderr ====\n%s\n==== decision log ====\n%s\n"
                             % (self.embargo.stderr()[-4000:], harness.read_text(self.log)[-4000:]))
        return out

    # ---- helpers

    def setUp(self):
        self.log_mark = harness.log_mark()
        self.origin_mark = len(self.origin_records())

    def records(self):
        """Complete decision lines (the last may still be being written)."""
        return [json.loads(l) for l in harness.read_text(self.log).split("\n")[:-1] if l.strip()]

    def new_records(self):
        """Lines made during this test (they reach the file shortly after
        their response: wait_log polls)."""
        return [r for r in self.records() if r.get("time", "") >= self.log_mark]

    def origin_records(self):
        return [json.loads(l) for l in harness.read_text(self.origin_log).splitlines()
                if l.strip()]

    def origin_new(self):
        return self.origin_records()[self.origin_mark:]

    def curl(self, *args, timeout=120):
        return self.net.ns(self.net.c, harness.CURL, "-sS", "--noproxy", "*",
                           "--max-time", str(timeout - 10), *args, check=False, timeout=timeout)

    def assert_origin_untouched(self, fam, *ports):
        """Positive barrier for "the origin saw no connection": a request
        straight from the egress namespace (not through Embargo, which may
        hold a pooled connection) to each of PORTS, whose accepting socket
        takes connections in the order they arrived; the origin must then
        have accepted those barrier connections only since this test's
        start."""
        host = fam["origin"] if fam is V4 else "[%s]" % fam["origin"]
        for port in ports:
            scheme = "https" if port == 443 else "http"
            p = self.net.ns(self.net.e, harness.CURL, "-sS", "--noproxy", "*", "--max-time", "20",
                            "-k", "--resolve", "allowed.test:%d:%s" % (port, host),
                            "%s://allowed.test/barrier-%d" % (scheme, port), check=False)
            self.assertEqual(p.stdout, b"ok allowed.test /barrier-%d\n" % port, p.stderr)
        new = self.origin_new()
        self.assertEqual([(r["port"], r["peer"]) for r in new if r.get("accepted")],
                         [(port, fam["egress_o"]) for port in ports],
                         "the origin saw a denied connection: %r" % new)

    def wait_log(self, pred, what):
        return wait_until(lambda: [r for r in self.new_records() if pred(r)], 10, what=what)

    def fetch_big(self, scheme, fam):
        addr = fam["origin"]
        port = 443 if scheme == "https" else 80
        url = "%s://allowed.test/big?size=%d" % (scheme, BIG)
        resolve = "allowed.test:%d:%s" % (port, addr if ":" not in addr else "[%s]" % addr)
        out = os.path.join(self.tmp, "big.out")
        p = self.curl("--resolve", resolve, "--cacert", self.cert, "-o", out, url)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        os.unlink(out)
        self.assertEqual(h.hexdigest(), harness.pattern_sha256(BIG, 7), "bytes differ")
        # One connection reached the origin, from the egress (Embargo's own,
        # not intercepted a second time), for this one request.
        conns = [r for r in self.origin_new() if r.get("accepted")]
        self.assertEqual([(r["peer"], r["port"]) for r in conns], [(fam["egress_o"], port)], conns)
        d = self.wait_log(lambda r: r.get("host") == "allowed.test", "an access line")[-1]
        self.assertEqual(d["mode"], self.MODE, d)
        self.assertEqual(d["original_dst"], "%s:%d" % (addr if ":" not in addr else "[%s]" % addr,
                                                        port), d)


class TransparentBase(Rig):
    """Both families, judged in MODE."""

    # ---- the tests

    def test_allowed_http_v4_50mb_byte_identical(self):
        self.fetch_big("http", V4)

    def test_allowed_https_v4_50mb_byte_identical(self):
        self.fetch_big("https", V4)

    def test_allowed_http_v6_50mb_byte_identical(self):
        self.fetch_big("http", V6)

    def test_allowed_https_v6_50mb_byte_identical(self):
        self.fetch_big("https", V6)

    def assert_https_alert(self, fam):
        resolve = "%s:443:%s" % (UPDATES, fam["origin"] if fam is V4 else "[%s]" % fam["origin"])
        p = self.curl("--resolve", resolve, "-k", "https://%s/bases/" % UPDATES, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("alert access denied", p.stderr.decode().lower())
        d = self.wait_log(lambda r: r.get("event") == "deny", "a deny line")[-1]
        self.assertEqual((d["matched_on"], d["matched"], d["mode"]), ("sni", UPDATES, self.MODE), d)
        self.assertEqual(d["error"], "tls_alert_access_denied", d)
        self.assert_origin_untouched(fam, 443)

    def test_update_server_over_https_gets_alert_v4(self):
        self.assert_https_alert(V4)

    def test_update_server_over_https_gets_alert_v6(self):
        self.assert_https_alert(V6)

    def assert_http_403(self, fam):
        resolve = "%s:80:%s" % (UPDATES, fam["origin"] if fam is V4 else "[%s]" % fam["origin"])
        p = self.curl("--resolve", resolve, "-i", "http://%s/bases/av.dat" % UPDATES, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        head = p.stdout.decode("latin-1")
        self.assertTrue(head.startswith("HTTP/1.1 403"), head[:300])
        self.assertIn("Proxy-Status: embargo; error=http_request_denied", head)
        d = self.wait_log(lambda r: r.get("event") == "deny", "a deny line")[-1]
        self.assertEqual((d["matched_on"], d["host"], d["mode"]), ("host", UPDATES, self.MODE), d)
        self.assert_origin_untouched(fam, 80)

    def test_update_server_over_http_gets_403_v4(self):
        self.assert_http_403(V4)

    def test_update_server_over_http_gets_403_v6(self):
        self.assert_http_403(V6)

    def test_vendor_network_address_without_name_judged_on_address(self):
        # HTTPS without SNI straight to an address in a vendor network.
        p = self.net.ns(self.net.c, "openssl", "s_client", "-connect", "%s:443" % V4["vendor"],
                        "-noservername", check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        d = self.wait_log(lambda r: r.get("event") == "deny", "a deny line")[-1]
        self.assertEqual((d["matched_on"], d["matched"], d["vendor"]),
                         ("address", V4["vendor"], "testnet"), d)
        self.assertEqual(d["original_dst"], "%s:443" % V4["vendor"], d)
        # Plain HTTP to the bare address: 403.
        p = self.curl("-i", "http://%s/" % V4["vendor"], timeout=30)
        self.assertTrue(p.stdout.startswith(b"HTTP/1.1 403"), p.stdout[:200])
        self.assert_origin_untouched(V4, 443, 80)

    def test_two_hosts_on_one_kept_alive_connection_each_judged(self):
        script = ("import socket,sys\n"
                  "s=socket.create_connection(('%s',80),timeout=20)\n"
                  "s.sendall(b'GET /one HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n')\n"
                  "d=b''\n"
                  "while b'ok allowed.test /one' not in d: d+=s.recv(65536)\n"
                  "s.sendall(b'GET /two HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n')\n"
                  "while b'Embargo denied' not in d: d+=s.recv(65536)\n"
                  "sys.stdout.write(d.decode('latin-1'))\n" % (V4["origin"], UPDATES))
        p = self.net.ns(self.net.c, sys.executable, "-c", script, check=False, timeout=40)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("HTTP/1.1 403", out)
        self.assertLess(out.index("HTTP/1.1 200"), out.index("HTTP/1.1 403"))
        paths = [r["path"] for r in self.origin_new() if "path" in r]
        self.assertEqual(paths, ["/one"])
        self.wait_log(lambda r: r.get("event") == "deny" and r.get("host") == UPDATES, "deny")

    def test_claimed_name_elsewhere_logged_as_mismatch_and_dialled_to_original(self):
        p = self.curl("--resolve", "elsewhere.test:80:%s" % V4["origin"],
                      "http://elsewhere.test/m", timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout, b"ok elsewhere.test /m\n")
        d = self.wait_log(lambda r: r.get("host") == "elsewhere.test", "a mismatch line")[-1]
        self.assertIn("dst_mismatch", d.get("tags", []), d)
        self.assertEqual(d["event"], "log", d)
        self.assertEqual(d["detail"], "transparent.on_dst_mismatch", d)
        self.assertEqual(d["addresses"], [V4["origin"]], d)

    def test_listener_reached_directly_is_refused(self):
        p = self.curl("-i", "http://%s:%d/" % (V4["egress_c"], self.PORT), timeout=20)
        self.assertNotIn(b"HTTP/1.1 200", p.stdout)
        wait_until(lambda: "directly" in self.embargo.stderr(), 10,
                   what="a log line about the direct connection")
        self.assertEqual(self.origin_new(), [])


class InterceptTest(TransparentBase):
    MODE = "intercept"
    PORT = 3129


class TproxyTest(TransparentBase):
    MODE = "tproxy"
    PORT = 3130


del TransparentBase  # only its two modes run


class OneFamilyBase(Rig):
    """Only an IPv4 transparent listener: the rules `embargo rules` prints
    (FORMAT nft, or iptables-restore and ip6tables-restore input) reject
    IPv6 TCP 80/443, which nothing would judge, so a banned Host or SNI
    over IPv6 never reaches the origin; IPv4 is judged as ever."""

    LISTEN = ("0.0.0.0",)
    barriers = 0

    def barrier(self):
        """An allowed request over IPv4, through Embargo to the origin: once
        the origin has it and its line is in the log, what was sent before it
        has arrived or never will."""
        type(self).barriers += 1
        path = "/barrier-%d" % type(self).barriers
        p = self.curl("--resolve", "allowed.test:80:%s" % V4["origin"], "-A", path,
                      "http://allowed.test%s" % path, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (0, b"ok allowed.test %s\n" % path.encode()),
                         p.stderr.decode())
        got = wait_until(lambda: [r for r in self.origin_new() if r.get("path") == path], 10,
                         what="the barrier request at the origin")
        self.assertEqual(got[0]["peer"], V4["egress_o"], got)  # Embargo's own dial
        self.wait_log(lambda r: r.get("user_agent") == path, "the barrier's access line")

    def assert_origin_saw_no_ipv6(self):
        self.barrier()
        seen = [r for r in self.origin_new() if ":" in r.get("peer", "")]
        self.assertEqual(seen, [], "an IPv6 connection reached the origin")

    def assert_rejected_over_ipv6(self, scheme):
        port = 443 if scheme == "https" else 80
        p = self.curl("--resolve", "%s:%d:[%s]" % (UPDATES, port, V6["origin"]), "-k", "-i",
                      "%s://%s/bases/" % (scheme, UPDATES), timeout=30)
        # 7: could not connect (the SYN was answered with a reset).
        self.assertEqual(p.returncode, 7, "not refused: rc %d\n%s\n%s"
                         % (p.returncode, p.stderr.decode(), p.stdout[:300]))
        self.assert_origin_saw_no_ipv6()
        self.assertEqual([r for r in self.new_records() if r.get("client", "").startswith("[")], [],
                         "an IPv6 client reached Embargo without a listener")

    def test_banned_host_over_ipv6_is_rejected_before_the_origin(self):
        self.assert_rejected_over_ipv6("http")

    def test_banned_sni_over_ipv6_is_rejected_before_the_origin(self):
        self.assert_rejected_over_ipv6("https")

    def test_ipv4_still_judged(self):
        p = self.curl("--resolve", "%s:80:%s" % (UPDATES, V4["origin"]), "-i",
                      "http://%s/bases/av.dat" % UPDATES, timeout=30)
        self.assertTrue(p.stdout.startswith(b"HTTP/1.1 403"), p.stdout[:300])
        self.wait_log(lambda r: r.get("event") == "deny" and r.get("matched_on") == "host" and
                      r.get("mode") == self.MODE, "a deny line on the Host")
        p = self.curl("--resolve", "%s:443:%s" % (UPDATES, V4["origin"]), "-k",
                      "https://%s/bases/" % UPDATES, timeout=30)
        self.assertIn("alert access denied", p.stderr.decode().lower())
        self.wait_log(lambda r: r.get("event") == "deny" and r.get("matched_on") == "sni" and
                      r.get("mode") == self.MODE, "a deny line on the SNI")
        self.barrier()
        self.assertEqual([r for r in self.origin_new() if "barrier" not in r.get("path", "")
                          and not r.get("accepted")], [], "the origin saw a denied request")

    def test_rules_say_why_ipv6_is_rejected(self):
        self.assertIn("no IPv6 address: IPv6 TCP 80/443 is rejected", self.rules_text)
        self.assertNotIn("ip -6 rule", self.rules_text)
        self.assertNotIn("tproxy ip6", self.rules_text)


class InterceptIPv4OnlyTest(OneFamilyBase):
    MODE = "intercept"
    PORT = 3129


class TproxyIPv4OnlyTest(OneFamilyBase):
    MODE = "tproxy"
    PORT = 3130


class InterceptIPv4OnlyIptablesTest(OneFamilyBase):
    MODE = "intercept"
    PORT = 3129
    FORMAT = "iptables"


class TproxyIPv4OnlyIptablesTest(OneFamilyBase):
    MODE = "tproxy"
    PORT = 3130
    FORMAT = "iptables"


del OneFamilyBase


class SidecarMarkBase(Rig):
    """`embargo rules --sidecar` with `mark:` set, loaded into the egress as
    into a pod (the output chain), given --uid 10001 as the shipped sidecar
    does: Embargo's own connections are exempt by their mark, so a process
    running as uid 10001 is redirected and judged like any other, while
    Embargo's own marked dials reach the origin once, not looped back. Embargo
    stays root here (`user: root`) so that setting its mark needs nothing
    more."""

    MODE = "intercept"
    PORT = 3129
    MARK = 0x20
    CLIENTS = "10.203.2.0/24, \"fd00:203:2::/64\""  # the egress's own addresses
    EXTRA_CONFIG = "mark: %d\nuser: root\n" % MARK
    RULES_ARGS = ("--sidecar", "--uid", "10001")
    requests = 0

    @classmethod
    def _setup(cls):
        if shutil.which("setpriv") is None:
            raise unittest.SkipTest("setpriv (util-linux) not installed")
        super()._setup()

    def as_uid(self, *args):
        """ARGS run in the egress as uid and gid 10001, no other groups."""
        return self.net.ns(self.net.e, "setpriv", "--reuid", "10001", "--regid", "10001",
                           "--clear-groups", harness.CURL, "-sS", "--noproxy", "*",
                           "--max-time", "20", *args, check=False, timeout=30)

    def agent(self):
        type(self).requests += 1
        return "uid-10001-%d" % type(self).requests

    def test_rules_exempt_by_mark_not_by_uid(self):
        self.assertNotIn("skuid", self.rules_text)
        self.assertNotIn("uid-owner", self.rules_text)
        own = ("meta mark != 0x%x" if self.FORMAT == "nft" else "-m mark ! --mark 0x%x") % self.MARK
        self.assertIn(own, self.rules_text)
        self.assertIn("exempt by their mark 0x%x" % self.MARK, self.rules_text)
        self.assertIn("--uid 10001 is not used: `mark:` is set", self.rules_stderr)

    def test_banned_host_from_uid_10001_is_judged(self):
        for fam in (V4, V6):
            agent = self.agent()
            addr = fam["origin"] if fam is V4 else "[%s]" % fam["origin"]
            p = self.as_uid("-i", "-A", agent, "--resolve", "%s:80:%s" % (UPDATES, addr),
                            "http://%s/bases/av.dat" % UPDATES)
            self.assertTrue(p.stdout.startswith(b"HTTP/1.1 403"), (p.stdout[:300], p.stderr))
            self.assertIn(b"Proxy-Status: embargo; error=http_request_denied", p.stdout)
            d = self.wait_log(lambda r: r.get("user_agent") == agent, "the deny line")[-1]
            self.assertEqual((d["event"], d["mode"], d["original_dst"]),
                             ("deny", "intercept", "%s:80" % addr), d)

    def test_banned_sni_from_uid_10001_gets_the_alert(self):
        p = self.as_uid("-k", "--resolve", "%s:443:%s" % (UPDATES, V4["origin"]),
                        "https://%s/bases/" % UPDATES)
        self.assertIn("alert access denied", p.stderr.decode().lower())
        self.wait_log(lambda r: r.get("event") == "deny" and r.get("matched_on") == "sni",
                      "a deny line on the SNI")

    def test_embargos_own_marked_dial_reaches_the_origin_once(self):
        for fam in (V4, V6):
            agent = self.agent()
            addr = fam["origin"] if fam is V4 else "[%s]" % fam["origin"]
            path = "/" + agent
            p = self.as_uid("-A", agent, "--resolve", "allowed.test:80:%s" % addr,
                            "http://allowed.test%s" % path)
            self.assertEqual((p.returncode, p.stdout), (0, b"ok allowed.test %s\n"
                                                        % path.encode()), p.stderr)
            lines = self.wait_log(lambda r: r.get("user_agent") == agent, "the access line")
            self.assertEqual([(r["event"], r["original_dst"]) for r in lines],
                             [("access", "%s:80" % addr)], lines)
            got = [r for r in self.origin_new() if r.get("path") == path]
            self.assertEqual([r["peer"] for r in got], [fam["egress_o"]], got)
        # Every connection the origin saw came from Embargo's dials: one each.
        conns = [r for r in self.origin_new() if r.get("accepted")]
        self.assertEqual(len(conns), 2, conns)


class SidecarMarkNftTest(SidecarMarkBase):
    pass


class SidecarMarkIptablesTest(SidecarMarkBase):
    FORMAT = "iptables"


del SidecarMarkBase


class RulesLoadTest(unittest.TestCase):
    """Every flavour `embargo rules` prints loads into a scratch namespace."""

    def setUp(self):
        reason = skip_reason()
        if reason:
            self.skipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="embargo-rules-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ns = "embt-r-%d" % (os.getpid() % 100000)
        run(["ip", "netns", "add", self.ns])
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], timeout=30)
        self.config = os.path.join(self.tmp, "embargo.yaml")
        with open(self.config, "w") as f:
            f.write("listen:\n  - 0.0.0.0:3128\n"
                    "  - {address: 0.0.0.0:3129, mode: intercept}\n"
                    "  - {address: \"[::]:3129\", mode: intercept}\n"
                    "  - {address: 0.0.0.0:3130, mode: tproxy}\n"
                    "  - {address: \"[::]:3130\", mode: tproxy}\n"
                    "resolvers: [\"10.0.0.53:53\", \"[fd00::53]:53\"]\n")

    def rules(self, *args):
        p = run([harness.BINARY, "rules", "--config", self.config] + list(args), check=False)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def load(self, tool, text, *extra):
        path = os.path.join(self.tmp, "rules")
        with open(path, "w") as f:
            f.write(text)
        if tool == "nft":
            p = run(["ip", "netns", "exec", self.ns, "nft", "-f", path], check=False)
        else:
            with open(path, "rb") as f:
                p = subprocess.run(["ip", "netns", "exec", self.ns, tool] + list(extra), stdin=f,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, "%s rejected:\n%s\n%s" % (tool, p.stderr.decode(), text))

    def listing(self, *cmd):
        return run(["ip", "netns", "exec", self.ns] + list(cmd)).stdout.decode()

    def test_nft_router_and_sidecar_load(self):
        for mode, sidecar in (("intercept", ()), ("tproxy", ()), ("intercept", ("--sidecar", "--uid", "10001")),
                              ("tproxy", ("--sidecar", "--uid", "10001"))):
            text = self.rules("--format", "nft", "--mode", mode, *sidecar)
            self.load("nft", text)
            self.load("nft", text)  # loading twice replaces, never duplicates
            listing = self.listing("nft", "list", "table", "inet", "embargo")
            self.assertEqual(listing.count("dport 53"), text.count("dport 53"), listing)
            self.assertIn("udp dport { 80, 443 } reject", listing)
            if mode == "intercept":
                self.assertIn("redirect to :3129", listing)
            else:
                self.assertIn("tproxy ip to :3130", listing)
                self.assertIn("tproxy ip6 to :3130", listing)
                self.assertIn("#   ip -6 rule add fwmark", text)
                self.assertIn("#   ip -6 route add local ::/0 dev lo", text)
            if sidecar:
                self.assertIn("skuid != 10001", listing)

    def test_iptables_and_ip6tables_load(self):
        if shutil.which("iptables-restore") is None:
            self.skipTest("iptables not installed")
        for mode, sidecar in (("intercept", ()), ("tproxy", ()),
                              ("intercept", ("--sidecar", "--uid", "10001"))):
            v4 = self.rules("--format", "iptables", "--mode", mode, *sidecar)
            v6 = self.rules("--format", "iptables", "--mode", mode, "--ipv6", *sidecar)
            self.load("iptables-restore", v4)
            self.load("ip6tables-restore", v6)
            saved4 = self.listing("iptables-save")
            saved6 = self.listing("ip6tables-save")
            port = "3129" if mode == "intercept" else "3130"
            self.assertIn(port, saved4)
            self.assertIn(port, saved6)
            self.assertIn("icmp-admin-prohibited", saved4)
            self.assertIn("icmp6-adm-prohibited", saved6)
            self.assertIn("10.0.0.53", saved4)
            self.assertIn("fd00::53", saved6)

    def test_a_family_without_a_listener_has_its_80_443_rejected(self):
        ipt = shutil.which("iptables-restore") is not None
        for listen, missing in (("0.0.0.0", 6), ("[::]", 4)):
            with open(self.config, "w") as f:
                f.write("listen:\n  - {address: \"%s:3129\", mode: intercept}\n"
                        "  - {address: \"%s:3130\", mode: tproxy}\n"
                        "resolvers: [\"10.0.0.53:53\"]\n" % (listen, listen))
            for mode in ("intercept", "tproxy"):
                for sidecar in ((), ("--sidecar", "--uid", "10001")):
                    text = self.rules("--format", "nft", "--mode", mode, *sidecar)
                    self.assertIn("no IPv%d address: IPv%d TCP 80/443 is rejected"
                                  % (missing, missing), text)
                    self.load("nft", text)
                    listing = self.listing("nft", "list", "table", "inet", "embargo")
                    # nft 1.0.6 leaves the family match out of listings (it is
                    # in the kernel's rule: the namespace tests send traffic).
                    self.assertRegex(listing, r"(meta nfproto ipv%d )?(meta skuid != 10001 )?"
                                     r"tcp dport \{ 80, 443 \} reject with tcp reset" % missing)
                    if mode == "tproxy":  # policy routing for the listener's family only
                        routing = [l for l in text.splitlines() if l.startswith("#   ip ")]
                        self.assertEqual(len(routing), 2, text)
                        self.assertTrue(all((" -6 " in l) == (missing == 4) for l in routing),
                                        routing)
                    if not ipt:
                        continue
                    tool = "ip6tables" if missing == 6 else "iptables"
                    text = self.rules("--format", "iptables", "--mode", mode,
                                      *(sidecar + (("--ipv6",) if missing == 6 else ())))
                    self.load(tool + "-restore", text)
                    saved = self.listing(tool + "-save")
                    self.assertRegex(saved, r"-A EMBARGO_FILTER -p tcp (-m owner ! --uid-owner "
                                     r"10001 )?-m multiport --dports 80,443 -j REJECT "
                                     r"--reject-with tcp-reset")
                    self.assertNotIn("REDIRECT --to-ports", saved)
                    self.assertNotIn("TPROXY", saved)

    def test_rules_without_a_listener_in_that_mode_explain(self):
        with open(self.config, "w") as f:
            f.write("listen: [0.0.0.0:3128]\n")
        p = run([harness.BINARY, "rules", "--config", self.config, "--format", "nft", "--mode",
                 "intercept"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no intercept listener", p.stderr.decode())


if __name__ == "__main__":
    harness.main()
