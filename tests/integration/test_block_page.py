"""The block page over HTTPS (tls_inspect.deny_with: page): a denied CONNECT
is answered by Embargo's own TLS server with a leaf minted by a CA made with
`embargo ca init`, and the first request gets the 403 page with
Proxy-Status. curl with the CA reads the page; curl without it fails
verification and the log says client_rejected_certificate; openssl s_client
shows the minted leaf (SAN, issuer, validity, key usage checked with openssl
x509); an allowed name reaches the real TLS origin with its own certificate;
a category's deny_with overrides the global one; name constraints are
enforced by the client; no leaf is minted for a name not itself denied (a
denied authority behind a hello for another name, a JA4 deny): those get
the alert; `ca show` and CA errors; headless Chromium with the
CA trusted renders the page (screenshot and DOM); an intercept listener (in
a network namespace of the test's own) serves the page on redirected 443."""

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import EmbargoTestCase, client_env, curl, wait_until

DENIED = "s07.upd.kaspersky.com"
CA_SUBJECT = "Embargo Test Site"
NOW = "2025-01-01T00:00:00Z"  # after every Kaspersky cutoff
CHROMIUM = shutil.which("chromium")
CERTUTIL = shutil.which("certutil")

VENDOR_LIST = """vendor: testvendor
name: Test Vendor
reference: "Test legal basis 42"
categories:
  pages:
    cutoff: 2000-01-01T00:00:00Z
    deny_with: page
    hosts: [.bump.test]
  alerts:
    cutoff: 2000-01-01T00:00:00Z
    deny_with: alert
    hosts: [.alert.test]
"""


def run(args, timeout=60, **kw):
    return subprocess.run(args, stdin=kw.pop("stdin", subprocess.DEVNULL), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=kw.pop("env", client_env()),
                          **kw)


def ca_init(dirname, *options):
    p = run([harness.BINARY, "ca", "init", "--dir", dirname] + list(options))
    if p.returncode != 0:
        raise RuntimeError("ca init failed: %s" % p.stderr.decode())
    return os.path.join(dirname, "ca.crt")


def openssl_x509(pem, *args):
    p = subprocess.run([harness.OPENSSL, "x509", "-noout"] + list(args), input=pem,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl x509 failed: %s" % p.stderr.decode())
    return p.stdout.decode()


def x509_time(text, key):
    m = re.search(r"%s=(.+ GMT)" % key, text)
    return time.mktime(time.strptime(m.group(1), "%b %d %H:%M:%S %Y %Z")) - time.timezone


class BlockPageCase(EmbargoTestCase):
    """Starts embargo with a fresh CA, deny_with: page and a test vendor list."""

    TLS = True
    NOW = NOW

    @classmethod
    def setUpClass(cls):
        if not os.access(harness.OPENSSL, os.X_OK):
            raise unittest.SkipTest("openssl CLI not installed")
        cls.ca_tmp = tempfile.mkdtemp(prefix="embargo-ca-")
        try:
            cls.ca_dir = os.path.join(cls.ca_tmp, "ca")
            cls.ca_cert = ca_init(cls.ca_dir, "--subject", CA_SUBJECT)
            cls.vendor_file = os.path.join(cls.ca_tmp, "testvendor.yaml")
            with open(cls.vendor_file, "w") as f:
                f.write(VENDOR_LIST)
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.ca_tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.ca_tmp, ignore_errors=True)

    @classmethod
    def new_embargo(cls, deny_with="page", ca_dir=None, cache_entries=None, more_vendors=(),
                    **kw):
        extra = ["certs:", "  ca_dir: %s" % (ca_dir or cls.ca_dir)]
        if cache_entries:
            extra.append("  cache_entries: %d" % cache_entries)
        extra += ["tls_inspect:", "  ports: [443, %d]" % cls.tls_origin.port,
                  "  deny_with: %s" % deny_with]
        kw["tls_inspect_ports"] = None
        kw["extra"] = "\n".join(extra)
        kw["vendors"] = ["builtin: kaspersky", "file: %s" % cls.vendor_file] + [
            "file: %s" % v for v in more_vendors]
        return super(BlockPageCase, cls).new_embargo(**kw)

    def curl_https(self, host, cacert=None, embargo=None, extra=(), path="/blocked/path"):
        args = ["--proxy", (embargo or self.embargo).proxy_url, "-D", "-"]
        if cacert:
            args += ["--cacert", cacert]
        return curl(args + list(extra) + ["https://%s%s" % (host, path)], timeout=30)

    def deny_record(self, host, embargo=None, error=None):
        e = embargo or self.embargo
        since = self.log_mark if embargo is None else None

        def got():
            recs = [x for x in e.records(since)
                    if x.get("host") == host and x.get("event") == "deny" and
                    (error is None or x.get("error") == error)]
            return recs[0] if recs else None
        return wait_until(got, 10.0, 0.02, "a deny line for %s" % host)

    def s_client(self, connect, servername, embargo=None):
        """openssl s_client through the proxy (a CONNECT to CONNECT, then a
        hello naming SERVERNAME), showing every certificate it is sent; its
        output."""
        req = b"GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % servername.encode()
        p = subprocess.run([harness.OPENSSL, "s_client", "-proxy",
                            "127.0.0.1:%d" % (embargo or self.embargo).port, "-connect", connect,
                            "-servername", servername, "-showcerts", "-ign_eof"],
                           input=req, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30, env=client_env())
        return p.stdout.decode("utf-8", "replace")

    def assert_alert_and_no_certificate(self, out):
        self.assertIn("alert access denied", out)
        self.assertNotIn("BEGIN CERTIFICATE", out, "a certificate was presented")
        self.assertNotIn("Embargo denied", out)

    def assert_page(self, p, host, rule_text):
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("HTTP/1.1 403 Forbidden", out)
        self.assertRegex(out, r"Proxy-Status: embargo; error=http_request_denied; details=\"")
        self.assertIn("Embargo denied this request.", out)
        self.assertIn("Destination: %s:443" % host, out)
        self.assertIn(rule_text, out)


class BlockPageTest(BlockPageCase):

    def test_curl_with_the_ca_reads_the_page_over_tls(self):
        p = self.curl_https(DENIED, self.ca_cert)
        self.assert_page(p, DENIED, "Rule:        s[0-1][0-9].upd.kaspersky.com at builtin:")
        self.assertIn("Legal basis: US Commerce ICTS Final Determination", p.stdout.decode())
        d = self.deny_record(DENIED)
        self.assertEqual((d["status"], d["error"], d["tls"]), (403, "http_request_denied", "hello"), d)
        self.assertEqual(d["sni"], [DENIED], d)
        self.assertEqual(d["detail"], 'block page over TLS for "GET /blocked/path HTTP/1.1"', d)
        self.assertNotIn(DENIED, self.dns.queries(self.dns_mark), "a denied name was resolved")

    def test_curl_without_the_ca_fails_verification_and_is_logged_as_rejected(self):
        p = self.curl_https(DENIED)
        self.assertEqual(p.returncode, 60, p.stderr)  # peer certificate cannot be authenticated
        self.assertNotIn(b"Embargo denied", p.stdout)
        d = self.deny_record(DENIED)
        self.assertEqual(d["error"], "client_rejected_certificate", d)
        self.assertIn("unknown CA", d["detail"], d)
        self.assertNotIn("status", d)

    def test_denied_connect_closed_before_its_hello_is_still_logged(self):
        with harness.RawClient(self.embargo.port) as c:
            c.send(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (DENIED.encode(), DENIED.encode()))
            self.assertEqual(c.read_response("CONNECT").status, 200)
        d = self.deny_record(DENIED)
        self.assertEqual((d["error"], d["detail"]), ("tunnel_closed", "client closed before its ClientHello"), d)

    def test_head_request_gets_the_head_alone(self):
        ctx = ssl.create_default_context(cafile=self.ca_cert)
        with harness.RawClient(self.embargo.port) as c:
            c.send(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (DENIED.encode(), DENIED.encode()))
            self.assertEqual(c.read_response("CONNECT").status, 200)
            with ctx.wrap_socket(c.sock, server_hostname=DENIED) as t:
                t.sendall(b"HEAD / HTTP/1.1\r\nHost: %s\r\n\r\n" % DENIED.encode())
                data = b""
                for _ in range(100):
                    try:
                        chunk = t.recv(65536)
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        break
                    if not chunk:
                        break
                    data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 403 Forbidden\r\n"), data)
        self.assertTrue(data.endswith(b"\r\n\r\n"), data)
        self.assertIn(b"Content-Length: ", data)
        self.assertEqual(self.deny_record(DENIED)["detail"], 'block page over TLS for "HEAD / HTTP/1.1"')

    def test_openssl_s_client_shows_a_minted_leaf(self):
        req = b"GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % DENIED.encode()
        p = subprocess.run([harness.OPENSSL, "s_client", "-proxy", "127.0.0.1:%d" % self.embargo.port,
                            "-connect", "%s:443" % DENIED, "-servername", DENIED, "-showcerts",
                            "-CAfile", self.ca_cert, "-verify_return_error", "-ign_eof",
                            "-alpn", "h2,http/1.1"],
                           input=req, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           env=client_env())
        out = p.stdout.decode("utf-8", "replace")
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("HTTP/1.1 403 Forbidden", out)
        pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
        self.assertEqual(len(pems), 1, "only the leaf is sent")
        leaf = pems[0].encode()
        text = openssl_x509(leaf, "-ext", "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints",
                            "-issuer", "-nameopt", "RFC2253", "-startdate", "-enddate", "-serial")
        self.assertRegex(text, r"X509v3 Subject Alternative Name: *\n *DNS:%s\n" % re.escape(DENIED))
        self.assertIn("issuer=CN=%s Embargo block-page CA,O=%s" % (CA_SUBJECT, CA_SUBJECT), text)
        self.assertRegex(text, r"X509v3 Key Usage: critical\n *Digital Signature\n")
        self.assertRegex(text, r"X509v3 Extended Key Usage: *\n *TLS Web Server Authentication")
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\n *CA:FALSE")
        serial = re.search(r"serial=([0-9A-F]+)", text).group(1)
        self.assertEqual(len(serial), 32, serial)  # 128 random bits
        now = time.time()
        nb, na = x509_time(text, "notBefore"), x509_time(text, "notAfter")
        print("minted leaf for %s: serial %s, valid %s .. %s" % (
            DENIED, serial, time.strftime("%H:%M:%SZ", time.gmtime(nb)),
            time.strftime("%H:%M:%SZ", time.gmtime(na))))
        self.assertTrue(now - 3700 <= nb <= now - 3000, (nb, now))  # back-dated about 1 h
        self.assertTrue(now + 5 * 3600 <= na <= now + 6 * 3600 + 60, (na, now))  # hours, not days
        v = subprocess.run([harness.OPENSSL, "verify", "-CAfile", self.ca_cert, "-purpose",
                            "sslserver", "-verify_hostname", DENIED], input=leaf,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_allowed_name_reaches_the_origin_with_its_own_certificate(self):
        port = self.tls_origin.port
        p = curl(["--proxy", self.embargo.proxy_url, "--cacert", self.cert,
                  "https://allowed.test:%d/through" % port], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"ok /through\n")
        s = subprocess.run([harness.OPENSSL, "s_client", "-proxy", "127.0.0.1:%d" % self.embargo.port,
                            "-connect", "allowed.test:%d" % port, "-servername", "allowed.test"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, env=client_env())
        pem = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", s.stdout, re.S)
        self.assertIsNotNone(pem, s.stdout + s.stderr)
        with open(self.cert, "rb") as f:
            origin_fp = openssl_x509(f.read(), "-fingerprint", "-sha256")
        self.assertEqual(openssl_x509(pem.group(0), "-fingerprint", "-sha256"), origin_fp)
        self.assertNotIn(CA_SUBJECT, openssl_x509(pem.group(0), "-issuer"))
        self.assertGreaterEqual(self.tls_origin.connections, 2)

    def test_sni_denied_behind_an_allowed_authority_gets_the_page(self):
        # The CONNECT names allowed.test; the ClientHello names s07: the
        # verdict comes from the SNI, and the leaf is minted for it.
        port = self.tls_origin.port
        p = self.curl_https("%s:%d" % (DENIED, port), self.ca_cert,
                            extra=["--connect-to", "%s:%d:allowed.test:%d" % (DENIED, port, port)])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"HTTP/1.1 403 Forbidden", p.stdout)
        self.assertIn(b"Destination: %s:%d" % (DENIED.encode(), port), p.stdout)
        d = self.deny_record("allowed.test")
        self.assertEqual((d["matched_on"], d["matched"], d["status"]), ("sni", DENIED, 403), d)
        self.tls_origin.barrier()  # a dial made before it is counted by now
        self.assertEqual(self.tls_origin.connections, 0, "the origin was dialled")

    def test_authority_denied_with_a_hello_for_another_name_gets_the_alert(self):
        # The CONNECT names a denied update server, its ClientHello a name
        # Embargo lets through: no leaf is minted for that name.
        out = self.s_client("dnl-01.geo.kaspersky.com:443", "www.bank.example")
        self.assert_alert_and_no_certificate(out)
        d = self.deny_record("dnl-01.geo.kaspersky.com")
        self.assertEqual((d["matched_on"], d["sni"], d["error"]),
                         ("host", ["www.bank.example"], "tls_alert_access_denied"), d)
        self.assertIn("sni_mismatch", d["tags"], d)
        self.assertNotIn("status", d)

    def test_ja4_deny_with_an_allowed_sni_gets_the_alert(self):
        # 1. The fingerprint of `openssl s_client`, from the deny line of a page.
        out = self.s_client("%s:443" % DENIED, DENIED)
        self.assertIn("HTTP/1.1 403 Forbidden", out)
        ja4 = self.deny_record(DENIED)["ja4"]
        # 2. A vendor list naming it; 3. the same client to an allowed name.
        path = os.path.join(self.ca_tmp, "ja4-vendor.yaml")
        with open(path, "w") as f:
            f.write("vendor: testja4\nname: JA4 Test Vendor\nreference: \"integration test\"\n"
                    "categories:\n  updater:\n    cutoff: 2000-01-01T00:00:00Z\n"
                    "    deny_with: page\n    ja4:\n      - %s\n" % ja4)
        e = self.start_embargo(more_vendors=[path])
        port = self.tls_origin.port
        out = self.s_client("allowed.test:%d" % port, "allowed.test", embargo=e)
        self.assert_alert_and_no_certificate(out)
        d = self.deny_record("allowed.test", embargo=e)
        self.assertEqual((d["matched_on"], d["matched"], d["sni"], d["error"]),
                         ("ja4", ja4, ["allowed.test"], "tls_alert_access_denied"), d)
        self.assertEqual(self.tls_origin.connections, 0, "the origin was dialled")

    def test_category_deny_with_alert_overrides_page(self):
        # Denied by name: today's 403 before the tunnel opens.
        p = self.curl_https("x.alert.test", self.ca_cert)
        self.assertEqual(p.returncode, 56, p.stderr)
        self.assertIn(b"CONNECT tunnel failed, response 403", p.stderr)
        d = self.deny_record("x.alert.test")
        self.assertEqual((d["category"], d["status"]), ("alerts", 403), d)
        # Denied by SNI behind an allowed authority: the access_denied alert.
        port = self.tls_origin.port
        p = self.curl_https("y.alert.test:%d" % port, self.ca_cert,
                            extra=["--connect-to", "y.alert.test:%d:allowed.test:%d" % (port, port)])
        self.assertEqual(p.returncode, 35, p.stderr)
        self.assertIn(b"access denied", p.stderr)
        d = self.deny_record("allowed.test")
        self.assertEqual((d["matched"], d["error"]), ("y.alert.test", "tls_alert_access_denied"), d)

    def test_category_deny_with_page_overrides_alert(self):
        e = self.start_embargo(deny_with="alert")
        p = self.curl_https(DENIED, self.ca_cert, embargo=e)
        self.assertEqual(p.returncode, 56, p.stderr)  # tls_inspect.deny_with: alert
        p = self.curl_https("n1.bump.test", self.ca_cert, embargo=e)
        self.assert_page(p, "n1.bump.test", "Legal basis: Test legal basis 42")
        self.assertEqual(self.deny_record("n1.bump.test", embargo=e)["status"], 403)

    def test_name_constraints_are_enforced_by_the_client(self):
        ca_dir = os.path.join(self.ca_tmp, "constrained")
        cert = ca_init(ca_dir, "--subject", "Constrained", "--permit", "kaspersky.com")
        e = self.start_embargo(ca_dir=ca_dir)
        self.assert_page(self.curl_https(DENIED, cert, embargo=e), DENIED, "Rule:")
        p = self.curl_https("n2.bump.test", cert, embargo=e)
        self.assertEqual(p.returncode, 60, p.stderr)
        self.assertEqual(self.deny_record("n2.bump.test", embargo=e)["error"],
                         "client_rejected_certificate")
        show = run([harness.BINARY, "ca", "show", ca_dir]).stdout.decode()
        self.assertIn("name constraints: permitted DNS kaspersky.com", show)

    def test_ca_show_prints_fingerprint_validity_and_trust_store_steps(self):
        p = run([harness.BINARY, "ca", "show", self.ca_dir])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        with open(self.ca_cert, "rb") as f:
            fp = openssl_x509(f.read(), "-fingerprint", "-sha256").strip().split("=", 1)[1]
        self.assertIn("SHA-256:          %s" % fp, out)
        self.assertIn("subject:          O = %s, CN = %s Embargo block-page CA" % (CA_SUBJECT, CA_SUBJECT), out)
        self.assertRegex(out, r"valid: +\d{4}-\d\d-\d\dT\S+Z to \d{4}-\d\d-\d\dT\S+Z \(valid now\)")
        self.assertIn("(mode 0600)", out)
        for step in ("update-ca-certificates", "update-ca-trust", "Trusted Root Certification Authorities",
                     "security add-trusted-cert", "policies.json"):
            self.assertIn(step, out)
        self.assertNotIn("PRIVATE KEY", out)

    def test_ca_init_refuses_to_overwrite_a_ca(self):
        p = run([harness.BINARY, "ca", "init", "--dir", self.ca_dir])
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"a CA is already there", p.stderr)
        self.assertEqual(os.stat(os.path.join(self.ca_dir, "ca.key")).st_mode & 0o777, 0o600)


class CaErrorsTest(BlockPageCase):
    """Bad CA directories are config errors at certs.ca_dir's position."""

    def config_error(self, ca_dir):
        path = os.path.join(self.tmp, "bad-ca.yaml")
        with open(path, "w") as f:
            f.write("log: \"-\"\ncerts:\n  ca_dir: %s\n" % ca_dir)
        p = run([harness.BINARY, "config", "check", path])
        self.assertEqual(p.returncode, 2, p.stdout)
        return p.stderr.decode().strip(), "embargo: %s:3:11: certs.ca_dir: %s/" % (path, ca_dir)

    def copy_ca(self, name):
        d = os.path.join(self.ca_tmp, name)
        shutil.copytree(self.ca_dir, d)
        return d

    def test_key_readable_by_others(self):
        d = self.copy_ca("open")
        os.chmod(os.path.join(d, "ca.key"), 0o644)
        err, prefix = self.config_error(d)
        self.assertEqual(err, prefix + "ca.key: private key is accessible to group or others "
                         "(mode 0644); chmod 600 it")
        # `embargo run` refuses to start with it too.
        path = os.path.join(self.tmp, "bad-run.yaml")
        with open(path, "w") as f:
            f.write("certs:\n  ca_dir: %s\n" % d)
        p = run([harness.BINARY, "run", "--config", path, "--listen", "127.0.0.1:%d" % harness.free_port()])
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"chmod 600 it", p.stderr)

    def test_not_a_ca(self):
        d = os.path.join(self.ca_tmp, "leaf")
        os.makedirs(d)
        cnf = os.path.join(d, "req.cnf")
        with open(cnf, "w") as f:
            f.write("[req]\ndistinguished_name = dn\n[dn]\n")
        p = run([harness.OPENSSL, "req", "-x509", "-config", cnf, "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", os.path.join(d, "ca.key"),
                 "-out", os.path.join(d, "ca.crt"), "-days", "2", "-subj", "/CN=leaf",
                 "-addext", "basicConstraints=critical,CA:FALSE"])
        self.assertEqual(p.returncode, 0, p.stderr)
        os.chmod(os.path.join(d, "ca.key"), 0o600)
        err, prefix = self.config_error(d)
        self.assertEqual(err, prefix + "ca.crt: not a CA certificate (basicConstraints CA:TRUE missing)")

    def test_garbage_certificate_and_missing_key(self):
        d = self.copy_ca("garbage")
        with open(os.path.join(d, "ca.crt"), "w") as f:
            f.write("hello\n")
        err, prefix = self.config_error(d)
        self.assertEqual(err, prefix + "ca.crt: not a PEM certificate")
        d = self.copy_ca("nokey")
        os.unlink(os.path.join(d, "ca.key"))
        err, prefix = self.config_error(d)
        self.assertEqual(err, prefix + "ca.key: cannot read: No such file or directory")

    def test_page_without_a_ca(self):
        path = os.path.join(self.tmp, "page-no-ca.yaml")
        with open(path, "w") as f:
            f.write("tls_inspect:\n  deny_with: page\n")
        p = run([harness.BINARY, "config", "check", path])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.decode().strip(),
                         "embargo: %s:2:14: tls_inspect.deny_with: page needs a CA: set "
                         "certs.ca_dir (make one with `embargo ca init --dir DIR`)" % path)


class ChromiumTest(BlockPageCase):
    """Headless Chromium through the proxy, with the CA in its NSS store."""

    def chromium(self, home, *args):
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=home)
        env = client_env()
        env["HOME"] = home
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--user-data-dir=" + profile,
             "--proxy-server=http://127.0.0.1:%d" % self.embargo.port] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=180, env=env)

    def test_chromium_with_the_ca_trusted_shows_the_page(self):
        if not CHROMIUM:
            self.skipTest("chromium not installed (Debian package chromium)")
        if not CERTUTIL:
            self.skipTest("certutil not installed (Debian package libnss3-tools)")
        home = tempfile.mkdtemp(prefix="chromium-home-", dir=self.tmp)
        nssdb = os.path.join(home, ".pki", "nssdb")
        os.makedirs(nssdb)
        for args in (["-N", "--empty-password"],
                     ["-A", "-t", "C,,", "-n", "embargo-test-ca", "-i", self.ca_cert]):
            p = run([CERTUTIL, "-d", "sql:" + nssdb] + args)
            self.assertEqual(p.returncode, 0, p.stderr)
        url = "https://%s/update/index.xml" % DENIED
        p = self.chromium(home, "--dump-dom", url)
        dom = p.stdout.decode("utf-8", "replace")
        self.assertIn("Embargo denied this request.", dom, p.stderr.decode()[-3000:])
        self.assertIn("Vendor:      Kaspersky Lab (kaspersky)", dom)
        self.assertIn("Legal basis: US Commerce ICTS Final Determination", dom)
        shot_dir = os.environ.get("EMBARGO_ARTIFACTS", tempfile.gettempdir())
        shot = os.path.join(shot_dir, "embargo-block-page-chromium.png")
        p = self.chromium(home, "--screenshot=" + shot, "--window-size=1000,600", url)
        self.assertTrue(os.path.exists(shot), p.stderr.decode()[-3000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("\nChromium screenshot of the block page: %s (%d bytes)" % (shot, os.path.getsize(shot)))
        d = self.deny_record(DENIED, error="http_request_denied")
        self.assertEqual(d["status"], 403, d)


class InterceptTest(unittest.TestCase):
    """An intercept listener in a network namespace this test creates: a
    connection to 127.0.0.2:443 is redirected (nftables) to Embargo, which
    recovers the original destination, reads the ClientHello and, for a
    denied name, serves the page with a minted leaf."""

    IP = shutil.which("ip") or "/usr/sbin/ip"
    NFT = shutil.which("nft") or "/usr/sbin/nft"

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a network namespace and nftables")
        for tool in (self.IP, self.NFT, harness.CURL, harness.OPENSSL):
            if not os.access(tool, os.X_OK):
                self.skipTest("%s not installed" % tool)
        self.tmp = tempfile.mkdtemp(prefix="embargo-intercept-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ns = "embargo-bump-%d" % os.getpid()
        p = run([self.IP, "netns", "add", self.ns])
        if p.returncode != 0:
            self.skipTest("cannot create a network namespace: %s" % p.stderr.decode().strip())
        self.addCleanup(run, [self.IP, "netns", "del", self.ns])
        self.assertEqual(run([self.IP, "-n", self.ns, "link", "set", "lo", "up"]).returncode, 0)
        self.port = harness.free_port()
        rules = os.path.join(self.tmp, "redirect.nft")
        with open(rules, "w") as f:
            f.write("table ip embargo_test {\n  chain out {\n    type nat hook output priority -100;\n"
                    "    ip daddr 127.0.0.2 tcp dport 443 redirect to :%d\n  }\n}\n" % self.port)
        p = self.in_ns([self.NFT, "-f", rules])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.ca_dir = os.path.join(self.tmp, "ca")
        self.ca_cert = ca_init(self.ca_dir, "--subject", CA_SUBJECT)

    def in_ns(self, args, **kw):
        return run([self.IP, "netns", "exec", self.ns] + args, **kw)

    def start_embargo(self):
        cfg = os.path.join(self.tmp, "embargo.yaml")
        with open(cfg, "w") as f:
            f.write("listen:\n  - {address: \"127.0.0.1:%d\", mode: intercept}\n"
                    "internal:\n  allow: [127.0.0.0/8]\ncerts:\n  ca_dir: %s\n"
                    "tls_inspect:\n  deny_with: page\n" % (self.port, self.ca_dir))
        self.log = os.path.join(self.tmp, "decisions.jsonl")
        self.stderr_path = os.path.join(self.tmp, "embargo.stderr")
        err = open(self.stderr_path, "wb")
        self.addCleanup(err.close)
        # `ip netns exec` execs embargo: the Popen's pid is embargo's.
        proc = subprocess.Popen([self.IP, "netns", "exec", self.ns, harness.BINARY, "run", "--config",
                                 cfg, "--log", self.log, "--now", NOW],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        self.addCleanup(stop)
        wait_until(lambda: proc.poll() is not None or
                   "listening on" in harness.read_text(self.stderr_path),
                   harness.STARTUP_TIMEOUT, 0.05, "embargo to listen")
        self.assertIsNone(proc.poll(), harness.read_text(self.stderr_path))
        return proc

    def test_intercepted_443_to_a_denied_name_gets_the_page(self):
        proc = self.start_embargo()
        p = self.in_ns([harness.CURL, "-sS", "--noproxy", "", "--max-time", "20", "-D", "-",
                        "--cacert", self.ca_cert, "--resolve", "%s:443:127.0.0.2" % DENIED,
                        "https://%s/intercepted" % DENIED], timeout=40)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("HTTP/1.1 403 Forbidden", out)
        self.assertIn("Proxy-Status: embargo; error=http_request_denied", out)
        self.assertIn("Destination: %s:443" % DENIED, out)
        proc.terminate()
        self.assertEqual(proc.wait(timeout=30), 0, harness.read_text(self.stderr_path))
        stderr = harness.read_text(self.stderr_path)
        for marker in harness.SANITIZER_MARKERS + ("illegal state change",):
            self.assertNotIn(marker, stderr)
        recs = [json.loads(line) for line in harness.read_text(self.log).splitlines() if line]
        d = [r for r in recs if r.get("event") == "deny"]
        self.assertEqual(len(d), 1, recs)
        self.assertEqual((d[0]["mode"], d[0]["original_dst"], d[0]["status"], d[0]["error"]),
                         ("intercept", "127.0.0.2:443", 403, "http_request_denied"), d[0])


if __name__ == "__main__":
    harness.main()
