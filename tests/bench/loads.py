"""Workloads of the proxy benchmark. Each runs one bounded load (wrk for a
fixed duration, one curl download with a time limit, a fixed number of idle
tunnels with a deadline) against one target and returns its figures; the
proxy's CPU time and RSS are read from /proc around it.

A target is a dict: `name`, `pid` (None for direct), and either `proxy`
("127.0.0.1:PORT", an HTTP proxy) or `relay` ("127.0.0.1:PORT", a TCP relay
that the client connects to directly, choosing the origin by SNI).
"""

import concurrent.futures
import multiprocessing
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import peers

WRK_SCRIPT = """\
-- Absolute-form requests through a proxy (or origin-form when direct).
wrk.method = "GET"
wrk.path = "{path}"
wrk.headers["Host"] = "{host}"
{close}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def client_env():
    """Environment for client tools: no ambient proxy settings."""
    return {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def _cpu(target):
    return peers.cpu_seconds(target["pid"]) if target.get("pid") else 0.0


def origin_accepts(status_port):
    """Connections the origin has accepted so far (nginx stub_status)."""
    with socket.create_connection((peers.LOOPBACK, status_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: status\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", data)
    if not m:
        raise RuntimeError("origin stub_status unreadable")
    return int(m.group(1))


def wrk_script(workdir, origin_port, via_proxy, close):
    """Write the wrk Lua script for one request shape; return its path."""
    authority = f"{peers.LOOPBACK}:{origin_port}"
    path = f"http://{authority}/small" if via_proxy else "/small"
    name = f"wrk-{'proxy' if via_proxy else 'direct'}-{'close' if close else 'ka'}.lua"
    text = WRK_SCRIPT.format(path=path, host=authority,
                             close='wrk.headers["Connection"] = "close"' if close else "")
    return peers.write(os.path.join(workdir, name), text)


def run_wrk(target, script, origin_port, status_port, seconds, connections=50):
    """Run wrk for SECONDS against TARGET with SCRIPT over CONNECTIONS
    connections. Returns requests/s of successful responses, the 50th and
    99th percentile latency (ms), proxy CPU seconds per 100k requests,
    origin connections accepted per 1,000 requests, and wrk's error counts
    by kind (a "read" error is a connection the server closed without
    saying so first: a proxy that does not keep client connections alive)."""
    url = f"http://{target['proxy']}/" if target.get("proxy") else \
        f"http://{peers.LOOPBACK}:{origin_port}/"
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", script, url]
    accepts0, cpu0 = origin_accepts(status_port), _cpu(target)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         env=client_env())
    cpu, accepts = _cpu(target) - cpu0, origin_accepts(status_port) - accepts0
    m = re.search(r"BENCH requests=(\d+) duration_us=(\d+) connect=(\d+) read=(\d+) "
                  r"write=(\d+) status=(\d+) timeout=(\d+) p50_us=(\d+) p99_us=(\d+)",
                  out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    requests, duration_us, *counts = (int(x) for x in m.groups())
    p50_us, p99_us = counts[-2:]
    counts = counts[:-2]
    errors = dict(zip(("connect", "read", "write", "status", "timeout"), counts))
    ok = requests - errors["status"]  # non-2xx/3xx responses
    if ok <= 0:
        raise RuntimeError(f"wrk: no successful response ({out.stdout.strip()})")
    accepts -= 1  # the second stub_status request
    return {"rate": ok / (duration_us / 1e6),
            "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000,
            "cpu_100k": cpu / ok * 100000 if target.get("pid") else None,
            "dials_1k": accepts / ok * 1000,
            "errors": {k: v for k, v in errors.items() if v}}


def run_bulk(target, origin_port, tls_port, cafile, tls):
    """Download the 100 MB file once through TARGET (plain HTTP through the
    proxy, or HTTPS through a CONNECT tunnel or the relay). Returns MB/s and
    proxy CPU seconds per GB."""
    argv = ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "--max-time", "120",
            "-w", "%{http_code} %{size_download} %{time_total}"]
    if tls:
        url = f"https://{peers.TLS_NAME}:{tls_port}/bulk"
        argv += ["--cacert", cafile]
        if target.get("relay"):
            argv += ["--connect-to", f"{peers.TLS_NAME}:{tls_port}:{target['relay']}"]
        elif not target.get("proxy"):
            argv += ["--resolve", f"{peers.TLS_NAME}:{tls_port}:{peers.LOOPBACK}"]
    else:
        url = f"http://{peers.LOOPBACK}:{origin_port}/bulk"
    if target.get("proxy"):
        argv += ["-x", f"http://{target['proxy']}"]
    cpu0 = _cpu(target)
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=180,
                         env=client_env())
    cpu = _cpu(target) - cpu0
    fields = out.stdout.split()
    if out.returncode != 0 or len(fields) != 3 or fields[0] != "200" \
            or int(fields[1]) != peers.BULK_BYTES:
        raise RuntimeError(f"curl failed: {out.stdout.strip()} {out.stderr.strip()}")
    size, seconds = int(fields[1]), float(fields[2])
    return {"mbps": size / 1e6 / seconds,
            "cpu_gb": cpu / (size / 1e9) if target.get("pid") else None}


def _open_tunnel(target, tls_port, ctx, deadline):
    """One TLS connection to the origin through TARGET, handshake done."""
    timeout = max(0.1, deadline - time.monotonic())
    addr = target.get("relay") or target["proxy"]
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        if target.get("proxy"):
            authority = f"{peers.TLS_NAME}:{tls_port}"
            sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk or len(head) > 65536:
                    raise RuntimeError("CONNECT: no response head")
                head += chunk
            status = head.split(b"\r\n", 1)[0]
            if b" 200" not in status:
                raise RuntimeError(f"CONNECT answered {status.decode(errors='replace')}")
        tls = ctx.wrap_socket(sock, server_hostname=peers.TLS_NAME)
        return tls
    except BaseException:
        sock.close()
        raise


def open_tunnels(target, tls_port, ctx, count, parallel, deadline):
    """COUNT tunnels through TARGET, PARALLEL of them being opened at any
    time (1: one after the other), each by a thread of its own; returns
    the open sockets (the caller closes them). Raises if one fails or
    DEADLINE (monotonic) passes; those opened are closed then."""
    socks, failed = [], []
    lock = threading.Lock()
    todo = iter(range(count))

    def opener():
        while True:
            with lock:
                if failed or next(todo, None) is None:
                    return
            try:
                if time.monotonic() > deadline:
                    raise RuntimeError("out of time")
                s = _open_tunnel(target, tls_port, ctx, deadline)
            except (OSError, RuntimeError) as e:
                with lock:
                    failed.append(e)
                return
            with lock:
                socks.append(s)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for f in [pool.submit(opener) for _ in range(max(1, parallel))]:
            f.result()
    if failed:
        close_all(socks)
        raise RuntimeError(f"opening tunnel {len(socks) + 1:,} of {count:,}: {failed[0]}")
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def run_idle_tunnels(target, tls_port, cafile, count, parallel=1, time_limit=120.0):
    """Open COUNT TLS connections to the origin through TARGET, PARALLEL at
    a time, leave them idle, and return the proxy's RSS growth per
    connection (bytes), read from /proc before the first and after the last
    (with a short settle)."""
    ctx = ssl.create_default_context(cafile=cafile)
    socks = []
    deadline = time.monotonic() + time_limit
    try:
        # warm-up: first-use allocations are not per tunnel
        socks += open_tunnels(target, tls_port, ctx, 10, 1, deadline)
        time.sleep(0.5)
        before = peers.rss_bytes(target["pid"])
        socks += open_tunnels(target, tls_port, ctx, count, parallel, deadline)
        time.sleep(1.0)
        after = peers.rss_bytes(target["pid"])
    finally:
        close_all(socks)
    return {"rss_per_tunnel": (after - before) / count}


def idle_cpu(pid, seconds):
    """PID's CPU milliseconds per second over SECONDS of whatever it does
    on its own (nothing is sent to it meanwhile)."""
    cpu0, t0 = peers.cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (peers.cpu_seconds(pid) - cpu0) * 1000 / (time.monotonic() - t0)


# --- the block page under a burst of denied names ---------------------------

def connect_ms(proxy, authority):
    """Milliseconds from connecting to PROXY and sending CONNECT AUTHORITY
    to reading the end of its response head; raises unless it is a 200."""
    host, port = proxy.rsplit(":", 1)
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk or len(head) > 65536:
                raise RuntimeError("CONNECT: no response head")
            head += chunk
        ms = (time.monotonic() - t0) * 1000
    status = head.split(b"\r\n", 1)[0]
    if b" 200" not in status:
        raise RuntimeError(f"CONNECT {authority}: {status!r}")
    return ms


_HELLO_CTX = None


def _client_hello(name):
    """A real ClientHello (Python's ssl) naming NAME."""
    global _HELLO_CTX
    if _HELLO_CTX is None:
        _HELLO_CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _HELLO_CTX.check_hostname = False
        _HELLO_CTX.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _HELLO_CTX.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def _denied_hello(arg):
    """CONNECT NAME:443 and its ClientHello HELLO in one write; waits for
    the 200 and the first bytes of the TLS server's answer (its first
    flight: the leaf minted and the handshake's signature made), then
    closes. None, or what went wrong."""
    proxy, name, hello = arg
    host, port = proxy.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n%s"
                      % (name.encode(), name.encode(), hello))
            buf = b""
            for _ in range(1000):
                b = s.recv(65536)
                if not b:
                    break
                buf += b
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if sep and len(rest) >= 5:
                    ok = head.startswith(b"HTTP/1.1 200") and rest[0] == 0x16
                    return None if ok else f"{name}: no TLS answer"
        return f"{name}: connection closed"
    except OSError as e:
        return f"{name}: {e}"


def _default_signals():
    """A burst process ends quietly when the pool is terminated."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _burst(work, workers, conn):
    """The burst, in a process of its own (so that the process measuring
    allowed CONNECTs runs nothing else): WORKERS processes send WORK; what
    went wrong goes back through CONN."""
    _default_signals()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_default_signals) as pool:
        conn.send([x for x in pool.map(_denied_hello, work, chunksize=8) if x is not None])
    conn.close()


def run_page_burst(target, allowed, names, workers=4, quiet=300, time_limit=300.0,
                   burst_target=None):
    """Allowed CONNECTs to ALLOWED through TARGET, one after the other on
    a fresh connection each: QUIET of them first, then as many as fit while
    WORKERS processes send the CONNECT and ClientHello of every name in
    NAMES (denied names the block page answers) to BURST_TARGET (TARGET
    unless given: another process, the burst takes the same CPUs without
    touching TARGET's loops). Returns the p50 and p99 latency (ms) of each,
    the burst's duration, and the burst target's CPU per denied name."""
    proxy = target["proxy"]
    burst_target = burst_target or target
    # The hellos are made before the burst: a client's own crypto is not
    # what the burst is about, and it would take the CPUs Embargo shares.
    work = [(burst_target["proxy"], n, _client_hello(n)) for n in names]
    base = [connect_ms(proxy, allowed) for _ in range(quiet)]
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe(duplex=False)
    burst = ctx.Process(target=_burst, args=(work, workers, theirs))
    during, failures = [], None
    deadline = time.monotonic() + time_limit
    cpu0, t0 = _cpu(burst_target), time.monotonic()
    burst.start()
    theirs.close()
    try:
        while burst.is_alive() and not mine.poll() and time.monotonic() < deadline:
            during.append(connect_ms(proxy, allowed))
        took = time.monotonic() - t0
        cpu = _cpu(burst_target) - cpu0
        if mine.poll(max(0.0, deadline - time.monotonic())):
            failures = mine.recv()
    except EOFError:
        pass
    finally:
        if burst.is_alive():
            burst.terminate()
        burst.join(timeout=30)
        mine.close()
    if failures is None:
        raise RuntimeError(f"the burst did not finish (exit status {burst.exitcode})")
    if failures:
        raise RuntimeError(f"{len(failures)} denied names got no block page: {failures[0]}")
    if len(during) < 20:
        raise RuntimeError(f"only {len(during)} allowed CONNECTs during the burst")
    return {"quiet_p50": percentile(base, 50), "quiet_p99": percentile(base, 99),
            "burst_p50": percentile(during, 50), "burst_p99": percentile(during, 99),
            "burst_n": len(during), "burst_s": took,
            "cpu_ms_name": cpu * 1000 / len(names)}


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]
