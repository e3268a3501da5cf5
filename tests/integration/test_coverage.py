"""Coverage of the built-in vendor lists against the public community list
v2fly/domain-list-community (snapshots in tests/fixtures/v2fly/, with
their commit and licence in its README).

For each list that has v2fly data, every entry of the data file (following
`include:` lines) must either be matched by the built-in list, through
`embargo check --file` (a `domain:` entry on the name itself and on a name
below it, a `full:` entry on exactly that name), or be named in the list's
`left_out:` with a reason. A `left_out:` name that no longer appears in
the data is an error too: the list must say what it leaves out, no more.
"""

import json
import os
import subprocess
import tempfile
import unittest

import harness

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "v2fly")
LISTS = {  # built-in list: v2fly data file
    "kaspersky": "kaspersky",
    "huawei": "huawei",
    "zte": "zte",
    "hikvision": "hikvision",
    "dji": "dji",
    "tiktok": "tiktok",
    "deepseek": "deepseek",
}
PROBE = "coverage-probe"  # a label put below a domain: entry's name


def read_data(name, left_out, seen=None):
    """The entries of data file NAME as (key, kind, value); an include named
    in LEFT_OUT is not followed (its key is returned instead)."""
    seen = set() if seen is None else seen
    if name in seen:
        return []
    seen.add(name)
    out = []
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            rule = line.split()[0]  # drop @attributes
            kind, _, value = rule.rpartition(":") if ":" in rule else ("domain", "", rule)
            key = rule if kind != "domain" else value
            if kind == "include":
                out += [(key, kind, value)] if key in left_out else read_data(value, left_out, seen)
                continue
            out.append((key, kind, value))
    return out


class CoverageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import yaml  # Debian python3-yaml (scripts/deps.sh test)
        except ImportError:
            raise unittest.SkipTest("python3-yaml not installed: cannot read the lists' left_out")
        cls.yaml = yaml
        if not os.path.isdir(FIXTURES):
            raise AssertionError("fixtures missing: %s" % FIXTURES)

    def builtin(self, vendor):
        p = subprocess.run([harness.BINARY, "config", "show", vendor], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return self.yaml.safe_load(p.stdout.decode("utf-8"))

    def judge(self, vendor, names):
        """`embargo check --file -` over NAMES with only VENDOR loaded."""
        fd, conf = tempfile.mkstemp(suffix=".yaml", prefix="embargo-coverage-")
        with os.fdopen(fd, "w") as f:
            f.write("vendors:\n  - builtin: %s\n" % vendor)
        try:
            p = subprocess.run([harness.BINARY, "check", "--config", conf, "--no-resolve",
                                "--format", "json", "--file", "-"],
                               input="\n".join(names).encode() + b"\n", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
        finally:
            os.unlink(conf)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
        self.assertEqual([r["input"] for r in rows], names)
        return rows

    def check_list(self, vendor, data):
        doc = self.builtin(vendor)
        left = {}
        for entry in doc.get("left_out") or []:
            self.assertTrue(str(entry.get("reason", "")).strip(), "%s: left_out without reason"
                            % vendor)
            for name in entry["names"]:
                left[name] = entry["reason"]
        entries = read_data(data, left)
        keys = {k for k, _, _ in entries}
        self.assertEqual(sorted(set(left) - keys), [],
                         "%s: left_out names that the v2fly data no longer has" % vendor)
        names, origin = [], {}
        for key, kind, value in entries:
            if key in left:
                continue
            self.assertIn(kind, ("domain", "full"),
                          "%s: %s cannot be matched by name: leave it out with a reason"
                          % (vendor, key))
            probes = [value] if kind == "full" else [value, "%s.%s" % (PROBE, value)]
            for n in probes:
                names.append(n)
                origin[n] = key
        self.assertTrue(names, "%s: nothing to check" % vendor)
        missed = ["%s (from v2fly %s)" % (r["input"], origin[r["input"]])
                  for r in self.judge(vendor, names) if r.get("vendor") != vendor]
        self.assertEqual(missed, [], "%s: v2fly entries neither matched nor left out" % vendor)
        return len(entries), len(left)

    def test_every_v2fly_entry_is_matched_or_left_out_with_a_reason(self):
        for vendor, data in sorted(LISTS.items()):
            with self.subTest(vendor=vendor):
                n, nleft = self.check_list(vendor, data)
                print("%s: %d v2fly entries, %d left out with a reason" % (vendor, n, nleft))

    def test_the_check_catches_a_missing_entry(self):
        # The same check against a list that lacks an entry must report it:
        # data for "zte" checked against the DJI list matches nothing.
        with self.assertRaises(AssertionError):
            self.check_list("dji", "zte")


if __name__ == "__main__":
    harness.main()
