"""What Embargo keeps, and warns about, when started as root and running as
its `user:`.

- Defect 2: `mark:` with the privilege drop broke every dial. The SO_MARK
  check ran as root, then the drop to `nobody` lost CAP_NET_ADMIN and every
  dial failed with EPERM: each request got 502 destination_unavailable
  while /readyz said ready. Now exactly CAP_NET_ADMIN is kept when `mark:`
  is set (nothing otherwise), SO_MARK is checked after the drop, and dials
  that fail for a reason of this host are counted
  (embargo_upstream_connects_total{result="local_error"}) and make /readyz
  unready while they last.
- Defect 8: a reload reads files as the runtime user, and nothing said so
  before it failed. Now the start (as root) and `embargo config check`
  warn about every config, list, token or CA file that user cannot read.

Needs root (the privilege drop happens only when started as root; the
local-failure test also makes a network namespace); reported skipped
otherwise.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import Embargo, EmbargoTestCase, free_port, http_get, make_config, wait_until
from test_admin import admin_extra, admin_get, parse_metrics

CAP_NET_ADMIN = 1 << 12


def proc_caps(pid):
    """{'CapEff': int, ...} from /proc/PID/status."""
    caps = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.startswith("Cap"):
                caps[k] = int(v.strip(), 16)
    return caps


def proc_uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def needs_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: the privilege drop only happens when started as root")


class MarkAcrossTheDrop(EmbargoTestCase):
    """Defect 2: started as root with `user: nobody` (the built-in value)."""

    @classmethod
    def setUpClass(cls):
        needs_root()
        super().setUpClass()

    def test_mark_with_the_drop_serves_and_keeps_only_net_admin(self):
        """Defect 2: with `mark:` every request got 502 after the drop. It is
        served, and the process holds CAP_NET_ADMIN and nothing else."""
        e = self.start_embargo(extra="mark: 42\n")
        r = http_get(e.port, self.url(path="/marked"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /marked\n")
        self.assertEqual(proc_uids(e.proc.pid), [pwd.getpwnam("nobody").pw_uid] * 4)
        caps = proc_caps(e.proc.pid)
        self.assertEqual(caps["CapEff"], CAP_NET_ADMIN, caps)
        self.assertEqual(caps["CapPrm"], CAP_NET_ADMIN, caps)
        self.assertEqual((caps["CapInh"], caps["CapAmb"]), (0, 0), caps)
        e.wait_stderr("keeping CAP_NET_ADMIN (for mark:, SO_MARK) and no other capability")

    def test_without_mark_no_capability_is_kept(self):
        caps = proc_caps(self.embargo.proc.pid)
        self.assertEqual((caps["CapEff"], caps["CapPrm"], caps["CapInh"], caps["CapAmb"]),
                         (0, 0, 0, 0), caps)
        self.embargo.wait_stderr("running as user nobody")

    def test_a_tproxy_listener_needs_no_capability_after_the_drop(self):
        """IP_TRANSPARENT is set on the listening socket, before the drop;
        the connections it accepts inherit it. Nothing is kept for it."""
        port = free_port()
        e2 = Embargo(self.tmp, make_config(), self.dns.port,
                     extra_args=["--tproxy", "127.0.0.1:%d" % port]).start()
        self.addCleanup(e2.check_clean_exit)
        e2.wait_stderr("listening on 127.0.0.1:%d (tproxy)" % port)
        caps = proc_caps(e2.proc.pid)
        self.assertEqual((caps["CapEff"], caps["CapPrm"]), (0, 0), caps)
        self.assertEqual(http_get(e2.port, self.url()).status, 200)

    def test_an_inheritable_capability_of_the_starter_is_not_left(self):
        """Regression: started as root with an inheritable capability (a
        service manager or container runtime may set one), the switch to
        `nobody` emptied the effective and permitted sets but left the
        inheritable one, although no capability was to be kept. Every set
        is now empty, with `mark:` or not (CAP_NET_ADMIN kept alone)."""
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            self.skipTest("setpriv not installed (util-linux)")
        wrapper = os.path.join(self.tmp, "inheritable.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s --inh-caps=+net_admin,+net_raw %s \"$@\"\n"
                    % (setpriv, harness.BINARY))
        os.chmod(wrapper, 0o755)
        for extra, kept in (("", 0), ("mark: 42\n", CAP_NET_ADMIN)):
            real, harness.BINARY = harness.BINARY, wrapper
            try:
                e = Embargo(self.tmp, make_config(extra=extra), self.dns.port).start()
            finally:
                harness.BINARY = real
            self.addCleanup(e.check_clean_exit)
            e.wait_stderr("running as user nobody")
            caps = proc_caps(e.proc.pid)
            self.assertEqual((caps["CapEff"], caps["CapPrm"], caps["CapInh"], caps["CapAmb"]),
                             (kept, kept, 0, 0), (extra, caps))
            self.assertEqual(http_get(e.port, self.url(path="/inh")).status, 200)

    def test_mark_without_the_capability_stops_the_start(self):
        """Checked after the drop: a process that cannot set SO_MARK does not
        start serving requests it would answer with 502."""
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            self.skipTest("setpriv not installed (util-linux)")
        nobody = pwd.getpwnam("nobody")
        path = os.path.join(self.tmp, "mark-unprivileged.yaml")
        with open(path, "w") as f:
            f.write("mark: 42\n")
        os.chmod(self.tmp, 0o755)
        os.chmod(path, 0o644)
        p = subprocess.run([setpriv, "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                            "--clear-groups", "--inh-caps=-all", harness.BINARY, "run",
                            "--config", path, "--listen", "127.0.0.1:%d" % free_port(),
                            "--log", os.devnull],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0, err)
        self.assertIn("mark: cannot set SO_MARK 42 on outgoing connections: operation not "
                      "permitted (needs CAP_NET_ADMIN", err)


class LocalDialFailures(unittest.TestCase):
    """Defect 2: dials that fail for a reason of this host are visible. In a
    network namespace of its own, a `prohibit` route makes every connect()
    to 10.203.77.0/24 fail at once with EACCES."""

    @classmethod
    def setUpClass(cls):
        needs_root()
        for tool in ("ip", "curl"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("%s not installed" % tool)
        cls.ns = "embh-dial-%d" % (os.getpid() % 100000)
        cls.tmp = tempfile.mkdtemp(prefix="embargo-dial-")
        cls.procs = []
        cls.made_ns = False
        try:
            p = subprocess.run(["ip", "netns", "add", cls.ns], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            if p.returncode != 0:
                raise unittest.SkipTest("cannot create a network namespace: %s"
                                        % p.stderr.decode().strip())
            cls.made_ns = True
            cls.in_ns("ip", "link", "set", "lo", "up")
            cls.in_ns("ip", "route", "add", "prohibit", "10.203.77.0/24")
            cls.origin_port = free_port()
            cls.origin = subprocess.Popen(
                ["ip", "netns", "exec", cls.ns, "python3", "-m", "http.server",
                 str(cls.origin_port), "--bind", "127.0.0.1", "--directory", cls.tmp],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cls.procs.append(cls.origin)
            cls.admin_port = free_port()
            wrapper = os.path.join(cls.tmp, "embargo-in-ns.sh")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n" % (cls.ns, harness.BINARY))
            os.chmod(wrapper, 0o755)
            real, harness.BINARY = harness.BINARY, wrapper
            try:
                cls.embargo = Embargo(cls.tmp, make_config(extra=admin_extra(cls.admin_port)),
                                      free_port(), port=free_port())
                cls.procs.append(cls.embargo)
                cls.embargo.start()
            finally:
                harness.BINARY = real
            wait_until(lambda: cls.curl("http://127.0.0.1:%d/" % cls.origin_port, proxy=False)
                       == "200", 10, what="the origin in the namespace")
        except BaseException:
            cls.teardown_all()
            raise

    @classmethod
    def in_ns(cls, *cmd):
        return subprocess.run(["ip", "netns", "exec", cls.ns] + list(cmd), check=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)

    @classmethod
    def curl(cls, url, proxy=True):
        """The HTTP status of URL fetched in the namespace (through Embargo)."""
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"]
        if proxy:
            args += ["-x", "http://127.0.0.1:%d" % cls.embargo.port]
        else:
            args += ["--noproxy", "*"]
        p = subprocess.run(["ip", "netns", "exec", cls.ns] + args + [url], env=harness.client_env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        return p.stdout.decode()

    @classmethod
    def admin(cls, path):
        """(status, body) of an admin endpoint request made in the namespace."""
        p = subprocess.run(["ip", "netns", "exec", cls.ns, "curl", "-s", "--noproxy", "*",
                            "--max-time", "20", "-w", "\n%{http_code}",
                            "http://127.0.0.1:%d%s" % (cls.admin_port, path)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        body, _, status = p.stdout.decode().rpartition("\n")
        return int(status or 0), body

    @classmethod
    def status(cls, *args):
        p = subprocess.run(["ip", "netns", "exec", cls.ns, harness.BINARY, "status", "--admin",
                            "127.0.0.1:%d" % cls.admin_port] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stdout.decode()

    @classmethod
    def teardown_all(cls):
        for p in reversed(cls.procs):
            if isinstance(p, Embargo):
                p.stop()
            elif p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        if cls.made_ns:
            subprocess.run(["ip", "netns", "del", cls.ns], timeout=30)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.embargo.check_clean_exit()
        finally:
            cls.teardown_all()

    def test_a_dial_refused_on_this_host_is_counted_and_unreadies(self):
        """Defect 2: every dial failed with EPERM and /readyz said ready.
        A local failure is counted, makes /readyz 503 naming it, leaves
        liveness alone, and a dial that connects makes it ready again."""
        self.assertEqual(self.admin("/readyz")[0], 200)
        before = parse_metrics(self.admin("/metrics")[1])
        self.assertEqual(self.curl("http://10.203.77.1/"), "502")
        after = parse_metrics(self.admin("/metrics")[1])
        key = 'embargo_upstream_connects_total{result="local_error"}'
        self.assertEqual(after.get(key, 0) - before.get(key, 0), 1)
        st, body = self.admin("/readyz")
        self.assertEqual(st, 503, body)
        self.assertIn("not ready: connections to destinations fail for a reason on this host: "
                      "permission denied (EACCES)", body)
        rc, out = self.status()
        self.assertEqual(rc, 1, out)
        rc, out = self.status("--live")
        self.assertEqual(rc, 0, out)
        self.embargo.wait_stderr("cannot connect to 10.203.77.1")
        self.assertEqual(self.curl("http://127.0.0.1:%d/" % self.origin_port), "200")
        st, body = self.admin("/readyz")
        self.assertEqual((st, body), (200, "ready\n"))


class ReadabilityWarnings(unittest.TestCase):
    """Defect 8: a reload reads files as the runtime user. A config in a
    0700 directory was read at start (as root) and the first reload failed
    ("cannot read: Permission denied") with no warning before."""

    def setUp(self):
        needs_root()
        self.tmp = tempfile.mkdtemp(prefix="embargo-read-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        os.chmod(self.tmp, 0o755)
        self.private = os.path.join(self.tmp, "private")
        os.mkdir(self.private, 0o700)
        with open(os.path.join(self.private, "acme.yaml"), "w") as f:
            f.write("vendor: acme\ncategories:\n  updates:\n    cutoff: 2024-07-01T00:00:00Z\n"
                    "    hosts: [upd.acme.test]\n")
        with open(os.path.join(self.private, "token"), "w") as f:
            f.write("0123456789abcdef0123\n")
        os.chmod(os.path.join(self.private, "token"), 0o600)
        self.admin_port = free_port()
        self.config = os.path.join(self.private, "embargo.yaml")
        with open(self.config, "w") as f:
            f.write("vendors: [{builtin: kaspersky}, {file: acme.yaml}]\n"
                    "admin: {listen: 127.0.0.1:%d, token_file: token}\n" % self.admin_port)

    def expected(self, text):
        """The files and why, in TEXT: the config, the list and the token
        behind the 0700 directory."""
        for name in ("embargo.yaml", "acme.yaml", "token"):
            self.assertIn("%s will not be readable by user nobody (uid %d, gid %d) once Embargo "
                          "started as root runs as it, so a reload would fail: no search "
                          "permission on directory %s (mode 0700, owner 0:0)"
                          % (os.path.join(self.private, name), pwd.getpwnam("nobody").pw_uid,
                             pwd.getpwnam("nobody").pw_gid, self.private), text)

    def test_config_check_names_the_files_and_the_user(self):
        p = subprocess.run([harness.BINARY, "config", "check", self.config],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.expected(p.stderr.decode())
        # Made readable, only the token (0600, root's) is left.
        os.chmod(self.private, 0o755)
        p = subprocess.run([harness.BINARY, "config", "check", self.config],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.decode().strip().splitlines(), [
            "embargo: warning: %s will not be readable by user nobody (uid %d, gid %d) once "
            "Embargo started as root runs as it, so a reload would fail: no read permission on "
            "%s (mode 0600, owner 0:0)" % (os.path.join(self.private, "token"),
                                           pwd.getpwnam("nobody").pw_uid,
                                           pwd.getpwnam("nobody").pw_gid,
                                           os.path.join(self.private, "token"))])

    def test_start_as_root_warns_before_the_drop_and_the_reload_fails_as_said(self):
        e = Embargo(self.tmp, "", free_port())
        e.config_path = self.config  # the private one, not the harness's
        e.start()
        self.addCleanup(e.check_clean_exit)
        text = e.wait_stderr("running as user nobody")
        self.expected(text.split("running as user nobody")[0])
        st, _, body = admin_get(self.admin_port, "/reload", method="POST",
                                token="0123456789abcdef0123")
        self.assertEqual(st, 422, body)
        self.assertIn(b"cannot read: Permission denied", body)


if __name__ == "__main__":
    harness.main()
