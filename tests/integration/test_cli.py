"""The command line: `check` verdicts and exit codes at different dates,
`config check` on good and bad files, `version`, and `run` refusing bad
configurations and busy ports. Every invocation must be sanitizer-clean."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import SANITIZER_MARKERS, Dnsmasq


# Every range Embargo refuses as a destination (proxy/decide/destcheck.c): first,
# last and an address inside each, refused; the neighbours just outside,
# allowed; in both families and in the IPv6 forms that stand for an IPv4
# address. (address, refused, why). The allowed ones are not this host's.
REFUSED_RANGES = (
    ("0.0.0.0", True, "0.0.0.0/8"), ("0.1.2.3", True, "0.0.0.0/8"),
    ("0.255.255.255", True, "0.0.0.0/8"), ("1.0.0.0", False, "above 0.0.0.0/8"),
    ("126.255.255.255", False, "below 127.0.0.0/8"), ("127.0.0.0", True, "127.0.0.0/8"),
    ("127.255.255.255", True, "127.0.0.0/8"), ("128.0.0.0", False, "above 127.0.0.0/8"),
    ("169.253.255.255", False, "below 169.254.0.0/16"), ("169.254.0.0", True, "169.254.0.0/16"),
    ("169.254.1.1", True, "169.254.0.0/16"), ("169.254.255.255", True, "169.254.0.0/16"),
    ("169.255.0.0", False, "above 169.254.0.0/16"),
    ("223.255.255.255", False, "below 224.0.0.0/4"), ("224.0.0.0", True, "224.0.0.0/4"),
    ("224.0.0.1", True, "224.0.0.0/4"), ("239.255.255.255", True, "224.0.0.0/4"),
    ("240.0.0.0", False, "above 224.0.0.0/4"),
    ("255.255.255.254", False, "below 255.255.255.255"), ("255.255.255.255", True, "broadcast"),
    ("169.254.169.254", True, "cloud metadata"), ("100.100.100.200", True, "cloud metadata"),
    ("100.100.100.201", False, "next to cloud metadata"),
    ("168.63.129.16", True, "cloud metadata"), ("168.63.129.17", False, "next to it"),
    ("::", True, "::/96"), ("::1", True, "::/96"), ("::2", True, "::/96"),
    ("::ffff:ffff", True, "::/96"), ("::1:0:0", False, "above ::/96"),
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False, "below fe80::/10"),
    ("fe80::", True, "fe80::/10"), ("fe80::1", True, "fe80::/10"),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True, "fe80::/10"),
    ("fec0::", False, "above fe80::/10"),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False, "below ff00::/8"),
    ("ff00::", True, "ff00::/8"), ("ff02::1", True, "ff00::/8"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True, "ff00::/8"),
    ("fd00:ec2::254", True, "cloud metadata"), ("fd00:ec2::255", False, "next to it"),
    ("::ffff:0.1.2.3", True, "mapped 0.0.0.0/8"), ("::ffff:169.254.1.1", True, "mapped"),
    ("::ffff:224.0.0.1", True, "mapped"), ("::ffff:192.0.2.1", False, "mapped, outside"),
    ("64:ff9b::1:203", True, "NAT64 of 0.1.2.3"), ("64:ff9b::7f00:1", True, "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:101", True, "NAT64 of 169.254.1.1"),
    ("64:ff9b::e000:1", True, "NAT64 of 224.0.0.1"),
    ("64:ff9b::ffff:ffff", True, "NAT64 of 255.255.255.255"),
    ("64:ff9b::c000:201", False, "NAT64 of 192.0.2.1"),
    ("64:ff9b:1:a9fe:1:100::", True, "local NAT64 of 169.254.1.1"),
    ("64:ff9b:1:c000:2:100::", False, "local NAT64 of 192.0.2.1"),
    ("2002:1:203::", True, "6to4 of 0.1.2.3"), ("2002:a9fe:101::1", True, "6to4 of 169.254.1.1"),
    ("2002:e000:1::1", True, "6to4 of 224.0.0.1"),
    ("2002:ffff:ffff::1", True, "6to4 of 255.255.255.255"),
    ("2002:c000:201::1", False, "6to4 of 192.0.2.1"),
    ("::ffff:0:e000:1", True, "SIIT of 224.0.0.1"), ("::ffff:0:c000:201", False, "SIIT of 192.0.2.1"),
    ("192.0.2.1", False, "global"), ("2001:db8::1", False, "global"),
)


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embargo-cli-")
        try:
            cls.dns = Dnsmasq(cls.tmp).start()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def embargo(self, *args, timeout=60):
        p = subprocess.run([harness.BINARY] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err, "embargo %s:\n%s" % (" ".join(args), err))
        return p.returncode, out, err

    def check(self, *args, allow_loopback=True):
        rc, out, err = harness.embargo_check(self.dns.port, args, allow_loopback=allow_loopback)
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err, "embargo check %s:\n%s" % (" ".join(args), err))
        return rc, out, err

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version(self):
        rc, out, _ = self.embargo("version")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("embargo "), out)

    def test_check_update_server_denied_now(self):
        rc, out, _ = self.check("s07.upd.kaspersky.com")
        self.assertEqual(rc, 1, out)
        self.assertIn("DENY", out)
        self.assertIn("updates", out)
        self.assertIn(harness.KASPERSKY_UPDATES_CUTOFF, out)
        self.assertIn("kaspersky.yaml:", out)
        self.assertIn("89 FR 52434", out)

    def test_check_update_server_logged_before_cutoff(self):
        rc, out, _ = self.check("--now", "2024-09-01T00:00:00Z", "dnl-01.geo.kaspersky.com")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALLOW (logged)", out)
        self.assertIn("not yet reached", out)

    def test_check_new_installs_dates(self):
        rc, out, _ = self.check("--now", "2024-08-01T00:00:00Z", "activation-v2.kaspersky.com")
        self.assertEqual(rc, 1, out)
        self.assertIn("new-installs", out)
        rc, out, _ = self.check("--now", "2024-07-01T00:00:00Z", "activation-v2.kaspersky.com")
        self.assertEqual(rc, 0, out)

    def test_check_exempt_and_unlisted_hosts_allowed(self):
        rc, out, _ = self.check("opentip.kaspersky.com", "allowed.test")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("DENY", out)

    def test_check_mixed_list_exits_1(self):
        rc, out, _ = self.check("allowed.test", "s07.upd.kaspersky.com:443")
        self.assertEqual(rc, 1, out)
        self.assertIn("allowed.test", out)
        self.assertIn("DENY", out)

    # -- check decides exactly as the proxy does (its refusals included)

    def test_check_refuses_metadata_address_like_the_proxy(self):
        rc, out, _ = self.check("169.254.169.254:443", "169.254.169.254:80")
        self.assertEqual(rc, 1, out)
        self.assertIn("169.254.169.254:443: DENY", out)
        self.assertIn("internal address 169.254.169.254 (destination_ip_prohibited)", out)
        self.assertNotIn("ALLOW", out)

    def test_check_refuses_every_internal_range_and_nothing_beside(self):
        """The built-in configuration, one `embargo check` over every refused
        range's edges and neighbours (REFUSED_RANGES)."""
        rc, out, err = self.check("--no-resolve", *[a for a, _, _ in REFUSED_RANGES],
                                  allow_loopback=False)
        self.assertEqual(rc, 1, out + err)
        verdicts = re.findall(r"(?m)^(\S+): (DENY|ALLOW)", out)
        self.assertEqual(len(verdicts), len(REFUSED_RANGES), out)
        for (addr, refused, why), (shown, verdict) in zip(REFUSED_RANGES, verdicts):
            with self.subTest(addr=addr, why=why, shown=shown):
                self.assertEqual(verdict, "DENY" if refused else "ALLOW", out)
        self.assertEqual(out.count("(destination_ip_prohibited)"),
                         sum(1 for _, refused, _ in REFUSED_RANGES if refused), out)

    def test_check_refuses_loopback_answer_with_builtin_config(self):
        rc, out, _ = self.check("allowed.test", allow_loopback=False)
        self.assertEqual(rc, 1, out)
        self.assertIn("allowed.test:443: DENY", out)
        self.assertIn("allowed.test resolves to internal address 127.0.0.1", out)

    def test_check_refuses_port_outside_connect_ports(self):
        rc, out, _ = self.check("allowed.test:8443")
        self.assertEqual(rc, 1, out)
        self.assertIn("CONNECT to port 8443 is not allowed (http_request_denied)", out)

    def test_check_applies_tls_outcome_for_hello_without_sni(self):
        path = self.write("nosni.yaml", harness.INTERNAL_ALLOW_LOOPBACK +
                          "tls_inspect:\n  on_no_sni: deny\n")
        rc, out, _ = self.embargo("check", "--config", path, "127.0.0.1:443")
        self.assertEqual(rc, 1, out)
        self.assertIn("127.0.0.1:443: DENY", out)
        self.assertIn("decided:   tls_inspect.on_no_sni", out)

    def test_check_prints_name_verdict_before_unreachable(self):
        rc, out, _ = self.check("--now", "2024-09-01T00:00:00Z", "nx.test", "dnl-01.geo.kaspersky.com")
        self.assertEqual(rc, 1, out)
        self.assertIn("nx.test:443: ALLOW, UNREACHABLE", out)
        self.assertIn("resolved:  failed (NXDOMAIN)", out)

    def test_check_takes_a_bare_ipv6_address(self):
        """`embargo check fe80::1` answered "invalid destination: non-canonical
        IP literal": only [fe80::1] worked. An address with more than one
        colon is not host:port."""
        rc, out, err = self.check("--no-resolve", "fe80::1")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("[fe80::1]:443: DENY", out)
        self.assertIn("internal address fe80::1 (destination_ip_prohibited)", out)
        rc, out, err = self.check("--no-resolve", "2001:db8::1")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("[2001:db8::1]:443: ALLOW", out)
        self.assertNotIn("invalid", out + err)
        # The bracketed forms, with a port, as before.
        rc, out, err = self.check("--no-resolve", "[2001:db8::1]:443", "[fe80::1]")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("[2001:db8::1]:443: ALLOW", out)
        self.assertIn("[fe80::1]:443: DENY", out)

    def test_check_invalid_destination_exits_2(self):
        rc, out, err = self.check("0x7f.1")
        self.assertEqual(rc, 2, out + err)

    def test_config_check_good_file(self):
        path = self.write("good.yaml", harness.make_config(
            connect_ports=(443, 8443),
            exceptions=[{"host": "s07.upd.kaspersky.com", "expires": "2030-01-01T00:00:00Z",
                         "reason": "test"}]))
        rc, out, err = self.embargo("config", "check", path)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK", out)

    def test_config_show_prints_the_built_in_config_which_loads_as_a_file(self):
        rc, out, err = self.embargo("config", "show")
        self.assertEqual(rc, 0, err)
        self.assertIn("vendors:", out)
        path = self.write("shown.yaml", out)
        rc, out2, err = self.embargo("config", "check", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("kaspersky", out2)

    def test_config_show_vendor_list_and_unknown_vendor(self):
        rc, out, err = self.embargo("config", "show", "kaspersky")
        self.assertEqual(rc, 0, err)
        self.assertIn("s[0-1][0-9].upd.kaspersky.com", out)
        self.assertIn("2024-09-29T00:00:00-04:00", out)
        rc, out, err = self.embargo("config", "show", "nosuchvendor")
        self.assertEqual(rc, 2)
        self.assertIn("no built-in vendor list", err)
        rc, out, err = self.embargo("config", "show", "../default")
        self.assertEqual(rc, 2)

    def test_config_check_unknown_key_points_at_it(self):
        path = self.write("unknown.yaml", "connect_ports: [443]\nlisten_port: 3128\n")
        rc, out, err = self.embargo("config", "check", path)
        self.assertEqual(rc, 2, out + err)
        self.assertIn("unknown.yaml:2:", err)
        self.assertIn("listen_port", err)

    def test_config_check_bad_values(self):
        for i, text in enumerate(("timeouts:\n  idle: soon\n",
                                  "connect_ports: [70000]\n",
                                  "clients: [10.0.0.0/33]\n",
                                  "exceptions:\n  - host: a.test\n    expires: yesterday\n",
                                  "connect_ports: [443]\nconnect_ports: [443]\n",
                                  "vendors:\n  - builtin: nosuchvendor\n",
                                  "limits: [1, 2]\n",
                                  "\t- not yaml: [\n")):
            with self.subTest(text=text):
                path = self.write("bad%d.yaml" % i, text)
                rc, out, err = self.embargo("config", "check", path)
                self.assertEqual(rc, 2, out + err)
                self.assertIn("bad%d.yaml" % i, err)

    def test_run_with_bad_config_exits_without_listening(self):
        path = self.write("bad-run.yaml", "timeouts:\n  idle: -1s\n")
        port = harness.free_port()
        rc, out, err = self.embargo("run", "--config", path, "--listen", "127.0.0.1:%d" % port,
                                    "--resolver", "127.0.0.1:%d" % self.dns.port, timeout=30)
        self.assertEqual(rc, 2, err)
        self.assertIn("bad-run.yaml", err)

    def test_run_on_busy_port_fails_cleanly(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            rc, out, err = self.embargo("run", "--listen", "127.0.0.1:%d" % port,
                                        "--resolver", "127.0.0.1:%d" % self.dns.port,
                                        "--log", os.path.join(self.tmp, "busy.log"), timeout=30)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot listen", err)

    def _run_and_stop(self, argv, during):
        """Starts embargo with ARGV, waits until 127.0.0.1:PORT (argv's
        "{port}") accepts, calls DURING(port), then stops it; asserts a clean
        exit and returns (stderr, port)."""
        port = harness.free_port()
        p = subprocess.Popen([harness.BINARY] + [a.format(port=port) for a in argv] +
                             ["--resolver", "127.0.0.1:%d" % self.dns.port],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            harness.wait_until(lambda: _can_connect(port), 20.0, 0.05, "embargo to listen")
            during(port)
        finally:
            p.terminate()
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate(timeout=10)
        err = err.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, err)
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err)
        return err, port

    def _verbose_run_stderr(self, argv_head):
        def one_request(port):
            try:
                harness.http_get(port, "http://nx.test/")
            except (ConnectionError, OSError):
                pass
        cfg = self.write("verbose.yaml", harness.make_config())
        return self._run_and_stop(argv_head + [
            "--config", cfg, "--listen", "127.0.0.1:{port}",
            "--log", os.path.join(self.tmp, "verbose.log")], one_request)[0]

    def test_verbose_before_run_prints_debug_diagnostics(self):
        self.assertIn("debug:", self._verbose_run_stderr(["-v", "run"]))

    def test_verbose_after_run_prints_debug_diagnostics(self):
        # `embargo [run] [options]`: options after the subcommand count too.
        self.assertIn("debug:", self._verbose_run_stderr(["run", "-v"]))

    def test_ipv4_and_ipv6_listeners_share_a_port(self):
        # "[::]:P" is IPv6-only, so it can sit beside "0.0.0.0:P" (a
        # dual-stack "[::]" would refuse to bind). Clients connect over
        # loopback only, one per family.
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        def both_families(port):
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                with socket.socket(family, socket.SOCK_STREAM) as c:
                    c.settimeout(harness.IO_TIMEOUT)
                    c.connect((host, port))
                    c.sendall(b"GET http://dnl-01.geo.kaspersky.com/ HTTP/1.1\r\n"
                              b"Host: dnl-01.geo.kaspersky.com\r\nConnection: close\r\n\r\n")
                    head = c.recv(64)
                self.assertTrue(head.startswith(b"HTTP/1.1 403 "), (host, head))
        err, port = self._run_and_stop(["run", "--listen", "0.0.0.0:{port}", "--listen",
                                        "[::]:{port}", "--log", os.path.join(self.tmp, "dual.log")],
                                       both_families)
        self.assertIn("listening on [::]:%d" % port, err)

    def test_bad_now_is_a_usage_error(self):
        rc, out, err = self.check("--now", "2024-13-01", "allowed.test")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--now", err)


def _can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    harness.main()
