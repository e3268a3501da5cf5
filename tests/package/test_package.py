#!/usr/bin/env python3
"""The Debian package, installed the way an admin installs it.

scripts/package.sh builds embargo_VERSION_ARCH.deb (dpkg-buildpackage,
lintian). Then, in a Debian 12 container with systemd as its init (podman
--systemd=always, from the debootstrap base image scripts/container.sh
makes, plus systemd and the package's libraries; the container's network is
off), `apt-get install ./embargo_*.deb`, and:

- the files are where an admin looks, /etc/embargo/embargo.yaml a conffile;
- `systemctl start embargo` is active (running) only after READY=1: with
  READY=1 kept from systemd the start times out although Embargo listens;
- the process runs as embargo with exactly the capabilities the unit names;
- a request through it to an origin in the container is served, a
  Kaspersky one denied and logged in /var/log/embargo;
- `systemctl reload embargo` applies an edited site list;
- journalctl -u embargo holds the diagnostics, `embargo status` answers,
  logrotate's SIGUSR1 reopens the log, embargo-rules.service loads and
  removes the nftables rules;
- `systemd-analyze verify` and `security` (exposure level OK or better);
- `apt-get purge` removes the user and the files and leaves nothing running.

Where podman cannot run containers, or systemd cannot boot in one, those
cases are skipped with the reason, and the units are still checked on this
host with `systemd-analyze verify` and `security --offline=true`.

    python3 tests/package/test_package.py --binary build/embargo
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402

CONTAINER_SH = os.path.join(ROOT, "scripts", "container.sh")
PACKAGE_SH = os.path.join(ROOT, "scripts", "package.sh")
IMAGE = "localhost/embargo-systemd"
BUILD_TIMEOUT = 1800  # seconds; cold: debootstrap, then systemd and the libraries
BOOT_TIMEOUT = 120
CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_ADMIN = 1 << 12
# systemd-analyze security: exposure levels, best first; "OK" or better passes.
GOOD_LEVELS = ("PERFECT", "SAFE", "OK")

timings = {}
_deb = {}


def run(args, timeout=300, check=False, **kw):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, errors="replace", timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout[-4000:],
                                                    p.stderr[-4000:]))
    return p


def podman(*args, timeout=120, check=False):
    return run([CONTAINER_SH, "podman"] + list(args), timeout=timeout, check=check)


def package():
    """The .deb scripts/package.sh builds (once per run), and its lintian."""
    if "path" not in _deb:
        t0 = time.monotonic()
        p = run([PACKAGE_SH], timeout=BUILD_TIMEOUT, cwd=ROOT)
        timings["package build and lintian"] = time.monotonic() - t0
        if p.returncode != 0:
            raise AssertionError("scripts/package.sh failed:\n" + p.stderr[-8000:])
        _deb["path"] = os.path.join(ROOT, p.stdout.strip().splitlines()[-1])
        _deb["stderr"] = p.stderr
    return _deb["path"]


def podman_unusable():
    """None when podman can run containers here, else the reason."""
    if os.environ.get("EMBARGO_CONTAINER") == "0":
        return "EMBARGO_CONTAINER=0"
    if os.geteuid() != 0:
        return "needs root: systemd in a rootless container cannot give the unit CAP_NET_ADMIN"
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            return "%s not installed (scripts/deps.sh container)" % tool
    try:
        p = podman("info", timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info did not answer within 60s"
    if p.returncode != 0:
        return "podman info failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def systemd_image():
    """IMAGE:TAG, built if missing from the base image and Containerfile; the
    tag follows the Containerfile and the runtime library list."""
    with open(os.path.join(HERE, "Containerfile"), "rb") as f:
        containerfile = f.read()
    with open(os.path.join(ROOT, "scripts", "deps.sh"), "rb") as f:
        deps = f.read()
    tag = "%s:%s" % (IMAGE, hashlib.sha256(containerfile + deps).hexdigest()[:12])
    if podman("image", "exists", tag).returncode == 0:
        timings["systemd image"] = 0.0
        return tag
    t0 = time.monotonic()
    p = run([CONTAINER_SH, "base"], timeout=BUILD_TIMEOUT, cwd=ROOT)
    if p.returncode != 0:
        raise AssertionError("scripts/container.sh base failed:\n" + p.stderr[-5000:])
    ctx = tempfile.mkdtemp(prefix="embargo-systemd-image-")
    try:
        shutil.copy(os.path.join(HERE, "Containerfile"), ctx)
        shutil.copy(os.path.join(ROOT, "scripts", "deps.sh"), ctx)
        ulimits = run([CONTAINER_SH, "ulimits"], check=True).stdout.split()
        p = podman("build", "--network", "host", "--pull=never", *ulimits, "-t", tag,
                   "-f", os.path.join(ctx, "Containerfile"), ctx, timeout=BUILD_TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("the systemd image failed to build:\n" + p.stdout[-5000:] +
                                 p.stderr[-5000:])
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    # Images of earlier Containerfiles are not used again.
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE).stdout.split()
    for old in listed:
        if old != tag:
            podman("rmi", old)
    timings["systemd image"] = time.monotonic() - t0
    return tag


def exposure(text, unit):
    """(score, level) from systemd-analyze security's last line for UNIT."""
    m = re.search(r"Overall exposure level for %s: ([0-9.]+) (\w+)" % re.escape(unit), text)
    if m is None:
        raise AssertionError("no exposure level for %s in:\n%s" % (unit, text[-2000:]))
    return float(m.group(1)), m.group(2)


class UnitFilesTest(unittest.TestCase):
    """The units as packaged, checked on this host whether or not a
    container can boot systemd."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("systemd-analyze") is None:
            raise unittest.SkipTest("systemd-analyze not installed (systemd)")
        cls.tmp = tempfile.mkdtemp(prefix="embargo-units-")
        try:
            run(["dpkg-deb", "-x", package(), cls.tmp], check=True)
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_lintian_reports_no_error_or_warning(self):
        """scripts/package.sh fails on either; what it printed is shown."""
        self.assertNotRegex(_deb["stderr"], r"(?m)^[EW]: ", _deb["stderr"])

    def test_units_verify_without_a_warning(self):
        """The packaged binary stands in for /usr/sbin/embargo, which this
        host may not have: verify checks that every command exists."""
        binary = os.path.join(self.tmp, "usr", "sbin", "embargo")
        units = []
        for name in ("embargo.service", "embargo-rules.service"):
            with open(os.path.join(self.tmp, "lib", "systemd", "system", name)) as f:
                text = f.read()
            path = os.path.join(self.tmp, name)
            with open(path, "w") as f:
                f.write(text.replace("/usr/sbin/embargo", binary))
            units.append(path)
        p = run(["systemd-analyze", "verify", "--man=no"] + units)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_security_exposure_is_ok_or_better(self):
        unit = os.path.join(self.tmp, "lib", "systemd", "system", "embargo.service")
        p = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit])
        score, level = exposure(p.stdout, "embargo.service")
        print("\n  systemd-analyze security --offline=true embargo.service: %.1f %s"
              % (score, level), file=sys.stderr, end=" ")
        self.assertIn(level, GOOD_LEVELS, p.stdout)
        self.assertLess(score, 5.0)


class InstalledPackageTest(unittest.TestCase):
    """One container with systemd as init; the package installed at set-up,
    purged by the last case."""

    maxDiff = None
    ORIGIN_PORT = 8080

    @classmethod
    def setUpClass(cls):
        reason = podman_unusable()
        if reason:
            raise unittest.SkipTest(reason)
        cls.name = "embargo-package-test-%d" % os.getpid()
        cls.started = False
        try:
            cls.deb = package()
            cls.image = systemd_image()
            cls.boot()
            cls.install()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def boot(cls):
        t0 = time.monotonic()
        ulimits = run([CONTAINER_SH, "ulimits"], check=True).stdout.split()
        # CAP_NET_ADMIN: the unit's ambient capabilities come from the
        # container's bounding set. No network but loopback.
        p = podman("run", "--detach", "--name", cls.name, "--systemd=always", "--network", "none",
                   "--cap-add", "NET_ADMIN", *ulimits, cls.image)
        if p.returncode != 0:
            raise unittest.SkipTest("a container with systemd as init does not start here: " +
                                    (p.stderr.strip().splitlines() or ["?"])[-1])
        cls.started = True
        p = cls.sh("timeout %d systemctl is-system-running --wait" % BOOT_TIMEOUT,
                   timeout=BOOT_TIMEOUT + 30)
        state = p.stdout.strip()
        if state not in ("running", "degraded"):
            logs = podman("logs", cls.name, timeout=30)
            raise unittest.SkipTest("systemd did not boot in the container (state %r): %s"
                                    % (state, (logs.stdout + logs.stderr)[-500:]))
        timings["container boot"] = time.monotonic() - t0

    @classmethod
    def install(cls):
        t0 = time.monotonic()
        podman("cp", cls.deb, "%s:/tmp/" % cls.name, check=True)
        p = cls.sh("DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/%s"
                   % os.path.basename(cls.deb), timeout=300)
        if p.returncode != 0:
            raise AssertionError("apt-get install failed:\n" + p.stdout[-4000:] + p.stderr[-4000:])
        cls.install_output = p.stdout
        timings["install"] = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "started", False):
            podman("rm", "--force", "--time", "5", cls.name, timeout=120)
            cls.started = False

    @classmethod
    def sh(cls, script, timeout=120, check=False):
        return podman("exec", cls.name, "sh", "-c", script, timeout=timeout, check=check)

    def ok(self, script, timeout=120):
        """SCRIPT's standard output; fails unless it exits 0."""
        p = self.sh(script, timeout=timeout)
        self.assertEqual(p.returncode, 0, "%s\n%s%s" % (script, p.stdout, p.stderr))
        return p.stdout

    def show(self, prop, unit="embargo"):
        return self.ok("systemctl show -p %s --value %s" % (prop, unit)).strip()

    def journal(self):
        return self.ok("journalctl -u embargo --no-pager -o cat")

    def proxy_get(self, url):
        """(status, Proxy-Status, body) of a GET through Embargo."""
        out = self.ok("curl -s -D - --max-time 20 -x http://127.0.0.1:3128 %s" % url)
        head, _, body = out.partition("\n\n")  # text mode: CRLF read as LF
        status = int(head.split(" ", 2)[1])
        ps = [l.split(":", 1)[1].strip() for l in head.split("\n")
              if l.lower().startswith("proxy-status:")]
        return status, (ps or [""])[0], body

    def site_list(self, network):
        """/etc/embargo/vendors/site.yaml denying NETWORK since 2024."""
        self.ok("cat > /etc/embargo/vendors/site.yaml <<'EOF'\n"
                "vendor: site\nname: This site's own list\n"
                "categories:\n  updates:\n    cutoff: 2024-01-01T00:00:00Z\n"
                "    before: deny\n    after: deny\n    networks: [%s]\nEOF" % network)

    def test_01_files_where_an_admin_looks(self):
        self.ok("test -x /usr/sbin/embargo && test -d /etc/embargo/vendors && "
                "test -f /etc/logrotate.d/embargo && test -f /lib/systemd/system/embargo.service "
                "&& test -f /lib/systemd/system/embargo-rules.service && "
                "test -f /usr/share/man/man8/embargo.8.gz && "
                "test -f /usr/share/man/man5/embargo.yaml.5.gz && "
                "test -f /usr/share/bash-completion/completions/embargo && "
                "test ! -e /etc/default/embargo")
        conffiles = self.ok("dpkg-query -W -f='${Conffiles}' embargo")
        self.assertIn("/etc/embargo/embargo.yaml", conffiles)
        self.assertEqual(self.ok("stat -c '%U:%G %a' /var/log/embargo").strip(),
                         "embargo:adm 2750")
        self.assertEqual(self.ok("getent passwd embargo | cut -d: -f6,7").strip(),
                         "/nonexistent:/usr/sbin/nologin")
        self.assertIn("embargo.service", self.install_output)

    def test_02_active_only_after_ready(self):
        """Type=notify: with NOTIFY_SOCKET taken from Embargo it listens but
        never says READY=1, and the start times out; with it, the unit is
        active (running) with the status READY=1 carried."""
        self.ok("systemctl stop embargo")
        self.ok("mkdir -p /run/systemd/system/embargo.service.d && "
                "printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/env -u NOTIFY_SOCKET "
                "/usr/sbin/embargo run --config /etc/embargo/embargo.yaml\\n"
                "TimeoutStartSec=4s\\nRestart=no\\n' "
                "> /run/systemd/system/embargo.service.d/no-ready.conf && "
                "systemctl daemon-reload")
        try:
            mark = len(self.journal())
            p = self.sh("systemctl start embargo", timeout=60)
            self.assertNotEqual(p.returncode, 0, "started without READY=1")
            self.assertEqual(self.show("Result"), "timeout")
            self.assertEqual(self.show("ActiveState"), "failed")
            self.assertIn("listening on 127.0.0.1:3128 (proxy)", self.journal()[mark:])
        finally:
            self.ok("rm -r /run/systemd/system/embargo.service.d && systemctl daemon-reload && "
                    "systemctl reset-failed embargo")
        self.ok("systemctl start embargo")
        self.assertEqual((self.show("ActiveState"), self.show("SubState")), ("active", "running"))
        self.assertRegex(self.show("StatusText"), r"^serving: policy [0-9a-f]{16}$")
        self.assertRegex(self.ok("systemctl status embargo --no-pager | head -5"),
                         r"Active: active \(running\)")

    def test_03_runs_as_embargo_with_the_units_capabilities(self):
        pid = self.show("MainPID")
        status = self.ok("cat /proc/%s/status" % pid)
        fields = dict(l.split(":\t", 1) for l in status.splitlines() if ":\t" in l)
        uid = self.ok("id -u embargo").strip()
        self.assertEqual(fields["Uid"].split(), [uid] * 4)
        want = CAP_NET_BIND_SERVICE | CAP_NET_ADMIN
        for field in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            self.assertEqual(int(fields[field], 16), want, (field, status))
        self.assertIn("running as user embargo (uid %s" % uid, self.journal())

    def test_04_serves_and_denies(self):
        """The origin is in the container on loopback (a restart-only
        internal.allow lets Embargo reach it); the site list comes in with
        the restart."""
        self.ok("mkdir -p /srv/origin && echo 'hello from the origin' > /srv/origin/hello && "
                "systemd-run --unit embargo-test-origin python3 -m http.server %d --bind "
                "127.0.0.1 --directory /srv/origin" % self.ORIGIN_PORT)
        self.site_list("192.0.2.0/24")
        self.ok("sed -i 's|^  allow: \\[\\]|  allow: [127.0.0.0/8]|' /etc/embargo/embargo.yaml && "
                "printf 'vendors:\\n  - builtin: kaspersky\\n  - file: vendors/site.yaml\\n' "
                ">> /etc/embargo/embargo.yaml && "
                "embargo config check /etc/embargo/embargo.yaml >/dev/null && "
                "systemctl restart embargo")
        harness.wait_until(lambda: self.sh("curl -s -o /dev/null http://127.0.0.1:%d/hello"
                                           % self.ORIGIN_PORT).returncode == 0, 20, 0.2,
                           "the origin in the container")
        status, _, body = self.proxy_get("http://127.0.0.1:%d/hello" % self.ORIGIN_PORT)
        self.assertEqual((status, body), (200, "hello from the origin\n"))
        status, ps, _ = self.proxy_get("http://dnl-01.geo.kaspersky.com/")
        self.assertEqual(status, 403)
        self.assertIn("error=http_request_denied", ps)
        line = harness.wait_until(
            lambda: [l for l in self.ok("cat /var/log/embargo/decisions.log").splitlines()
                     if '"host":"dnl-01.geo.kaspersky.com"' in l], 10, 0.2, "the deny line")[0]
        self.assertIn('"vendor":"kaspersky"', line)
        self.assertIn('"event":"deny"', line)

    def test_05_reload_applies_an_edited_list(self):
        """systemd 252 ends a reload when `kill -HUP` returns, before
        Embargo has read the files: the new list is awaited, bounded."""
        url = "http://127.0.0.1:%d/hello" % self.ORIGIN_PORT
        self.assertEqual(self.proxy_get(url)[0], 200)
        before = self.show("StatusText")
        self.site_list("127.0.0.1/32")
        self.ok("systemctl reload embargo")

        def denied():
            status, ps, _ = self.proxy_get(url)
            return (status, ps) if status == 403 else None
        status, ps = harness.wait_until(denied, 20, 0.2, "the edited list in force")
        self.assertIn("site updates traffic", ps)
        self.assertIn("reloaded /etc/embargo/embargo.yaml", self.journal())
        after = harness.wait_until(lambda: self.show("StatusText") != before and
                                   self.show("StatusText"), 10, 0.2, "READY=1 after the reload")
        self.assertRegex(after, r"^serving: policy [0-9a-f]{16}$")
        self.assertEqual(self.show("ActiveState"), "active")

    def test_06_journal_holds_the_diagnostics_and_status_answers(self):
        text = self.journal()
        for line in ("listening on 127.0.0.1:3128 (proxy)", "admin endpoint on 127.0.0.1:9090",
                     "capabilities: CAP_NET_BIND_SERVICE, CAP_NET_ADMIN"):
            self.assertIn(line, text)
        out = self.ok("embargo status")
        self.assertRegex(out, r"(?m)^readiness: +ready$")

    def test_07_logrotate_reopens_the_log_with_sigusr1(self):
        self.ok("logrotate -f /etc/logrotate.d/embargo")
        harness.wait_until(lambda: "log /var/log/embargo/decisions.log reopened" in
                           self.journal(), 10, 0.2, "the reopened log")
        self.assertEqual(self.proxy_get("http://s07.upd.kaspersky.com/")[0], 403)
        harness.wait_until(lambda: "s07.upd.kaspersky.com" in
                           self.ok("cat /var/log/embargo/decisions.log"), 10, 0.2,
                           "the deny line in the new file")
        self.assertNotIn("s07.upd.kaspersky.com",
                         self.ok("cat /var/log/embargo/decisions.log.1"))
        self.assertEqual(self.ok("stat -c '%U:%G %a' /var/log/embargo/decisions.log").strip(),
                         "embargo:adm 640")

    def test_08_rules_unit_loads_and_removes_the_nft_table(self):
        self.ok("sed -i 's|^  - 127.0.0.1:3128 .*|  - 127.0.0.1:3128\\n  - {address: "
                "0.0.0.0:3129, mode: intercept}|' /etc/embargo/embargo.yaml && "
                "embargo config check /etc/embargo/embargo.yaml >/dev/null")
        self.assertEqual(self.show("UnitFileState", "embargo-rules"), "disabled")
        self.ok("systemctl start embargo-rules")
        self.assertEqual(self.show("SubState", "embargo-rules"), "exited")
        table = self.ok("nft list table inet embargo")
        self.assertRegex(table, r"redirect to :3129")
        self.ok("systemctl stop embargo-rules")
        self.assertNotEqual(self.sh("nft list table inet embargo").returncode, 0)

    def test_09_units_verify_and_score_ok_in_place(self):
        p = self.sh("systemd-analyze verify --man=no /lib/systemd/system/embargo.service "
                    "/lib/systemd/system/embargo-rules.service")
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        out = self.ok("systemd-analyze security --no-pager embargo.service")
        score, level = exposure(out, "embargo.service")
        self.assertIn(level, GOOD_LEVELS, out)
        self.assertLess(score, 5.0)

    def test_10_a_configuration_error_is_told_and_not_restarted(self):
        """Exit status 2 is RestartPreventExitStatus: the unit fails once,
        with the file:line:col error in the journal, instead of looping."""
        self.ok("cp /etc/embargo/embargo.yaml /root/embargo.yaml.good && "
                "printf 'timeouts: {connect: soon}\n' >> /etc/embargo/embargo.yaml")
        try:
            mark = len(self.journal())
            self.assertNotEqual(self.sh("systemctl restart embargo", timeout=60).returncode, 0)
            self.assertEqual((self.show("ActiveState"), self.show("Result"),
                              self.show("ExecMainStatus"), self.show("NRestarts")),
                             ("failed", "exit-code", "2", "0"))
            self.assertRegex(self.journal()[mark:],
                             r"/etc/embargo/embargo.yaml:\d+:\d+: timeouts")
        finally:
            self.ok("cp /root/embargo.yaml.good /etc/embargo/embargo.yaml && "
                    "systemctl reset-failed embargo")
        self.ok("systemctl start embargo")
        self.assertEqual(self.show("SubState"), "running")

    def test_99_purge_removes_the_user_and_leaves_nothing_running(self):
        self.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y embargo", timeout=300)
        self.assertEqual(self.sh("getent passwd embargo").returncode, 2)
        self.assertEqual(self.sh("getent group embargo").returncode, 2)
        self.assertEqual(self.sh("pgrep -x embargo").returncode, 1, "embargo still runs")
        self.ok("test ! -e /etc/embargo/embargo.yaml && test ! -e /var/log/embargo && "
                "test ! -e /var/lib/embargo && test ! -e /usr/sbin/embargo && "
                "test ! -e /etc/logrotate.d/embargo")
        # A file the admin made is the admin's: dpkg leaves it, and its
        # directory, in place.
        self.assertEqual(self.ok("find /etc/embargo | sort").split(),
                         ["/etc/embargo", "/etc/embargo/vendors",
                          "/etc/embargo/vendors/site.yaml"])
        self.assertEqual(self.show("LoadState"), "not-found")


def main():
    start = time.monotonic()
    try:
        harness.main()
    finally:
        print("package stage: %.0fs (%s)" % (time.monotonic() - start, ", ".join(
            "%s %.0fs" % kv for kv in timings.items()) or "nothing built"), file=sys.stderr)


if __name__ == "__main__":
    main()
