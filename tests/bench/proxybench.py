#!/usr/bin/env python3
"""Benchmark Embargo against Squid, tinyproxy and HAProxy on loopback.

    python3 tests/bench/proxybench.py --binary build/embargo [--quick] [--log-cost]

(tests/bench/run.sh installs the packages, builds Embargo and runs this.)

nginx is the origin; each proxy gets a minimal config written into a
temporary directory and listens on 127.0.0.1 only. Every workload is run
against every target in turn, round after round (A, B, C, A, B, C...), each
run bounded in time; the report gives medians. The proxies' CPU time comes
from /proc/PID/stat, their memory from /proc/PID/status. Then Embargo alone:
how its cost grows with the work (scale.py) and the block page under a
burst. The soft descriptor limit is raised to the hard one, for this
process and what it starts only. The report never judges the build: the
exit status is 0 unless something could not run.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import loads
import peers
import report
import scale

HERE = os.path.dirname(os.path.abspath(__file__))
SETTLE = 1.0  # seconds of quiet before each run: the previous one's closing sockets
REPO = os.path.dirname(os.path.dirname(HERE))


class Bench:
    """One benchmark run: the temporary directory, the processes, the figures."""

    def __init__(self, args):
        self.args = args
        self.root = tempfile.mkdtemp(prefix="embargo-bench-")
        os.chmod(self.root, 0o755)  # the peers drop privileges and read from here
        self.procs = peers.Procs(self.root)
        self.results = {}   # (workload, target) -> [figures or None per run]
        self.problems = []  # what could not run
        self.wrk_errors = {}  # (workload, target) -> {kind: count over all runs}
        self.ports = {}
        self.vendor_list = None  # generated unless --log-cost
        self.pattern_lists = {}  # patterns -> generated vendor list (the scale phase)
        self.ca_dir = None  # the block page's CA, made when needed
        self.started = time.monotonic()

    # --- processes -------------------------------------------------------

    def peer_argv(self, name, port):
        """Config file and command line of peer NAME listening on PORT."""
        tls = self.ports["tls"]
        if name == "squid":
            return ["squid", "-N", "-f", peers.squid_conf(self.root, port, name)]
        if name == "tinyproxy":
            return ["tinyproxy", "-d", "-c", peers.tinyproxy_conf(self.root, port, tls, name)]
        if name == "haproxy":
            return ["haproxy", "-db", "-f", peers.haproxy_conf(self.root, port, tls, name)]
        extra, connect, tls_extra = scale.embargo_extra(self, name) or (
            {"embargo": "",
             "embargo-100k": "vendors:\n  - builtin: kaspersky\n"
                             f"  - file: {self.vendor_list}\n",
             "embargo-log": "access_log: true\n"}[name], (), "")
        if self.args.workers:
            extra += f"workers: {self.args.workers}\n"
        return [self.args.binary, "run", "-c",
                peers.embargo_conf(self.root, name, port, tls, extra, connect, tls_extra)]

    def start_peer(self, name):
        """Start peer NAME on a fresh port; return its target, or None (noted)."""
        tool = "embargo" if name.startswith("embargo") else name
        if tool != "embargo" and not peers.find_tool(tool):
            self.note(f"{name}: not installed (scripts/deps.sh bench installs it)")
            return None
        port = peers.free_ports(1)[0]
        try:
            proc = self.procs.start(name, self.peer_argv(name, port), port)
        except (RuntimeError, OSError) as e:
            self.note(f"{name}: could not start: {e}")
            return None
        key = "relay" if name == "haproxy" else "proxy"
        return {"name": name, "pid": proc.pid, key: f"{peers.LOOPBACK}:{port}"}

    def progress(self, text):
        print(f"[{time.monotonic() - self.started:4.0f}s] {text}", flush=True)

    def note(self, text):
        """Something that could not run: reported, and the exit status is 1."""
        if text not in self.problems:
            self.problems.append(text)
        print(f"  ! {text}", file=sys.stderr, flush=True)

    # --- runs ------------------------------------------------------------

    def record(self, workload, name, fn):
        """Run FN once for cell (WORKLOAD, NAME) and keep its figures."""
        time.sleep(SETTLE)
        try:
            figures = fn()
            for kind, count in (figures.get("errors") or {}).items():
                cell = self.wrk_errors.setdefault((workload, name), {})
                cell[kind] = cell.get(kind, 0) + count
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            status = self.procs.exited(name)
            died = "" if status is None else f" ({name} has exited, status {status})"
            self.note(f"{workload} via {name}: {e}{died}")
            figures = None
        self.results.setdefault((workload, name), []).append(figures)

    def idle_phase(self):
        """1,000 idle tunnels per peer, opened one at a time ("idle") and
        --parallel at a time ("idle_burst"), a freshly started process per
        run."""
        for rnd in range(self.args.rounds):
            self.progress(f"idle tunnels, round {rnd + 1}/{self.args.rounds}")
            for name in self.wanted(("squid", "tinyproxy", "haproxy", "embargo")):
                for workload, parallel in (("idle", 1), ("idle_burst", self.args.parallel)):
                    target = self.start_peer(name)
                    if target is None:
                        break
                    try:
                        self.record(workload, name, lambda: loads.run_idle_tunnels(
                            target, self.ports["tls"], self.cafile, self.args.tunnels,
                            parallel))
                    finally:
                        self.stop_peer(name)

    def load_phase(self):
        """Request rates and bulk transfers, interleaved across targets."""
        names = self.wanted(("squid", "tinyproxy", "haproxy", "embargo", "embargo-100k",
                             "embargo-log"))
        targets = {"direct": {"name": "direct", "pid": None}}
        for name in names:
            t = self.start_peer(name)
            if t is not None:
                targets[name] = t
        http = [t for n, t in targets.items() if n != "haproxy"]
        plain = [t for t in http if t["name"] in ("direct", "squid", "tinyproxy", "embargo")]
        tls = [t for n, t in targets.items() if n in report.COLUMNS]
        o, st, d = self.ports["http"], self.ports["status"], self.args.duration
        scripts = {(p, c): loads.wrk_script(self.root, o, p, c)
                   for p in (False, True) for c in (False, True)}

        def wrk(t, close, seconds=d):
            return loads.run_wrk(t, scripts[(bool(t.get("proxy")), close)], o, st, seconds)

        if self.args.only == "tls":  # the TLS tunnel downloads alone
            http, plain = [], []
        self.progress("warm-up")
        for t in http:
            try:
                wrk(t, False, 1)
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass  # the measured runs report it
        for rnd in range(self.args.rounds):
            self.progress(f"request rates and bulk transfers, round {rnd + 1}/{self.args.rounds}")
            for t in rotate(http, rnd):
                self.record("ka", t["name"], lambda: wrk(t, False))
            if self.args.only == "ka":
                continue
            for t in rotate(plain, rnd):
                self.record("close", t["name"], lambda: wrk(t, True))
            for t in rotate(plain, rnd):
                self.record("plain", t["name"], lambda: loads.run_bulk(
                    t, o, self.ports["tls"], self.cafile, False))
            for t in rotate(tls, rnd):
                self.record("tls", t["name"], lambda: loads.run_bulk(
                    t, o, self.ports["tls"], self.cafile, True))
        for name in names:
            self.stop_peer(name)

    def wanted(self, names):
        """NAMES, less those --targets leaves out."""
        return tuple(n for n in names if not self.args.targets or n in self.args.targets)

    def log_cost_phase(self):
        """Only what access_log costs: keep-alive runs against Embargo with
        and without it, interleaved round after round."""
        names = ("embargo", "embargo-log")
        targets = [t for t in (self.start_peer(n) for n in names) if t is not None]
        o, st, d = self.ports["http"], self.ports["status"], self.args.duration
        script = loads.wrk_script(self.root, o, True, False)
        self.progress("warm-up")
        for t in targets:
            try:
                loads.run_wrk(t, script, o, st, 1)
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass  # the measured runs report it
        for rnd in range(self.args.rounds):
            self.progress(f"keep-alive request rates, round {rnd + 1}/{self.args.rounds}")
            for t in rotate(targets, rnd):
                self.record("ka", t["name"], lambda: loads.run_wrk(t, script, o, st, d))
        for name in names:
            self.stop_peer(name)

    def stop_peer(self, name):
        status = self.procs.stop(name)
        if status is not None:
            self.note(f"{name} exited by itself during the run, status {status}; "
                      f"its output ends: {self.procs.output_tail(name)}")

    def run(self):
        self.busy_before = cpu_busy()
        print(f"working directory {self.root}", flush=True)
        self.cafile = peers.make_origin_files(self.root)
        if not self.args.log_cost:
            self.vendor_list = peers.vendor_list(self.root, 100000)
        http, tls, status = peers.free_ports(3)
        self.ports = {"http": http, "tls": tls, "status": status}
        self.procs.start("nginx", ["nginx", "-p", self.root, "-c",
                                   peers.nginx_conf(self.root, http, tls, status)], http)
        only = self.args.only
        if self.args.log_cost:
            self.log_cost_phase()
        else:
            if only in (None, "idle"):
                self.idle_phase()
            if only in (None, "load", "tls", "ka"):
                self.load_phase()
            if only in (None, "scale"):
                scale.tunnels_phase(self)
                scale.clients_phase(self)
                scale.patterns_phase(self)
            if only in (None, "page"):
                scale.page_phase(self)
        self.procs.stop_all()
        self.print_report(time.monotonic() - self.started)
        if self.args.json:
            self.write_json()

    def write_json(self):
        """Every run's figures, per workload and target, in run order."""
        runs = {}
        for (workload, target), figures in self.results.items():
            runs.setdefault(workload, {})[target] = figures
        with open(self.args.json, "w") as f:
            json.dump({"rounds": self.args.rounds, "duration": self.args.duration,
                       "tunnels": self.args.tunnels, "parallel": self.args.parallel,
                       "nofile": peers.nofile_limit(), "runs": runs,
                       "problems": self.problems}, f, indent=1)
            f.write("\n")

    def print_report(self, elapsed):
        headers = {"direct": "direct (no proxy)", "squid": version("squid"),
                   "tinyproxy": version("tinyproxy"),
                   "haproxy": version("haproxy") + " (tcp, SNI relay)",
                   "embargo": "**" + version("embargo", self.args.binary) + "**"}
        a = self.args
        tunnels = "access_log cost only" if a.log_cost else \
            f"{a.tunnels:,} idle tunnels (one at a time, and {a.parallel} at a time)"
        print()
        workers = f"Embargo workers: {a.workers}; " if a.workers else ""
        only = "keep-alive requests only; " if a.only == "ka" else ""
        print(f"Embargo proxy benchmark: {only}{workers}{os.cpu_count()} CPUs, "
              f"Linux {platform.release()}, "
              f"loopback; origin nginx; load generator, origin and proxy share the CPUs; "
              f"medians of {a.rounds} interleaved run(s); wrk -t2 -c50 -d{a.duration}s; "
              f"{tunnels}; {elapsed:.0f} s in all; CPUs {self.busy_before:.0%} "
              f"busy with other work just before the run")
        if self.busy_before > 0.25:
            print("warning: the machine was busy before the run; other work skews rates and "
                  "throughput more than CPU time and memory. Rerun on a quiet machine to "
                  "trust them.")
        print()
        if a.log_cost:
            print("\n".join(report.log_cost(self.results)))
        else:
            shape = report.Shape(a.tunnels, a.parallel, scale.effective(a.scale_tunnels),
                                 a.scale_clients, a.scale_patterns, a.burst,
                                 peers.nofile_limit())
            for lines in (report.table(self.results, headers, shape),
                          report.ratios(self.results, headers, shape),
                          report.scale_tables(self.results, shape),
                          report.targets(self.results, shape)):
                if lines:
                    print("\n".join(lines))
                    print()
        if self.wrk_errors:
            print("\nwrk errors, all runs (\"read\": the proxy closed a connection "
                  "without announcing it, i.e. no client keep-alive; \"status\": "
                  "responses not 2xx/3xx, not counted in the rates):")
            for (workload, name), kinds in self.wrk_errors.items():
                counts = ", ".join(f"{v:,} {k}" for k, v in kinds.items())
                print(f"  - {workload} via {name}: {counts}")
        if self.problems:
            print("\nCould not run:")
            for p in self.problems:
                print(f"  - {p}")

    def cleanup(self):
        self.procs.stop_all()
        if self.args.keep:
            print(f"kept {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def rotate(items, rnd):
    """ITEMS starting at position RND: each round starts with another target,
    so that no target always runs right after the same one (a proxy that
    leaves the origin many closing connections slows the run after it)."""
    k = rnd % len(items) if items else 0
    return items[k:] + items[:k]


def cpu_busy(seconds=2.0):
    """Share of all CPUs' time spent busy over SECONDS (/proc/stat): other
    work on the machine skews every figure."""
    def sample():
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total; idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def version(tool, path=None):
    """'Name X.Y' from the tool's own version output."""
    names = {"squid": "Squid", "tinyproxy": "tinyproxy", "haproxy": "HAProxy",
             "embargo": "Embargo"}
    argv = {"squid": ["squid", "-v"], "tinyproxy": ["tinyproxy", "-v"],
            "haproxy": ["haproxy", "-v"], "embargo": [path or "embargo", "version"]}[tool]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        words = (out.stdout + out.stderr).split()
    except (OSError, subprocess.SubprocessError):
        return names[tool]
    for w in words:
        if w[:1].isdigit() and "." in w:
            return f"{names[tool]} {'.'.join(w.split('.')[:2])}"
    return names[tool]


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def on_stop_signal(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(REPO, "build", "embargo"),
                   help="the embargo binary (default: build/embargo)")
    p.add_argument("--quick", action="store_true",
                   help="one short round (2 s per request-rate run) instead of 3 of 5 s")
    p.add_argument("--rounds", type=int, help="interleaved runs per cell (default 3)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 5)")
    p.add_argument("--tunnels", type=int, default=1000, help="idle tunnels (default 1000)")
    p.add_argument("--parallel", type=int, default=50,
                   help="idle tunnels opened at a time in the burst row and the scale "
                        "curve (default 50)")
    p.add_argument("--only", choices=("idle", "load", "tls", "ka", "scale", "page"),
                   help="run only the idle-tunnel phase, only the load phase, of the "
                        "load phase only the 100 MB downloads through a TLS tunnel (tls) or "
                        "only the keep-alive request rate and its CPU per request (ka), "
                        "only the scale curves (scale), or only the block page burst (page)")
    p.add_argument("--scale-tunnels", type=counts, default=[1000, 10000, 50000],
                   help="idle TLS tunnel counts of the scale curve (default 1000,10000,50000; "
                        "a count beyond the descriptor limit is measured at the largest "
                        "that fits)")
    p.add_argument("--scale-clients", type=counts, default=[50, 1000, 5000],
                   help="keep-alive client connections of the scale curve "
                        "(default 50,1000,5000)")
    p.add_argument("--scale-patterns", type=counts, default=[10, 100000, 1000000],
                   help="vendor-list sizes of the scale curve (default 10,100000,1000000; "
                        "the smallest is the baseline)")
    p.add_argument("--burst", type=int, default=1000,
                   help="distinct denied names per block-page burst (default 1000)")
    p.add_argument("--targets", type=lambda v: v.split(","), default=[],
                   help="comma-separated peers to run (default all): squid, tinyproxy, "
                        "haproxy, embargo, embargo-100k, embargo-log")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--log-cost", action="store_true",
                   help="measure only what access_log costs: keep-alive runs against "
                        "Embargo with and without it (no other proxy, no idle tunnels)")
    p.add_argument("--json", metavar="FILE",
                   help="also write every run's figures to FILE (JSON)")
    p.add_argument("--workers", type=int,
                   help="Embargo's `workers:` (default: its own, one per CPU online)")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2 if args.quick else 5)
    if not (1 <= args.rounds <= 9 and 1 <= args.duration <= 60 and 1 <= args.tunnels <= 5000):
        p.error("--rounds 1..9, --duration 1..60, --tunnels 1..5000")
    if not (1 <= args.parallel <= 500 and 1 <= args.burst <= 100000):
        p.error("--parallel 1..500, --burst 1..100000")
    if max(args.scale_tunnels) > 1000000 or max(args.scale_clients) > 50000 \
            or max(args.scale_patterns) > 5000000 or min(args.scale_patterns) < 1:
        p.error("--scale-tunnels up to 1000000, --scale-clients up to 50000, "
                "--scale-patterns 1..5000000")
    if args.workers is not None and not 1 <= args.workers <= 64:
        p.error("--workers 1..64")
    args.binary = os.path.abspath(args.binary)
    if args.json:
        args.json = os.path.abspath(args.json)
    return args


def counts(text):
    """A comma-separated list of positive counts ("1000,10000")."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"not a list of positive counts: {text!r}")
    return values


def main(argv):
    args = parse_args(argv)
    missing = [t for t in ("nginx", "wrk", "curl", "openssl") if not peers.find_tool(t)]
    if not os.access(args.binary, os.X_OK):
        missing.append(args.binary)
    if missing:
        print(f"cannot run the benchmark, missing: {', '.join(missing)} "
              "(tests/bench/run.sh installs and builds them)", file=sys.stderr)
        return 1
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    # Descriptors: the soft limit up to the hard one, for this process and
    # what it starts only (the scale curve holds two per tunnel in Embargo).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (peers.nofile_limit(), hard))
    # Ctrl-C, SIGTERM and SIGHUP unwind the same way, so every process started
    # is stopped; a second signal does not interrupt that.
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop_signal)
    bench = Bench(args)
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process started", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"cannot run the benchmark: {e}", file=sys.stderr)
        return 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        bench.cleanup()
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
