"""How Embargo's cost grows with the work, and the block page under a burst:
the phases of the proxy benchmark that measure Embargo alone.

* idle TLS tunnels: for each count, a freshly started Embargo, a keep-alive
  wrk run (p99 latency), the tunnels opened PARALLEL at a time (RSS per
  tunnel), the CPU it spends per second while they idle, and the same wrk
  run beside them; then the control: the same run while another Embargo
  holds the same tunnels (what they cost the machine rather than the loops
  of the Embargo measured);
* keep-alive clients: wrk with 50, 1,000, 5,000 connections, direct and
  through Embargo (req/s, p99, CPU per request);
* vendor-list patterns: Embargo started with generated lists of 10,
  100,000, 1,000,000 patterns (synthetic names under a test-only domain):
  time until it accepts, RSS per pattern, keep-alive req/s and CPU per
  request against the 10-pattern list of the same round;
* the block page: allowed CONNECTs (resolve, dial, 200) measured quiet and
  while a burst of distinct denied names gets the block page; then the
  control: the same burst answered by another Embargo (what the burst's
  CPU costs the machine rather than the loops of the Embargo measured).

Every count beyond what the descriptor limit allows is measured at the
largest count that fits, and the report says so. Figures go into the
benchmark's results under the workloads "tunnels", "clients", "patterns"
and "page", keyed by the count (or "direct@COUNT" for direct runs,
"elsewhere@COUNT" and "elsewhere" for the controls).
"""

import ssl
import time

import loads
import peers

# Descriptors Embargo holds besides two per tunnel: listeners, each loop's
# epoll, eventfd and timers, the DNS sockets, the log files, the admission
# reserve, and the 50 keep-alive clients wrk runs beside the tunnels with
# their upstreams.
FD_RESERVE = 200
IDLE_SECONDS = 5.0  # CPU per second at idle is measured over this long
SETTLE_AFTER = 2.0  # seconds after the tunnels close, before the last keep-alive run
PAGE_WORKERS = 4    # processes sending the denied names


def tunnel_cap():
    """The most idle tunnels one Embargo process can hold here: two
    descriptors each (client and origin) under the hard RLIMIT_NOFILE."""
    return max(1, (peers.nofile_limit() - FD_RESERVE) // 2)


def effective(counts):
    """[(wanted, measured)] for each count wanted: measured is the count
    itself, or the largest that fits under the descriptor limit."""
    cap = tunnel_cap()
    return [(n, min(n, cap)) for n in counts]


def tunnels_phase(bench):
    """Idle TLS tunnels at each count (fresh process per count and round)."""
    args = bench.args
    measured = sorted({m for _, m in effective(args.scale_tunnels)})
    script = loads.wrk_script(bench.root, bench.ports["http"], True, False)
    o, st, d = bench.ports["http"], bench.ports["status"], args.duration
    ctx = ssl.create_default_context(cafile=bench.cafile)
    for rnd in range(args.rounds):
        for n in rotate(measured, rnd):
            bench.progress(f"scale: {n:,} idle TLS tunnels, round {rnd + 1}/{args.rounds}")
            target = bench.start_peer("embargo-scale")
            if target is None:
                return
            try:
                bench.record("tunnels", str(n), lambda: idle_point(
                    target, bench, ctx, script, n, (o, st, d)))
                bench.record("tunnels", f"elsewhere@{n}", lambda: elsewhere_point(
                    target, bench, ctx, script, n, (o, st, d)))
            finally:
                bench.stop_peer("embargo-scale")


def idle_point(target, bench, ctx, script, count, wrk_args):
    """One point of the tunnel curve on a fresh TARGET. The keep-alive run
    beside the tunnels is compared with the mean of one before they are
    opened and one after they are closed: other work on the machine drifts
    over the tens of seconds between them."""
    o, st, d = wrk_args
    deadline = time.monotonic() + 120 + count / 20
    socks = []
    try:
        loads.run_wrk(target, script, o, st, 1)  # warm-up: the pool, the DNS cache
        before_run = loads.run_wrk(target, script, o, st, d)
        socks += loads.open_tunnels(target, bench.ports["tls"], ctx, 10, 1, deadline)
        time.sleep(0.5)
        before = peers.rss_bytes(target["pid"])
        t0 = time.monotonic()
        socks += loads.open_tunnels(target, bench.ports["tls"], ctx, count,
                                    bench.args.parallel, deadline)
        opened_s = time.monotonic() - t0
        time.sleep(1.0)
        rss = (peers.rss_bytes(target["pid"]) - before) / count
        idle = loads.idle_cpu(target["pid"], IDLE_SECONDS)
        beside = loads.run_wrk(target, script, o, st, d)
    finally:
        loads.close_all(socks)
    time.sleep(SETTLE_AFTER)
    after_run = loads.run_wrk(target, script, o, st, d)
    without = (before_run["p99_ms"] + after_run["p99_ms"]) / 2
    return {"rss_per_tunnel": rss, "idle_cpu_ms_s": idle, "open_s": opened_s,
            "p99_without": without, "p99_with": beside["p99_ms"],
            "rate_without": (before_run["rate"] + after_run["rate"]) / 2,
            "rate_with": beside["rate"],
            "cpu_100k_without": (before_run["cpu_100k"] + after_run["cpu_100k"]) / 2,
            "cpu_100k_with": beside["cpu_100k"],
            "p99_ratio": beside["p99_ms"] / without if without else None}


def elsewhere_point(target, bench, ctx, script, count, wrk_args):
    """The control of the tunnel curve's latency: the same COUNT idle
    tunnels held by another Embargo process while the same keep-alive run
    goes through TARGET, whose loops hold none of them. What the tunnels
    cost the machine (the kernel's socket tables, memory, whatever watches
    the host's sockets) shows here too; what they cost TARGET's loops only
    in idle_point."""
    o, st, d = wrk_args
    deadline = time.monotonic() + 120 + count / 20
    other = bench.start_peer("embargo-other")
    if other is None:
        raise RuntimeError("the second Embargo did not start")
    socks = []
    try:
        loads.run_wrk(target, script, o, st, 1)
        before_run = loads.run_wrk(target, script, o, st, d)
        socks += loads.open_tunnels(other, bench.ports["tls"], ctx, count,
                                    bench.args.parallel, deadline)
        time.sleep(1.0 + IDLE_SECONDS)  # as long after the opening as idle_point's run
        beside = loads.run_wrk(target, script, o, st, d)
    finally:
        loads.close_all(socks)
        bench.stop_peer("embargo-other")
    time.sleep(SETTLE_AFTER)
    after_run = loads.run_wrk(target, script, o, st, d)
    without = (before_run["p99_ms"] + after_run["p99_ms"]) / 2
    return {"p99_without": without, "p99_with": beside["p99_ms"],
            "p99_ratio": beside["p99_ms"] / without if without else None}


def clients_phase(bench):
    """Keep-alive requests over more and more client connections, direct
    and through one Embargo, interleaved."""
    args = bench.args
    target = bench.start_peer("embargo-scale")
    if target is None:
        return
    direct = {"name": "direct", "pid": None}
    o, st, d = bench.ports["http"], bench.ports["status"], args.duration
    scripts = {t: loads.wrk_script(bench.root, o, t, False) for t in (False, True)}
    try:
        loads.run_wrk(target, scripts[True], o, st, 1)
        for rnd in range(args.rounds):
            bench.progress(f"scale: keep-alive clients, round {rnd + 1}/{args.rounds}")
            for c in rotate(args.scale_clients, rnd):
                for t in rotate([direct, target], rnd):
                    key = str(c) if t is target else f"direct@{c}"
                    bench.record("clients", key, lambda: loads.run_wrk(
                        t, scripts[t is target], o, st, d, connections=c))
    finally:
        bench.stop_peer("embargo-scale")


def patterns_phase(bench):
    """Embargo with vendor lists of each size: load time, RSS, req/s."""
    args = bench.args
    sizes = sorted(set(args.scale_patterns))
    for n in sizes:
        bench.progress(f"scale: writing a {n:,}-pattern vendor list")
        bench.pattern_lists[n] = peers.vendor_list(bench.root, n)
    script = loads.wrk_script(bench.root, bench.ports["http"], True, False)
    o, st, d = bench.ports["http"], bench.ports["status"], args.duration
    for rnd in range(args.rounds):
        bench.progress(f"scale: vendor-list patterns, round {rnd + 1}/{args.rounds}")
        for n in rotate(sizes, rnd):
            bench.record("patterns", str(n), lambda: pattern_point(bench, n, script, (o, st, d)))


def pattern_point(bench, count, script, wrk_args):
    """One point of the pattern curve: a fresh Embargo with COUNT patterns."""
    o, st, d = wrk_args
    name = f"embargo-list-{count}"
    t0 = time.monotonic()
    target = bench.start_peer(name)
    if target is None:
        raise RuntimeError(f"{name} did not start")
    try:
        load_s = time.monotonic() - t0
        time.sleep(1.0)
        rss = peers.rss_bytes(target["pid"])
        loads.run_wrk(target, script, o, st, 1)
        ka = loads.run_wrk(target, script, o, st, d)
    finally:
        bench.stop_peer(name)
    return {"load_s": load_s, "rss": rss, "rate": ka["rate"], "cpu_100k": ka["cpu_100k"],
            "p99_ms": ka["p99_ms"]}


def page_phase(bench):
    """Allowed CONNECT latency, quiet and during a burst of denied names
    answered with the block page; each round with names not seen before
    (every one minted)."""
    args = bench.args
    target = bench.start_peer("embargo-page")
    if target is None:
        return
    allowed = f"{peers.TLS_NAME}:{bench.ports['http']}"
    try:
        loads.connect_ms(target["proxy"], allowed)  # the DNS cache
        for rnd in range(args.rounds):
            bench.progress(f"block page: {args.burst:,} denied names, round "
                           f"{rnd + 1}/{args.rounds}")
            names = [f"r{rnd}-n{i}.{peers.PAGE_DOMAIN}" for i in range(args.burst)]
            bench.record("page", "embargo", lambda: loads.run_page_burst(
                target, allowed, names, PAGE_WORKERS))
            # The control: the same burst answered by another Embargo, the
            # allowed CONNECTs still through this one.
            names = [f"r{rnd}-o{i}.{peers.PAGE_DOMAIN}" for i in range(args.burst)]
            bench.record("page", "elsewhere", lambda: page_elsewhere(
                bench, target, allowed, names))
    finally:
        bench.stop_peer("embargo-page")


def page_elsewhere(bench, target, allowed, names):
    other = bench.start_peer("embargo-page-other")
    if other is None:
        raise RuntimeError("the second Embargo did not start")
    try:
        return loads.run_page_burst(target, allowed, names, PAGE_WORKERS, burst_target=other)
    finally:
        bench.stop_peer("embargo-page-other")


def embargo_extra(bench, name):
    """(extra config, more CONNECT ports, more tls_inspect keys) of the
    Embargo configurations of these phases, or None for another name."""
    limits = ("limits:\n  max_connections: 1000000\n  max_connections_per_client: 1000000\n"
              "timeouts:\n  tunnel_idle: 1800s\n")
    if name in ("embargo-scale", "embargo-other"):
        return limits, (), ""
    if name.startswith("embargo-list-"):
        path = bench.pattern_lists[int(name.rsplit("-", 1)[1])]
        return f"vendors:\n  - builtin: kaspersky\n  - file: {path}\n", (), ""
    if name in ("embargo-page", "embargo-page-other"):
        if bench.ca_dir is None:
            bench.ca_dir = peers.make_ca(bench.args.binary, bench.root)
        vendors = f"vendors:\n  - builtin: kaspersky\n  - file: {peers.page_vendor_list(bench.root)}\n"
        return (f"certs:\n  ca_dir: {bench.ca_dir}\n{vendors}", (bench.ports["http"],),
                "  deny_with: page\n")
    return None


def rotate(items, rnd):
    """ITEMS starting at position RND (see proxybench.rotate)."""
    k = rnd % len(items) if items else 0
    return items[k:] + items[:k]
