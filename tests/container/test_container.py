#!/usr/bin/env python3
"""The container image, for real: builds it with podman (scripts/container.sh,
which makes the debian:bookworm-slim base from debootstrap when podman does
not have it), runs it on the host network with a mounted config and the
environment overrides, and drives it with curl against an origin and dnsmasq
on 127.0.0.1: it runs as uid 10001 with no capabilities on a read-only root,
answers its HEALTHCHECK command, serves an allowed request, denies banned
ones, writes the decision log where EMBARGO_LOG says, and stops on SIGTERM.
Then the `init` target runs the sidecar manifest's init script in a network
namespace of its own, and the IPv4 and IPv6 rulesets are read back.

    python3 tests/container/test_container.py [unittest options]

Skipped, with the reason, where podman cannot run containers (or when
EMBARGO_CONTAINER=0). Ends with the line the suite's summary counts:
`container: N passed, N failed, N skipped`.
"""

import json
import os
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
from harness import Dnsmasq, Origin, free_port, wait_until  # noqa: E402

CONTAINER_SH = os.path.join(ROOT, "scripts", "container.sh")
IMAGE = "localhost/embargo:test"
INIT_IMAGE = "localhost/embargo-init:test"
SIDECAR_YAML = os.path.join(ROOT, "deploy", "kubernetes", "sidecar.yaml")
UID = 10001
CONFIG_MOUNT = "/etc/embargo/embargo.yaml"
LOG_DIR_MOUNT = "/var/log/embargo"
BUILD_TIMEOUT = 1800  # seconds; a cold build downloads a Debian root and the toolchain
START_TIMEOUT = 30

timings = {}


def podman(*args, timeout=120, check=False):
    """Runs podman with the options this machine needs (scripts/container.sh
    podman); returns the CompletedProcess with text output."""
    p = subprocess.run([CONTAINER_SH, "podman"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       errors="replace", timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr))
    return p


def ulimit_args():
    out = subprocess.run([CONTAINER_SH, "ulimits"], stdout=subprocess.PIPE, text=True,
                         timeout=30, check=True).stdout
    return out.split()


def podman_unusable():
    """None when podman can run containers here, else the reason it cannot."""
    if os.environ.get("EMBARGO_CONTAINER") == "0":
        return "EMBARGO_CONTAINER=0"
    if os.geteuid() != 0:
        return "needs root: rootless podman would map the image's uid 10001 elsewhere"
    if not shutil.which("podman"):
        return "podman not installed (scripts/deps.sh container)"
    if not shutil.which("runc"):
        return "runc not installed (scripts/deps.sh container)"
    try:
        p = podman("info", timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info did not answer within 60s"
    if p.returncode != 0:
        return "podman info failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def build_image():
    """Makes the base image if needed, then builds IMAGE; records timings."""
    t0 = time.monotonic()
    p = subprocess.run([CONTAINER_SH, "base"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace",
                       timeout=BUILD_TIMEOUT, cwd=ROOT)
    timings["base image"] = time.monotonic() - t0
    if p.returncode != 0:
        raise AssertionError("scripts/container.sh base failed:\n" + p.stdout[-5000:])
    t0 = time.monotonic()
    p = subprocess.run([CONTAINER_SH, "build", IMAGE], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", timeout=BUILD_TIMEOUT, cwd=ROOT)
    timings["image build"] = time.monotonic() - t0
    if p.returncode != 0:
        raise AssertionError("scripts/container.sh build failed:\n" + p.stdout[-8000:])
    return p.stdout


def build_init_image():
    """Builds the Dockerfile's `init` target as INIT_IMAGE; records its time."""
    t0 = time.monotonic()
    p = subprocess.run([CONTAINER_SH, "build", INIT_IMAGE, "init"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", timeout=BUILD_TIMEOUT, cwd=ROOT)
    timings["init image build"] = time.monotonic() - t0
    if p.returncode != 0:
        raise AssertionError("scripts/container.sh build ... init failed:\n" + p.stdout[-8000:])


def image_accepts(snippet):
    """Whether the image's own `embargo config check` accepts the YAML SNIPPET."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="embargo-probe-",
                                     delete=False) as f:
        f.write(snippet)
    try:
        os.chmod(f.name, 0o644)
        p = podman("run", "--rm", "--no-healthcheck", "--network", "none", *ulimit_args(),
                   "-v", "%s:/tmp/probe.yaml:ro" % f.name, IMAGE, "config", "check",
                   "/tmp/probe.yaml")
        return p.returncode == 0
    finally:
        os.unlink(f.name)


class ContainerTest(unittest.TestCase):
    """One image build and one running container for the whole class."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        """Each step's undoing is registered as a class cleanup before the
        step runs: unittest runs them when this raises part way, and after
        tearDownClass."""
        reason = podman_unusable()
        if reason:
            raise unittest.SkipTest(reason)
        cls.name = "embargo-test-%d" % os.getpid()
        cls.tmp = tempfile.mkdtemp(prefix="embargo-container-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.build_output = build_image()
        cls.dns = Dnsmasq(cls.tmp)
        cls.addClassCleanup(cls.dns.stop)
        cls.dns.start()
        cls.origin = Origin()
        cls.addClassCleanup(cls.origin.stop)
        cls.origin.start()
        cls.addClassCleanup(cls.remove_container)
        cls.start_container()

    @classmethod
    def remove_container(cls):
        """Removes the container if it was made (podman answers an error
        otherwise, which is fine)."""
        podman("rm", "--force", "--time", "5", cls.name, timeout=60)

    @classmethod
    def start_container(cls):
        cls.port = free_port()
        cls.admin_port = free_port()
        # The origin and dnsmasq are on loopback, which embargo refuses as
        # internal unless internal.allow says otherwise.
        config = ("# container test configuration\n"
                  "resolvers: [\"127.0.0.1:%d\"]\n"
                  "internal:\n  allow: [127.0.0.0/8]\n"
                  "timeouts:\n  resolve: 3s\n  connect: 3s\n  response: 20s\n"
                  % cls.dns.port)
        admin = "admin:\n  listen: 127.0.0.1:%d\n" % cls.admin_port
        cls.admin = image_accepts(admin)
        if cls.admin:
            config += admin
        cls.config_path = os.path.join(cls.tmp, "embargo.yaml")
        with open(cls.config_path, "w") as f:
            f.write(config)
        os.chmod(cls.config_path, 0o644)
        cls.log_dir = os.path.join(cls.tmp, "log")
        os.mkdir(cls.log_dir)
        os.chown(cls.log_dir, UID, UID)
        cls.log_path = os.path.join(cls.log_dir, "decisions.jsonl")
        t0 = time.monotonic()
        podman("run", "--detach", "--name", cls.name, "--network", "host", *ulimit_args(),
               "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-v", "%s:%s:ro" % (cls.config_path, CONFIG_MOUNT),
               "-v", "%s:%s" % (cls.log_dir, LOG_DIR_MOUNT),
               "-e", "EMBARGO_LISTEN=127.0.0.1:%d" % cls.port,
               "-e", "EMBARGO_LOG=%s/decisions.jsonl" % LOG_DIR_MOUNT,
               IMAGE, check=True)
        wait_until(lambda: "listening on" in cls.logs() or not cls.running(), START_TIMEOUT,
                   0.1, "the container to listen")
        if not cls.running():
            raise AssertionError("the container exited at start:\n" + cls.logs())
        timings["container start"] = time.monotonic() - t0

    @classmethod
    def logs(cls):
        p = podman("logs", cls.name, timeout=30)
        return p.stdout + p.stderr

    @classmethod
    def running(cls):
        p = podman("inspect", "--format", "{{.State.Running}}", cls.name, timeout=30)
        return p.stdout.strip() == "true"

    def records(self):
        """Complete decision lines: the writer may be in the middle of a batch."""
        out = []
        for line in harness.read_text(self.log_path).split("\n")[:-1]:
            if line:
                out.append(json.loads(line))
        return out

    def wait_record(self, pred):
        return wait_until(lambda: [r for r in self.records() if pred(r)], 5.0, 0.05,
                          "a matching decision log line")[0]

    def curl_proxy(self, *args):
        return harness.curl(["-x", "http://127.0.0.1:%d" % self.port] + list(args), timeout=30)

    def test_01_runs_as_uid_10001_without_capabilities(self):
        p = podman("exec", self.name, "id", "-u", check=True)
        self.assertEqual(p.stdout.strip(), str(UID))
        pid = podman("inspect", "--format", "{{.State.Pid}}", self.name, check=True).stdout.strip()
        status = harness.read_text("/proc/%s/status" % pid)
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.assertEqual(fields["Uid"].split(), [str(UID)] * 4, status)
        self.assertEqual(fields["Gid"].split(), [str(UID)] * 4, status)
        self.assertEqual(int(fields["CapEff"].strip(), 16), 0, status)
        cmdline = harness.read_text("/proc/%s/cmdline" % pid).split("\0")
        # PID 1 is embargo itself (the entrypoint execs it), so SIGTERM reaches it.
        self.assertEqual(cmdline[0], "/usr/local/bin/embargo", cmdline)

    def test_02_environment_and_mounted_config_become_options(self):
        pid = podman("inspect", "--format", "{{.State.Pid}}", self.name, check=True).stdout.strip()
        args = harness.read_text("/proc/%s/cmdline" % pid).split("\0")
        self.assertIn("run", args)
        for opt, val in (("--config", CONFIG_MOUNT), ("--listen", "127.0.0.1:%d" % self.port),
                         ("--log", LOG_DIR_MOUNT + "/decisions.jsonl")):
            self.assertIn(opt, args)
            self.assertEqual(args[args.index(opt) + 1], val, args)

    def test_03_healthcheck_command_answers(self):
        p = podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE,
                   check=True)
        hc = json.loads(p.stdout)
        self.assertIsNotNone(hc, "the image has no HEALTHCHECK (built without --format docker?)")
        test = hc.get("Test") or []
        self.assertEqual(test[:1], ["CMD"], hc)
        self.assertGreater(len(test), 1, hc)
        p = podman("exec", self.name, *test[1:], timeout=60)
        self.assertEqual(p.returncode, 0, "HEALTHCHECK %s: exit %d\n%s%s"
                         % (test[1:], p.returncode, p.stdout, p.stderr))
        self.assertTrue(self.admin, "status passed although the image refused the admin key")

    def test_04_image_holds_the_runtime_libraries_only(self):
        p = podman("run", "--rm", "--no-healthcheck", "--network", "none", *ulimit_args(), "--entrypoint", "ldd",
                   IMAGE, "/usr/local/bin/embargo", check=True)
        self.assertNotIn("not found", p.stdout)
        for lib in ("libuv.so.1", "libcares.so.2", "libyaml-0.so.2", "libcrypto.so.3",
                    "libjansson.so.4", "libz.so.1"):
            self.assertIn(lib, p.stdout)
        p = podman("run", "--rm", "--no-healthcheck", "--network", "none", *ulimit_args(), "--entrypoint", "sh",
                   IMAGE, "-c", "for t in cc gcc cmake make pkg-config; do command -v $t; done; "
                   "ls /usr/include")
        self.assertEqual(p.stdout.strip(), "", "build tools or headers in the runtime image")

    def test_05_serves_an_allowed_request(self):
        before = len(self.origin.heads)
        p = self.curl_proxy("-D", "-", "http://allowed.test:%d/hello" % self.origin.port)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode("utf-8", "replace")
        self.assertTrue(out.startswith("HTTP/1.1 200"), out)
        self.assertTrue(out.endswith("ok /hello\n"), out)
        heads = self.origin.heads[before:]
        self.assertEqual(len(heads), 1, heads)
        via = [v for k, v in heads[0]["headers"] if k.lower() == "via"]
        self.assertTrue(via and "embargo/" in via[0], heads[0])

    def test_06_denies_a_banned_request_and_logs_it(self):
        conns = self.origin.connections
        p = self.curl_proxy("-D", "-", "http://dnl-01.geo.kaspersky.com:%d/" % self.origin.port)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode("utf-8", "replace")
        self.assertTrue(out.startswith("HTTP/1.1 403"), out)
        self.assertIn("Proxy-Status: embargo; error=http_request_denied", out)
        rec = self.wait_record(lambda r: r.get("event") == "deny" and
                               r.get("host") == "dnl-01.geo.kaspersky.com")
        self.assertEqual(rec["vendor"], "kaspersky")
        self.assertEqual(rec["category"], "updates")
        self.assertEqual(rec["status"], 403)
        self.assertEqual(rec["listener"], "127.0.0.1:%d" % self.port)
        self.assertEqual(self.origin.connections, conns, "the origin saw a denied request")

    def test_07_denies_a_banned_tunnel(self):
        p = self.curl_proxy("https://s07.upd.kaspersky.com/")
        self.assertEqual(p.returncode, 56, p.stderr)
        self.assertIn(b"403", p.stderr)
        self.wait_record(lambda r: r.get("event") == "deny" and r.get("method") == "CONNECT" and
                         r.get("host") == "s07.upd.kaspersky.com")

    def test_08_missing_config_named_by_environment_is_an_error(self):
        p = podman("run", "--rm", "--no-healthcheck", "--network", "none", *ulimit_args(), "-e",
                   "EMBARGO_CONFIG=/etc/embargo/missing.yaml", IMAGE, timeout=60)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("EMBARGO_CONFIG=/etc/embargo/missing.yaml: no such file", p.stderr)

    def test_09_stops_cleanly_on_sigterm(self):
        podman("stop", "--time", "20", self.name, timeout=60, check=True)
        # Exit status 0: embargo stopped on the SIGTERM; had podman killed
        # it after the 20 s grace, it would be 137.
        code = podman("inspect", "--format", "{{.State.ExitCode}}", self.name,
                      check=True).stdout.strip()
        self.assertEqual(code, "0", self.logs())

    def test_10_init_image_loads_the_sidecar_rules_into_a_network_namespace(self):
        """Runs the sidecar manifest's init container script, as its pod spec
        says (root, only NET_ADMIN and NET_RAW, the ConfigMap mounted), in a
        container with its own network namespace, then reads the ruleset
        back."""
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed")
        build_init_image()
        with open(SIDECAR_YAML) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        config = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["embargo.yaml"]
        pod = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
        init = pod["initContainers"][0]
        caps = init["securityContext"]["capabilities"]["add"]
        path = os.path.join(self.tmp, "sidecar.yaml")
        with open(path, "w") as f:
            f.write(config)
        os.chmod(path, 0o644)
        base = ["run", "--rm", "--no-healthcheck", "--network", "none", *ulimit_args(), "--cap-drop", "ALL",
                "--cap-add", ",".join(caps), "--user", str(init["securityContext"]["runAsUser"]),
                "-v", "%s:/etc/embargo/embargo.yaml:ro" % path, INIT_IMAGE]
        p = podman(*base, "sh", "-c", "iptables-restore --version && embargo version",
                   check=True)
        self.assertIn("iptables-restore", p.stdout)
        self.assertEqual(init["command"], ["/bin/sh", "-c"])
        script = init["args"][0]
        # The script ends with `set -e` in force: the rulesets are read back
        # only if every command of it (`embargo rules` among them) succeeded.
        p = podman(*base, "/bin/sh", "-c",
                   script + "\n[ -e /proc/net/if_inet6 ] && echo '== has IPv6'\n"
                   "echo '== v4'; iptables-save\necho '== v6'; ip6tables-save\n",
                   timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("== v6", p.stdout, p.stdout + p.stderr)
        v4, v6 = p.stdout.split("== v4", 1)[1].split("== v6", 1)
        families = (("IPv4", v4), ("IPv6", v6)) if "== has IPv6" in p.stdout else (("IPv4", v4),)
        for family, saved in families:
            redirect = [l for l in saved.splitlines() if "REDIRECT --to-ports 3129" in l]
            self.assertEqual(len(redirect), 1, "%s:\n%s" % (family, saved))
            # Embargo's own connections (uid 10001) are not redirected again.
            self.assertRegex(redirect[0], r"! --uid-owner %d\b" % UID)
            self.assertRegex(redirect[0], r"--dports 80,443\b")
            self.assertRegex(saved, r"-A \S+ -p udp .*--dports 80,443 .*-j REJECT")


def main():
    """Runs the cases (harness.run_cases: SKIP and FAIL lines, a SUMMARY),
    then prints the stage's timings and the line the suite's summary
    counts. Exits 1 if a case failed, else 0 (a skipped stage is reported,
    not failed)."""
    start = time.monotonic()
    passed, failed, skipped = harness.run_cases("container", sys.argv[:1] + sys.argv[1:])
    print("container stage: %.0fs (%s)" % (time.monotonic() - start, ", ".join(
        "%s %.0fs" % kv for kv in timings.items()) or "no build"))
    print("container: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
