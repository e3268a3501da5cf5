"""Processes of the proxy benchmark: the origin (nginx), the peers (Squid,
tinyproxy, HAProxy) and Embargo, each with a minimal config written into a
temporary directory, listening on 127.0.0.1 (and ::1 for the origin) only.

Every process is started through `Procs.start`, which records its PID;
`Procs.stop_all` ends those PIDs and their descendants (SIGTERM, then SIGKILL
after a bounded wait) and is called on every exit path of the driver.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import time

LOOPBACK = "127.0.0.1"
TLS_NAME = "localhost"  # resolves to loopback through /etc/hosts everywhere
SMALL_BYTES = 128
BULK_BYTES = 100 * 1000 * 1000
START_TIMEOUT = 60.0  # seconds; Embargo with a 100,000-pattern list loads it first
STOP_TIMEOUT = 5.0


def find_tool(name):
    """Absolute path of NAME in PATH or the sbin directories, or None."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin"
    return shutil.which(name, path=path)


def free_ports(count):
    """COUNT distinct TCP ports the kernel just handed out on 127.0.0.1."""
    socks, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def have_ipv6_loopback():
    """True when ::1 can be bound (the origin then listens there too)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def start_time(pid):
    """When PID started (clock ticks since boot), or None if it is gone:
    with the PID, it names one process even if the PID is later reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def signal_process(pid, started, sig):
    """Send SIG to PID if it is still the process that started at STARTED."""
    if started is not None and start_time(pid) == started:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def descendants(pid):
    """PIDs of every live descendant of PID, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _sched_seconds(pid):
    """CPU seconds of PID's live threads from schedstat (nanoseconds), or
    None where the kernel does not provide it."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            return None
    return total / 1e9


def _reaped_seconds(pid):
    """CPU seconds of PID's children that have exited and been waited for
    (cutime + cstime): a proxy that serves each connection in a child
    process (tinyproxy) spends its time there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds(pid):
    """User + system CPU seconds of PID, its live descendants (all
    threads, exited ones included) and its children that have exited.
    Read from schedstat in nanoseconds where the kernel has it (a 100 MB
    transfer takes a few clock ticks, too few to count in ticks), unless
    the utime and stime ticks of /proc/PID/stat, which also count threads
    that have exited, say more."""
    total = _reaped_seconds(pid)
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid] + descendants(pid):
        sched = _sched_seconds(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            ticks = 0.0
        # schedstat counts live threads only; the process's ticks also hold
        # the threads that have exited (tinyproxy's, one per connection).
        total += ticks if sched is None else max(sched, ticks)
    return total


def rss_bytes(pid):
    """Resident set size in bytes (VmRSS of /proc/PID/status) of PID and its
    live descendants, for a proxy that forks workers."""
    total = 0
    for p in [pid] + descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f
                              if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            if p == pid:
                raise RuntimeError(f"no VmRSS for pid {pid}") from None
    return total


def wait_port(port, proc, timeout=START_TIMEOUT):
    """Wait until 127.0.0.1:PORT accepts; raise if PROC exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} while starting")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout:.0f}s")


class Procs:
    """The processes the benchmark started, ended by PID on every exit path."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.running = {}  # name -> Popen

    def start(self, name, argv, port):
        """Start ARGV as NAME (stdout and stderr to NAME.out in the log
        directory), wait until it accepts on PORT, return its Popen."""
        log = open(os.path.join(self.logdir, f"{name}.out"), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.running[name] = proc
        try:
            wait_port(port, proc)
        except RuntimeError as e:
            self.stop(name)
            raise RuntimeError(f"{name}: {e}; its output ends: {self.output_tail(name)}") \
                from None
        return proc

    def output_tail(self, name, lines=3):
        """The last LINES lines NAME wrote, on one line."""
        try:
            with open(os.path.join(self.logdir, f"{name}.out"), errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError:
            return "(no output)"
        return " / ".join(line.strip() for line in tail) or "(no output)"

    def exited(self, name):
        """NAME's exit status if it has ended by itself, else None."""
        proc = self.running.get(name)
        return None if proc is None else proc.poll()

    def stop(self, name):
        """End NAME and its descendants: SIGTERM, then SIGKILL after a wait.
        Returns NAME's exit status if it had already ended by itself."""
        proc = self.running.pop(name, None)
        if proc is None:
            return None
        early = proc.poll()
        # Popen.send_signal does nothing once the process is reaped; the
        # descendants are named by PID and start time, so a reused PID is
        # never signalled.
        kids = [(pid, start_time(pid)) for pid in descendants(proc.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            proc.send_signal(sig)
            for pid, started in kids:
                signal_process(pid, started, sig)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            if all(start_time(pid) != started for pid, started in kids) \
                    and proc.returncode is not None:
                break
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        return early

    def stop_all(self):
        for name in list(self.running):
            self.stop(name)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def make_origin_files(root):
    """Files the origin serves and its self-signed certificate; returns the
    certificate path (the CA file clients verify with)."""
    www = os.path.join(root, "www")
    os.makedirs(www)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write(b"x" * (SMALL_BYTES - 1) + b"\n")
    block = os.urandom(1000 * 1000)
    with open(os.path.join(www, "bulk"), "wb") as f:
        for _ in range(BULK_BYTES // len(block)):
            f.write(block)
    cert, key = os.path.join(root, "origin.pem"), os.path.join(root, "origin.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", f"/CN={TLS_NAME}", "-addext",
                    f"subjectAltName=DNS:{TLS_NAME},IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert


def nofile_limit():
    """The hard limit of open descriptors per process (RLIMIT_NOFILE): what
    the benchmark raises its own soft limit to, and its children inherit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else hard


def nginx_conf(root, http_port, tls_port, status_port):
    """The origin: /small (128 bytes) and /bulk (100 MB) over HTTP and HTTPS,
    stub_status (connections accepted) on its own port. Each worker may hold
    as many connections as the descriptor limit allows (the idle-tunnel
    scale runs hold one per tunnel), idle for up to 15 minutes."""
    v6 = have_ipv6_loopback()
    nofile = nofile_limit()

    def listen(port, extra=""):
        lines = f"    listen 127.0.0.1:{port}{extra};\n"
        if v6:
            lines += f"    listen [::1]:{port}{extra};\n"
        return lines

    www = os.path.join(root, "www")
    return write(os.path.join(root, "nginx.conf"), f"""\
daemon off;
worker_processes auto;
worker_rlimit_nofile {nofile};
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections {max(1024, nofile - 64)}; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 900s;
  client_header_timeout 900s;
  default_type application/octet-stream;
  client_body_temp_path {root}/nginx-tmp;
  proxy_temp_path {root}/nginx-tmp;
  fastcgi_temp_path {root}/nginx-tmp;
  uwsgi_temp_path {root}/nginx-tmp;
  scgi_temp_path {root}/nginx-tmp;
  server {{
{listen(http_port)}    root {www};
  }}
  server {{
{listen(tls_port, " ssl")}    ssl_certificate {root}/origin.pem;
    ssl_certificate_key {root}/origin.key;
    root {www};
  }}
  server {{
    listen 127.0.0.1:{status_port};
    location / {{ stub_status; }}
  }}
}}
""")


def squid_conf(root, port, name="squid"):
    """Squid as a forward proxy for loopback clients at its fastest for this
    work: no cache, no access or store log, no per-client statistics, no
    pinger (other settings measured no faster).
    Its DNS server is 127.0.0.1: the only name used, localhost, comes from
    /etc/hosts, and nothing is ever sent off the machine."""
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    if os.geteuid() == 0 and _user_exists("proxy"):
        shutil.chown(d, user="proxy")
    return write(os.path.join(d, "squid.conf"), f"""\
http_port 127.0.0.1:{port}
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_store_log none
client_db off
cache_log {d}/cache.log
pid_filename none
coredump_dir {d}
pinger_enable off
visible_hostname embargo-bench
dns_nameservers 127.0.0.1
max_filedescriptors 16384
shutdown_lifetime 0 seconds
""")


def tinyproxy_conf(root, port, tls_port, name="tinyproxy"):
    """tinyproxy for loopback clients; CONNECT to 443 and the origin's TLS port."""
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    user = "nobody" if _user_exists("nobody") else None
    ident = f"User {user}\nGroup nogroup\n" if user and os.geteuid() == 0 else ""
    if ident:
        shutil.chown(d, user=user)
    return write(os.path.join(d, "tinyproxy.conf"), f"""\
{ident}Port {port}
Listen 127.0.0.1
Timeout 600
MaxClients 4096
Allow 127.0.0.1
Allow ::1
ConnectPort 443
ConnectPort {tls_port}
LogLevel Critical
LogFile "{d}/tinyproxy.log"
PidFile "{d}/tinyproxy.pid"
""")


def haproxy_conf(root, port, tls_port, name="haproxy"):
    """HAProxy as a TCP relay choosing the backend by the ClientHello's SNI."""
    return write(os.path.join(root, f"{name}.cfg"), f"""\
global
  maxconn 8192

defaults
  mode tcp
  timeout connect 10s
  timeout client 600s
  timeout server 600s

frontend sni
  bind 127.0.0.1:{port}
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req.ssl_hello_type 1 }}
  use_backend origin if {{ req.ssl_sni -i {TLS_NAME} }}

backend origin
  server origin 127.0.0.1:{tls_port}
""")


def embargo_conf(root, name, port, tls_port, extra="", connect_extra=(), tls_extra=""):
    """Embargo on loopback with its built-in policy, loopback destinations
    allowed, the origin's TLS port CONNECT-able and inspected, DNS pointed at
    127.0.0.1 like Squid's (localhost comes from /etc/hosts); EXTRA is
    appended (vendors, access_log, limits), CONNECT_EXTRA are more ports
    CONNECT may reach, TLS_EXTRA more tls_inspect keys (indented lines)."""
    ports = ", ".join(str(p) for p in (443, tls_port) + tuple(connect_extra))
    return write(os.path.join(root, f"{name}.yaml"), f"""\
listen: ["127.0.0.1:{port}"]
resolvers: ["127.0.0.1:53"]
connect_ports: [{ports}]
tls_inspect:
  ports: [443, {tls_port}]
{tls_extra}internal:
  allow: [127.0.0.0/8, "::1/128"]
log: {root}/{name}-decisions.log
{extra}""")


TEST_DOMAIN = "bench.test"  # every generated name is under it (RFC 2606 .test)


def vendor_list(root, count):
    """A vendor list of COUNT host patterns, synthetic names under the
    test-only domain TEST_DOMAIN (the mix of bench_dommatch: half exact
    names, then '*.' and '.' suffixes, one in ten a label glob), none of
    which matches the benchmark's destinations."""
    zones = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
    lines = ["vendor: benchmark", "name: Benchmark Vendor",
             'reference: "generated by tests/bench"', "categories:", "  updates:",
             "    cutoff: 2024-09-29T00:00:00-04:00", "    hosts:"]
    for i in range(count):
        zone, kind = f"{zones[i % len(zones)]}.{TEST_DOMAIN}", i % 10
        if kind < 5:
            pat = f"host{i}.vendor{i // 10}.{zone}"
        elif kind < 7:
            pat = f'"*.cdn{i}.{zone}"'
        elif kind < 9:
            pat = f".upd{i}.{zone}"
        else:
            pat = f'"dnl-*.geo{i}.{zone}"'
        lines.append(f"      - {pat}")
    return write(os.path.join(root, f"vendor-{count}.yaml"), "\n".join(lines) + "\n")


PAGE_DOMAIN = f"page.{TEST_DOMAIN}"  # denied, answered with the block page


def page_vendor_list(root):
    """A vendor list denying every name under PAGE_DOMAIN with the block
    page (deny_with: page)."""
    return write(os.path.join(root, "vendor-page.yaml"), f"""\
vendor: pagebench
name: Block Page Benchmark
reference: "generated by tests/bench"
categories:
  pages:
    cutoff: 2000-01-01T00:00:00Z
    deny_with: page
    hosts: [.{PAGE_DOMAIN}]
""")


def make_ca(binary, root):
    """A local CA for the block page (embargo ca init); returns its directory."""
    d = os.path.join(root, "ca")
    subprocess.run([binary, "ca", "init", "--dir", d, "--subject", "Embargo Bench CA"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    return d


def _user_exists(name):
    try:
        import pwd
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
