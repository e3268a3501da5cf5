"""The harness itself: a test class stops everything it started when its
set-up fails part way, whether the set-up raises (a peer that does not
start in time) or the test program is stopped by a signal meanwhile (the
program run under `timeout`, or interrupted); and skipped cases are counted
and make the program's exit status 77 only when nothing else ran.

Each check runs a small test program of its own (a child Python process
using the harness) whose set-up fails on purpose, collects the PIDs that
set-up started, and checks that none of them is left once the program has
returned."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import harness
from harness import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))

# A child program: CLASS_BODY is a test class using the harness; its set-up
# writes the PIDs it started (one JSON list per line) to PIDS_FILE.
PROGRAM = """\
import json, os, sys, time, unittest
import harness
from harness import EmbargoTestCase

PIDS_FILE = %(pids)r


def note(*procs):
    with open(PIDS_FILE, "a") as f:
        f.write(json.dumps([p.pid for p in procs]) + "\\n")


%(body)s


if __name__ == "__main__":
    harness.main()
"""

FAILS_AFTER_SETUP = """\
class FailsAfterSetUp(EmbargoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        note(cls.dns.proc, cls.embargo.proc)
        raise AssertionError("forced: a later step of the set-up failed")

    def test_never_runs(self):
        pass
"""

FAILS_STARTING_EMBARGO = """\
class EmbargoDoesNotStart(EmbargoTestCase):
    @classmethod
    def new_embargo(cls, **kw):
        note(cls.dns.proc)
        raise RuntimeError("forced: embargo did not start listening")

    def test_never_runs(self):
        pass
"""

SETUP_FAILS = """\
class SetUpFails(EmbargoTestCase):
    def setUp(self):
        super().setUp()
        e = self.start_embargo()
        note(e.proc)
        raise AssertionError("forced: the case's set-up failed")

    def test_never_runs(self):
        pass
"""

KILLED_IN_SETUP = """\
class KilledInSetUp(EmbargoTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        note(cls.dns.proc, cls.embargo.proc)
        time.sleep(120)  # the test program is stopped by a signal meanwhile

    def test_never_runs(self):
        pass
"""

TRANSPARENT_FAILS = """\
import test_transparent


class FailsInTheNetwork(test_transparent.InterceptTest):
    @classmethod
    def load_rules(cls):
        note(*[p.p for p in cls.procs])
        with open(PIDS_FILE + ".ns", "w") as f:
            json.dump(cls.net.made, f)
        if os.environ.get("HARNESS_TEST_HANG"):
            time.sleep(120)  # the test program is stopped by a signal meanwhile
        raise AssertionError("forced: the rules did not load")


del test_transparent
"""

COUNTS = """\
class Skips(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise unittest.SkipTest("needs something this machine lacks")

    def test_a(self):
        pass

    def test_b(self):
        pass
%(more)s
"""

POOL = """\
import multiprocessing


def square(n):
    time.sleep(0.001)
    return n * n


class Pool(unittest.TestCase):
    def test_fork_pools_end_their_workers(self):
        for _ in range(30):
            with multiprocessing.get_context("fork").Pool(4) as pool:
                self.assertEqual(pool.map(square, range(200), chunksize=16),
                                 [n * n for n in range(200)])
"""

MORE_PASSING = """
class Runs(unittest.TestCase):
    def test_ok(self):
        pass

    def test_skipped(self):
        self.skipTest("not today")
"""


def alive(pid):
    """Whether PID is a process that has not exited (a zombie has)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class ChildProgramCase(unittest.TestCase):
    """Runs child test programs in a directory of its own (no cases)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embargo-harness-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.pids_file = os.path.join(self.tmp, "pids")
        self.addCleanup(self.end_leftovers)

    def end_leftovers(self):
        """Should a check fail, what the child left is ended here: its
        processes by their PIDs, its namespaces (and what runs in them)."""
        for pid in self.started():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for ns in json.loads(harness.read_text(self.pids_file + ".ns") or "[]"):
            if subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=30).returncode != 0:
                continue
            for pid in subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                                      timeout=30).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], timeout=30)

    def program(self, body, name="child_test.py"):
        """Writes the child program around BODY; returns its path."""
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(PROGRAM % {"pids": self.pids_file, "body": body})
        return path

    def env(self, **extra):
        env = dict(os.environ, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return env

    def run_child(self, body, timeout=120, **env):
        try:
            p = subprocess.run([sys.executable, self.program(body), "--binary", harness.BINARY],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, env=self.env(**env))
        except subprocess.TimeoutExpired as e:
            self.fail("the child program did not end within %d s:\n%s"
                      % (timeout, (e.stdout or b"").decode("utf-8", "replace")))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def started(self):
        """The PIDs the child's set-up noted."""
        pids = []
        for line in harness.read_text(self.pids_file).splitlines():
            pids += json.loads(line)
        return pids

    def assert_none_left(self, out):
        pids = self.started()
        self.assertTrue(pids, "the set-up noted no PIDs:\n" + out)
        # Popen.wait reaped them in the child, or they were re-parented and
        # reaped when it exited: either way no process with that PID is left
        # running.
        left = wait_until(lambda: [p for p in pids if alive(p)] or "none", 10, 0.05,
                          "the child's processes to be gone")
        self.assertEqual(left, "none", "still running after the set-up failed: %r\n%s"
                         % (left, out))


class SetUpFailureStopsWhatItStarted(ChildProgramCase):
    def test_class_set_up_failing_after_the_base_stops_dnsmasq_and_embargo(self):
        rc, out, err = self.run_child(FAILS_AFTER_SETUP)
        self.assert_none_left(out + err)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("forced: a later step", err)
        self.assertRegex(out, r"SUMMARY child_test\.py: FAILED: 1 case: 0 passed, 1 failed")

    def test_embargo_that_does_not_start_leaves_no_dnsmasq(self):
        rc, out, err = self.run_child(FAILS_STARTING_EMBARGO)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("forced: embargo did not start", err)
        self.assert_none_left(out + err)

    def test_case_set_up_failing_stops_the_embargo_it_started(self):
        rc, out, err = self.run_child(SETUP_FAILS)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("forced: the case's set-up failed", err)
        self.assert_none_left(out + err)

    def test_program_stopped_by_sigterm_in_set_up_leaves_nothing(self):
        p = subprocess.Popen([sys.executable, self.program(KILLED_IN_SETUP), "--binary",
                              harness.BINARY], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env())
        try:
            wait_until(lambda: os.path.exists(self.pids_file) or p.poll() is not None, 60,
                       0.05, "the child's set-up to start its peers")
            p.send_signal(signal.SIGTERM)  # what `timeout` sends
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assert_none_left((out + err).decode())

    def transparent(self):
        import test_transparent
        reason = test_transparent.skip_reason()
        if reason:
            self.skipTest(reason)

    def assert_namespaces_gone(self):
        made = json.loads(harness.read_text(self.pids_file + ".ns") or "[]")
        self.assertTrue(made, "the set-up noted no namespaces")
        listed = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                                timeout=30).stdout.decode()
        for ns in made:
            self.assertNotRegex(listed, r"(?m)^%s\b" % re.escape(ns))

    def test_transparent_set_up_failing_stops_its_peers_in_the_namespaces(self):
        self.transparent()
        rc, out, err = self.run_child(TRANSPARENT_FAILS)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("forced: the rules did not load", err)
        self.assertEqual(len(self.started()), 3, "origin, dnsmasq and embargo")
        self.assert_none_left(out + err)
        self.assert_namespaces_gone()

    def test_transparent_program_stopped_by_sigterm_in_set_up_leaves_nothing(self):
        """Defect: test_transparent, stopped while its set-up was waiting,
        left dnsmasq and embargo running inside their namespaces."""
        self.transparent()
        p = subprocess.Popen([sys.executable, self.program(TRANSPARENT_FAILS), "--binary",
                              harness.BINARY], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env(HARNESS_TEST_HANG="1"))
        try:
            wait_until(lambda: os.path.exists(self.pids_file + ".ns") or p.poll() is not None,
                       90, 0.05, "the child's set-up to start its peers")
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=90)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(self.started()), 3, (out + err).decode())
        self.assert_none_left((out + err).decode())
        self.assert_namespaces_gone()


class SkipsAreCounted(ChildProgramCase):
    """A program whose every case is skipped exits 77 (ctest's
    SKIP_RETURN_CODE) and says why; one where others ran exits 0 and still
    counts its skipped cases."""

    def test_every_case_skipped_exits_77_with_the_reason(self):
        rc, out, err = self.run_child(COUNTS % {"more": ""})
        self.assertEqual(rc, harness.SKIP_EXIT, out + err)
        self.assertIn("SKIP child_test.py: Skips (2 cases): needs something this machine lacks",
                      out)
        self.assertIn("SUMMARY child_test.py: SKIPPED: 2 cases: 0 passed, 0 failed, 2 skipped",
                      out)

    def test_skips_beside_passes_exit_0_and_are_counted(self):
        rc, out, err = self.run_child(COUNTS % {"more": MORE_PASSING})
        self.assertEqual(rc, 0, out + err)
        self.assertIn("SKIP child_test.py: Runs.test_skipped: not today", out)
        self.assertIn("SUMMARY child_test.py: OK: 4 cases: 1 passed, 0 failed, 3 skipped", out)


class ForkedWorkers(ChildProgramCase):
    def test_forked_workers_still_die_of_sigterm(self):
        """The program turns SIGTERM into an interrupt so that cleanups run;
        a multiprocessing pool ends its forked workers with SIGTERM, and they
        must die of it (a worker interrupted while holding the pool's queue
        lock hung the program until ctest's timeout)."""
        rc, out, err = self.run_child(POOL, timeout=60)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("SUMMARY child_test.py: OK: 1 case: 1 passed", out)


if __name__ == "__main__":
    harness.main()
