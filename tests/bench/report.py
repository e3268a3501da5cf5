"""The proxy benchmark's printed report: one table of medians (rows are
workloads, columns direct and each proxy), Embargo's same-run ratios against
each column, and each performance target with its measured ratio and whether
it is met. It reports only; nothing here decides the exit status."""

import collections
import statistics

COLUMNS = ("direct", "squid", "tinyproxy", "haproxy", "embargo")

# (row key, label, metric, format, higher is better)
ROWS = (
    ("ka", "small HTTP responses, keep-alive, 50 conns (req/s)", "rate", "int", True),
    ("close", "same, one request per connection (req/s)", "rate", "int", True),
    ("ka", "proxy CPU per 100k keep-alive requests (s)", "cpu_100k", "f2", False),
    ("ka", "origin connections opened per 1,000 keep-alive requests", "dials_1k", "f1", False),
    ("plain", "100 MB over plain HTTP (MB/s)", "mbps", "int", True),
    ("plain", "proxy CPU per GB over plain HTTP (s)", "cpu_gb", "f2", False),
    ("tls", "100 MB over TLS through the tunnel (MB/s)", "mbps", "int", True),
    ("tls", "proxy CPU per GB tunnelled (s)", "cpu_gb", "f2", False),
    ("idle", "memory per idle tunnel, {tunnels:,} opened one at a time (bytes of RSS)",
     "rss_per_tunnel", "int", False),
    ("idle_burst", "memory per idle tunnel, {tunnels:,} opened {parallel} at a time (bytes of RSS)",
     "rss_per_tunnel", "int", False),
)

# What the run measured: TUNNELS idle tunnels per peer, PARALLEL at a time
# in the burst row; the scale curve's tunnel counts as (wanted, measured)
# pairs, its client and pattern counts; BURST denied names; NOFILE, the
# descriptor limit that caps the tunnel counts.
Shape = collections.namedtuple(
    "Shape", "tunnels parallel scale_tunnels scale_clients scale_patterns burst nofile")

VARIANTS = (
    ("embargo-100k", "Embargo keep-alive req/s with a 100,000-pattern vendor list"),
    ("embargo-log", "Embargo keep-alive req/s with access_log: true"),
)


def median(results, workload, target, metric):
    """Median of METRIC over the successful runs of WORKLOAD on TARGET, or None."""
    values = [r[metric] for r in results.get((workload, target), [])
              if r is not None and r.get(metric) is not None]
    return statistics.median(values) if values else None


def fmt(value, kind):
    if value is None:
        return "–"
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "f1":
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def paired(results, workload, a, b, metric):
    """Median over rounds of A's METRIC divided by B's from the same round,
    or None. Runs of one round are close in time and share the machine's
    state, so this is steadier than a ratio of medians when other work on
    the machine comes and goes."""
    values = [ratio(x.get(metric), y.get(metric))
              for x, y in zip(results.get((workload, a), []), results.get((workload, b), []))
              if x is not None and y is not None]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _label(label, shape):
    return label.format(tunnels=shape.tunnels, parallel=shape.parallel)


def _ran(results):
    """Whether any workload of the comparison with the peers ran."""
    return any(results.get((w, c)) for w, *_ in ROWS for c in COLUMNS + ("embargo-100k",
                                                                          "embargo-log"))


def table(results, headers, shape):
    """Markdown table of medians; HEADERS maps column key to its title,
    SHAPE says how many idle tunnels were open. Empty when no workload of
    the comparison ran."""
    if not _ran(results):
        return []
    lines = ["| workload | " + " | ".join(headers[c] for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for workload, label, metric, kind, _ in ROWS:
        cells = []
        for c in COLUMNS:
            text = fmt(median(results, workload, c, metric), kind)
            cells.append(f"**{text}**" if c == "embargo" and text != "–" else text)
        lines.append(f"| {_label(label, shape)} | " + " | ".join(cells) + " |")
    for key, label in VARIANTS:
        rate = median(results, "ka", key, "rate")
        text = "–" if rate is None else \
            f"**{rate:,.0f}** ({fmt(paired(results, 'ka', key, 'embargo', 'rate'), 'f2')}× plain)"
        lines.append(f"| {label} | " + " | ".join(["–"] * (len(COLUMNS) - 1)) +
                     f" | {text} |")
    return lines


def ratios(results, headers, shape):
    """Embargo's figure divided by each column's, row by row (the median of
    the ratios of each round)."""
    if not _ran(results):
        return []
    others = [c for c in COLUMNS if c != "embargo"]
    lines = ["| Embargo ÷ | " + " | ".join(headers[c] for c in others) + " |",
             "|---" * (len(others) + 1) + "|"]
    for workload, label, metric, _, better_high in ROWS:
        cells = [fmt(paired(results, workload, "embargo", c, metric), "f2") for c in others]
        cells = [c if c == "–" else c + "×" for c in cells]
        arrow = "higher is better" if better_high else "lower is better"
        lines.append(f"| {_label(label, shape)} ({arrow}) | " + " | ".join(cells) + " |")
    return lines


def _target(text, met, shown):
    if met is None:
        return f"  {text}: not measured"
    return f"  {text}: {shown} -> {'met' if met else 'NOT MET'}"


def _scale_point(shape, wanted):
    """The tunnel count measured for WANTED in the scale curve, or None."""
    return next((m for w, m in shape.scale_tunnels if w == wanted), None)


def _paired_points(results, workload, a, b, fn):
    """Median over rounds of FN(A's figures, B's figures) from the same
    round, or None."""
    values = [fn(x, y) for x, y in zip(results.get((workload, a), []),
                                      results.get((workload, b), []))
              if x is not None and y is not None]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def targets(results, shape):
    """One line per target of the performance work, with the measured ratio."""
    def m(workload, target, metric):
        return median(results, workload, target, metric)

    out = ["Targets (Embargo; each ratio is the median of the ratios of each round):"]
    t = shape.tunnels
    for workload, how in (("idle", "one at a time"), ("idle_burst", f"{shape.parallel} at a time")):
        mem = m(workload, "embargo", "rss_per_tunnel")
        vs = paired(results, workload, "embargo", "haproxy", "rss_per_tunnel")
        limit = 0.55 if workload == "idle_burst" else None
        met = None if mem is None else mem <= 2048 and (
            limit is None or (vs is not None and vs <= limit))
        text = f"memory per idle CONNECT tunnel ({t:,} opened {how}) at most 2 KiB" + (
            f" and at most {limit}× HAProxy's" if limit else "")
        out.append(_target(text, met, "" if mem is None else f"{mem:,.0f} B = "
                           f"{mem / 2048:.2f}× the limit" +
                           ("" if vs is None else f", {vs:.2f}× HAProxy")))
    n = _scale_point(shape, 10000)
    if n is not None:
        mem = m("tunnels", str(n), "rss_per_tunnel")
        out.append(_target(f"memory per idle CONNECT tunnel with 10,000 open{_capped(n, 10000)} "
                           "at most 2 KiB", None if mem is None else mem <= 2048,
                           "" if mem is None else f"{mem:,.0f} B = {mem / 2048:.2f}× the limit"))
        r = m("tunnels", str(n), "p99_ratio")
        ctl = m("tunnels", f"elsewhere@{n}", "p99_ratio")
        out.append(_target(f"keep-alive p99 latency with 10,000 idle tunnels open{_capped(n, 10000)} "
                           "at most 1.2× without", None if r is None else r <= 1.2,
                           "" if r is None else f"{r:.2f}× ("
                           f"{m('tunnels', str(n), 'p99_with'):.2f} ms against "
                           f"{m('tunnels', str(n), 'p99_without'):.2f} ms"
                           + ("" if ctl is None else
                              f"; {ctl:.2f}× with the same tunnels in another Embargo") + ")"))
    checks = (
        ("keep-alive request rate at least 3× Squid", ("ka", "rate", "squid"), 3.0, True),
        ("keep-alive request rate at least 0.5× direct", ("ka", "rate", "direct"), 0.5, True),
        ("CPU per keep-alive request at most 0.3× Squid's", ("ka", "cpu_100k", "squid"),
         0.3, False),
        ("100 MB through a tunnel at least 1.05× HAProxy", ("tls", "mbps", "haproxy"), 1.05, True),
        ("100 MB through a tunnel at least 0.95× direct", ("tls", "mbps", "direct"), 0.95, True),
        ("CPU per GB tunnelled at most HAProxy's", ("tls", "cpu_gb", "haproxy"), 1.0, False),
        ("100 MB over plain HTTP at least 0.6× direct", ("plain", "mbps", "direct"), 0.6, True),
    )
    for text, (workload, metric, peer), limit, at_least in checks:
        r = paired(results, workload, "embargo", peer, metric)
        met = None if r is None else (r >= limit if at_least else r <= limit)
        out.append(_target(text, met, "" if r is None else f"{r:.2f}×"))
    for key, text, limit in (
            ("embargo-100k", "a 100,000-pattern vendor list costs under 5% of request rate", 0.05),
            ("embargo-log", "access_log: true costs under 10% of request rate", 0.10)):
        r = paired(results, "ka", key, "embargo", "rate")
        cpu = paired(results, "ka", key, "embargo", "cpu_100k")
        cost = None if r is None else 1 - r
        shown = "" if r is None else f"{r:.3f}× plain, cost {cost * 100:.1f}%"
        if cpu is not None:  # steadier than the rate when the machine is busy
            shown += f" (CPU per request {cpu:.3f}× plain)"
        out.append(_target(text, None if cost is None else cost < limit, shown))
    out += _pattern_targets(results, shape)
    r = m("page", "embargo", "burst_p99")
    ratio_ = _paired_points(results, "page", "embargo", "embargo",
                            lambda x, y: ratio(x["burst_p99"], x["quiet_p99"]))
    ctl = _paired_points(results, "page", "elsewhere", "elsewhere",
                         lambda x, y: ratio(x["burst_p99"], x["quiet_p99"]))
    out.append(_target(f"allowed CONNECT p99 during a burst of {shape.burst:,} denied names "
                       "(block page) at most 2× quiet", None if ratio_ is None else ratio_ <= 2,
                       "" if ratio_ is None else f"{ratio_:.2f}× ({r:.2f} ms against "
                       f"{m('page', 'embargo', 'quiet_p99'):.2f} ms"
                       + ("" if ctl is None else
                          f"; {ctl:.2f}× with the burst answered by another Embargo") + ")"))
    return out


def _pattern_targets(results, shape):
    """The 1,000,000-pattern targets: load time, RSS per pattern, request
    rate against the smallest list of the same round."""
    big, base = 1000000, str(min(shape.scale_patterns))
    if big not in shape.scale_patterns:
        return []
    key = str(big)
    load = median(results, "patterns", key, "load_s")
    per = _paired_points(results, "patterns", key, base,
                         lambda x, y: (x["rss"] - y["rss"]) / (big - int(base)))
    r = _paired_points(results, "patterns", key, base, lambda x, y: ratio(x["rate"], y["rate"]))
    cpu = _paired_points(results, "patterns", key, base,
                         lambda x, y: ratio(x["cpu_100k"], y["cpu_100k"]))
    shown = "" if r is None else f"{r:.3f}× {int(base):,} patterns, cost {(1 - r) * 100:.1f}%"
    if cpu is not None:
        shown += f" (CPU per request {cpu:.3f}×)"
    return [
        _target("1,000,000 patterns load in at most 5 s", None if load is None else load <= 5,
                "" if load is None else f"{load:.2f} s"),
        _target("1,000,000 patterns take at most 400 B of RSS each",
                None if per is None else per <= 400, "" if per is None else f"{per:,.0f} B"),
        _target("1,000,000 patterns cost under 5% of request rate",
                None if r is None else 1 - r < 0.05, shown),
    ]


def _capped(measured, wanted):
    return "" if measured == wanted else f" (measured: {measured:,})"


def scale_tables(results, shape):
    """The scale curves (tunnels, clients, patterns) and the block page
    burst, as tables; nothing for a phase that did not run."""
    out = []
    if any(results.get(("tunnels", str(m))) for _, m in shape.scale_tunnels):
        out += ["Idle TLS tunnels (a fresh Embargo per count; keep-alive wrk -c50 beside the "
                "tunnels, against the mean of a run before they are opened and one after "
                "they are closed):", "",
                "| tunnels | measured | RSS per tunnel (B) | CPU at idle (ms/s) | opened in (s) "
                "| keep-alive p99 without (ms) | with (ms) | with ÷ without "
                "| control: in another Embargo, with ÷ without "
                "| CPU per 100k requests without (s) | with (s) |",
                "|---" * 11 + "|"]
        for wanted, n in shape.scale_tunnels:
            def f(metric, kind, key=str(n)):
                return fmt(median(results, "tunnels", key, metric), kind)
            out.append(f"| {wanted:,} | {n:,} | {f('rss_per_tunnel', 'int')} | "
                       f"{f('idle_cpu_ms_s', 'f2')} | {f('open_s', 'f1')} | "
                       f"{f('p99_without', 'f2')} | {f('p99_with', 'f2')} | "
                       f"{f('p99_ratio', 'f2')} | {f('p99_ratio', 'f2', f'elsewhere@{n}')} | "
                       f"{f('cpu_100k_without', 'f2')} | {f('cpu_100k_with', 'f2')} |")
        capped = [w for w, n in shape.scale_tunnels if n != w]
        if capped:
            out.append("")
            out.append(f"Counts above {max(n for _, n in shape.scale_tunnels):,} cannot be "
                       f"reached here: a process may hold {shape.nofile:,} descriptors (the "
                       "hard RLIMIT_NOFILE, which only CAP_SYS_RESOURCE raises) and Embargo "
                       "holds two per tunnel; they are measured at the largest count that fits.")
        out.append("")
    if any(results.get(("clients", str(c))) for c in shape.scale_clients):
        out += ["Keep-alive clients (wrk -t2 -cN, 128-byte responses):", "",
                "| clients | Embargo req/s | p99 (ms) | CPU per 100k (s) | direct req/s "
                "| direct p99 (ms) | Embargo ÷ direct |", "|---" * 7 + "|"]
        for c in shape.scale_clients:
            def f(target, metric, kind):
                return fmt(median(results, "clients", target, metric), kind)
            r = paired(results, "clients", str(c), f"direct@{c}", "rate")
            out.append(f"| {c:,} | {f(str(c), 'rate', 'int')} | {f(str(c), 'p99_ms', 'f2')} | "
                       f"{f(str(c), 'cpu_100k', 'f2')} | {f(f'direct@{c}', 'rate', 'int')} | "
                       f"{f(f'direct@{c}', 'p99_ms', 'f2')} | {fmt(r, 'f2')} |")
        out.append("")
    sizes = sorted(set(shape.scale_patterns))
    if any(results.get(("patterns", str(n))) for n in sizes):
        base = str(sizes[0])
        out += ["Vendor-list patterns (Embargo started with the built-in lists and a generated "
                "list; RSS per pattern and rates against the smallest list of the same round):",
                "", "| patterns | start to accepting (s) | RSS (MiB) | RSS per pattern (B) "
                "| keep-alive req/s | ÷ smallest | CPU per 100k (s) |", "|---" * 7 + "|"]
        for n in sizes:
            key = str(n)
            per = None if key == base else _paired_points(
                results, "patterns", key, base, lambda x, y: (x["rss"] - y["rss"]) / (n - sizes[0]))
            r = _paired_points(results, "patterns", key, base,
                               lambda x, y: ratio(x["rate"], y["rate"]))
            rss = median(results, "patterns", key, "rss")
            out.append(f"| {n:,} | {fmt(median(results, 'patterns', key, 'load_s'), 'f2')} | "
                       f"{fmt(None if rss is None else rss / 2**20, 'f1')} | {fmt(per, 'int')} | "
                       f"{fmt(median(results, 'patterns', key, 'rate'), 'int')} | "
                       f"{fmt(r, 'f2')} | {fmt(median(results, 'patterns', key, 'cpu_100k'), 'f2')} |")
        out.append("")
    if results.get(("page", "embargo")):
        def f(metric, kind="f2"):
            return fmt(median(results, "page", "embargo", metric), kind)
        out += [f"Allowed CONNECTs (resolve, dial, 200; a fresh connection each, one at a time) "
                f"quiet and during a burst of {shape.burst:,} distinct denied names answered "
                "with the block page (4 client processes, each name's CONNECT and ClientHello "
                "until the first TLS bytes of the answer):", "",
                "| burst answered by | quiet p50 (ms) | quiet p99 (ms) | burst p50 (ms) "
                "| burst p99 (ms) | allowed CONNECTs during the burst | burst took (s) "
                "| CPU per denied name (ms) |",
                "|---" * 8 + "|"]
        for key, who in (("embargo", "the Embargo measured"),
                         ("elsewhere", "another Embargo (control)")):
            if results.get(("page", key)):
                def f(metric, kind="f2", key=key):
                    return fmt(median(results, "page", key, metric), kind)
                out.append(f"| {who} | {f('quiet_p50')} | {f('quiet_p99')} | {f('burst_p50')} "
                           f"| {f('burst_p99')} | {f('burst_n', 'int')} | {f('burst_s', 'f1')} "
                           f"| {f('cpu_ms_name')} |")
        out.append("")
    return out[:-1] if out else out


def log_cost(results):
    """--log-cost: each round's keep-alive rate and CPU per 100k requests
    without and with access_log, then the access_log target."""
    plain, logged = results.get(("ka", "embargo"), []), results.get(("ka", "embargo-log"), [])
    lines = ["| round | req/s | req/s, access_log | ratio | CPU/100k (s) | "
             "CPU/100k, access_log (s) |", "|---" * 6 + "|"]
    for i, (x, y) in enumerate(zip(plain, logged)):
        x, y = x or {}, y or {}
        lines.append(f"| {i + 1} | {fmt(x.get('rate'), 'int')} | {fmt(y.get('rate'), 'int')} | "
                     f"{fmt(ratio(y.get('rate'), x.get('rate')), 'f2')} | "
                     f"{fmt(x.get('cpu_100k'), 'f2')} | {fmt(y.get('cpu_100k'), 'f2')} |")
    shape = Shape(0, 1, [], [], [], 0, 0)
    return lines + [""] + [targets(results, shape)[0],
                           next(t for t in targets(results, shape) if "access_log" in t)]
