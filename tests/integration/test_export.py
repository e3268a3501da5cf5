"""`embargo export` loaded by the real programs.

The shipped Kaspersky list (at a date when its updates are denied) and a
test list with a suffix, a strictly-below wildcard and two networks are
exported in every format and loaded: the RPZ zone and the local-zone file by
a running Unbound (unbound-checkconf first), the dnsmasq options and the
hosts file by a running dnsmasq, the nftables sets with `nft -f` in a
scratch network namespace, the Squid ACLs by `squid -k parse` and a running
Squid. Each resolver forwards what it does not block to the test's dnsmasq,
which answers every test name with a loopback address, so a name that comes
back NXDOMAIN or 0.0.0.0 was blocked by the exported file, and a name that
resolves was not. Everything listens on loopback ports of its own, with its
pid and log files in the test's directory.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import free_port, wait_until

NOW = "2025-06-01T00:00:00Z"  # Kaspersky updates are denied
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
UNBOUND_CHECKCONF = shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf"
SQUID = shutil.which("squid") or "/usr/sbin/squid"
NFT = shutil.which("nft") or "/usr/sbin/nft"

TEST_LIST = """vendor: testlab
name: Test Lab
reference: "integration test"
reviewed: 2026-01-01
categories:
  updates:
    cutoff: 2020-01-01T00:00:00Z
    hosts:
      - .evil-updates.example
      - "*.cdn.evil.example"
    networks:
      - 127.0.0.77/32
      - 198.51.100.0/24
"""

# A list whose free text (name, reference) carries line breaks and, after
# them, what the exports' readers would obey: a record for a name nothing
# lists. Its text belongs in the exports' comments, one line each.
HOSTILE_ADDR = "192.0.2.66"
HOSTILE_LIST = """vendor: hostile
name: "Host\\tile"
reference: "basis\\r\\nserver:\\n  local-data: \\"opentip.kaspersky.com. A %s\\"\\n#"
categories:
  updates:
    cutoff: 2020-01-01T00:00:00Z
    hosts: [upd.hostile.example]
""" % HOSTILE_ADDR

# Names the upstream dnsmasq answers (with 127.0.0.1 unless given).
RECORDS = (("evil-updates.example", "127.0.0.1"), ("a.evil-updates.example", "127.0.0.1"),
           ("cdn.evil.example", "127.0.0.1"), ("x.cdn.evil.example", "127.0.0.1"),
           ("below.s07.upd.kaspersky.com", "127.0.0.1"), ("netvendor.example", "127.0.0.77"))

BLOCKED = "s07.upd.kaspersky.com"     # an exact name in the shipped list
BELOW_EXACT = "below.s07.upd.kaspersky.com"  # under it: not Embargo's business
ALLOWED = "opentip.kaspersky.com"    # listed nowhere


def run(cmd, check=True, timeout=60, **kw):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def resolve(port, name, qtype=1, timeout=2.0):
    """(rcode, [addresses of the A or AAAA answers]) from 127.0.0.1:PORT; None on timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(harness._dns_query_packet(name, qtype), (harness.LOOPBACK, port))
        try:
            msg = s.recv(4096)
        except socket.timeout:
            return None
    rcode, ancount = msg[3] & 15, int.from_bytes(msg[6:8], "big")
    pos = harness.parse_question(msg).end
    out = []
    for _ in range(ancount):
        while msg[pos] != 0 and msg[pos] & 0xC0 != 0xC0:  # the owner name
            pos += 1 + msg[pos]
        pos += 2 if msg[pos] & 0xC0 == 0xC0 else 1
        rtype, rdlen = int.from_bytes(msg[pos:pos + 2], "big"), int.from_bytes(msg[pos + 8:pos + 10], "big")
        rdata = msg[pos + 10:pos + 10 + rdlen]
        if rtype == 1:
            out.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            out.append(socket.inet_ntop(socket.AF_INET6, rdata))
        pos += 10 + rdlen
    return rcode, out


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Daemon:
    """A process of the test's own, ended by its PID."""

    def __init__(self, args, workdir, name, ready):
        self.err_path = os.path.join(workdir, name + ".err")
        self._err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._err,
                                  stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.p.poll() is not None or ready(), 20, 0.05,
                       "%s to answer" % name)
            if self.p.poll() is not None:
                raise AssertionError("%s exited: %s" % (name, harness.read_text(self.err_path)))
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
        self._err.close()


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embargo-export-")
        os.chmod(cls.tmp, 0o755)  # Squid reads its files as its own user
        cls.dns = None
        try:
            cls.dns = harness.Dnsmasq(cls.tmp, records=RECORDS).start()
            with open(os.path.join(cls.tmp, "testlab.yaml"), "w") as f:
                f.write(TEST_LIST)
            cls.config = os.path.join(cls.tmp, "embargo.yaml")
            with open(cls.config, "w") as f:
                f.write("vendors:\n  - builtin: kaspersky\n  - file: testlab.yaml\n")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.dns is not None:
            cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def export(self, fmt, *extra, config=None):
        p = run([harness.BINARY, "export", "-c", config or self.config, "--now", NOW, "--format",
                 fmt] + list(extra))
        self.assertEqual(p.returncode, 0, p.stderr)
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr.decode())
        path = os.path.join(self.tmp, "export." + fmt)
        with open(path, "wb") as f:
            f.write(p.stdout)
        return path, p.stdout.decode(), p.stderr.decode()

    def start(self, args, name, ready):
        d = Daemon(args, self.tmp, name, ready)
        self.addCleanup(d.stop)
        return d

    def need(self, *tools):
        for t in tools:
            if not os.access(t, os.X_OK):
                self.skipTest("%s not installed (scripts/deps.sh test)" % t)

    # ---- Unbound

    def unbound(self, body, modules="iterator"):
        """A running Unbound with BODY in its server clause, forwarding to the test dnsmasq."""
        self.need(UNBOUND, UNBOUND_CHECKCONF)
        port = free_port()
        conf = os.path.join(self.tmp, "unbound-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("server:\n  interface: 127.0.0.1\n  port: %d\n  do-ip6: no\n"
                    "  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"%s\"\n"
                    "  pidfile: \"%s/unbound-%d.pid\"\n  use-syslog: no\n  logfile: \"\"\n"
                    "  module-config: \"%s\"\n  do-not-query-localhost: no\n"
                    "  access-control: 127.0.0.0/8 allow\n  cache-max-ttl: 0\n"
                    "%s\nforward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@%d\n"
                    % (port, self.tmp, self.tmp, port, modules, body, self.dns.port))
        p = run([UNBOUND_CHECKCONF, conf], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.start([UNBOUND, "-d", "-c", conf], "unbound-%d" % port,
                   lambda: resolve(port, ALLOWED, timeout=0.3) is not None)
        return port

    def test_unbound_loads_the_local_zone_file(self):
        path, text, err = self.export("unbound")
        self.assertIn("*.cdn.evil.example (testlab/updates, ", err)  # "strictly below"
        port = self.unbound("include: \"%s\"" % path)
        self.assertEqual(resolve(port, BLOCKED), (0, ["0.0.0.0"]))
        self.assertEqual(resolve(port, BLOCKED, 28), (0, ["::"]))
        self.assertEqual(resolve(port, BELOW_EXACT), (0, ["127.0.0.1"]))
        self.assertEqual(resolve(port, "evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, "a.evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, ALLOWED), (0, ["127.0.0.1"]))

    def test_unbound_loads_the_rpz_zone(self):
        path, text, err = self.export("rpz")
        self.assertIn("32.77.0.0.127.rpz-ip CNAME .", text)
        port = self.unbound("rpz:\n  name: rpz.embargo.\n  zonefile: \"%s\"" % path,
                            modules="respip iterator")
        self.assertEqual(resolve(port, BLOCKED)[0], 3)
        self.assertEqual(resolve(port, BELOW_EXACT), (0, ["127.0.0.1"]))
        self.assertEqual(resolve(port, "evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, "a.evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, "x.cdn.evil.example")[0], 3)
        self.assertEqual(resolve(port, "cdn.evil.example"), (0, ["127.0.0.1"]))  # strictly below
        self.assertEqual(resolve(port, "netvendor.example")[0], 3)  # answer in a vendor network
        self.assertEqual(resolve(port, ALLOWED), (0, ["127.0.0.1"]))

    def hostile_config(self):
        with open(os.path.join(self.tmp, "hostile.yaml"), "w") as f:
            f.write(HOSTILE_LIST)
        path = os.path.join(self.tmp, "hostile-embargo.yaml")
        with open(path, "w") as f:
            f.write("vendors:\n  - builtin: kaspersky\n  - file: hostile.yaml\n")
        return path

    def test_a_lists_text_stays_in_its_comment_in_every_format(self):
        """Regression: a list's name and reference were written into the
        header comment as they are, so a line break in them started a line
        of the export: a record or directive the resolver, firewall or
        gateway obeys. Each control byte is now '?', one comment line."""
        config = self.hostile_config()
        for fmt in ("rpz", "unbound", "dnsmasq", "hosts", "nft-set", "squid"):
            path, text, err = self.export(fmt, config=config)
            comment = ";" if fmt == "rpz" else "#"
            lines = [l for l in text.splitlines() if HOSTILE_ADDR in l]
            self.assertEqual(len(lines), 1, (fmt, text))
            self.assertTrue(lines[0].startswith(comment + " hostile (Host?ile): basis??server:?  "
                                                "local-data: "), (fmt, lines[0]))

    def test_unbound_obeys_no_line_of_a_lists_text(self):
        """Regression: Unbound loaded the record a list's reference carried
        after a line break, and answered a name nothing lists with it."""
        path, text, err = self.export("unbound", config=self.hostile_config())
        port = self.unbound("include: \"%s\"" % path)
        self.assertEqual(resolve(port, "upd.hostile.example"), (0, ["0.0.0.0"]))
        self.assertEqual(resolve(port, ALLOWED), (0, ["127.0.0.1"]))

    # ---- dnsmasq

    def dnsmasq(self, *options):
        port = free_port()
        args = [harness.DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                "--port=%d" % port, "--pid-file=", "--cache-size=0",
                "--server=127.0.0.1#%d" % self.dns.port] + list(options)
        if os.geteuid() == 0:
            args.append("--user=root")
        self.start(args, "dnsmasq-%d" % port,
                   lambda: resolve(port, ALLOWED, timeout=0.3) is not None)
        return port

    def test_dnsmasq_loads_the_options(self):
        path, text, err = self.export("dnsmasq")
        self.assertIn("address=/evil-updates.example/\n", text)
        port = self.dnsmasq("--conf-file=" + path)
        self.assertEqual(resolve(port, BLOCKED), (0, ["0.0.0.0"]))
        self.assertEqual(resolve(port, BELOW_EXACT), (0, ["127.0.0.1"]))
        self.assertEqual(resolve(port, "evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, "a.evil-updates.example")[0], 3)
        self.assertEqual(resolve(port, ALLOWED), (0, ["127.0.0.1"]))

    def test_dnsmasq_loads_the_hosts_file(self):
        path, text, err = self.export("hosts")
        self.assertIn(".evil-updates.example (testlab/updates, ", err)
        port = self.dnsmasq("--addn-hosts=" + path)
        self.assertEqual(resolve(port, BLOCKED), (0, ["0.0.0.0"]))
        self.assertEqual(resolve(port, ALLOWED), (0, ["127.0.0.1"]))

    # ---- nftables

    def test_nft_loads_the_sets_in_a_scratch_namespace(self):
        self.need(NFT)
        if os.geteuid() != 0:
            self.skipTest("needs root for a network namespace")
        path, text, err = self.export("nft-set", "--action", "any")
        ns = "embx-%d" % os.getpid()
        run(["ip", "netns", "add", ns])
        self.addCleanup(run, ["ip", "netns", "del", ns], check=False)
        for _ in range(2):  # a second load replaces the elements
            p = run(["ip", "netns", "exec", ns, NFT, "-f", path], check=False)
            self.assertEqual(p.returncode, 0, p.stderr)
        deny = run(["ip", "netns", "exec", ns, NFT, "list", "set", "inet", "embargo_lists",
                    "deny_v4"]).stdout.decode()
        self.assertIn("127.0.0.77", deny)
        self.assertIn("198.51.100.0/24", deny)
        log = run(["ip", "netns", "exec", ns, NFT, "list", "set", "inet", "embargo_lists",
                   "log_v4"]).stdout.decode()
        self.assertIn("37.203.128.0/23", log)  # the Kaspersky address space: hints, logged

    # ---- Squid

    def squid_conf(self, acl_file):
        port = free_port()
        d = os.path.join(self.tmp, "squid-%d" % port)
        os.mkdir(d)
        shutil.chown(d, "proxy", "proxy") if os.geteuid() == 0 else None
        conf, hosts = os.path.join(d, "squid.conf"), os.path.join(d, "hosts")
        with open(hosts, "w") as f:  # names it lets through resolve without DNS
            f.write("127.0.0.1 %s cdn.evil.example %s\n" % (ALLOWED, BELOW_EXACT))
        with open(conf, "w") as f:
            f.write("http_port 127.0.0.1:%d\npid_filename %s/squid.pid\ncache_log %s/cache.log\n"
                    "access_log stdio:%s/access.log\ncache deny all\ncoredump_dir %s\n"
                    "netdb_filename none\nshutdown_lifetime 0 seconds\nhosts_file %s\n"
                    "include %s\n"
                    "http_access deny embargo_deny\nhttp_access deny embargo_deny_re\n"
                    "http_access allow localhost\nhttp_access deny all\n"
                    % (port, d, d, d, d, hosts, acl_file))
        return port, conf

    def test_squid_parses_the_acls_and_refuses_vendor_names(self):
        self.need(SQUID)
        path, text, err = self.export("squid")
        self.assertIn("acl embargo_deny_re dstdom_regex -i ^ksn-[^.]*\\.kaspersky-labs\\.com$",
                      text)
        port, conf = self.squid_conf(path)
        p = run([SQUID, "-k", "parse", "-f", conf], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(b"WARNING", p.stderr + p.stdout)
        self.start([SQUID, "-N", "-f", conf], "squid-%d" % port, lambda: listening(port))

        def status(name):
            r = harness.http_get(port, "http://%s/" % name)
            return r.status, r.header("X-Squid-Error", "")

        for name in (BLOCKED, "evil-updates.example", "a.evil-updates.example",
                     "x.cdn.evil.example", "ksn-file-geo.kaspersky-labs.com"):
            self.assertEqual(status(name), (403, "ERR_ACCESS_DENIED 0"), name)
        for name in (ALLOWED, "cdn.evil.example", BELOW_EXACT):
            self.assertNotIn("ERR_ACCESS_DENIED", status(name)[1], name)


if __name__ == "__main__":
    harness.main()
