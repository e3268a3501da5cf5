"""The vendor catalogue through the real binary, as an explicit proxy.

Checked: with the default configuration the new lists' names pass and
nothing is logged for them; with `builtin: hikvision` its names are logged
and still served; with `profile: us-federal` cloud, P2P and app names get a
403 (plain HTTP and CONNECT) or a TLS alert (a ClientHello naming them
behind an allowed CONNECT), never reach the origin, and say
"preset":"us-federal", while firmware names are served and logged; a
per-site override wins over the preset and says "override":true. A
Kaspersky update file requested on an allowed host is denied with
"matched_on":"path" (logged only before the cutoff), and a table of
ordinary paths on that host passes unlogged. `embargo config check`
refuses an unknown profile, vendor or category with file:line:col, and
`embargo config show` lists every built-in list.
"""

import json
import os
import subprocess
import tempfile
import unittest

import harness
from harness import EmbargoTestCase, http_get, wait_until

HIK_CLOUD = "api.hik-connect.com"
HIK_P2P = "vtmvirginia.ezvizlife.com"
DAHUA_P2P = "www.easy4ipcloud.com"
DAHUA_APP = "open.imoulife.com"
TIKTOK = "www.tiktok.com"
DEEPSEEK = "chat.deepseek.com"
HUAWEI_FW = "query.hicloud.com"
DJI_FW = "mydjiflight.dji.com"
NEW_NAMES = (HIK_CLOUD, HIK_P2P, DAHUA_P2P, DAHUA_APP, TIKTOK, DEEPSEEK, HUAWEI_FW, DJI_FW)
RECORDS = tuple((n, harness.LOOPBACK) for n in NEW_NAMES)

DENIED_FEDERAL = ((HIK_CLOUD, "hikvision", "cloud"), (HIK_P2P, "hikvision", "p2p"),
                  (DAHUA_P2P, "dahua", "p2p"), (DAHUA_APP, "dahua", "app"),
                  (TIKTOK, "tiktok", "app"), (DEEPSEEK, "deepseek", "app"))
FIRMWARE = ((HUAWEI_FW, "huawei"), (DJI_FW, "dji"))

UPDATE_FILES = ("/kav/Updates/index/u0607g.xml", "/index/u0607g.xml",
                "/mirror/bases/av/kdb/i386/dailyc.kdc", "/Updates/bases/apu/apu-0607g.xml",
                "/diffs/bases/ids/i386/idsbase.kdz.srf", "/x/INDEX/U0607G.XML?t=1",
                "/a/b/../../index/u0607g.xml", "/%69ndex/u0607g.xml")
ORDINARY_PATHS = ("/", "/index.html", "/index/", "/index/index.html", "/bases/",
                  "/bases/readme.txt", "/bases/av/kdb/i386/", "/bases/av/kdb/i386/readme.txt",
                  "/updates/", "/updates/app.xml", "/u0607g.xml", "/docs/index/u0607g.html",
                  "/static/app.0607g.js", "/bases/apu/apu-0607g.json",
                  "/search?q=/index/u0607g.xml", "/kaspersky/index.html", "/downloads/kdb.zip")


class VendorCase(EmbargoTestCase):
    DNS_RECORDS = RECORDS

    def assert_served(self, host, path="/v"):
        r = self.get(self.url(host, path))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, ("ok %s\n" % path.split("?")[0]).encode())

    def assert_unlogged(self, hosts):
        """No decision line names HOSTS: the barrier's line comes after any
        line their requests could have made."""
        self.embargo.log_barrier()
        named = [x for x in self.new_records() if x.get("host") in hosts]
        self.assertEqual(named, [])

    def line_for(self, host, **match):
        return self.embargo.wait_records(
            lambda x: x.get("host") == host and all(x.get(k) == v for k, v in match.items()))[-1]


class DefaultConfigTest(VendorCase):
    """Nothing but Kaspersky is loaded: the new lists' names pass unlogged."""

    def test_new_list_names_pass_and_are_not_logged(self):
        for host in NEW_NAMES:
            self.assert_served(host)
        self.assert_unlogged(NEW_NAMES)

    def test_kaspersky_is_still_denied(self):
        r = self.get(self.url("s07.upd.kaspersky.com"))
        self.assertEqual(r.status, 403, r)


class BuiltinHikvisionTest(VendorCase):
    """A list named under `vendors:` logs: the law asks no block of it."""

    CONFIG_KW = {"vendors": ["builtin: kaspersky", "builtin: hikvision"]}

    def test_hikvision_names_are_logged_not_denied(self):
        for host, category in ((HIK_CLOUD, "cloud"), (HIK_P2P, "p2p")):
            self.assert_served(host)
            d = self.line_for(host)
            self.assertEqual((d["event"], d["action"], d["vendor"], d["category"]),
                             ("log", "log", "hikvision", category), d)
            self.assertTrue(d["after_cutoff"], d)
            self.assertEqual(d["rule_action"], "log", d)
            self.assertNotIn("preset", d)
            self.assertNotIn("override", d)
            self.assertTrue(d["rule"].startswith("builtin:config/vendors/hikvision.yaml:"), d)

    def test_lists_not_named_stay_unloaded(self):
        for host in (TIKTOK, HUAWEI_FW):
            self.assert_served(host)
        self.assert_unlogged((TIKTOK, HUAWEI_FW))


class FederalTest(VendorCase):
    """`profile: us-federal`: covered cloud, P2P and app denied, firmware logged."""

    TLS = True
    CONFIG_KW = {"extra": "profile: us-federal"}

    def test_cloud_p2p_and_app_names_get_403_and_never_reach_the_origin(self):
        for host, vendor, category in DENIED_FEDERAL:
            r = self.get(self.url(host, "/denied"))
            self.assertEqual(r.status, 403, (host, r))
            self.assert_proxy_status(r, "http_request_denied")
            self.assertIn(b"by preset us-federal", r.body)
            d = self.line_for(host, event="deny")
            self.assertEqual((d["vendor"], d["category"], d["matched_on"], d["preset"]),
                             (vendor, category, "host", "us-federal"), d)
        self.assert_served("allowed.test", "/after")  # a request that does reach it
        self.assertEqual([h["path"] for h in self.origin.heads], ["/after"])

    def test_connect_to_a_cloud_name_gets_403(self):
        with harness.RawClient(self.embargo.port) as c:
            c.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                   % (HIK_CLOUD.encode(), self.tls_origin.port, HIK_CLOUD.encode(),
                      self.tls_origin.port))
            r = c.read_response("CONNECT")
        self.assertEqual(r.status, 403, r)
        d = self.line_for(HIK_CLOUD, method="CONNECT")
        self.assertEqual((d["event"], d["preset"]), ("deny", "us-federal"), d)
        self.assertEqual(self.tls_origin.connections, 0)

    def test_tiktok_sni_behind_an_allowed_connect_gets_the_tls_alert(self):
        if not os.access(harness.OPENSSL, os.X_OK):
            self.skipTest("openssl CLI not installed")
        p = subprocess.run([harness.OPENSSL, "s_client", "-connect",
                            "allowed.test:%d" % self.tls_origin.port, "-proxy",
                            "127.0.0.1:%d" % self.embargo.port, "-servername", TIKTOK],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=harness.client_env())
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("alert access denied", out)
        d = self.embargo.wait_records(lambda x: x.get("matched") == TIKTOK)[-1]
        self.assertEqual((d["event"], d["matched_on"], d["vendor"], d["category"], d["preset"],
                          d["error"]),
                         ("deny", "sni", "tiktok", "app", "us-federal",
                          "tls_alert_access_denied"), d)
        self.assertEqual(self.tls_origin.connections, 0)

    def test_firmware_names_are_served_and_logged(self):
        for host, vendor in FIRMWARE:
            self.assert_served(host)
            d = self.line_for(host)
            self.assertEqual((d["event"], d["vendor"], d["category"]),
                             ("log", vendor, "firmware"), d)
            self.assertNotIn("preset", d, "the list's own action applied")

    def test_kaspersky_as_in_us_commercial(self):
        r = self.get(self.url("dnl-01.geo.kaspersky.com"))
        self.assertEqual(r.status, 403, r)
        d = self.line_for("dnl-01.geo.kaspersky.com")
        self.assertNotIn("preset", d)


class FederalOverrideTest(VendorCase):
    """A site override beats the preset, and says so."""

    CONFIG_KW = {"extra": "profile: us-federal",
                 "vendors": ["builtin: kaspersky",
                             "{builtin: hikvision, override: {cloud: {after: log}}}"]}

    def test_override_logs_what_the_preset_would_deny(self):
        self.assert_served(HIK_CLOUD)
        d = self.line_for(HIK_CLOUD)
        self.assertEqual((d["event"], d["override"], d["category"]), ("log", True, "cloud"), d)
        self.assertTrue(d["override_rule"].startswith(self.embargo.config_path + ":"), d)
        self.assertNotIn("preset", d)
        r = self.get(self.url(HIK_P2P))
        self.assertEqual(r.status, 403, "p2p keeps the preset: %r" % (r,))


class UpdatePathTest(VendorCase):
    """Kaspersky update files caught by their path on a host no list names."""

    def test_update_files_on_an_allowed_host_are_denied_by_path(self):
        for path in UPDATE_FILES:
            r = self.get(self.url("allowed.test", path))
            self.assertEqual(r.status, 403, (path, r))
            self.assertIn(b"Vendor:      Kaspersky Lab", r.body)
            d = self.embargo.wait_records(
                lambda x, p=path: x.get("matched_on") == "path" and x.get("matched") == p)[-1]
            self.assertEqual((d["event"], d["host"], d["vendor"], d["category"]),
                             ("deny", "allowed.test", "kaspersky", "updates"), d)
        self.assert_served("allowed.test", "/after")
        self.assertEqual([h["path"] for h in self.origin.heads], ["/after"])

    def test_ordinary_paths_on_the_same_host_pass_unlogged(self):
        for path in ORDINARY_PATHS:
            r = self.get(self.url("allowed.test", path))
            self.assertEqual(r.status, 200, (path, r))
        self.embargo.log_barrier()
        self.assertEqual([x for x in self.new_records() if x.get("host") == "allowed.test"], [])
        self.assertEqual(len(self.origin.heads), len(ORDINARY_PATHS))

    def test_before_the_cutoff_an_update_file_is_logged_and_served(self):
        e = self.start_embargo(now="2024-09-01T00:00:00Z")
        mark = e.log_mark()
        r = http_get(e.port, self.url("allowed.test", "/index/u0607g.xml"))
        self.assertEqual(r.status, 200, r)
        d = e.wait_records(lambda x: x.get("matched_on") == "path", since=mark)[-1]
        self.assertEqual((d["event"], d["after_cutoff"]), ("log", False), d)

    def test_keep_alive_requests_are_each_judged_on_their_path(self):
        with harness.RawClient(self.embargo.port) as c:
            for path, status in (("/ok", 200), ("/index/u0607g.xml", 403)):
                c.send(("GET %s HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n"
                        % (self.url("allowed.test", path), self.origin.port)).encode())
                r = c.read_response()
                self.assertEqual(r.status, status, (path, r))


class ReportByVendorAndCategoryTest(VendorCase):
    """`embargo report` over what the proxy logged under us-federal: grouped
    by vendor and category, each vendor with its legal basis."""

    CONFIG_KW = {"extra": "profile: us-federal"}

    def report(self, *fmt):
        p = subprocess.run([harness.BINARY, "report"] + list(fmt) + [self.embargo.log_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode("utf-8")

    def test_report_groups_by_vendor_and_category_with_the_legal_basis(self):
        for host in (HIK_CLOUD, HIK_CLOUD, TIKTOK):
            self.assertEqual(self.get(self.url(host)).status, 403)
        self.assert_served(HUAWEI_FW)
        self.embargo.wait_records(lambda x: x.get("vendor") in ("hikvision", "tiktok", "huawei"),
                                  count=4)
        doc = json.loads(self.report("--format", "json"))
        cats = {(v["vendor"], k["category"]): (k["attempts"], k["denied"], k["clients"])
                for v in doc["vendors"] for k in v["cutoffs"]}
        self.assertEqual(cats[("hikvision", "cloud")], (2, 2, 1))
        self.assertEqual(cats[("tiktok", "app")], (1, 1, 1))
        self.assertEqual(cats[("huawei", "firmware")], (1, 0, 1))
        refs = {v["vendor"]: v["reference"] for v in doc["vendors"]}
        self.assertTrue(refs["hikvision"].startswith("NDAA FY2019 (Pub. L. 115-232) §889"), refs)
        self.assertIn("FAR 52.204-27", refs["tiktok"])
        page = self.report("--format", "html")
        self.assertIn("<h2>By vendor and category</h2>", page)
        for vendor in ("hikvision", "tiktok", "huawei"):
            section = page.split('data-vendor="%s"' % vendor, 1)[1].split("</section>", 1)[0]
            self.assertIn('<b>Legal basis:</b> <span class="reference">%s</span>'
                          % refs[vendor].replace("&", "&amp;"), section)
        table = self.report()
        self.assertIn("  cloud: cutoff 2020-08-13T04:00:00.000Z, 2 attempts, 2 after cutoff, "
                      "2 denied, 1 machine\n", table)


# ---- the command line ----------------------------------------------------------------


def run(*args, stdin=None, timeout=60):
    p = subprocess.run([harness.BINARY] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode()


class ConfigCommandsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embargo-vendors-")
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)

    def config(self, text):
        path = os.path.join(self.tmp, "site.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def refused(self, text, where, reason):
        path = self.config(text)
        rc, out, err = run("config", "check", path)
        self.assertEqual(rc, 2, out)
        self.assertEqual(err.strip(), "embargo: %s:%s: %s" % (path, where, reason))

    def test_config_check_accepts_profile_and_overrides(self):
        path = self.config("profile: us-federal\nvendors:\n  - builtin: kaspersky\n"
                           "  - builtin: hikvision\n    override:\n      cloud: {after: log}\n")
        rc, out, err = run("config", "check", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("Profile:        us-federal", out)
        self.assertIn("after: log (override at %s:6:14)" % path, out)
        self.assertIn("after: deny (preset us-federal)", out)

    def test_config_check_refuses_unknown_profile_vendor_and_category(self):
        self.refused("profile: us-fedral\n", "1:10",
                     "profile: unknown profile 'us-fedral' (expected us-commercial or us-federal)")
        self.refused("vendors:\n  - builtin: hikvison\n", "2:14",
                     "vendors[0].builtin: no built-in vendor list 'hikvison' (built in: "
                     "kaspersky, autel, dahua, deepseek, dji, hikvision, huawei, hytera, tiktok, "
                     "tp-link, zte)")
        self.refused("vendors:\n  - builtin: hikvision\n    override:\n      clouds: {after: deny}\n",
                     "4:7", "vendors[0].override.clouds: no category 'clouds' in vendor list "
                     "hikvision (it has: firmware, cloud, p2p, unclassified)")

    def test_config_show_lists_every_built_in_list(self):
        rc, out, err = run("config", "show")
        self.assertEqual(rc, 0, err)
        for vendor in ("kaspersky", "autel", "dahua", "deepseek", "dji", "hikvision", "huawei",
                       "hytera", "tiktok", "tp-link", "zte"):
            block = out.split("\n# %s: " % vendor, 1)
            self.assertEqual(len(block), 2, "%s missing from config show" % vendor)
            head = block[1].split("\n#\n", 1)[0]
            self.assertIn("#   reference: ", head, vendor)
            self.assertIn("#   reviewed:  20", head, vendor)
            self.assertIn(" cutoff 20", head, vendor)
        self.assertIn("# kaspersky: Kaspersky Lab (loaded)", out)
        self.assertIn("# tiktok: TikTok (ByteDance) (not loaded", out)

    def test_config_show_under_a_profile_says_who_set_the_actions(self):
        path = self.config("profile: us-federal\n")
        rc, out, err = run("--config", path, "config", "show")
        self.assertEqual(rc, 0, err)
        self.assertIn("after: deny (preset us-federal)", out)
        self.assertIn("preset us-federal: FAR 52.204-27 (88 FR 36430)", out)

    def test_check_says_which_preset_decided(self):
        path = self.config("profile: us-federal\n")
        rc, out, err = run("check", "--no-resolve", "--config", path, HIK_CLOUD)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("category:  cloud", out)
        self.assertIn("set by:    preset us-federal: NDAA FY2019 §889(a)(1)(B); FAR 52.204-25",
                      out)
        rc, out, err = run("check", "--no-resolve", "http://mirror.example/Updates/index/u0607g.xml")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("matched:   /Updates/index/u0607g.xml (path)", out)
        self.assertIn("set by:    list", out)


if __name__ == "__main__":
    harness.main()
