"""Client groups through the real binary: two clients on loopback, one at
127.0.0.2 (group lab), one at 127.0.0.3 (group ksc), the same proxy. An
exception scoped to lab admits the lab's client and nobody else; the
decision line and `embargo check --client` say which group decided."""

import harness
from harness import KASPERSKY_UPDATES_CUTOFF, EmbargoTestCase, curl, embargo_check

LAB = "127.0.0.2"
KSC = "127.0.0.3"
HOST = "s07.upd.kaspersky.com"

GROUPS = ("client_groups:\n"
          "  lab: [%s/32]\n"
          "  ksc: [%s/32]\n" % (LAB, KSC))
LAB_EXCEPTION = ("exceptions:\n"
                 "  - host: %s\n"
                 "    clients: [lab]\n"
                 "    reason: the malware lab until its migration\n" % HOST)


class LabExceptionTest(EmbargoTestCase):
    """After the updates cutoff, with lab's exception for one update server."""

    CONFIG_KW = {"extra": GROUPS + LAB_EXCEPTION}

    def fetch_from(self, source, host=HOST, path="/update.bin"):
        """A plain-HTTP GET through the proxy by curl bound to SOURCE:
        (status, body)."""
        p = curl(["--interface", source, "--proxy", self.embargo.proxy_url, "-w", "\n%{http_code}",
                  self.url(host, path)], timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        body, _, status = p.stdout.rpartition(b"\n")
        return int(status), body

    def decision_from(self, source, event):
        recs = self.embargo.wait_records(lambda x: x.get("event") == event and
                                         x.get("host") == HOST and
                                         x.get("client", "").startswith(source + ":"))
        return recs[-1]

    def test_the_lab_client_is_admitted_and_its_group_logged(self):
        status, body = self.fetch_from(LAB)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, b"ok /update.bin\n")
        # Counted in requests: an earlier test's upstream may be reused from the pool.
        self.assertEqual([h["path"] for h in self.origin.heads], ["/update.bin"])
        d = self.decision_from(LAB, "log")
        self.assertEqual(d["action"], "log")
        self.assertEqual(d["client_group"], "lab")
        self.assertEqual(d["exception"], HOST)
        self.assertRegex(d["exception_rule"], r"embargo-\d+\.yaml:\d+$")
        self.assertEqual(d["rule_action"], "deny")
        self.assertEqual(d["category"], "updates")
        self.assertEqual(d["cutoff"], KASPERSKY_UPDATES_CUTOFF)

    def test_the_other_group_is_denied_and_nothing_reaches_the_origin(self):
        status, body = self.fetch_from(KSC)
        self.assertEqual(status, 403, body)
        self.assertEqual(self.origin.connections, 0)
        self.assertEqual(self.origin.heads, [])
        d = self.decision_from(KSC, "deny")
        self.assertEqual(d["action"], "deny")
        self.assertNotIn("client_group", d)
        self.assertNotIn("exception", d)
        self.assertNotIn(HOST, self.dns.queries(self.dns_mark))

    def test_a_client_in_no_group_is_denied(self):
        status, _ = self.fetch_from(harness.LOOPBACK)
        self.assertEqual(status, 403)
        d = self.decision_from(harness.LOOPBACK, "deny")
        self.assertNotIn("client_group", d)
        self.assertEqual(self.origin.connections, 0)
        self.assertEqual(self.origin.heads, [])

    def test_lab_and_ksc_alternating_on_one_proxy_each_get_their_own(self):
        # Interleaved, so that nothing of one client's verdict is kept for the next.
        for source, want in ((KSC, 403), (LAB, 200), (KSC, 403), (LAB, 200)):
            self.assertEqual(self.fetch_from(source)[0], want, source)
        self.assertEqual(len(self.origin.heads), 2, "only the lab's requests reach the origin")

    def test_check_client_says_which_group_decided(self):
        opts = ["--config", self.embargo.config_path, "--no-resolve"]
        rc, out, err = embargo_check(self.dns.port, [HOST], opts + ["--client", LAB],
                                     allow_loopback=False)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("client:      %s (client groups: lab)" % LAB, out)
        self.assertIn("%s:443: ALLOW (logged)" % HOST, out)
        self.assertIn("group:     lab (the client group's exception decided)", out)
        rc, out, err = embargo_check(self.dns.port, [HOST], opts + ["--client", KSC],
                                     allow_loopback=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("client:      %s (client groups: ksc)" % KSC, out)
        self.assertIn("%s:443: DENY" % HOST, out)
        self.assertNotIn("group:", out)
        rc, out, err = embargo_check(self.dns.port, [HOST], opts, allow_loopback=False)
        self.assertEqual(rc, 1, out + err)
        self.assertNotIn("client:", out)

    def test_check_client_refuses_what_is_not_an_address(self):
        rc, out, err = embargo_check(self.dns.port, [HOST], ["--client", "lab"])
        self.assertEqual(rc, 2)
        self.assertIn('check: --client: expected an IP address', err)


class GroupConfigErrorTest(EmbargoTestCase):
    """A configuration naming an unknown group does not load, with the place."""

    def test_unknown_group_is_refused_by_config_check(self):
        path = self.tmp + "/bad-groups.yaml"
        with open(path, "w") as f:
            f.write(GROUPS + "exceptions:\n  - { host: %s, clients: [soc] }\n" % HOST)
        p = harness.subprocess.run([harness.BINARY, "config", "check", path],
                                   stdout=harness.subprocess.PIPE, stderr=harness.subprocess.PIPE,
                                   timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("%s:5:46: exceptions[0].clients[0]: unknown client group 'soc' "
                      "(client_groups has: lab, ksc)" % path, p.stderr.decode())


if __name__ == "__main__":
    harness.main()
