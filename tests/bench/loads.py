"""Workloads of the proxy benchmark. Each runs one bounded load (wrk for a
fixed duration, one curl download with a time limit, a fixed number of idle
tunnels with a deadline) against one target and returns its figures; the
proxy's CPU time and RSS are read from /proc around it.

A target is a dict: `name`, `pid` (None for direct), and either `proxy`
("127.0.0.1:PORT", an HTTP proxy) or `relay` ("127.0.0.1:PORT", a TCP relay
that the client connects to directly, choosing the origin by SNI).
"""

import os
import re
import socket
import ssl
import subprocess
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
  io.write(string.format("BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
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
    """Run wrk for SECONDS against TARGET with SCRIPT. Returns requests/s of
    successful responses, proxy CPU seconds per 100k requests, origin
    connections accepted per 1,000 requests, and wrk's error counts by kind
    (a "read" error is a connection the server closed without saying so
    first: a proxy that does not keep client connections alive)."""
    url = f"http://{target['proxy']}/" if target.get("proxy") else \
        f"http://{peers.LOOPBACK}:{origin_port}/"
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", script, url]
    accepts0, cpu0 = origin_accepts(status_port), _cpu(target)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         env=client_env())
    cpu, accepts = _cpu(target) - cpu0, origin_accepts(status_port) - accepts0
    m = re.search(r"BENCH requests=(\d+) duration_us=(\d+) connect=(\d+) read=(\d+) "
                  r"write=(\d+) status=(\d+) timeout=(\d+)", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    requests, duration_us, *counts = (int(x) for x in m.groups())
    errors = dict(zip(("connect", "read", "write", "status", "timeout"), counts))
    ok = requests - errors["status"]  # non-2xx/3xx responses
    if ok <= 0:
        raise RuntimeError(f"wrk: no successful response ({out.stdout.strip()})")
    accepts -= 1  # the second stub_status request
    return {"rate": ok / (duration_us / 1e6),
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


def run_idle_tunnels(target, tls_port, cafile, count, time_limit=120.0):
    """Open COUNT TLS connections to the origin through TARGET, leave them
    idle, and return the proxy's RSS growth per connection (bytes), read
    from /proc before the first and after the last (with a short settle)."""
    ctx = ssl.create_default_context(cafile=cafile)
    socks = []
    deadline = time.monotonic() + time_limit
    try:
        for _ in range(10):  # warm-up: first-use allocations are not per tunnel
            socks.append(_open_tunnel(target, tls_port, ctx, deadline))
        time.sleep(0.5)
        before = peers.rss_bytes(target["pid"])
        for _ in range(count):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} tunnels not open within {time_limit:.0f}s")
            socks.append(_open_tunnel(target, tls_port, ctx, deadline))
        time.sleep(1.0)
        after = peers.rss_bytes(target["pid"])
    finally:
        for s in socks:
            s.close()
    return {"rss_per_tunnel": (after - before) / count}
