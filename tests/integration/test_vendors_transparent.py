"""The vendor catalogue and update paths on intercepted connections: the
namespace network of test_transparent.py (a client routed through an egress
router running the real embargo behind `embargo rules` loaded with nft, to
an origin namespace with HTTP on 80, HTTPS on 443 and dnsmasq), with NAT
REDIRECT to an intercept listener. Each test runs its own embargo with its
own configuration on the same listener.

Checked: with the default configuration the new lists' names pass and are
not logged; with `builtin: hikvision` they are logged and still served;
with `profile: us-federal` cloud and app names get a 403 over HTTP and a TLS
alert over HTTPS, never reach the origin, and firmware names are served and
logged; a Kaspersky update file on an allowed host gets a 403 with
"matched_on":"path", and ordinary paths on that host pass unlogged.

Needs root (network namespaces, veth, nftables): reported skipped, with the
reason, where the machine cannot build the network.
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

import harness
from harness import SANITIZER_MARKERS, wait_until
from test_transparent import V4, Net, Proc, run, skip_reason

PORT = 3129
UPDATES = "s07.upd.kaspersky.com"
HIK_CLOUD = "api.hik-connect.com"
DAHUA_APP = "open.imoulife.com"
TIKTOK = "www.tiktok.com"
HUAWEI_FW = "query.hicloud.com"
NAMES = (HIK_CLOUD, DAHUA_APP, TIKTOK, HUAWEI_FW)
UPDATE_FILES = ("/kav/Updates/index/u0607g.xml", "/bases/av/kdb/i386/dailyc.kdc")
ORDINARY_PATHS = ("/", "/index.html", "/index/", "/bases/", "/bases/av/kdb/i386/",
                  "/updates/app.xml", "/docs/index/u0607g.html", "/u0607g.xml")


class VendorInterceptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="embargo-netns-vendors-")
        cls.procs = []
        cls.net = Net()
        try:
            cls._setup()
        except BaseException:
            cls._teardown()
            raise

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
        for name in ("allowed.test", UPDATES) + NAMES:
            dns.append("--host-record=%s,%s" % (name, V4["origin"]))
        cls.start(cls.net.o, dns, "dnsmasq")
        wait_until(lambda: os.path.exists(cls.origin_log) or "ready" in cls.origin.text(), 10,
                   what="the origin to start")
        cls.base = ("listen:\n  - {address: 0.0.0.0:%d, mode: intercept}\n"
                    "resolvers: [\"%s:53\"]\nclients: [10.203.1.0/24]\n" % (PORT, V4["origin"]))
        path = cls.write("rules.yaml", cls.base)
        rules = run([harness.BINARY, "rules", "--config", path, "--format", "nft", "--mode",
                     "intercept"]).stdout.decode()
        cls.net.ns(cls.net.e, "nft", "-f", cls.write("rules.nft", rules))

    @classmethod
    def write(cls, name, text):
        path = os.path.join(cls.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    @classmethod
    def start(cls, ns, args, name):
        p = Proc(cls.net, ns, args, cls.tmp, name)
        cls.procs.append(p)
        return p

    @classmethod
    def _teardown(cls):
        for p in reversed(getattr(cls, "procs", [])):
            p.stop()
        cls.net.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    # ---- one embargo per test

    def start_embargo(self, extra):
        n = len(self.procs)
        config = self.write("embargo-%d.yaml" % n, self.base + extra)
        self.log = os.path.join(self.tmp, "decisions-%d.jsonl" % n)
        self.embargo = self.start(self.net.e, [harness.BINARY, "run", "--config", config,
                                               "--log", self.log], "embargo-%d" % n)
        wait_until(lambda: "listening on" in self.embargo.stderr() or
                   self.embargo.p.poll() is not None, harness.STARTUP_TIMEOUT,
                   what="embargo to listen")
        if self.embargo.p.poll() is not None:
            raise AssertionError("embargo exited:\n" + self.embargo.stderr())
        self.addCleanup(self.stop_embargo, self.embargo)
        self.origin_mark = len(self.origin_records())

    def stop_embargo(self, e):
        rc = e.stop()
        err = e.stderr()
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err)
        self.assertEqual(rc, 0, err[-5000:])

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before and \
                getattr(self, "embargo", None) is not None:
            sys.stderr.write("\n==== embargo stderr ====\n%s\n==== decision log ====\n%s\n"
                             % (self.embargo.stderr()[-4000:], harness.read_text(self.log)[-4000:]))
        return out

    # ---- helpers

    def records(self):
        return [json.loads(l) for l in harness.read_text(self.log).split("\n")[:-1] if l.strip()]

    def wait_log(self, pred, what):
        return wait_until(lambda: [r for r in self.records() if pred(r)], 10, what=what)[-1]

    def origin_records(self):
        return [json.loads(l) for l in harness.read_text(self.origin_log).splitlines()
                if l.strip()]

    def origin_hosts(self):
        return [r.get("host", "") for r in self.origin_records()[self.origin_mark:] if "path" in r]

    def curl(self, url, *args):
        scheme, rest = url.split("://", 1)
        host = rest.split("/", 1)[0]
        port = 443 if scheme == "https" else 80
        return self.net.ns(self.net.c, harness.CURL, "-sS", "--noproxy", "*", "--max-time", "20",
                           "--resolve", "%s:%d:%s" % (host, port, V4["origin"]), *args, url,
                           check=False, timeout=30)

    def get(self, host, path="/v"):
        p = self.curl("http://%s%s" % (host, path), "-i")
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode("latin-1")

    def assert_served(self, host, path="/v"):
        out = self.get(host, path)
        self.assertTrue(out.startswith("HTTP/1.1 200"), out[:300])
        self.assertTrue(out.endswith("ok %s %s\n" % (host, path)), out[-300:])

    def barrier(self):
        """A denied request whose line comes after every line made so far."""
        out = self.get(UPDATES, "/barrier")
        self.assertTrue(out.startswith("HTTP/1.1 403"), out[:300])
        self.wait_log(lambda r: r.get("host") == UPDATES, "the barrier's deny line")

    # ---- the tests

    def test_default_config_passes_new_list_names_unlogged(self):
        self.start_embargo("")
        for host in NAMES:
            self.assert_served(host)
        p = self.curl("https://%s/t" % TIKTOK, "-k")
        self.assertEqual((p.returncode, p.stdout), (0, b"ok %s /t\n" % TIKTOK.encode()),
                         p.stderr.decode())
        self.barrier()
        self.assertEqual([r for r in self.records() if r.get("host") in NAMES or
                          TIKTOK in r.get("sni", [])], [])

    def test_builtin_hikvision_is_logged_not_denied(self):
        self.start_embargo("vendors:\n  - builtin: kaspersky\n  - builtin: hikvision\n")
        self.assert_served(HIK_CLOUD)
        d = self.wait_log(lambda r: r.get("host") == HIK_CLOUD, "a log line")
        self.assertEqual((d["event"], d["vendor"], d["category"], d["mode"]),
                         ("log", "hikvision", "cloud", "intercept"), d)
        self.assertEqual(d["original_dst"], "%s:80" % V4["origin"], d)

    def test_us_federal_denies_cloud_and_app_and_logs_firmware(self):
        self.start_embargo("profile: us-federal\n")
        for host, vendor in ((HIK_CLOUD, "hikvision"), (DAHUA_APP, "dahua")):
            out = self.get(host)
            self.assertTrue(out.startswith("HTTP/1.1 403"), out[:300])
            self.assertIn("Proxy-Status: embargo; error=http_request_denied", out)
            d = self.wait_log(lambda r, h=host: r.get("host") == h, "a deny line")
            self.assertEqual((d["event"], d["vendor"], d["preset"], d["mode"]),
                             ("deny", vendor, "us-federal", "intercept"), d)
        p = self.curl("https://%s/t" % TIKTOK, "-k")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("alert access denied", p.stderr.decode().lower())
        d = self.wait_log(lambda r: r.get("matched") == TIKTOK, "the TLS deny line")
        self.assertEqual((d["matched_on"], d["vendor"], d["preset"], d["error"]),
                         ("sni", "tiktok", "us-federal", "tls_alert_access_denied"), d)
        self.assert_served(HUAWEI_FW)
        d = self.wait_log(lambda r: r.get("host") == HUAWEI_FW, "the firmware log line")
        self.assertEqual((d["event"], d["category"]), ("log", "firmware"), d)
        self.assertNotIn("preset", d)
        # The firmware request reached the origin after the denied ones were
        # answered; none of those did.
        self.assertEqual(self.origin_hosts(), [HUAWEI_FW])

    def test_update_file_on_an_allowed_host_denied_by_path(self):
        self.start_embargo("")
        for path in UPDATE_FILES:
            out = self.get("allowed.test", path)
            self.assertTrue(out.startswith("HTTP/1.1 403"), out[:300])
            d = self.wait_log(lambda r, p=path: r.get("matched") == p, "a path deny line")
            self.assertEqual((d["event"], d["matched_on"], d["host"], d["vendor"], d["mode"]),
                             ("deny", "path", "allowed.test", "kaspersky", "intercept"), d)
        for path in ORDINARY_PATHS:
            self.assert_served("allowed.test", path)
        self.barrier()
        self.assertEqual([r for r in self.records() if r.get("host") == "allowed.test"
                          and r.get("event") != "deny"], [])
        self.assertEqual(self.origin_hosts(), ["allowed.test"] * len(ORDINARY_PATHS))


if __name__ == "__main__":
    harness.main()
