"""A fleet at the egress, with real parts, in network namespaces the test
builds:

    clients ──▶ HAProxy ──send-proxy-v2──▶ Embargo ×3 ──▶ Squid ──▶ origin
    (C: IPv4     (L: TCP mode,              (E1, E2, E3:   (P: the    (O: HTTP
     and IPv6)    roundrobin, health         one config,    parent,    on 80)
                  checks on each             behind the     dnsmasq)
                  instance's /readyz)        balancer)

A client namespace with IPv4 and IPv6 clients (one of them in the lab
client group) reaches only HAProxy (Debian's package), in TCP mode, which
balances three Embargo instances (each in a namespace of its own, the same
configuration file) with the PROXY protocol v2 and checks each through its
admin endpoint's /readyz (with the Host the endpoint answers to, admin.names,
and its bearer token). The instances have no route to the origin: allowed
traffic goes through a real Squid (Debian's package) as their
upstream_proxy, which reaches the origin.

It shows: every decision line carries the real client's address (IPv4 and
IPv6), never HAProxy's; `embargo report` over the three instances' logs
counts each client once per attempt, as one inventory; killing one
instance (SIGKILL, by its PID) under a bounded request loop fails only the
requests HAProxy had on it, which HAProxy then takes out on its health
check, and nothing else; a policy change rolled out with `embargo reload`
takes effect on all three and their /policy shows one version; a denied
request never reaches Squid (its access log) while an allowed one goes
through it; the lab group's exception admits the lab client and nobody
else.

Needs root (namespaces), haproxy, squid, dnsmasq and curl; reported skipped
with the reason otherwise.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

import harness
import squid
from harness import wait_until

TAG = "%d" % (os.getpid() % 100000)
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT_NET = "10.219.1."
CLIENT_NET6 = "fd00:219:1::"
LB_C4, LB_C6 = CLIENT_NET + "1", CLIENT_NET6 + "1"
A4, B4, LAB4 = CLIENT_NET + "10", CLIENT_NET + "11", CLIENT_NET + "20"
A6, LAB6 = CLIENT_NET6 + "10", CLIENT_NET6 + "20"
LB_E = "10.219.2.1"               # HAProxy on the instances' segment
PARENT = "10.219.2.2"             # Squid and dnsmasq
INSTANCES = ("10.219.2.11", "10.219.2.12", "10.219.2.13")
PARENT_O, ORIGIN = "10.219.4.1", "10.219.4.2"
NAMES = ("allowed.test", "other.test", "s07.upd.kaspersky.com", "s08.upd.kaspersky.com")
UPDATES, LAB_HOST = "s07.upd.kaspersky.com", "s08.upd.kaspersky.com"
TOKEN = "fleet-admin-token-0123456789"

CONFIG = """# one configuration for every instance of the fleet
listen:
  - {address: "0.0.0.0:3128", proxy_protocol: true}
proxy_protocol_from: [%(lb)s/32]
resolvers: ["%(parent)s:53"]
clients: [%(cnet)s0/24, "%(cnet6)s/64"]
client_groups:
  lab: [%(lab4)s/32, "%(lab6)s/128"]
exceptions:
  - {host: %(lab_host)s, clients: [lab], reason: the malware lab until its migration}
vendors:
  - builtin: kaspersky
  - file: site.yaml
internal:
  allow: [10.219.4.0/24]
upstream_proxy:
  address: "%(parent)s:3128"
admin:
  listen: "0.0.0.0:9090"
  token_file: admin.token
  names: [embargo-admin]
access_log: true
workers: 1
timeouts: {connect: 3s, response: 30s}
"""

SITE_LIST = """vendor: site
name: Site additions
reference: "the site's own list"
categories:
  other:
    cutoff: %s
    before: allow
    after: deny
    hosts: [other.test]
"""
NOT_YET, PAST = "2099-01-01T00:00:00Z", "2020-01-01T00:00:00Z"

HAPROXY_CFG = """global
    pidfile %(dir)s/haproxy.pid
    stats socket %(dir)s/haproxy.sock mode 600 level admin
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    log-format "%%ci %%cp %%b/%%s %%ts %%B %%rc"
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    retries 3
    option redispatch 1
frontend fleet
    bind %(lb4)s:3128
    bind [%(lb6)s]:3128 v6only
    default_backend embargo
backend embargo
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host embargo-admin hdr Authorization "Bearer %(token)s"
    http-check expect status 200
    default-server send-proxy-v2 check port 9090 inter 500ms fall 2 rise 2
%(servers)s
"""


def run(cmd, check=True, timeout=30):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def skip_reason():
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", HAPROXY, harness.DNSMASQ, harness.CURL):
        if shutil.which(tool) is None and not os.access(tool, os.X_OK):
            return "%s not installed (scripts/deps.sh test)" % tool
    why = squid.available()
    if why:
        return why
    name = "embf-probe-" + TAG
    p = run(["ip", "netns", "add", name], check=False, timeout=10)
    if p.returncode != 0:
        return "cannot create a network namespace: %s" % p.stderr.decode().strip()
    run(["ip", "netns", "del", name], check=False, timeout=10)
    return None


class Net:
    """The namespaces: C (clients), L (HAProxy, with a bridge for the
    instances' segment), E1-E3 (one instance each), P (Squid, dnsmasq), O
    (origin). Each is recorded as it is made; close() removes what was
    made, after killing anything left inside."""

    def __init__(self):
        self.c, self.l, self.p, self.o = ("embf-%s-%s" % (n, TAG) for n in "clpo")
        self.e = ["embf-e%d-%s" % (i + 1, TAG) for i in range(3)]
        self.made = []

    def ns(self, name, *cmd):
        return run(["ip", "netns", "exec", name] + list(cmd))

    def add(self, name):
        self.made.append(name)
        run(["ip", "netns", "add", name])
        self.ns(name, "ip", "link", "set", "lo", "up")

    def veth(self, a, a_dev, b, b_dev):
        run(["ip", "link", "add", a_dev, "netns", a, "type", "veth", "peer", "name", b_dev,
             "netns", b])

    def addr(self, name, dev, *addrs):
        for a in addrs:
            if ":" in a:
                self.ns(name, "ip", "-6", "addr", "add", a, "dev", dev, "nodad")
            else:
                self.ns(name, "ip", "addr", "add", a, "dev", dev)
        self.ns(name, "ip", "link", "set", dev, "up")

    def build(self):
        for n in [self.c, self.l, self.p, self.o] + self.e:
            self.add(n)
        self.veth(self.c, "c0", self.l, "l0")
        self.addr(self.c, "c0", A4 + "/24", B4 + "/24", LAB4 + "/24", A6 + "/64", LAB6 + "/64")
        self.addr(self.l, "l0", LB_C4 + "/24", LB_C6 + "/64")
        self.ns(self.l, "ip", "link", "add", "br0", "type", "bridge")
        self.addr(self.l, "br0", LB_E + "/24")
        for i, (ns, ip) in enumerate(zip(self.e + [self.p], list(INSTANCES) + [PARENT])):
            self.veth(ns, "e0", self.l, "b%d" % i)
            self.ns(self.l, "ip", "link", "set", "b%d" % i, "master", "br0", "up")
            self.addr(ns, "e0", ip + "/24")
        # Small socket buffers between the clients and HAProxy: a slow
        # reader's connection then ends soon after its server's (nothing
        # megabytes deep left to drain at its pace).
        for n in (self.c, self.l):
            self.ns(n, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 262144",
                    "net.ipv4.tcp_wmem=4096 65536 262144")
        self.veth(self.p, "p1", self.o, "o0")
        self.addr(self.p, "p1", PARENT_O + "/24")
        self.addr(self.o, "o0", ORIGIN + "/24")
        return self

    def close(self):
        for n in self.made:
            p = subprocess.run(["ip", "netns", "pids", n], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
            for pid in p.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for n in reversed(self.made):
            subprocess.run(["ip", "netns", "del", n], timeout=30)
        self.made = []


class Proc:
    """A process started in a namespace (ip netns exec execs it: the PID
    is its own), ended by that PID."""

    def __init__(self, ns, args, workdir, name):
        self.name = name
        self.out_path = os.path.join(workdir, name + ".out")
        self._out = open(self.out_path, "ab")
        env = dict(os.environ, PYTHONPATH=HERE)
        self.p = subprocess.Popen(["ip", "netns", "exec", ns] + list(args),
                                  stdin=subprocess.DEVNULL, stdout=self._out,
                                  stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=harness.tied_to_parent)

    @property
    def pid(self):
        return self.p.pid

    def text(self):
        return harness.read_text(self.out_path)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self._out.close()
        return self.p.returncode


class FleetTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        """Builds the network and starts the origin, dnsmasq, Squid, the
        three instances and HAProxy. The undoing of each step is registered
        before the step: a set-up that fails part way leaves nothing."""
        why = skip_reason()
        if why:
            raise unittest.SkipTest(why)
        cls.procs = []
        cls.tmp = tempfile.mkdtemp(prefix="embargo-fleet-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        os.chmod(cls.tmp, 0o755)  # the instances read their files as nobody
        cls.net = Net()
        cls.addClassCleanup(cls.net.close)
        cls.addClassCleanup(cls._stop_procs)
        cls.net.build()
        cls._start_origin()
        cls._start_dns()
        cls.squid = squid.Squid(cls.tmp, hosts={n: ORIGIN for n in NAMES}, address=PARENT,
                                port=3128, sources=(CLIENT_NET + "0/24", "10.219.2.0/24"),
                                prefix=["ip", "netns", "exec", cls.net.p])
        cls.addClassCleanup(cls.squid.stop)
        cls.squid.start()
        cls._write_config()
        cls.instances = [None, None, None]
        for i in range(3):
            cls.start_instance(i)
        cls._start_haproxy()

    @classmethod
    def _stop_procs(cls):
        for p in reversed(cls.procs):
            p.stop()

    @classmethod
    def start(cls, ns, args, name):
        p = Proc(ns, args, cls.tmp, name)
        cls.procs.append(p)
        return p

    @classmethod
    def _start_origin(cls):
        cert, key = harness.make_cert(cls.tmp, "allowed.test")
        cls.origin_log = os.path.join(cls.tmp, "origin.jsonl")
        cls.start(cls.net.o, [sys.executable, os.path.join(HERE, "netns_origin.py"),
                              cls.origin_log, cert, key], "origin")
        wait_until(lambda: run(["ip", "netns", "exec", cls.net.o, harness.CURL, "-s", "-o",
                                "/dev/null", "http://%s/" % ORIGIN], check=False).returncode == 0,
                   10, 0.1, "the origin to serve")

    @classmethod
    def _start_dns(cls):
        args = [harness.DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", "--listen-address=" + PARENT, "--port=53",
                "--pid-file=", "--cache-size=0", "--user=root", "--local=/test/"]
        args += ["--host-record=%s,%s" % (n, ORIGIN) for n in NAMES]
        cls.start(cls.net.p, args, "dnsmasq")

    @classmethod
    def _write_config(cls):
        cls.config = os.path.join(cls.tmp, "embargo.yaml")
        with open(cls.config, "w") as f:
            f.write(CONFIG % {"lb": LB_E, "parent": PARENT, "cnet": CLIENT_NET,
                              "cnet6": CLIENT_NET6, "lab4": LAB4, "lab6": LAB6,
                              "lab_host": LAB_HOST})
        cls.write_site(NOT_YET)
        with open(os.path.join(cls.tmp, "admin.token"), "w") as f:
            f.write(TOKEN + "\n")
        for name in ("embargo.yaml", "site.yaml", "admin.token"):
            os.chmod(os.path.join(cls.tmp, name), 0o644)

    @classmethod
    def write_site(cls, cutoff):
        path = os.path.join(cls.tmp, "site.yaml")
        with open(path + ".new", "w") as f:
            f.write(SITE_LIST % cutoff)
        os.chmod(path + ".new", 0o644)
        os.rename(path + ".new", path)

    @classmethod
    def log_path(cls, i):
        return os.path.join(cls.tmp, "decisions-%d.jsonl" % (i + 1))

    @classmethod
    def start_instance(cls, i):
        """Instance I in its namespace, started as root (it drops to nobody
        once listening); waits until it listens."""
        p = cls.start(cls.net.e[i], [harness.BINARY, "run", "--config", cls.config, "--log",
                                     cls.log_path(i)], "embargo-%d" % (i + 1))
        cls.instances[i] = p
        wait_until(lambda: "listening on" in p.text() or not p.alive(),
                   harness.STARTUP_TIMEOUT, 0.05, "instance %d to listen" % (i + 1))
        if not p.alive():
            raise AssertionError("instance %d exited:\n%s" % (i + 1, p.text()))
        return p

    @classmethod
    def _start_haproxy(cls):
        servers = "\n".join("    server e%d %s:3128" % (i + 1, ip)
                            for i, ip in enumerate(INSTANCES))
        path = os.path.join(cls.tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(HAPROXY_CFG % {"dir": cls.tmp, "lb4": LB_C4, "lb6": LB_C6, "token": TOKEN,
                                   "servers": servers})
        run([HAPROXY, "-c", "-q", "-f", path])
        cls.haproxy = cls.start(cls.net.l, [HAPROXY, "-db", "-f", path], "haproxy")
        cls.wait_servers({"e1": "UP", "e2": "UP", "e3": "UP"})

    @classmethod
    def tearDownClass(cls):
        """Every instance still running exits cleanly on SIGTERM, without a
        sanitizer report; the class cleanups then stop the rest and remove
        the network."""
        problems = []
        for i, p in enumerate(cls.instances):
            if p is None:
                continue
            rc = p.stop()
            text = p.text()
            if rc != 0:
                problems.append("instance %d: exit status %r after SIGTERM" % (i + 1, rc))
            problems += ["instance %d: %r on its standard error" % (i + 1, m)
                         for m in harness.SANITIZER_MARKERS if m in text]
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + "\n".join(
                p.text()[-5000:] for p in cls.instances if p is not None))

    # ---- helpers ------------------------------------------------------------

    @classmethod
    def server_states(cls):
        """HAProxy's view of each server ("UP", "DOWN", ...), from its stats
        socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(os.path.join(cls.tmp, "haproxy.sock"))
            s.sendall(b"show stat\n")
            data = b""
            for _ in range(1000):
                b = s.recv(65536)
                if not b:
                    break
                data += b
        except OSError:
            return {}
        finally:
            s.close()
        lines = data.decode().splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        cols = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(",")))
            if row.get("pxname") == "embargo" and row.get("svname", "").startswith("e"):
                out[row["svname"]] = row.get("status", "").split(" ")[0]
        return out

    @classmethod
    def wait_servers(cls, want):
        wait_until(lambda: all(cls.server_states().get(k) == v for k, v in want.items()), 30,
                   0.1, "HAProxy to see %s (it sees %s)" % (want, cls.server_states()))

    def haproxy_log(self):
        """HAProxy's log lines: (client ip, client port, server, flags)."""
        out = []
        for line in self.haproxy.text().splitlines():
            f = line.split()
            if len(f) >= 4 and f[2].startswith("embargo/"):
                out.append((f[0], int(f[1]), f[2].split("/")[1], f[3]))
        return out

    def balanced(self, results):
        """(server, termination flags) HAProxy logged for each of RESULTS
        (fleet_client's), in order; HAProxy logs a connection once it ends."""
        if not results:
            return []

        def got():
            hap = {(ip, port): (srv, flags) for ip, port, srv, flags in self.haproxy_log()}
            out = [hap.get((r["source"], r["port"])) for r in results]
            return out if None not in out else None
        return wait_until(got, 10, 0.05, "HAProxy's log lines of %d connections" % len(results))

    def records(self, i, since=""):
        """Instance I's decision lines made at or after SINCE (log_mark)."""
        out = []
        for line in harness.read_text(self.log_path(i)).splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("time", "") >= since:
                    out.append(r)
        return out

    def all_records(self, since=""):
        return [r for i in range(3) for r in self.records(i, since)]

    def requests(self, reqs, name):
        """Runs REQS ((source, url, agent) tuples) in the client namespace,
        one after the other; returns their results once all ended."""
        spec = {"proxy": {"4": [LB_C4, 3128], "6": [LB_C6, 3128]},
                "requests": [{"source": s, "url": u, "agent": a} for s, u, a in reqs]}
        path = os.path.join(self.tmp, name + ".json")
        out = os.path.join(self.tmp, name + ".results")
        with open(path, "w") as f:
            json.dump(spec, f)
        run(["ip", "netns", "exec", self.net.c, sys.executable, os.path.join(HERE,
             "fleet_client.py"), path, out], timeout=30 + 25 * len(reqs))
        with open(out) as f:
            return [json.loads(line) for line in f]

    def wait_lines(self, pred, count, since):
        return wait_until(lambda: (lambda r: r if len(r) >= count else None)(
            [x for x in self.all_records(since) if pred(x)]), 10, 0.05,
            "%d decision line(s)" % count)

    def squid_saw(self, needle):
        """Squid's request lines whose URL holds NEEDLE, after a barrier
        request of the test's own through it."""
        self.squid.barrier("http://%s/squid-barrier" % ORIGIN)
        return [r for r in self.squid.requests() if needle in r[1]]

    def admin(self, i, path, method="GET"):
        p = run(["ip", "netns", "exec", self.net.e[i], harness.CURL, "-sS", "-X", method,
                 "-H", "Authorization: Bearer " + TOKEN, "-H", "Host: embargo-admin",
                 "http://127.0.0.1:9090" + path])
        return p.stdout.decode()

    # ---- the fleet ------------------------------------------------------------

    def test_every_decision_line_names_the_real_client_over_ipv4_and_ipv6(self):
        mark = harness.log_mark()
        reqs = [(src, "http://%s/who" % host, "who-%s" % src)
                for src in (A4, A6, B4) for host in ("allowed.test", UPDATES)] * 2
        results = self.requests(reqs, "who")
        self.assertEqual([r["status"] for r in results], [200, 403] * 6, results)
        lines = self.wait_lines(lambda r: r.get("user_agent", "").startswith("who-"), 12, mark)
        for r in lines:
            ip = r["client"].rsplit(":", 1)[0].strip("[]")
            self.assertEqual("who-" + ip, r["user_agent"], r)
        clients = {r["client"].rsplit(":", 1)[0].strip("[]") for r in self.all_records(mark)}
        self.assertEqual(clients & {A4, A6, B4}, {A4, A6, B4})
        self.assertNotIn(LB_E, clients, "HAProxy is never the client")
        ports = {(r["source"], r["port"]) for r in results}
        logged = {(r["client"].rsplit(":", 1)[0].strip("[]"), int(r["client"].rsplit(":", 1)[1]))
                  for r in lines}
        self.assertEqual(logged, ports, "each line carries the client's own port, too")
        self.assertGreaterEqual(sum(1 for i in range(3) if any(
            r.get("user_agent", "").startswith("who-") for r in self.records(i, mark))), 2,
            "the requests were spread over the instances")

    def test_report_over_the_three_logs_counts_each_client_once_per_attempt(self):
        mark = harness.log_mark()
        reqs = [(src, "http://%s/attempt" % UPDATES, "attempt") for src in (A4, B4, A6)] * 4
        self.assertEqual({r["status"] for r in self.requests(reqs, "attempts")}, {403})
        self.wait_lines(lambda r: r.get("user_agent") == "attempt", 12, mark)
        self.assertGreaterEqual(sum(1 for i in range(3) if any(
            r.get("user_agent") == "attempt" for r in self.records(i, mark))), 2,
            "the attempts were spread over the instances' logs")
        p = run([harness.BINARY, "report", "--format", "json", "--since", mark] +
                [self.log_path(i) for i in range(3)])
        report = json.loads(p.stdout)
        vendors = {v["vendor"]: v for v in report["vendors"]}
        attempts = {c["client"]: c["attempts"] for c in vendors["kaspersky"]["clients"]}
        self.assertEqual(attempts, {A4: 4, B4: 4, A6: 4})
        self.assertEqual(vendors["kaspersky"]["clients_count"], 3)
        self.assertEqual(vendors["kaspersky"]["attempts"], 12)

    def test_a_denied_request_never_reaches_squid_and_an_allowed_one_does(self):
        results = self.requests([(A4, "http://%s/never" % UPDATES, "deny"),
                                 (A4, "http://allowed.test/through", "allow")], "squid")
        self.assertEqual([r["status"] for r in results], [403, 200])
        self.assertEqual(results[1]["body"], "ok allowed.test /through\n")
        self.assertEqual(self.squid_saw("/never"), [])
        self.assertEqual([r[:3] for r in self.squid_saw("/through")],
                         [("GET", "http://allowed.test/through", 200)])

    def test_the_lab_exception_admits_the_lab_client_and_nobody_else(self):
        mark = harness.log_mark()
        reqs = [(src, "http://%s/lab" % LAB_HOST, "lab-%s" % src) for src in (LAB4, LAB6, A4, A6)]
        results = self.requests(reqs, "lab")
        self.assertEqual([r["status"] for r in results], [200, 200, 403, 403], results)
        lines = self.wait_lines(lambda r: r.get("user_agent", "").startswith("lab-"), 4, mark)
        by_agent = {r["user_agent"]: r for r in lines}
        for src in (LAB4, LAB6):
            self.assertEqual(by_agent["lab-" + src]["event"], "log")
            self.assertEqual(by_agent["lab-" + src]["client_group"], "lab")
        for src in (A4, A6):
            self.assertEqual(by_agent["lab-" + src]["event"], "deny")
            self.assertNotIn("client_group", by_agent["lab-" + src])
        self.assertEqual(len(self.squid_saw("/lab")), 2, "only the lab's went through Squid")

    def test_a_reload_rolled_out_to_the_three_takes_effect_on_each(self):
        before = {json.loads(self.admin(i, "/policy"))["version"] for i in range(3)}
        self.assertEqual(len(before), 1, "one configuration, one version")
        self.assertEqual({r["status"] for r in self.requests(
            [(A4, "http://other.test/pre", "pre")] * 3, "pre")}, {200})
        self.addCleanup(self.roll_out, NOT_YET)
        self.roll_out(PAST)
        after = {json.loads(self.admin(i, "/policy"))["version"] for i in range(3)}
        self.assertEqual(len(after), 1, after)
        self.assertNotEqual(after, before)
        mark = harness.log_mark()
        # Requests until each instance has denied one (at most 30).
        statuses = set()
        for n in range(10):
            statuses |= {r["status"] for r in self.requests(
                [(A4, "http://other.test/post", "post")] * 3, "post-%d" % n)}
            self.wait_lines(lambda r: r.get("user_agent") == "post", 3 * (n + 1), mark)
            if all(any(r.get("user_agent") == "post" for r in self.records(i, mark))
                   for i in range(3)):
                break
        self.assertEqual(statuses, {403})
        for i in range(3):
            denies = [r for r in self.records(i, mark) if r.get("user_agent") == "post"]
            self.assertTrue(denies, "instance %d served none of them" % (i + 1))
            self.assertEqual({(r["event"], r["vendor"], r["policy_version"]) for r in denies},
                             {("deny", "site", next(iter(after)))})
        self.assertEqual(self.squid_saw("/post"), [])

    def roll_out(self, cutoff):
        """Writes the site list with CUTOFF and reloads every live instance
        with `embargo reload`, run in its namespace."""
        self.write_site(cutoff)
        for i in range(3):
            if self.instances[i].alive():
                p = run(["ip", "netns", "exec", self.net.e[i], harness.BINARY, "reload",
                         "--config", self.config], check=False)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_killing_an_instance_fails_only_the_requests_in_flight_on_it(self):
        victim = 1  # e2
        self.addCleanup(self.revive, victim)
        # Downloads held open (slow readers), spread over the three instances.
        downloads = {}
        for k in range(6):
            port = 42000 + k
            out = os.path.join(self.tmp, "download-%d" % port)
            downloads[port] = (out, self.start(self.net.c, [
                harness.CURL, "-sS", "--noproxy", "", "-x", "http://%s:3128" % LB_C4,
                "--interface", A4, "--local-port", str(port), "--limit-rate", "1M",
                "--max-time", "120", "-o", out, "http://allowed.test/big?size=1000000000"],
                "curl-%d" % port))
        self.addCleanup(lambda: [p.stop() for _, p in downloads.values()])
        def where():  # download port -> the instance whose access line names it
            m = {int(r["client"].rsplit(":", 1)[1]): i for i in range(3) for r in self.records(i)
                 if r.get("event") == "access" and r.get("client", "").startswith(A4 + ":")}
            m = {port: i for port, i in m.items() if port in downloads}
            return m if len(m) == len(downloads) else None
        held = wait_until(where, 20, 0.05, "the six downloads' access lines")
        on_victim = {p for p, i in held.items() if i == victim}
        self.assertTrue(on_victim and len(on_victim) < 6, held)
        wait_until(lambda: all(os.path.exists(o) and os.path.getsize(o) > 0
                               for o, _ in downloads.values()), 20, 0.05, "bytes of every download")
        # The request loop: the victim dies after its tenth request.
        spec_reqs = [(A4 if n % 2 else A6, "http://allowed.test/loop-%d" % n, "loop")
                     for n in range(40)]
        spec = {"proxy": {"4": [LB_C4, 3128], "6": [LB_C6, 3128]},
                "requests": [{"source": s, "url": u, "agent": a} for s, u, a in spec_reqs]}
        spec_path = os.path.join(self.tmp, "loop.json")
        results_path = os.path.join(self.tmp, "loop.results")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        loop = self.start(self.net.c, [sys.executable, os.path.join(HERE, "fleet_client.py"),
                                       spec_path, results_path], "loop")
        wait_until(lambda: os.path.exists(results_path) and
                   len(harness.read_text(results_path).splitlines()) >= 10, 30, 0.02,
                   "ten requests of the loop")
        os.kill(self.instances[victim].pid, signal.SIGKILL)
        self.wait_servers({"e2": "DOWN"})
        wait_until(lambda: loop.p.poll() is not None, 60, 0.05, "the loop to end")
        loop.stop()
        results = [json.loads(line) for line in harness.read_text(results_path).splitlines()]
        self.assertEqual(len(results), 40)
        # The downloads the victim held failed; the others still flow.
        for port in on_victim:
            p = downloads[port][1]
            wait_until(lambda: not p.alive(), 60, 0.05, "the download on the killed instance")
            self.assertNotEqual(p.p.returncode, 0)
        sizes = {port: os.path.getsize(o) for port, (o, _) in downloads.items()}
        for port, (out, p) in downloads.items():
            if port not in on_victim:
                wait_until(lambda: p.alive() and os.path.getsize(out) > sizes[port] + 65536, 30,
                           0.05, "download %d to go on after the kill" % port)
        # Every failed request was one HAProxy had on the victim; nothing else failed.
        failed = [r for r in results if r["status"] != 200]
        for r, (srv, flags) in zip(failed, self.balanced(failed)):
            self.assertEqual(srv, "e2", (r, flags))
        self.assertLessEqual(len(failed), 1, "at most the one in flight when it died")
        # Out of the rotation: a batch after its check failed is served by the others.
        later = self.requests([(A4, "http://allowed.test/later", "later")] * 6, "later")
        self.assertEqual([r["status"] for r in later], [200] * 6)
        self.assertNotIn("e2", {srv for srv, _ in self.balanced(later)})

    def revive(self, i):
        if not self.instances[i].alive():
            type(self).start_instance(i)
            self.wait_servers({"e%d" % (i + 1): "UP"})


if __name__ == "__main__":
    harness.main()
