"""Embargo under a service manager, through the real binary.

- Type=notify: with $NOTIFY_SOCKET set, Embargo tells the manager READY=1
  once its listeners accept and the policy is loaded, RELOADING=1 (with
  MONOTONIC_USEC) then READY=1 around every reload, rejected or not, and
  STOPPING=1 on the way out. The test is the manager: a datagram socket it
  binds, at a path and at an abstract name.
- User= with AmbientCapabilities=: started as an unprivileged user holding
  CAP_NET_BIND_SERVICE and CAP_NET_ADMIN (setpriv does what systemd does),
  Embargo binds a port below 1024 and a tproxy listener, sets its `mark:`,
  serves, keeps exactly those capabilities, and does not use `user:`.

The second part needs root and setpriv (util-linux); reported skipped
otherwise.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Embargo, EmbargoTestCase, free_port, http_get, make_config

CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12


class Manager:
    """The service manager's end of $NOTIFY_SOCKET: a datagram socket bound
    to a path in DIRECTORY, or to an abstract name."""

    def __init__(self, directory=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if directory is not None:
            self.address = os.path.join(directory, "notify")
            self.sock.bind(self.address)
            # Embargo started as root sends as its `user:` (nobody), as a
            # unit's User= does to systemd's socket, which anyone may send to.
            os.chmod(directory, 0o755)
            os.chmod(self.address, 0o777)
        else:
            name = "embargo-test-notify-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.address = "@" + name

    def env(self):
        return {"NOTIFY_SOCKET": self.address}

    def recv(self, timeout=10.0):
        """The next message as {KEY: VALUE}; fails after TIMEOUT seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no notification within %.0fs" % timeout)
        return dict(line.split("=", 1) for line in data.decode().split("\n") if line)

    def close(self):
        self.sock.close()


class NotifyTest(EmbargoTestCase):
    """One Embargo started with $NOTIFY_SOCKET at a path."""

    @classmethod
    def setUpClass(cls):
        cls.manager_dir = tempfile.mkdtemp(prefix="embargo-notify-")
        cls.manager = Manager(cls.manager_dir)
        cls.EMBARGO_ENV = cls.manager.env()
        try:
            super().setUpClass()
            cls.ready = cls.manager.recv()
        except BaseException:
            cls.manager.close()
            shutil.rmtree(cls.manager_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.manager.close()
            shutil.rmtree(cls.manager_dir, ignore_errors=True)

    def reload_and_read(self, embargo, manager):
        """SIGHUP, then the two messages the reload makes. Embargo reloads
        as nobody: the class's directory is made readable first."""
        os.chmod(self.tmp, 0o755)
        before = int(time.monotonic() * 1e6)
        embargo.proc.send_signal(signal.SIGHUP)
        reloading = manager.recv()
        after = int(time.monotonic() * 1e6)
        return before, reloading, after, manager.recv()

    def test_ready_once_listening_with_the_policy(self):
        self.assertEqual(self.ready.get("READY"), "1", self.ready)
        self.assertRegex(self.ready.get("STATUS", ""), r"^serving: policy [0-9a-f]+$")
        # Everything the start logs comes before READY=1.
        self.assertIn("listening on %s (proxy)" % self.embargo.listener,
                      self.embargo.stderr_text())
        self.assertEqual(self.get(self.url(path="/after-ready")).status, 200)

    def test_reload_is_bracketed_by_reloading_and_ready(self):
        before, reloading, after, ready = self.reload_and_read(self.embargo, self.manager)
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        usec = int(reloading["MONOTONIC_USEC"])
        self.assertTrue(before <= usec <= after, (before, usec, after))
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertRegex(ready.get("STATUS", ""), r"^serving: policy [0-9a-f]+$")
        self.embargo.wait_stderr("reloaded")

    def test_rejected_reload_still_ends_with_ready(self):
        """A rejected reload leaves the old configuration in force: the
        manager must not wait for a READY=1 that never comes."""
        e = self.start_embargo(env=self.manager_for_this_test().env())
        m = self.this_manager
        m.recv()  # its READY=1
        with open(e.config_path, "a") as f:
            f.write("timeouts: {connect: soon}\n")
        _, reloading, _, ready = self.reload_and_read(e, m)
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertIn("the last reload was rejected: ", ready.get("STATUS", ""))
        self.assertIn("embargo-%d.yaml" % e.n, ready["STATUS"])
        self.assertEqual(http_get(e.port, self.url(path="/after-rejected")).status, 200)

    def test_stopping_on_sigterm_then_a_clean_exit(self):
        e = self.start_embargo(env=self.manager_for_this_test(abstract=True).env())
        m = self.this_manager
        self.assertEqual(m.recv().get("READY"), "1")
        e.proc.send_signal(signal.SIGTERM)
        stopping = m.recv()
        self.assertEqual(stopping.get("STOPPING"), "1", stopping)
        self.assertEqual(e.proc.wait(timeout=30), 0, e.stderr_text())

    def manager_for_this_test(self, abstract=False):
        d = None
        if not abstract:
            d = tempfile.mkdtemp(prefix="embargo-notify-")
            self.addCleanup(shutil.rmtree, d, True)
        self.this_manager = Manager(d)
        self.addCleanup(self.this_manager.close)
        return self.this_manager


def low_free_port():
    """A TCP port below 1024 free on 127.0.0.1, or None."""
    for port in range(1000, 600, -7):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class AmbientCapabilitiesTest(unittest.TestCase):
    """Started as nobody with ambient CAP_NET_BIND_SERVICE and CAP_NET_ADMIN,
    as systemd starts the packaged unit."""

    CAPS = "+net_bind_service,+net_admin"

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to start Embargo as another user")
        cls.setpriv = shutil.which("setpriv")
        if cls.setpriv is None:
            raise unittest.SkipTest("setpriv not installed (util-linux)")
        cls.port = low_free_port()
        if cls.port is None:
            raise unittest.SkipTest("no free port below 1024 on 127.0.0.1")
        cls.nobody = pwd.getpwnam("nobody")
        cls.tmp = tempfile.mkdtemp(prefix="embargo-ambient-")
        cls.dns = cls.origin = cls.embargo = None
        try:
            os.chmod(cls.tmp, 0o777)  # nobody writes the log and stderr here
            cls.dns = harness.Dnsmasq(cls.tmp).start()
            cls.origin = harness.Origin().start()
            cls.tproxy_port = free_port()
            cls.embargo = cls.start(cls.CAPS, "mark: 4242\nuser: root\n",
                                    ["--tproxy", "127.0.0.1:%d" % cls.tproxy_port])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, caps, extra, args=(), port=None):
        """An Embargo run through setpriv as nobody with CAPS inheritable
        and ambient (the harness runs BINARY: a wrapper stands in for it)."""
        wrapper = os.path.join(cls.tmp, "as-nobody-%d.sh" % (Embargo._seq + 1))
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s --reuid=%d --regid=%d --clear-groups --inh-caps=%s "
                    "--ambient-caps=%s %s \"$@\"\n"
                    % (cls.setpriv, cls.nobody.pw_uid, cls.nobody.pw_gid, caps, caps,
                       harness.BINARY))
        os.chmod(wrapper, 0o755)
        e = Embargo(cls.tmp, make_config(extra=extra), cls.dns.port, extra_args=list(args),
                    port=port or cls.port)
        for path in (e.config_path,):
            os.chmod(path, 0o644)
        real, harness.BINARY = harness.BINARY, wrapper
        try:
            return e.start()
        finally:
            harness.BINARY = real

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "embargo", None) is not None:
                cls.embargo.check_clean_exit()
        finally:
            for s in (getattr(cls, "origin", None), getattr(cls, "dns", None)):
                if s is not None:
                    s.stop()
            if getattr(cls, "tmp", None):
                shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_runs_as_started_with_exactly_the_ambient_capabilities(self):
        st = proc_status(self.embargo.proc.pid)
        self.assertEqual(st["Uid"].split(), [str(self.nobody.pw_uid)] * 4, st)
        want = CAP_NET_BIND_SERVICE | CAP_NET_ADMIN
        for field in ("CapEff", "CapPrm", "CapAmb"):
            self.assertEqual(int(st[field], 16), want, (field, st))
        text = self.embargo.wait_stderr("as started")
        self.assertIn("running as user nobody (uid %d, gid %d) as started, capabilities: "
                      "CAP_NET_BIND_SERVICE, CAP_NET_ADMIN; `user: root` applies only when "
                      "started as root" % (self.nobody.pw_uid, self.nobody.pw_gid), text)
        self.assertNotIn("running as root because", text)

    def test_binds_below_1024_and_a_tproxy_listener_and_serves_with_the_mark(self):
        """The mark is checked once running (a process that cannot set it
        does not start), so serving means SO_MARK works."""
        text = self.embargo.stderr_text()
        self.assertIn("listening on 127.0.0.1:%d (proxy)" % self.port, text)
        self.assertIn("listening on 127.0.0.1:%d (tproxy)" % self.tproxy_port, text)
        r = http_get(self.port, "http://allowed.test:%d/ambient" % self.origin.port)
        self.assertEqual((r.status, r.body), (200, b"ok /ambient\n"), r)
        r = http_get(self.port, "http://dnl-01.geo.kaspersky.com/")
        self.assertEqual(r.status, 403, r)

    def test_without_net_admin_the_mark_stops_the_start(self):
        """The same start with CAP_NET_BIND_SERVICE alone: `mark:` cannot be
        set, and Embargo says which capability it needs."""
        with self.assertRaises(RuntimeError) as cm:
            e = self.start("+net_bind_service", "mark: 4242\n", port=free_port())
            self.addCleanup(e.stop)
        self.assertIn("mark: cannot set SO_MARK 4242 on outgoing connections: operation not "
                      "permitted (needs CAP_NET_ADMIN", str(cm.exception))


if __name__ == "__main__":
    harness.main()
