"""Liveness and readiness through the real binary.

Liveness (/healthz, `embargo status --live`, the image's HEALTHCHECK and
the livenessProbes) must mean "this process works": its event loops
answer and its listeners are bound. A date took the egress down: once the
shipped Kaspersky list passed reviewed + max_age (2026-11-28 + 180d), /readyz
answered 503 and `embargo status` exited 1, and that command was the
sidecar's livenessProbe, so every sidecar was restarted in a loop while its
pod's traffic was still redirected to it; a DNS hiccup did the same. Now a
stale list is a warning (the /readyz body, the embargo_vendor_list_*
gauges, /policy, `embargo status`, a line in the log repeated daily) and
makes the instance unready only with readiness.stale_lists: unready, and
liveness looks at nothing outside the process.
"""

import ctypes
import json
import os
import re
import signal
import subprocess
import unittest

import harness
from harness import EmbargoTestCase, free_port, http_get, wait_until
from test_admin import admin_extra, admin_get, parse_metrics

PAST_MAX_AGE = "2027-06-01T00:00:00Z"  # the shipped list: reviewed 2026-11-28, max_age 180d
KASPERSKY_STALE = (b"vendor list kaspersky (builtin:config/vendors/kaspersky.yaml) is stale: "
                   b"reviewed 2026-11-28T00:00:00Z, max_age 180d, past it since "
                   b"2027-05-27T00:00:00Z; still enforced")


def status(port, *args):
    """`embargo status --admin 127.0.0.1:PORT ARGS...`: (exit code, standard output)."""
    p = subprocess.run([harness.BINARY, "status", "--admin", "127.0.0.1:%d" % port] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


class StaleListIsAWarning(EmbargoTestCase):
    """Defect 1: with --now past the shipped list's reviewed + max_age the
    process stays live and ready, says why in /readyz's body, and serves."""

    NOW = PAST_MAX_AGE
    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT)}

    def test_liveness_passes_past_max_age(self):
        """Defect 1: `embargo status` exited 1 on this date and was the
        liveness probe. /healthz and `status --live` pass."""
        st, _, body = admin_get(self.ADMIN_PORT, "/healthz")
        self.assertEqual((st, body), (200, b"ok\n"))
        rc, out = status(self.ADMIN_PORT, "--live")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out, "liveness:        ok\n")

    def test_readyz_is_200_with_the_warning_in_its_body(self):
        """Defect 1: /readyz answered 503 `not ready: vendor list kaspersky
        ... is stale`. By default it is 200 with the warning."""
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual(st, 200, body)
        self.assertEqual(body, b"ready\nwarning: " + KASPERSKY_STALE + b"\n")
        rc, out = status(self.ADMIN_PORT)
        self.assertEqual(rc, 0, out)
        self.assertIn("readiness:       ready\n                 warning: vendor list kaspersky", out)
        self.assertRegex(out, r"list kaspersky: +reviewed 18[5-9] day\(s\) ago, max_age 180 "
                              r"day\(s\): STALE, still enforced\n")

    def test_traffic_still_flows_and_the_list_is_still_enforced(self):
        self.assertEqual(http_get(self.embargo.port, self.url()).status, 200)
        r = http_get(self.embargo.port, "http://dnl-01.geo.kaspersky.com/")
        self.assertEqual(r.status, 403)
        self.assert_proxy_status(r, "http_request_denied")

    def test_age_is_a_gauge_per_vendor_and_a_line_in_policy(self):
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        age = m['embargo_vendor_list_age_seconds{vendor="kaspersky"}']
        # 2026-11-28 to 2027-06-01 is 185 days; the policy clock runs on
        # from --now while the test runs.
        self.assertGreaterEqual(age, 185 * 86400)
        self.assertLess(age, 186 * 86400)
        self.assertEqual(m['embargo_vendor_list_max_age_seconds{vendor="kaspersky"}'], 180 * 86400)
        self.assertEqual(m['embargo_vendor_list_stale{vendor="kaspersky"}'], 1)
        p = json.loads(admin_get(self.ADMIN_PORT, "/policy")[2])
        k = [v for v in p["vendors"] if v["id"] == "kaspersky"][0]
        self.assertEqual((k["stale"], k["stale_since"], k["max_age"]),
                         (True, "2027-05-27T00:00:00Z", "180d"))
        self.assertGreaterEqual(k["age_seconds"], 185 * 86400)

    def test_the_log_says_so(self):
        """A warning on standard error at start (then once a day)."""
        self.embargo.wait_stderr("warning: " + KASPERSKY_STALE.decode() +
                                 "; review it and update it (this warning repeats daily)")

    def test_unready_only_when_the_config_asks(self):
        """readiness: {stale_lists: unready} makes /readyz 503; liveness and
        traffic are untouched."""
        port = free_port()
        e = self.start_embargo(extra=admin_extra(port) + "readiness: {stale_lists: unready}\n")
        st, _, body = admin_get(port, "/readyz")
        self.assertEqual(st, 503)
        self.assertEqual(body, b"not ready: " + KASPERSKY_STALE + b"\n")
        self.assertEqual(status(port)[0], 1)
        self.assertEqual(admin_get(port, "/healthz")[0], 200)
        rc, out = status(port, "--live")
        self.assertEqual(rc, 0, out)
        self.assertEqual(http_get(e.port, self.url()).status, 200)
        self.assertEqual(http_get(e.port, "http://dnl-01.geo.kaspersky.com/").status, 403)


class FreshListSaysNothing(EmbargoTestCase):
    """Before the list's max_age: no warning anywhere."""

    NOW = "2027-01-15T00:00:00Z"
    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT)}

    def test_no_warning_before_max_age(self):
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual((st, body), (200, b"ready\n"))
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        self.assertEqual(m['embargo_vendor_list_stale{vendor="kaspersky"}'], 0)
        # The list is looked at before the endpoint's first answer; SIGUSR1's
        # line (the log reopened, or not: the test's directory is root's)
        # comes after whatever that wrote.
        self.embargo.proc.send_signal(signal.SIGUSR1)
        text = self.embargo.wait_stderr(re.compile("reopen"))
        self.assertNotIn("is stale", text)


class DnsIsNotLiveness(EmbargoTestCase):
    """Defect 1: a DNS hiccup failed the liveness probe too ("the resolver
    is not answering"). It is readiness only."""

    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT), "timeouts": {"resolve": "1s"}}

    def test_a_resolver_timeout_keeps_the_process_live(self):
        r = http_get(self.embargo.port, "http://x.%s/" % harness.DNS_HOLE_DOMAIN)
        self.assertEqual(r.status, 504)
        st, _, body = admin_get(self.ADMIN_PORT, "/readyz")
        self.assertEqual(st, 503)
        self.assertIn(b"resolver not answering", body)
        self.assertEqual(status(self.ADMIN_PORT)[0], 1)
        st, _, body = admin_get(self.ADMIN_PORT, "/healthz")
        self.assertEqual((st, body), (200, b"ok\n"))
        rc, out = status(self.ADMIN_PORT, "--live")
        self.assertEqual(rc, 0, out)


PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000


class StuckWorkerIsNotLive(EmbargoTestCase):
    """Liveness does look at the process: a worker whose event loop does
    not answer (one thread stopped with PTRACE_INTERRUPT, the others left
    running) fails /healthz, and passes again once it runs."""

    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": admin_extra(ADMIN_PORT) + "workers: 2\n"}

    def worker_thread(self, name):
        pid = self.embargo.proc.pid
        for tid in os.listdir("/proc/%d/task" % pid):
            if harness.read_text("/proc/%d/task/%s/comm" % (pid, tid)).strip() == name:
                return int(tid)
        self.fail("no thread named %r in %r" % (name, os.listdir("/proc/%d/task" % pid)))

    def test_a_worker_loop_that_does_not_answer_fails_liveness(self):
        self.assertEqual(admin_get(self.ADMIN_PORT, "/healthz")[0], 200)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        libc.ptrace.restype = ctypes.c_long
        tid = self.worker_thread("embargo w1")
        if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
            self.skipTest("cannot trace embargo's worker thread: %s"
                          % os.strerror(ctypes.get_errno()))
        try:
            self.assertEqual(libc.ptrace(PTRACE_INTERRUPT, tid, None, None), 0)
            os.waitpid(tid, WALL)  # the thread has stopped
            st, _, body = admin_get(self.ADMIN_PORT, "/healthz")
            self.assertEqual((st, body), (503, b"not live: worker 1 did not answer within 1s\n"))
            rc, out = status(self.ADMIN_PORT, "--live")
            self.assertEqual(rc, 1, out)
            self.assertIn("not live: worker 1 did not answer", out)
            self.assertEqual(admin_get(self.ADMIN_PORT, "/readyz")[0], 503)
        finally:
            libc.ptrace(PTRACE_DETACH, tid, None, None)
        wait_until(lambda: admin_get(self.ADMIN_PORT, "/healthz")[0] == 200, 10,
                   what="liveness once the worker runs again")


if __name__ == "__main__":
    harness.main()
