"""Signed list bundles through the real binary.

`embargo lists keygen`, `sign` and `verify` on the shipped lists; then a
bundle server (HTTPS, its own CA) in a network namespace this test makes,
reached over a veth pair: Embargo fetches a bundle signed by `embargo lists
sign` and puts it in force (the decision log shows the new policy_version);
a tampered file, a bundle signed with another key and a replayed older
bundle are each refused with a log line and a counter while the lists in
force keep serving; a restart with the server gone starts on the cached
bundle; the server's name is checked against its certificate; `embargo lists
fetch` does one update; and a fetch goes through an HTTP proxy (Embargo
itself) when `lists.proxy` says so.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import EmbargoTestCase, free_port, http_get, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
VENDORS = os.path.join(SOURCE, "config", "vendors")
FRESH = "fresh.upd.kaspersky.com"  # only in the test's bundles
UPDATES = "s07.upd.kaspersky.com"  # in every list
TAG = os.getpid() % 250 + 1
HOST_ADDR, SERVER_ADDR = "198.18.%d.1" % TAG, "198.18.%d.2" % TAG
GOOD_PORT, WRONG_NAME_PORT = 8443, 8444


def run(cmd, check=True, timeout=60, **kw):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def embargo(*args, check=False):
    p = run([harness.BINARY] + list(args), check=check)
    for marker in harness.SANITIZER_MARKERS:
        if marker.encode() in p.stderr:
            raise AssertionError("embargo %s: %s" % (" ".join(args), p.stderr.decode()))
    return p


def skip_reason():
    if os.geteuid() != 0:
        return "needs root for a network namespace"
    for tool in ("ip", harness.OPENSSL):
        if shutil.which(tool) is None and not os.access(tool, os.X_OK):
            return "%s not installed" % tool
    name = "embl-probe-%d" % os.getpid()
    p = run(["ip", "netns", "add", name], check=False, timeout=10)
    if p.returncode != 0:
        return "cannot create a network namespace: %s" % p.stderr.decode().strip()
    run(["ip", "netns", "del", name], check=False, timeout=10)
    return None


class Net:
    """A namespace for the bundle server, joined to this one by a veth pair
    (198.18.TAG.0/30); close() removes both."""

    def __init__(self):
        self.ns = "embl-s-%d" % os.getpid()
        self.host_if, self.ns_if = "elh%d" % TAG, "els%d" % TAG
        self.made = False

    def build(self):
        run(["ip", "netns", "add", self.ns])
        self.made = True
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
             "netns", self.ns])
        run(["ip", "addr", "add", HOST_ADDR + "/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", SERVER_ADDR + "/30", "dev", self.ns_if],
                    ["ip", "link", "set", self.ns_if, "up"]):
            run(["ip", "netns", "exec", self.ns] + cmd)
        return self

    def close(self):
        if self.made:
            run(["ip", "link", "del", self.host_if], check=False, timeout=30)
            run(["ip", "netns", "del", self.ns], check=False, timeout=30)
            self.made = False


class BundleServer:
    """lists_server.py in the namespace, serving DIR; ended by its PID."""

    def __init__(self, ns, directory, cert, key, port, workdir):
        self.log = os.path.join(workdir, "server-%d.jsonl" % port)
        self._out = open(os.path.join(workdir, "server-%d.out" % port), "wb")
        env = dict(os.environ, PYTHONPATH=HERE)
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, os.path.join(HERE, "lists_server.py"),
             directory, cert, key, SERVER_ADDR, str(port), self.log],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self.out_path = self._out.name
        try:
            wait_until(lambda: "ready" in harness.read_text(self.out_path) or self.p.poll(), 20,
                       what="the bundle server to listen")
            if self.p.poll() is not None:
                raise RuntimeError("bundle server exited: " + harness.read_text(self.out_path))
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self._out.close()


def make_certs(tmp):
    """A CA, a server certificate for SERVER_ADDR (and lists.test), and one
    for other.test only. Returns (ca, good (cert, key), wrong (cert, key))."""
    o = harness.OPENSSL
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.crt")
    run([o, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Embargo test lists CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"])
    out = []
    for name, san in (("good", "IP:%s,DNS:lists.test" % SERVER_ADDR), ("wrong", "DNS:other.test")):
        key, csr, crt = (os.path.join(tmp, "%s.%s" % (name, e)) for e in ("key", "csr", "crt"))
        ext = os.path.join(tmp, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        run([o, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name])
        run([o, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-extfile", ext, "-out", crt])
        out.append((crt, key))
    return ca, out[0], out[1]


def vendors_with_fresh(tmp):
    """A copy of the shipped lists whose Kaspersky updates category also lists FRESH."""
    d = os.path.join(tmp, "vendors-next")
    shutil.copytree(VENDORS, d)
    path = os.path.join(d, "kaspersky.yaml")
    with open(path) as f:
        text = f.read()
    anchor = "      - downloads.upd.kaspersky.com"
    assert anchor in text
    with open(path, "w") as f:
        f.write(text.replace(anchor, "      - %s\n%s" % (FRESH, anchor), 1))
    return d


def sign(directory, key, serial, out, now=None):
    clock = ("--now", now) if now else ()
    p = embargo(*clock, "lists", "sign", directory, "--key", key, "--serial", str(serial),
                "--output", out)
    if p.returncode != 0:
        raise AssertionError("lists sign failed: %s" % p.stderr.decode())
    with open(out, "rb") as f:
        return f.read()


def admin_metrics(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        for _ in range(1000):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    out = {}
    for line in data.partition(b"\r\n\r\n")[2].decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def fetch_count(metrics, result):
    return metrics.get('embargo_lists_fetch_total{result="%s"}' % result, 0)


START_VERSION = re.compile(r"embargo \S+: policy ([0-9a-f]{16})")


class ListsCommandsTest(unittest.TestCase):
    """keygen, sign and verify, without a network."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embargo-lists-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.key = os.path.join(self.tmp, "lists.key")
        p = embargo("lists", "keygen", "--key", self.key)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.pub = self.key + ".pub"

    def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        with open(self.pub) as f:
            self.assertTrue(f.read().startswith("-----BEGIN PUBLIC KEY-----"))
        with open(self.key, "rb") as f:
            before = f.read()
        p = embargo("lists", "keygen", "--key", self.key)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"File exists", p.stderr)
        with open(self.key, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_the_shipped_lists_sign_as_they_are_and_verify(self):
        out = os.path.join(self.tmp, "lists.bundle")
        sign(VENDORS, self.key, 7, out)
        p = embargo("lists", "verify", out, "--pubkey", self.pub)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        self.assertIn("serial:  7\n", text)
        for name in sorted(os.listdir(VENDORS)):
            if name.endswith(".yaml"):
                self.assertIn("  " + name, text)

    def test_verify_refuses_another_key_and_a_changed_byte(self):
        out = os.path.join(self.tmp, "lists.bundle")
        data = sign(VENDORS, self.key, 8, out)
        other = os.path.join(self.tmp, "other.key")
        embargo("lists", "keygen", "--key", other, check=True)
        p = embargo("lists", "verify", out, "--pubkey", other + ".pub")
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr.decode(), r"signature does not verify: the bundle names key "
                                            r"[0-9a-f]{16}, the public key is [0-9a-f]{16}")
        i = data.rindex(b"kaspersky.com")
        with open(out, "wb") as f:
            f.write(data[:i] + b"K" + data[i + 1:])
        p = embargo("lists", "verify", out, "--pubkey", self.pub)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"kaspersky.yaml: SHA-256 ", p.stderr)

    def test_config_check_shows_the_bundle_and_warns_of_a_key_a_reload_cannot_read(self):
        cache = os.path.join(self.tmp, "cache")
        os.mkdir(cache)
        sign(VENDORS, self.key, 9, os.path.join(cache, "lists.bundle"))
        cfg = os.path.join(self.tmp, "embargo.yaml")
        with open(cfg, "w") as f:
            f.write("lists:\n  pubkey: lists.key.pub\n  cache_dir: cache\n")
        for path in (self.tmp, cache):
            os.chmod(path, 0o755)
        p = embargo("config", "check", cfg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("  bundle:       serial 9, created ", p.stdout.decode())
        self.assertIn("Lists:          not fetched (no url)", p.stdout.decode())
        self.assertNotIn(b"will not be readable", p.stderr)
        if os.geteuid() != 0:
            self.skipTest("the warning is about a start as root dropping to `user`: needs root")
        os.chmod(self.pub, 0o600)
        p = embargo("config", "check", cfg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("lists.key.pub will not be readable by user nobody", p.stderr.decode())

    def test_sign_refuses_a_list_that_does_not_load(self):
        d = os.path.join(self.tmp, "bad")
        os.mkdir(d)
        with open(os.path.join(d, "acme.yaml"), "w") as f:
            f.write("vendor: acme\ncategories:\n  x:\n    cutoff: soon\n")
        p = embargo("lists", "sign", d, "--key", self.key, "--output",
                    os.path.join(self.tmp, "never.bundle"))
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"acme.yaml:4:13: categories.x.cutoff: expected an RFC 3339 time", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never.bundle")))


class ListsFetchTest(EmbargoTestCase):
    NOW = "2025-06-01T00:00:00Z"  # Kaspersky updates are denied
    # The class's embargo is the HTTP proxy of test_fetch_through_a_proxy.
    CONFIG_KW = {"connect_ports": (443, GOOD_PORT), "extra": "access_log: true\n"}

    @classmethod
    def setUpClass(cls):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.lists_tmp = tempfile.mkdtemp(prefix="embargo-lists-")
        cls.net = Net()
        try:
            cls._lists_setup()
            super().setUpClass()
        except BaseException:
            cls._lists_teardown()
            raise

    @classmethod
    def _lists_setup(cls):
        t = cls.lists_tmp
        os.chmod(t, 0o755)
        cls.net.build()
        cls.ca, cls.good_cert, cls.wrong_cert = make_certs(t)
        cls.key, cls.other_key = os.path.join(t, "lists.key"), os.path.join(t, "other.key")
        for k in (cls.key, cls.other_key):
            embargo("lists", "keygen", "--key", k, check=True)
        nxt = vendors_with_fresh(t)
        cls.bundles = {
            "good": sign(nxt, cls.key, 100, os.path.join(t, "good.bundle")),
            "old": sign(VENDORS, cls.key, 50, os.path.join(t, "old.bundle")),
            "other_key": sign(nxt, cls.other_key, 200, os.path.join(t, "other.bundle")),
            # Signed by a clock years ahead: it would outrank every later bundle.
            "future": sign(nxt, cls.key, 300, os.path.join(t, "future.bundle"),
                           now="2099-01-01T00:00:00Z"),
        }
        good = sign(nxt, cls.key, 150, os.path.join(t, "tampered.bundle"))
        i = good.rindex(FRESH.encode())  # in kaspersky.yaml, after the signed manifest
        cls.bundles["tampered"] = good[:i] + b"g" + good[i + 1:]

    @classmethod
    def _lists_teardown(cls):
        cls.net.close()
        shutil.rmtree(cls.lists_tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._lists_teardown()

    def setUp(self):
        super().setUp()
        self.served = tempfile.mkdtemp(dir=self.lists_tmp, prefix="served-")
        self.cache = tempfile.mkdtemp(dir=self.lists_tmp, prefix="cache-")
        self.server = BundleServer(self.net.ns, self.served, *self.good_cert, GOOD_PORT,
                                   self.served)
        self.addCleanup(self.server.stop)

    # ---- helpers

    def serve(self, which):
        tmp = os.path.join(self.served, ".next")
        with open(tmp, "wb") as f:
            f.write(self.bundles[which])
        os.replace(tmp, os.path.join(self.served, "lists.bundle"))

    def lists_yaml(self, port=GOOD_PORT, proxy=None):
        text = ("user: root\nlists:\n  url: https://%s:%d/lists.bundle\n  pubkey: %s\n"
                "  cache_dir: %s\n  ca_file: %s\n  interval: 1s\n"
                % (SERVER_ADDR, port, self.key + ".pub", self.cache, self.ca))
        if proxy:
            text += "  proxy: %s\n" % proxy
        return text

    def start(self, **kw):
        admin = free_port()
        e = self.start_embargo(extra=self.lists_yaml(**kw) + "admin:\n  listen: 127.0.0.1:%d\n"
                               % admin)
        e.admin_port = admin
        return e

    def start_version(self, e):
        return START_VERSION.search(e.stderr_text()).group(1)

    def cache_bytes(self):
        with open(os.path.join(self.cache, "lists.bundle"), "rb") as f:
            return f.read()

    def assert_denied_by(self, e, name, version):
        """NAME is denied, and its decision line names policy VERSION."""
        mark = e.log_mark()
        r = http_get(e.port, "http://%s/" % name)
        self.assertEqual(r.status, 403, r)
        recs = e.wait_records(lambda x: x.get("host") == name, since=mark)
        self.assertEqual(recs[0]["action"], "deny")
        self.assertEqual(recs[0]["policy_version"], version)
        return recs[0]

    # ---- tests

    def test_a_signed_bundle_is_fetched_and_put_in_force(self):
        self.serve("good")
        e = self.start()
        before = self.start_version(e)
        m = re.search(r"lists: bundle serial 100 in force: policy ([0-9a-f]{16})",
                      e.wait_stderr(re.compile(r"lists: bundle serial 100 in force")))
        after = m.group(1)
        self.assertNotEqual(before, after)
        rec = self.assert_denied_by(e, FRESH, after)
        self.assertTrue(rec["rule"].startswith("bundle:100/kaspersky.yaml:"), rec)
        self.assert_denied_by(e, UPDATES, after)
        self.assertEqual(self.cache_bytes(), self.bundles["good"])
        self.assertEqual(fetch_count(admin_metrics(e.admin_port), "applied"), 1)

    def refused(self, which, result):
        """The cache holds the good bundle (serial 100); the server offers WHICH."""
        with open(os.path.join(self.cache, "lists.bundle"), "wb") as f:
            f.write(self.bundles["good"])
        self.serve(which)
        e = self.start()
        self.assertIn("lists: vendor lists from bundle serial 100", e.stderr_text())
        version = self.start_version(e)
        text = e.wait_stderr("bundle refused (%s)" % result)
        self.assertIn("the lists in force stay (bundle serial 100)", text)
        m = admin_metrics(e.admin_port)
        self.assertGreaterEqual(fetch_count(m, result), 1)
        self.assertEqual(fetch_count(m, "applied"), 0)
        self.assert_denied_by(e, FRESH, version)
        self.assertEqual(self.cache_bytes(), self.bundles["good"])
        return text

    def test_a_tampered_file_is_refused(self):
        text = self.refused("tampered", "bad_digest")
        self.assertIn("kaspersky.yaml: SHA-256 ", text)

    def test_a_bundle_signed_with_another_key_is_refused(self):
        text = self.refused("other_key", "bad_signature")
        self.assertRegex(text, r"signature does not verify: the bundle names key [0-9a-f]{16}")

    def test_a_replayed_older_bundle_is_refused(self):
        text = self.refused("old", "rollback")
        self.assertIn("serial 50 (created ", text)
        self.assertIn("is not above serial 100 in force", text)

    def test_a_bundle_created_ahead_of_this_clock_is_refused(self):
        text = self.refused("future", "future")
        self.assertIn("serial 300 was created 2099-01-01T00:00:00Z, more than a day ahead", text)

    def test_a_restart_with_the_server_gone_starts_on_the_cached_bundle(self):
        self.serve("good")
        first = self.start()
        first.wait_stderr(re.compile(r"lists: bundle serial 100 in force"))
        first.check_clean_exit()
        self.server.stop()
        second = self.start()
        version = self.start_version(second)
        self.assertIn("lists: vendor lists from bundle serial 100", second.stderr_text())
        second.wait_stderr("bundle refused (fetch_failed)")
        rec = self.assert_denied_by(second, FRESH, version)
        self.assertTrue(rec["rule"].startswith("bundle:100/kaspersky.yaml:"), rec)

    def test_the_server_name_is_checked_against_its_certificate(self):
        wrong = BundleServer(self.net.ns, self.served, *self.wrong_cert, WRONG_NAME_PORT,
                             self.served)
        self.addCleanup(wrong.stop)
        self.serve("good")
        e = self.start(port=WRONG_NAME_PORT)
        text = e.wait_stderr("bundle refused (fetch_failed)")
        self.assertIn("TLS with %s: certificate verify failed" % SERVER_ADDR, text)
        self.assertFalse(os.path.exists(os.path.join(self.cache, "lists.bundle")))
        self.assertGreaterEqual(fetch_count(admin_metrics(e.admin_port), "fetch_failed"), 1)

    def fetch_once(self, **kw):
        cfg = os.path.join(self.served, "fetch.yaml")
        with open(cfg, "w") as f:
            f.write(self.lists_yaml(**kw))
        return embargo("lists", "fetch", "-c", cfg)

    def test_lists_fetch_does_one_update(self):
        self.serve("good")
        p = self.fetch_once()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b": applied: serial 100 ", p.stdout)
        self.assertEqual(self.cache_bytes(), self.bundles["good"])
        p = self.fetch_once()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b": unchanged: serial 100", p.stdout)
        self.serve("tampered")
        p = self.fetch_once()
        self.assertEqual(p.returncode, 1)
        self.assertIn(b": bad_digest: kaspersky.yaml: SHA-256 ", p.stderr)
        self.assertEqual(self.cache_bytes(), self.bundles["good"])

    def test_fetch_through_a_proxy(self):
        self.serve("good")
        p = self.fetch_once(proxy=self.embargo.proxy_url)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b": applied: serial 100 ", p.stdout)
        recs = self.embargo.wait_records(
            lambda x: x.get("method") == "CONNECT" and x.get("host") == SERVER_ADDR)
        self.assertEqual(recs[0]["port"], GOOD_PORT)


if __name__ == "__main__":
    harness.main()
