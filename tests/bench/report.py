"""The proxy benchmark's printed report: one table of medians (rows are
workloads, columns direct and each proxy), Embargo's same-run ratios against
each column, and each performance target with its measured ratio and whether
it is met. It reports only; nothing here decides the exit status."""

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
    ("idle", "memory per idle tunnel, {tunnels:,} open (bytes of RSS)", "rss_per_tunnel", "int",
     False),
)

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


def table(results, headers, tunnels):
    """Markdown table of medians; HEADERS maps column key to its title,
    TUNNELS is how many idle tunnels were open."""
    lines = ["| workload | " + " | ".join(headers[c] for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for workload, label, metric, kind, _ in ROWS:
        cells = []
        for c in COLUMNS:
            text = fmt(median(results, workload, c, metric), kind)
            cells.append(f"**{text}**" if c == "embargo" and text != "–" else text)
        lines.append(f"| {label.format(tunnels=tunnels)} | " + " | ".join(cells) + " |")
    for key, label in VARIANTS:
        rate = median(results, "ka", key, "rate")
        text = "–" if rate is None else \
            f"**{rate:,.0f}** ({fmt(paired(results, 'ka', key, 'embargo', 'rate'), 'f2')}× plain)"
        lines.append(f"| {label} | " + " | ".join(["–"] * (len(COLUMNS) - 1)) +
                     f" | {text} |")
    return lines


def ratios(results, headers, tunnels):
    """Embargo's figure divided by each column's, row by row (the median of
    the ratios of each round)."""
    others = [c for c in COLUMNS if c != "embargo"]
    lines = ["| Embargo ÷ | " + " | ".join(headers[c] for c in others) + " |",
             "|---" * (len(others) + 1) + "|"]
    for workload, label, metric, _, better_high in ROWS:
        cells = [fmt(paired(results, workload, "embargo", c, metric), "f2") for c in others]
        cells = [c if c == "–" else c + "×" for c in cells]
        arrow = "higher is better" if better_high else "lower is better"
        lines.append(f"| {label.format(tunnels=tunnels)} ({arrow}) | " + " | ".join(cells) + " |")
    return lines


def _target(text, met, shown):
    if met is None:
        return f"  {text}: not measured"
    return f"  {text}: {shown} -> {'met' if met else 'NOT MET'}"


def targets(results, tunnels):
    """One line per target of the performance work, with the measured ratio."""
    def m(workload, target, metric):
        return median(results, workload, target, metric)

    out = ["Targets (Embargo; each ratio is the median of the ratios of each round):"]
    mem = m("idle", "embargo", "rss_per_tunnel")
    vs_haproxy = paired(results, "idle", "embargo", "haproxy", "rss_per_tunnel")
    out.append(_target(f"memory per idle CONNECT tunnel ({tunnels:,} open) at most 2 KiB",
                       None if mem is None else mem <= 2048,
                       "" if mem is None else f"{mem:,.0f} B = {mem / 2048:.2f}× the limit" +
                       ("" if vs_haproxy is None else f", {vs_haproxy:.2f}× HAProxy")))
    checks = (
        ("keep-alive request rate at least 3× Squid", ("ka", "rate", "squid"), 3.0, True),
        ("keep-alive request rate at least 0.5× direct", ("ka", "rate", "direct"), 0.5, True),
        ("CPU per keep-alive request at most 1/3 of Squid's", ("ka", "cpu_100k", "squid"),
         1 / 3, False),
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
    return out


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
    return lines + [""] + [targets(results, 0)[0], targets(results, 0)[-1]]
