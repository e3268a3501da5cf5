"""What the lists miss, through the real binary: with `access_log: true`
the proxy logs the requests no rule matched, and `embargo report
--unmatched` names the ones under a vendor's registered domains (the
shipped Kaspersky list declares kaspersky.com among them) with the clients
that asked and how often; names the list matches, and names under nobody's
domains, are not named."""

import json
import os
import subprocess

import harness
from harness import EmbargoTestCase

UNLISTED = "opentip.kaspersky.com"  # under kaspersky.com, in no category (resolves to the origin)
LISTED = "s07.upd.kaspersky.com"


class UnmatchedTest(EmbargoTestCase):
    NOW = "2025-06-01T00:00:00Z"
    CONFIG_KW = {"extra": "access_log: true\n"}

    def report(self, *args, log=None):
        p = subprocess.run([harness.BINARY, "report", "--unmatched", "-c", self.embargo.config_path]
                           + list(args) + [log or self.embargo.log_path],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr.decode())
        return p.stdout.decode()

    def test_report_unmatched_names_a_vendor_domain_host_no_category_matched(self):
        for _ in range(3):
            r = self.get(self.url(UNLISTED, "/"))
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get(self.url(LISTED, "/")).status, 403)
        self.assertEqual(self.get(self.url("allowed.test", "/")).status, 200)
        self.embargo.wait_records(lambda x: x.get("host") == UNLISTED, count=3)
        self.embargo.log_barrier()
        text = self.report()
        self.assertIn("kaspersky: 1 name(s) under kaspersky.com, kaspersky-labs.com, kaspersky.ru "
                      "that no category matched\n", text)
        self.assertRegex(text, r"\n +3  \S+ +\S+ +%s\n +127\.0\.0\.1 \(3\)\n" % UNLISTED)
        self.assertNotIn(LISTED, text)
        self.assertNotIn("allowed.test", text)
        doc = json.loads(self.report("--format", "json"))
        names = doc["vendors"][0]["names"]
        self.assertEqual([(n["name"], n["requests"]) for n in names], [(UNLISTED, 3)])
        self.assertEqual(names[0]["clients"], [{"client": "127.0.0.1", "requests": 3}])

    def test_a_hostile_client_field_cannot_drive_the_terminal(self):
        """Regression: the table printed a log line's client as it was when
        it is not an address: escape sequences (a window title, clearing the
        screen) and line breaks reached the terminal of whoever ran the
        report on logs merged from elsewhere. Each control is now '?'."""
        path = os.path.join(self.tmp, "merged.log")
        client = "\x1b]0;pwned\x07\x1b[2J\u009b31m\nFAKE LINE"
        with open(path, "w") as f:
            f.write(json.dumps({"time": "2025-01-01T00:00:00.000Z", "event": "allow",
                                "client": client, "host": UNLISTED, "port": 80,
                                "action": "allow"}) + "\n")
        text = self.report(log=path)
        self.assertIn(" ?]0;pwned??[2J?31m?FAKE LINE (1)\n", text)
        for c in ("\x1b", "\x07", "\u009b"):
            self.assertNotIn(c, text)
        self.assertFalse(any(line.startswith("FAKE") for line in text.splitlines()), text)
        doc = json.loads(self.report("--format", "json", log=path))
        self.assertEqual(doc["vendors"][0]["names"][0]["clients"][0]["client"], client)


if __name__ == "__main__":
    harness.main()
