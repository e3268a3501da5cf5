#!/usr/bin/env python3
"""The closing summary of scripts/test.sh, counted in cases.

    scripts/tally.py RESULTS_DIR

RESULTS_DIR holds what each stage left:
  STAGE.xml            ctest's JUnit report of a build's unit and integration
                       programs (--output-junit), each program's output in it;
  STAGE.failed         a stage that could not run (its build failed), with why;
  container.log        the container stage's output;
  fuzz.log             the fuzzing stage's output.
Unit programs (Criterion) are counted from their TAP lines (one per case:
ok, not ok, "# SKIP reason"); integration programs from their SKIP, FAIL
and SUMMARY lines ("SUMMARY NAME: STATUS: N cases: P passed, F failed, S
skipped"); the container and fuzzing stages from their SKIP and FAIL lines
and their line "STAGE: P passed, F failed, S skipped". A program or stage
that failed without saying how many of its cases failed counts as one
failed case.

Prints each stage's counts, then every program and stage that skipped cases
with the reason, then those that failed, and last the line

    tests: N passed, M failed, K skipped

Exits 1 if any case failed, else 0.
"""

import collections
import os
import re
import sys
import xml.etree.ElementTree as ET

TAP_OK = re.compile(r"^ok\b(?: - )?(\S*)(.*)$")
TAP_NOT_OK = re.compile(r"^not ok\b(?: - )?(\S*)")
TAP_SKIP = re.compile(r"#\s*SKIP\b\s*(.*)$", re.I)
SUMMARY = re.compile(r"^SUMMARY (\S+): (\w+): (\d+) cases?: (\d+) passed, (\d+) failed, "
                     r"(\d+) skipped")
STAGE_LINE = re.compile(r"^(container|fuzz): (\d+) passed, (\d+) failed, (\d+) skipped$")
SKIP_LINE = re.compile(r"^SKIP (\S+): (.*)$")
FAIL_LINE = re.compile(r"^FAIL (\S+): (.*)$")

Counts = collections.namedtuple("Counts", "passed failed skipped")


class Tally:
    def __init__(self):
        self.stages = collections.OrderedDict()  # stage: {kind: Counter}
        self.skips = []                           # (where, what and why)
        self.failures = []                        # (where, why)

    def add(self, stage, kind, passed, failed, skipped):
        c = self.stages.setdefault(stage, collections.OrderedDict()).setdefault(
            kind, collections.Counter())
        c.update(passed=passed, failed=failed, skipped=skipped)

    def total(self):
        t = collections.Counter()
        for kinds in self.stages.values():
            for c in kinds.values():
                t.update(c)
        return Counts(t["passed"], t["failed"], t["skipped"])


def unit_program(t, stage, name, status, out):
    """A Criterion program's TAP output."""
    passed = failed = 0
    skipped = collections.OrderedDict()  # reason: [case]
    for line in out.splitlines():
        m = TAP_NOT_OK.match(line)
        if m:
            failed += 1
            t.failures.append(("%s %s" % (stage, name), m.group(1)))
            continue
        m = TAP_OK.match(line)
        if not m:
            continue
        s = TAP_SKIP.search(m.group(2))
        if s:
            skipped.setdefault(s.group(1).strip() or "skipped", []).append(m.group(1))
        else:
            passed += 1
    if status != "run" and failed == 0:
        failed = 1
        t.failures.append(("%s %s" % (stage, name), "failed outside its cases (%s) after %d passed"
                           % (status, passed)))
    for reason, cases in skipped.items():
        t.skips.append(("%s %s" % (stage, name), "%s: %s" % (", ".join(cases), reason)))
    t.add(stage, "unit", passed, failed, sum(len(c) for c in skipped.values()))


def counted_program(t, stage, kind, name, status, out, line_re=SUMMARY):
    """An integration program's (NAME, in STAGE) or a whole stage's (NAME
    None) SKIP, FAIL and summary lines; STATUS is "run", "fail" or "notrun"
    (skipped)."""
    where = stage if name is None else "%s %s" % (stage, name)
    counts = None
    for line in out.splitlines():
        m = SKIP_LINE.match(line)
        if m:
            t.skips.append((where, m.group(2)))
            continue
        m = FAIL_LINE.match(line)
        if m:
            t.failures.append((where, m.group(2)))
            continue
        m = line_re.match(line)
        if m:
            g = m.groups()
            counts = Counts(int(g[-3]), int(g[-2]), int(g[-1]))
    if counts is None:
        why = "no summary line: it crashed, timed out or was killed"
        t.failures.append((where, why))
        t.add(stage, kind, 0, 1, 0)
        return
    failed = counts.failed
    if status == "fail" and failed == 0:
        failed = 1
        t.failures.append((where, "exited non-zero after its summary"))
    t.add(stage, kind, counts.passed, failed, counts.skipped)


def ctest_stage(t, stage, path):
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    n = 0
    for case in cases:
        n += 1
        name = case.get("name", "?")
        status = case.get("status", "run")
        if case.find("failure") is not None or case.find("error") is not None:
            status = "fail"
        elif case.find("skipped") is not None:
            status = "notrun"
        out = case.findtext("system-out") or ""
        if name.startswith("unit."):
            unit_program(t, stage, name, status, out)
        else:
            counted_program(t, stage, "integration", name, status, out)
    if n == 0:
        t.failures.append((stage, "ctest ran no programs"))
        t.add(stage, "programs", 0, 1, 0)


def line_stage(t, stage, path):
    out = open(path, encoding="utf-8", errors="replace").read()
    counted_program(t, stage, "cases", None, "run", out, STAGE_LINE)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/tally.py RESULTS_DIR")
    d = sys.argv[1]
    t = Tally()
    for stage in ("release", "asan"):
        failed = os.path.join(d, stage + ".failed")
        xml = os.path.join(d, stage + ".xml")
        if os.path.exists(failed):
            t.failures.append((stage, open(failed).read().strip() or "could not run"))
            t.add(stage, "build", 0, 1, 0)
        elif os.path.exists(xml):
            try:
                ctest_stage(t, stage, xml)
            except ET.ParseError as e:
                t.failures.append((stage, "unreadable ctest report: %s" % e))
                t.add(stage, "programs", 0, 1, 0)
    for stage in ("container", "fuzz"):
        path = os.path.join(d, stage + ".log")
        if os.path.exists(path):
            line_stage(t, stage, path)

    print("== summary (cases)")
    for stage, kinds in t.stages.items():
        print("%-9s %s" % (stage + ":", "; ".join(
            "%s %d passed, %d failed, %d skipped" % (k, c["passed"], c["failed"], c["skipped"])
            for k, c in kinds.items())))
    if t.skips:
        print("skipped:")
        for where, why in t.skips:
            print("  %s: %s" % (where, why))
    if t.failures:
        print("failed:")
        for where, why in t.failures:
            print("  %s: %s" % (where, why))
    total = t.total()
    print("tests: %d passed, %d failed, %d skipped" % total)
    sys.exit(1 if total.failed else 0)


if __name__ == "__main__":
    main()
