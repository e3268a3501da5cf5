"""`embargo check --file FILE` and `--format text|csv|json`: many names,
IPs and URLs at once (a pasted DNS log), one verdict line each.

Checked: 10,000 names judged with --no-resolve under `profile: us-federal`
give exactly one line each, in input order, in every format, and each
format parses (text by its line shape, CSV with Python's csv module, JSON
Lines with json.loads) with the verdicts `embargo check` gives one at a
time; standard input ("-") works; comments and blank lines are skipped;
invalid, overlong and NUL-bearing lines get an "invalid" row and exit
status 2 without stopping the rest; a URL line is judged on its path; a
spreadsheet formula in a name is defused in CSV. The time each format took
is printed (a figure, not a bound).
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

COLUMNS = ["input", "destination", "verdict", "vendor", "category", "matched_on", "matched",
           "pattern", "rule", "cutoff", "after_cutoff", "set_by", "preset", "override",
           "option", "refused", "dns", "error"]

KNOWN = {  # name: (verdict, vendor, category) under us-federal
    "api.hik-connect.com": ("deny", "hikvision", "cloud"),
    "www.easy4ipcloud.com": ("deny", "dahua", "p2p"),
    "www.tiktok.com": ("deny", "tiktok", "app"),
    "chat.deepseek.com": ("deny", "deepseek", "app"),
    "query.hicloud.com": ("log", "huawei", "firmware"),
    "dnl-07.geo.kaspersky.com": ("deny", "kaspersky", "updates"),
    "www.example.com": ("allow", "", ""),
}
TEXT_RE = re.compile(r"^(?P<input>.+): (?P<verdict>ALLOW|LOG|DENY|INVALID)(?P<rest>.*)$")


def names_10k():
    known = sorted(KNOWN)
    out = []
    for i in range(10000):
        out.append(known[(i // 7) % len(known)] if i % 7 == 0 else "host%d.zone%d.example.net" % (i, i % 31))
    return out


class CheckFileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embargo-checkfile-")
        cls.config = os.path.join(cls.tmp, "federal.yaml")
        with open(cls.config, "w") as f:
            f.write("profile: us-federal\n")
        cls.names = names_10k()
        cls.list_path = os.path.join(cls.tmp, "names.txt")
        with open(cls.list_path, "w") as f:
            f.write("\n".join(cls.names) + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, *args, stdin=None):
        start = time.monotonic()
        p = subprocess.run([harness.BINARY, "check", "--config", self.config, "--no-resolve"]
                           + list(args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode(), time.monotonic() - start

    def assert_known(self, rows):
        """ROWS: (input, verdict, vendor, category) in input order."""
        self.assertEqual([r[0] for r in rows], self.names)
        for name, verdict, vendor, category in rows:
            if name in KNOWN:
                self.assertEqual((verdict, vendor, category), KNOWN[name], name)
            else:
                self.assertEqual((verdict, vendor), ("allow", ""), name)

    def test_10000_names_as_text(self):
        rc, out, err, secs = self.check("--file", self.list_path)
        print("check --file: 10000 names, text: %.3f s" % secs)
        self.assertEqual(rc, 1, err)  # some are denied
        rows = []
        for line in out.splitlines():
            m = TEXT_RE.match(line)
            self.assertIsNotNone(m, line)
            vc = re.match(r" (\S+)/(\S+) \(", m.group("rest"))
            rows.append((m.group("input"), m.group("verdict").lower(),
                         vc.group(1) if vc else "", vc.group(2) if vc else ""))
        self.assert_known(rows)

    def test_10000_names_as_csv(self):
        rc, out, err, secs = self.check("--file", self.list_path, "--format", "csv")
        print("check --file: 10000 names, csv: %.3f s" % secs)
        self.assertEqual(rc, 1, err)
        self.assertTrue(out.endswith("\r\n"))
        table = list(csv.reader(io.StringIO(out, newline="")))
        self.assertEqual(table[0], COLUMNS)
        self.assertTrue(all(len(r) == len(COLUMNS) for r in table))
        rows = [dict(zip(COLUMNS, r)) for r in table[1:]]
        self.assert_known([(r["input"], r["verdict"], r["vendor"], r["category"]) for r in rows])
        hik = next(r for r in rows if r["input"] == "api.hik-connect.com")
        self.assertEqual((hik["set_by"], hik["preset"], hik["matched_on"], hik["after_cutoff"]),
                         ("preset", "us-federal", "host", "true"))
        self.assertTrue(hik["rule"].startswith("builtin:config/vendors/hikvision.yaml:"), hik)

    def test_10000_names_as_json_lines(self):
        rc, out, err, secs = self.check("--file", self.list_path, "--format", "json")
        print("check --file: 10000 names, json: %.3f s" % secs)
        self.assertEqual(rc, 1, err)
        rows = [json.loads(line) for line in out.splitlines()]
        self.assert_known([(r["input"], r["verdict"], r.get("vendor", ""), r.get("category", ""))
                           for r in rows])
        fw = next(r for r in rows if r["input"] == "query.hicloud.com")
        self.assertEqual((fw["set_by"], fw["after_cutoff"]), ("list", True))
        self.assertNotIn("preset", fw)

    def test_standard_input_and_one_at_a_time_agree(self):
        text = "api.hik-connect.com\nwww.example.com\n"
        rc, out, err, _ = self.check("--file", "-", "--format", "json", stdin=text.encode())
        self.assertEqual(rc, 1, err)
        batch = [json.loads(l)["verdict"] for l in out.splitlines()]
        single = []
        for name in ("api.hik-connect.com", "www.example.com"):
            rc1, out1, _, _ = self.check(name)
            single.append({0: "allow", 1: "deny"}[rc1])
            self.assertIn("%s:443: %s" % (name, "DENY" if rc1 else "ALLOW"), out1)
        self.assertEqual(batch, single)

    def test_bad_lines_are_reported_and_the_rest_judged(self):
        lines = [b"# a comment", b"", b"   ", b"bad name", b"x" * 5000, b"nul\x00.example",
                 b"  www.tiktok.com  ", b"http://mirror.example/Updates/index/u0607g.xml",
                 b"http://mirror.example/index.html", b"=HYPERLINK(\"x\")", b"[2001:db8::1]:443",
                 b"https://chat.deepseek.com/a/b"]
        rc, out, err, _ = self.check("--file", "-", "--format", "json",
                                     stdin=b"\n".join(lines) + b"\n")
        self.assertEqual(rc, 2, err)
        rows = [json.loads(l) for l in out.splitlines()]
        got = [(r["verdict"], r.get("error", ""), r.get("matched_on", "")) for r in rows]
        self.assertEqual(got, [
            ("invalid", "invalid host name", ""),
            ("invalid", "line longer than 4096 bytes", ""),
            ("invalid", "a NUL byte in the line", ""),
            ("deny", "", "host"),
            ("deny", "", "path"),
            ("allow", "", ""),
            ("invalid", "invalid host name", ""),
            ("log", "", ""),
            ("deny", "", "host"),
        ])
        self.assertEqual(rows[3]["input"], "www.tiktok.com")
        self.assertEqual(rows[4]["matched"], "/Updates/index/u0607g.xml")
        self.assertEqual(rows[7]["option"], "tls_inspect.on_no_sni")
        self.assertEqual(rows[8]["destination"], "chat.deepseek.com:443")
        rc, out, err, _ = self.check("--file", "-", "--format", "csv",
                                     stdin=b"=HYPERLINK(\"x\")\n")
        (row,) = list(csv.reader(io.StringIO(out, newline="")))[1:]
        self.assertEqual((row[0], row[2]), ("'=HYPERLINK(\"x\")", "invalid"))

    def test_usage_errors(self):
        rc, out, err, _ = self.check("--file", os.path.join(self.tmp, "missing.txt"))
        self.assertEqual(rc, 2)
        self.assertIn("missing.txt: No such file or directory", err)
        rc, out, err, _ = self.check("--file", self.list_path, "--format", "xml")
        self.assertEqual(rc, 2)
        self.assertIn("--format: expected text, csv or json", err)


if __name__ == "__main__":
    harness.main()
