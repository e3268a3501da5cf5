#!/usr/bin/env python3
"""A/B of tunnel relaying: 100 MB through HAProxy and one or more Embargo builds.

    python3 tests/bench/tunnel_ab.py [--rounds N] [--plain] [--haproxy-splice] \\
        [NAME=BINARY ...]

Without NAME=BINARY pairs, build/embargo is measured as "embargo". Each
round downloads nginx's /bulk (100 MB) once through every target in turn
(direct, HAProxy as an SNI relay, each Embargo given), starting each round
with another target. Per target it prints the median MB/s, the median of
the per-round ratios to HAProxy (to direct with --plain), and the median CPU
seconds per GB of the proxy, of the client (curl) and of the origin (nginx):
a relay can make its own work cheaper by moving work onto the processes it
shares the machine with, and on loopback those are the client and origin.

--plain downloads over plain HTTP through a CONNECT tunnel instead (no TLS:
the client and origin do the least work, so the relay's cost shows most;
HAProxy is left out, it relays TLS by SNI only). --haproxy-splice adds
HAProxy with `option splice-request` and `option splice-response`, the
zero-copy relay of splice(2), as a target. Every process is started on
127.0.0.1 and stopped by its PID at the end. The exit status is 0 unless
something could not run.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import loads
import peers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SETTLE = 0.3  # seconds between runs


def client_seconds():
    """CPU seconds of this process's finished children (the curls)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def download(target, ports, cafile, plain):
    """One 100 MB download through TARGET: MB/s and CPU seconds per GB of the
    proxy, the client and the origin."""
    cpu0 = peers.cpu_seconds(target["pid"]) if target.get("pid") else 0.0
    cli0, org0 = client_seconds(), peers.cpu_seconds(ports["origin_pid"])
    if plain:
        argv = ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "--max-time", "120",
                "-w", "%{http_code} %{size_download} %{time_total}"]
        if target.get("proxy"):
            argv += ["-p", "-x", f"http://{target['proxy']}"]
        out = subprocess.run(argv + [f"http://{peers.LOOPBACK}:{ports['http']}/bulk"],
                             capture_output=True, text=True, timeout=180,
                             env=loads.client_env())
        fields = out.stdout.split()
        if out.returncode != 0 or len(fields) != 3 or fields[0] != "200" \
                or int(fields[1]) != peers.BULK_BYTES:
            raise RuntimeError(f"curl failed: {out.stdout.strip()} {out.stderr.strip()}")
        figures = {"mbps": int(fields[1]) / 1e6 / float(fields[2])}
    else:
        figures = loads.run_bulk(target, ports["http"], ports["tls"], cafile, True)
    gb = peers.BULK_BYTES / 1e9
    figures["proxy"] = ((peers.cpu_seconds(target["pid"]) - cpu0) / gb
                        if target.get("pid") else None)
    figures["client"] = (client_seconds() - cli0) / gb
    figures["origin"] = (peers.cpu_seconds(ports["origin_pid"]) - org0) / gb
    return figures


def start_targets(args, procs, root, ports):
    """direct, the HAProxy relays and every Embargo build, started."""
    targets = [{"name": "direct", "pid": None}]
    if not args.plain:
        variants = [("haproxy", "")]
        if args.haproxy_splice:
            variants.append(("haproxy-splice", "  option splice-request\n"
                                               "  option splice-response\n"))
        for name, options in variants:
            port = peers.free_ports(1)[0]
            conf = peers.haproxy_conf(root, port, ports["tls"], name)
            with open(conf) as f:
                text = f.read()
            # Splicing needs pipes: fewer connections leave descriptors for them.
            if options:
                text = text.replace("maxconn 8192", "maxconn 4096\n  maxpipes 256")
            peers.write(conf, text.replace("  mode tcp\n", "  mode tcp\n" + options))
            proc = procs.start(name, ["haproxy", "-db", "-f", conf], port)
            targets.append({"name": name, "pid": proc.pid, "relay": f"{peers.LOOPBACK}:{port}"})
    for name, binary in args.builds:
        port = peers.free_ports(1)[0]
        conf = peers.embargo_conf(root, name, port, ports["tls"])
        with open(conf) as f:
            text = f.read()
        peers.write(conf, text.replace(f"connect_ports: [443, {ports['tls']}]",
                                       f"connect_ports: [443, {ports['tls']}, {ports['http']}]"))
        proc = procs.start(name, [binary, "run", "-c", conf], port)
        targets.append({"name": name, "pid": proc.pid, "proxy": f"{peers.LOOPBACK}:{port}"})
    return targets


def report(results, baseline):
    """One line per target: medians, and the per-round ratio to BASELINE."""
    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    print(f"{'target':16} {'MB/s':>6} {'÷ ' + baseline:>12} {'proxy CPU/GB':>13} "
          f"{'client CPU/GB':>14} {'origin CPU/GB':>14}")
    base = results.get(baseline, [])
    for name, runs in results.items():
        ratio = med([a["mbps"] / b["mbps"] for a, b in zip(runs, base) if a and b])
        print(f"{name:16} {fmt(med([r['mbps'] for r in runs]), '6.0f')} "
              f"{fmt(ratio, '11.2f')}× {fmt(med([r['proxy'] for r in runs]), '13.2f')} "
              f"{fmt(med([r['client'] for r in runs]), '14.2f')} "
              f"{fmt(med([r['origin'] for r in runs]), '14.2f')}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9, help="downloads per target (default 9)")
    p.add_argument("--plain", action="store_true",
                   help="plain HTTP through a CONNECT tunnel instead of TLS (no HAProxy)")
    p.add_argument("--haproxy-splice", action="store_true",
                   help="also HAProxy relaying with splice(2)")
    p.add_argument("builds", nargs="*", metavar="NAME=BINARY",
                   help="Embargo builds to measure (default embargo=build/embargo)")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 30:
        p.error("--rounds 1..30")
    builds = args.builds or [f"embargo={os.path.join(REPO, 'build', 'embargo')}"]
    args.builds = []
    for b in builds:
        name, sep, binary = b.partition("=")
        if not sep or not name or name in ("direct", "haproxy", "haproxy-splice"):
            p.error(f"{b}: expected NAME=BINARY with a NAME of its own")
        if not os.access(binary, os.X_OK):
            p.error(f"{binary}: not an executable")
        args.builds.append((name, os.path.abspath(binary)))
    return args


def main(argv):
    args = parse_args(argv)
    missing = [t for t in ("nginx", "curl", "openssl", "haproxy") if not peers.find_tool(t)]
    if missing:
        print(f"missing: {', '.join(missing)} (scripts/deps.sh bench installs them)",
              file=sys.stderr)
        return 1
    root = tempfile.mkdtemp(prefix="embargo-ab-")
    os.chmod(root, 0o755)  # the peers drop privileges and read from here
    procs = peers.Procs(root)
    try:
        cafile = peers.make_origin_files(root)
        http, tls, status = peers.free_ports(3)
        origin = procs.start("nginx", ["nginx", "-p", root, "-c",
                                       peers.nginx_conf(root, http, tls, status)], http)
        ports = {"http": http, "tls": tls, "origin_pid": origin.pid}
        targets = start_targets(args, procs, root, ports)
        results = {t["name"]: [] for t in targets}
        for rnd in range(args.rounds):
            k = rnd % len(targets)
            for t in targets[k:] + targets[:k]:
                time.sleep(SETTLE)
                results[t["name"]].append(download(t, ports, cafile, args.plain))
        print(f"100 MB {'over plain HTTP through a CONNECT tunnel' if args.plain else 'over TLS'}"
              f", medians of {args.rounds} interleaved runs, {os.cpu_count()} CPUs shared by "
              f"client, origin and proxy")
        report(results, "direct" if args.plain else "haproxy")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"cannot run: {e}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
