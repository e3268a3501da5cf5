#!/usr/bin/env python3
"""Checks that the code keeps to its layers.

The allowed-imports table at the top of ARCHITECTURE.md names every folder
of the product's sources and the folders each may use. This program reads
what the code really does and fails on:

  * an `#include "dir/file.h"` of a folder the includer may not use;
  * a call (or any other reference to a symbol) into a folder the caller may
    not use, read from the object files with `nm`: which object defines each
    symbol and which leaves it undefined;
  * a file that is not in any folder of the table;
  * two or more modules calling each other in a loop, inside a folder or
    across folders (a module is a .c file; `x.h`, `x-t.h` and `x-int.h`
    headers belong to it).

    python3 tests/layering.py --source DIR --objects BUILD_DIR

Exit status 0 when the layering holds, 1 when it does not (every violation
printed), 2 on a usage error (no table, no objects). The four checks are
counted as cases for scripts/tally.py: a FAIL line per check that failed,
then "SUMMARY layering: STATUS: 4 cases: P passed, F failed, 0 skipped".
"""

import argparse
import collections
import os
import re
import subprocess
import sys

TABLE_START = "<!-- layers:start -->"
TABLE_END = "<!-- layers:end -->"
SOURCE_DIRS = ("proxy", "filters", "config", "certs")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_table(path):
    """{folder: set(folders it may use)} from the table between the markers."""
    text = open(path, encoding="utf-8").read()
    try:
        body = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)]
    except ValueError:
        sys.exit("layering: %s has no %s ... %s table" % (path, TABLE_START, TABLE_END))
    table = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        folder = cells[0].strip("`")
        uses = set(re.findall(r"`([^`]+)`", cells[1]))
        table[folder] = uses
    if not table:
        sys.exit("layering: the table in %s is empty" % path)
    for folder, uses in table.items():
        unknown = uses - set(table)
        if unknown:
            sys.exit("layering: %s may use %s, which the table does not name"
                     % (folder, ", ".join(sorted(unknown))))
    return table


def folder_of(relpath, table):
    """The table's folder holding RELPATH (the longest match), or None."""
    d = os.path.dirname(relpath)
    while d:
        if d in table:
            return d
        d = os.path.dirname(d)
    return None


def module_of(relpath):
    """proxy/conn/conn-t.h and proxy/conn/conn.c are both module proxy/conn/conn."""
    stem, _ = os.path.splitext(relpath)
    return re.sub(r"-(t|int)$", "", stem)


def source_files(root):
    for top in SOURCE_DIRS:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), root)


def read_symbols(objects_dir, root):
    """{module: (defined symbols, undefined symbols)} from the object files
    CMake wrote for the product's sources (their paths mirror the tree)."""
    mods = {}
    for d, _, files in os.walk(objects_dir):
        for f in files:
            if not f.endswith(".c.o"):
                continue
            path = os.path.join(d, f)
            rel = None
            parts = path.replace(os.sep, "/").split("/")
            for i, p in enumerate(parts):
                if p in SOURCE_DIRS and i > 0 and parts[i - 1].endswith(".dir"):
                    rel = "/".join(parts[i:])[:-len(".o")]
                    break
            if rel is None or not os.path.exists(os.path.join(root, rel)):
                continue
            out = subprocess.run(["nm", "-P", path], check=True, stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout
            defined, undefined = set(), set()
            for line in out.splitlines():
                fields = line.split()
                if len(fields) < 2:
                    continue
                name, kind = fields[0], fields[1]
                if kind == "U":
                    undefined.add(name)
                elif kind.isupper():
                    defined.add(name)
            m = module_of(rel)
            old = mods.get(m, (set(), set()))
            mods[m] = (old[0] | defined, old[1] | undefined)
    return mods


def strongly_connected(graph):
    """Tarjan's algorithm: the components of GRAPH with more than one node."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(root, objects_dir, table):
    problems = []
    files = list(source_files(root))

    for rel in files:
        if folder_of(rel, table) is None:
            problems.append(("folders", "%s: not in any folder of the layers table" % rel))

    def allowed(src, dst):
        a, b = folder_of(src, table), folder_of(dst, table)
        return a is None or b is None or a == b or b in table[a]

    for rel in files:
        text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            if not os.path.exists(os.path.join(root, inc)):
                continue  # a generated or system header
            if not allowed(rel, inc):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(("includes", "%s:%d: includes %s (%s may not use %s)"
                                 % (rel, line, inc, folder_of(rel, table),
                                    folder_of(inc, table))))

    mods = read_symbols(objects_dir, root)
    if not mods:
        print("layering: no object files of the product under %s" % objects_dir, file=sys.stderr)
        sys.exit(2)
    definer = {}
    for m, (defined, _) in mods.items():
        for s in defined:
            definer[s] = m
    calls = collections.defaultdict(lambda: collections.defaultdict(list))
    for m, (_, undefined) in mods.items():
        for s in sorted(undefined):
            d = definer.get(s)
            if d is not None and d != m:
                calls[m][d].append(s)
    for m in sorted(calls):
        for d in sorted(calls[m]):
            if not allowed(m + ".c", d + ".c"):
                syms = calls[m][d]
                problems.append(("symbols", "%s.c uses %s (%s%s): %s may not use %s"
                                 % (m, d, ", ".join(syms[:3]), ", ..." if len(syms) > 3 else "",
                                    folder_of(m + ".c", table), folder_of(d + ".c", table))))
    for comp in strongly_connected({m: set(ds) for m, ds in calls.items()}):
        edges = ["%s -> %s (%s)" % (a, b, calls[a][b][0])
                 for a in comp for b in comp if b in calls[a]]
        problems.append(("loops", "modules in a loop: %s\n    %s"
                         % (", ".join(comp), "\n    ".join(edges))))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True, help="the source tree (holds ARCHITECTURE.md)")
    ap.add_argument("--objects", required=True, help="a build directory (its object files)")
    args = ap.parse_args()
    root = os.path.abspath(args.source)
    table = read_table(os.path.join(root, "ARCHITECTURE.md"))
    problems = check(root, os.path.abspath(args.objects), table)
    for _, text in problems:
        print("layering: " + text)
    kinds = ("folders", "includes", "symbols", "loops")
    failed = [k for k in kinds if any(kind == k for kind, _ in problems)]
    for k in failed:
        print("FAIL layering: %s: %d problem(s)" % (k, sum(kind == k for kind, _ in problems)))
    if problems:
        print("layering: FAILED, %d problem(s)" % len(problems))
    else:
        print("layering: OK (%d folders)" % len(table))
    print("SUMMARY layering: %s: %d cases: %d passed, %d failed, 0 skipped"
          % ("FAILED" if failed else "OK", len(kinds), len(kinds) - len(failed), len(failed)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
