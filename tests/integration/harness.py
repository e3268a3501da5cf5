"""Shared fixtures for the integration tests.

Every test drives the real embargo binary with real peers on loopback:
dnsmasq as the DNS server the proxy resolves through, threaded HTTP/1.1
origins (plain and TLS), a raw TCP echo server for tunnels, and curl or raw
sockets as clients. Nothing here talks to anything outside 127.0.0.0/8.

Each test file is a standalone program:

    python3 test_x.py --binary build/embargo [unittest options]

Every process the harness starts is ended through its own Popen object, and
every wait is bounded in both count and time. EMBARGO_VERBOSE=1 in the
environment starts every embargo with -v (debug diagnostics, printed with
the decision log when a test fails).
"""

import collections
import hashlib
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

BINARY = os.environ.get("EMBARGO_BINARY", "")
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
CURL = shutil.which("curl") or "/usr/bin/curl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

LOOPBACK = "127.0.0.1"

# Names dnsmasq answers with 127.0.0.1. Everything else under .test is
# NXDOMAIN (--local=/test/); hole.example is forwarded to a server that
# never answers (DNS timeouts).
TEST_HOSTS = (
    "allowed.test",
    "other.test",
    "s07.upd.kaspersky.com",
    "s08.upd.kaspersky.com",
    "dnl-01.geo.kaspersky.com",
    "activation-v2.kaspersky.com",
    "opentip.kaspersky.com",
)
NXDOMAIN_HOST = "nx.test"
DNS_HOLE_DOMAIN = "hole.example"

KASPERSKY_UPDATES_CUTOFF = "2024-09-29T04:00:00Z"
KASPERSKY_NEW_INSTALLS_CUTOFF = "2024-07-20T04:00:00Z"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

STARTUP_TIMEOUT = 20.0  # seconds; sanitizer builds start slowly
IO_TIMEOUT = 20.0


_PR_SET_PDEATHSIG = 1


def tied_to_parent():
    """A Popen preexec_fn: the child gets SIGTERM when the test program
    that started it dies (killed, interrupted), so a server a test started
    never outlives it. Only for processes started from the main thread
    (the signal follows the thread that started the child)."""
    import ctypes
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def client_env():
    """Environment for client tools: no ambient proxy settings."""
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"):
            del env[k]
    return env


def free_port(kind=socket.SOCK_STREAM):
    """A port the kernel just handed out for 127.0.0.1 (TCP and UDP free)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((LOOPBACK, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls PRED until it returns a true value; bounded in time and count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def log_mark():
    """A mark between the decision lines made before this call and those made
    after it, whenever each reaches the file: every line carries the
    wall-clock millisecond it was made in (`time`, the clock time.time()
    reads, UTC), so the mark is the next millisecond, and the call returns
    once that has begun. A line is newer than the mark when its `time` is
    not less than it (both strings have one fixed format)."""
    ms = int(time.time() * 1000) + 1
    for _ in range(100):
        if time.time() * 1000 >= ms:
            break
        time.sleep(0.0005)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def listen_backlogs(port, host=LOOPBACK):
    """The accept-queue length of each TCP socket listening on HOST:PORT
    (IPv4): connections the kernel completed that its owner has not taken
    with accept() yet (the rx_queue of a listening socket in
    /proc/net/tcp). Several with SO_REUSEPORT, one per worker."""
    want = "%s:%04X" % ("".join("%02X" % b for b in reversed(socket.inet_aton(host))), port)
    out = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":  # TCP_LISTEN
                out.append(int(fields[4].split(":")[1], 16))
    return out


def socket_held(local_port, remote_port):
    """Whether a process still holds the TCP socket from 127.0.0.1:LOCAL_PORT
    to 127.0.0.1:REMOTE_PORT open (in /proc/net/tcp with an inode: a socket
    that was closed is either gone or orphaned, inode 0, while its FIN
    handshake ends). Used to wait until a proxy has closed a connection,
    which a half-close on the wire does not tell."""
    want = ("0100007F:%04X" % local_port, "0100007F:%04X" % remote_port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want and fields[9] != "0":
                return True
    return False


def accept_paused(port, pauses_since, pauses_now):
    """Whether every listening socket on 127.0.0.1:PORT that still holds
    connections has paused accepting since a mark: PAUSES_NOW - PAUSES_SINCE
    (embargo_accept_pauses_total{reason="max_connections"}, read after and
    before) is at least their number. A positive barrier for "connections
    over limits.max_connections are left waiting": each worker has then
    tried its queue and stopped (one connection each may sit accepted by
    libuv, waiting for a slot)."""
    waiting = [n for n in listen_backlogs(port) if n > 0]
    return bool(waiting) and pauses_now - pauses_since >= len(waiting)


def read_text(path):
    """The whole file at PATH decoded as UTF-8 (bad bytes replaced); "" when
    it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_to_eof(conn, timeout=None):
    """Reads CONN (a socket with a timeout) until EOF or TIMEOUT seconds
    (IO_TIMEOUT by default): (bytes read, whether EOF was seen)."""
    data = bytearray()
    deadline = time.monotonic() + (IO_TIMEOUT if timeout is None else timeout)
    while time.monotonic() < deadline:
        try:
            b = conn.recv(65536)
        except socket.timeout:
            continue
        if not b:
            return bytes(data), True
        data += b
    return bytes(data), False


# ---- loopback servers ---------------------------------------------------------


def loopback_listener(backlog, timeout):
    """A TCP socket listening on 127.0.0.1 (a port the kernel picks), with
    SO_REUSEADDR and TIMEOUT on accept."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(backlog)
    sock.settimeout(timeout)
    return sock


def serve_until_stopped(stop, receive, handle, seconds=None):
    """Calls HANDLE(RECEIVE()) until the event STOP is set, RECEIVE raises
    OSError (its socket was closed) or, if given, SECONDS have passed. A
    socket.timeout from RECEIVE just goes round again (RECEIVE is a blocking
    call on a socket with a short timeout, such as accept or recvfrom)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        try:
            item = receive()
        except socket.timeout:
            continue
        except OSError:
            return
        handle(item)


# ---- deterministic content ----------------------------------------------------

BLOCK_LEN = (1 << 20) + 13  # odd length: no alignment with any buffer size
_blocks = {}
_blocks_lock = threading.Lock()


def pattern_block(seed):
    with _blocks_lock:
        b = _blocks.get(seed)
        if b is None:
            b = _blocks[seed] = random.Random(seed).randbytes(BLOCK_LEN)
        return b


def pattern_pieces(size, seed, piece=256 * 1024):
    """Yields the SIZE-byte stream for SEED as memoryviews of at most PIECE."""
    block = memoryview(pattern_block(seed))
    pos = 0
    while pos < size:
        off = pos % BLOCK_LEN
        n = min(piece, size - pos, BLOCK_LEN - off)
        yield block[off:off + n]
        pos += n


def pattern_bytes(size, seed):
    return b"".join(bytes(p) for p in pattern_pieces(size, seed))


def pattern_sha256(size, seed):
    h = hashlib.sha256()
    for p in pattern_pieces(size, seed, 4 << 20):
        h.update(p)
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for _ in range(1 << 20):
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


# ---- dnsmasq ------------------------------------------------------------------


def _dns_query_packet(name, qtype=1, qid=0x4242):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + q + \
        qtype.to_bytes(2, "big") + b"\x00\x01"


def dns_query(port, name, qtype=1, timeout=1.0):
    """Sends one query to 127.0.0.1:PORT; returns the rcode or None on timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(_dns_query_packet(name, qtype), (LOOPBACK, port))
        try:
            r = s.recv(4096)
        except socket.timeout:
            return None
        return r[3] & 15


def embargo_check(resolver_port, dests, options=(), allow_loopback=True):
    """Runs `embargo check OPTIONS --resolver 127.0.0.1:RESOLVER_PORT DESTS`:
    (exit code, stdout, stderr), both decoded as UTF-8 (stdout leniently).
    Test names resolve to loopback, which check refuses as internal (as the
    proxy does) unless ALLOW_LOOPBACK gives it a config that allows it."""
    conf = []
    tmp = None
    if allow_loopback:
        fd, tmp = tempfile.mkstemp(suffix=".yaml", prefix="embargo-check-")
        with os.fdopen(fd, "w") as f:
            f.write(INTERNAL_ALLOW_LOOPBACK)
        conf = ["--config", tmp]
    try:
        p = subprocess.run([BINARY, "check"] + conf + list(options) +
                           ["--resolver", "%s:%d" % (LOOPBACK, resolver_port)] + list(dests),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    finally:
        if tmp is not None:
            os.unlink(tmp)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode()


DnsQuestion = collections.namedtuple("DnsQuestion", "labels name qtype end")


def parse_question(msg):
    """The question of the DNS query MSG as a DnsQuestion: labels (tuple of
    raw label bytes), name (lower case, dotted, no trailing dot), qtype, and
    end (offset just past the question's type and class). Raises ValueError
    for a compressed or overlong name, IndexError or struct.error when MSG
    is cut short."""
    pos, labels = 12, []
    for _ in range(128):
        n = msg[pos]
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question")
        labels.append(bytes(msg[pos + 1:pos + 1 + n]))
        pos += 1 + n
    else:
        raise ValueError("name too long")
    qtype = struct.unpack(">H", msg[pos + 1:pos + 3])[0]
    name = b".".join(labels).decode("ascii", "replace").lower()
    return DnsQuestion(tuple(labels), name, qtype, pos + 5)


class LoopbackDns:
    """A scriptable UDP DNS server on 127.0.0.1. Subclasses define
    answer(msg, question) returning the reply to the query MSG (QUESTION
    from parse_question). Every parsed query is recorded in `queries` as
    (name, qtype). A query that cannot be parsed or answered (ValueError,
    IndexError, struct.error, AssertionError) is recorded in `errors` as a
    repr and gets no reply. With DELAY, each reply is sent DELAY seconds
    later from a timer thread; stop() cancels and joins the timers."""

    def __init__(self, delay=None):
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.queries = []
        self.errors = []
        self._stop = threading.Event()
        self._timers = []
        self._thread = None

    def answer(self, msg, question):
        raise NotImplementedError

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        serve_until_stopped(self._stop, lambda: self.sock.recvfrom(4096), self._query)

    def _query(self, pair):
        msg, peer = pair
        try:
            q = parse_question(msg)
            with self.lock:
                self.queries.append((q.name, q.qtype))
            reply = self.answer(msg, q)
        except (ValueError, IndexError, struct.error, AssertionError) as e:
            with self.lock:
                self.errors.append(repr(e))
            return
        if self.delay is None:
            self._send(reply, peer)
            return
        t = threading.Timer(self.delay, self._send, args=(reply, peer))
        t.daemon = True
        with self.lock:
            self._timers.append(t)
        t.start()

    def _send(self, reply, peer):
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass

    def stop(self):
        self._stop.set()
        with self.lock:
            timers = list(self._timers)
        for t in timers:
            t.cancel()
            t.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()


class Dnsmasq:
    """dnsmasq answering the test names, logging every query to a file."""

    def __init__(self, workdir, hosts=TEST_HOSTS, cnames=(), records=(), extra_args=(),
                 name="dnsmasq"):
        """RECORDS: extra (name, address) host records (loopback addresses
        only); EXTRA_ARGS: more dnsmasq options; NAME: file prefix, so that
        several instances can share WORKDIR."""
        self.workdir = workdir
        self.hosts = hosts
        self.cnames = cnames
        self.records = records
        self.extra_args = extra_args
        self.port = None
        self.proc = None
        self.log_path = os.path.join(workdir, name + "-queries.log")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self._hole = None
        self._flushes = 0

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            raise unittest.SkipTest("dnsmasq not installed (Debian package dnsmasq-base)")
        # A UDP socket that never answers: queries for hole.example time out.
        self._hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._hole.bind((LOOPBACK, 0))
        hole_port = self._hole.getsockname()[1]
        self.port = free_port()
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", "--listen-address=" + LOOPBACK,
                "--port=%d" % self.port, "--log-queries", "--log-facility=" + self.log_path,
                "--pid-file=", "--local=/test/", "--cache-size=0",
                "--server=/%s/%s#%d" % (DNS_HOLE_DOMAIN, LOOPBACK, hole_port)]
        if os.geteuid() == 0:
            args.append("--user=root")
        args += ["--host-record=%s,%s" % (h, LOOPBACK) for h in self.hosts]
        args += ["--host-record=%s,%s" % (h, a) for h, a in self.records]
        args += ["--cname=%s,%s" % (a, t) for a, t in self.cnames]
        args += list(self.extra_args)
        self._stderr = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                         stderr=self._stderr, preexec_fn=tied_to_parent)
            wait_until(lambda: self.proc.poll() is not None or
                       dns_query(self.port, "ready.test", timeout=0.2) is not None,
                       10.0, 0.05, "dnsmasq to answer")
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s" % self.stderr_text())
        except BaseException:
            self.stop()  # whatever went wrong, nothing is left running
            raise
        return self

    def stderr_text(self):
        return read_text(self.stderr_path)

    def mark(self):
        """A position in the query log; queries(since=mark) lists later ones."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def queries(self, since=0):
        """Names queried (any type) after SINCE, in order, after a flush barrier."""
        self._flushes += 1
        marker = "flush-%d.test" % self._flushes
        dns_query(self.port, marker, timeout=1.0)

        def read():
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(since)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                return None
            names = re.findall(r"query\[\w+\] (\S+) from", text)
            return names if marker in names else None

        names = wait_until(read, 5.0, 0.02, "dnsmasq query log")
        return [n for n in names if not n.startswith("flush-") and n != "ready.test"]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._hole is not None:
            self._hole.close()
            self._hole = None
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None


# ---- origins --------------------------------------------------------------------


def _read_chunked(rfile, sink):
    """Reads a chunked body from RFILE, passing data to SINK; returns trailers."""
    for _ in range(10_000_000):
        line = rfile.readline(1024)
        if not line:
            raise ConnectionError("EOF in chunk size")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        left = size
        while left > 0:
            b = rfile.read(min(left, 1 << 16))
            if not b:
                raise ConnectionError("EOF in chunk")
            sink(b)
            left -= len(b)
        if rfile.readline(16) != b"\r\n":
            raise ConnectionError("bad chunk terminator")
    trailers = []
    for _ in range(100):
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n", b""):
            break
        trailers.append(line)
    return trailers


class OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def _record(self):
        if self.path != Origin.BARRIER_PATH:
            self.server.record_head(self)

    def _send_body(self, body, ctype="text/plain", status=200, extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, size, seed, piece=64 * 1024):
        for p in pattern_pieces(size, seed, piece):
            self.wfile.write(p)
            self.server.add_sent(len(p))

    def _query(self):
        u = urllib.parse.urlsplit(self.path)
        return u.path, dict(urllib.parse.parse_qsl(u.query))

    def _read_body(self):
        """Reads the request body (Content-Length or chunked); returns (sha256, length)."""
        h = hashlib.sha256()
        total = [0]

        def sink(b):
            h.update(b)
            total[0] += len(b)

        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            _read_chunked(self.rfile, sink)
        else:
            left = int(self.headers.get("Content-Length", "0") or "0")
            while left > 0:
                b = self.rfile.read(min(left, 1 << 16))
                if not b:
                    raise ConnectionError("EOF in body")
                sink(b)
                left -= len(b)
        return h.hexdigest(), total[0]

    def do_GET(self):
        self._record()
        path, q = self._query()
        parts = path.strip("/").split("/")
        seed = int(q.get("seed", "1"))
        try:
            if parts[0] == "bytes":
                size = int(parts[1])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command != "HEAD":
                    self._stream(size, seed)
            elif parts[0] == "chunked":
                size = int(parts[1])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sizes = (1, 7, 100, 4096, 65536 + 3, 17, 300000)
                i = 0
                data = memoryview(pattern_bytes(size, seed))
                pos = 0
                while pos < size:
                    n = min(sizes[i % len(sizes)], size - pos)
                    self.wfile.write(b"%x\r\n" % n + bytes(data[pos:pos + n]) + b"\r\n")
                    pos += n
                    i += 1
                self.wfile.write(b"0\r\n\r\n")
            elif parts[0] == "close":
                size = int(parts[1])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                self._stream(size, seed)
            elif parts[0] == "garbage":
                # Not HTTP at all: the proxy must answer 502 itself.
                self.wfile.write(b"HTTP/1.1 2x0 Nope\r\nbad header line\r\n\r\n")
                self.close_connection = True
            elif parts[0] == "truncate":
                # Promises more than it sends, then closes.
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"x" * 1000)
                self.close_connection = True
            elif parts[0] == "slow":
                time.sleep(int(parts[1]) / 1000.0)
                self._send_body("slow\n")
            elif parts[0] == "gate":
                # Answers once the test opens the gate (Origin.gate), so a
                # test orders events without a clock.
                opened = self.server.gate(parts[1]).wait(60)
                self._send_body("gate %s %s\n" % (parts[1], "open" if opened else "timeout"))
            elif parts[0] == "headers":
                self._send_body(json.dumps({
                    "request_line": self.requestline,
                    "headers": [[k, v] for k, v in self.headers.items()],
                }), "application/json")
            elif parts[0] == "hop":
                # A response carrying hop-by-hop fields the proxy must drop.
                self._send_body("hop\n", extra=(("Connection", "X-Resp-Hop"),
                                                 ("X-Resp-Hop", "secret"),
                                                 ("Keep-Alive", "timeout=5"),
                                                 ("X-End-To-End", "kept")))
            else:
                self._send_body("ok %s\n" % path)
            self.server.record_done(path)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    do_HEAD = do_GET

    def _upload(self):
        self._record()
        try:
            digest, length = self._read_body()
        except (ConnectionError, ValueError, socket.timeout) as e:
            self.close_connection = True
            self.server.errors.append(repr(e))
            return
        self._send_body(json.dumps({"sha256": digest, "length": length}), "application/json")

    do_POST = _upload
    do_PUT = _upload


class Origin(http.server.ThreadingHTTPServer):
    """Threaded HTTP/1.1 origin on 127.0.0.1 that counts connections and
    records every request head it receives, and the path of every response
    it finished writing (`done`)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    BARRIER_PATH = "/.origin-barrier"

    def __init__(self, host=LOOPBACK, port=0):
        super().__init__((host, port), OriginHandler)
        self.host = host
        self.port = self.server_address[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.heads = []
        self.done = []
        self.errors = []
        self.bytes_sent = 0
        self._gates = {}
        self._thread = None

    def process_request(self, request, client_address):
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def gate(self, name):
        """The event GET /gate/NAME waits on (at most 60 s) before it answers."""
        with self.lock:
            return self._gates.setdefault(name, threading.Event())

    def record_done(self, path):
        if path != self.BARRIER_PATH:
            with self.lock:
                self.done.append(path)

    def barrier(self):
        """A positive barrier for "nothing reached this origin": makes one
        request to it directly, on a new connection, and returns once it is
        answered. One thread accepts, in the order connections reached the
        listening socket, so every connection that reached it before this
        call has been counted in `connections` when it returns; the barrier's
        own connection is taken out of the count, and its request is not
        recorded."""
        s = socket.create_connection((self.host, self.port), timeout=IO_TIMEOUT)
        try:
            if isinstance(self, TLSOrigin):
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            s.sendall(("GET %s HTTP/1.1\r\nHost: barrier\r\nConnection: close\r\n\r\n"
                       % self.BARRIER_PATH).encode())
            data, _ = read_to_eof(s)
        finally:
            s.close()
        if not data.startswith(b"HTTP/1.1 200"):
            raise AssertionError("origin barrier: no answer: %r" % data[:200])
        with self.lock:
            self.connections -= 1

    def handle_error(self, request, client_address):
        pass  # peers that go away mid-response are expected in these tests

    def record_head(self, handler):
        with self.lock:
            self.heads.append({
                "method": handler.command,
                "path": handler.path,
                "version": handler.request_version,
                "headers": [(k, v) for k, v in handler.headers.items()],
                "client": handler.client_address,
            })

    def add_sent(self, n):
        with self.lock:
            self.bytes_sent += n

    def reset_counters(self):
        with self.lock:
            self.connections = 0
            self.heads = []
            self.done = []
            self.bytes_sent = 0

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops serving (if it was started) and closes the socket; idempotent."""
        if self._thread is not None:
            self.shutdown()  # waits for serve_forever: only once it ran
            self._thread.join(timeout=10)
        self.server_close()


def make_cert(workdir, name="allowed.test"):
    """A self-signed certificate for NAME made with the openssl CLI."""
    cert = os.path.join(workdir, "origin-cert.pem")
    key = os.path.join(workdir, "origin-key.pem")
    if not os.access(OPENSSL, os.X_OK):
        raise unittest.SkipTest("openssl CLI not installed")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=DNS:" + name],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=30)
    return cert, key


class TLSOrigin(Origin):
    """The same origin behind TLS (handshake done in the handler thread)."""

    def __init__(self, cert, key, host=LOOPBACK, port=0):
        super().__init__(host, port)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class LoopbackTCPServer:
    """A TCP server on 127.0.0.1 (a port the kernel picks) accepting on its
    own thread from start() to stop(); subclasses define _accepted(pair),
    called with each (conn, addr) that accept returns."""

    def __init__(self, backlog=16, timeout=0.2):
        self.sock = loopback_listener(backlog, timeout)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        serve_until_stopped(self._stop, self.sock.accept, self._accepted)

    def _accepted(self, pair):
        raise NotImplementedError

    def stop(self):
        self._stop.set()
        self.sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class TCPServer(LoopbackTCPServer):
    """A raw TCP server on 127.0.0.1 for tunnel tests.

    mode "echo": reads until EOF, then answers b"ECHO " + what it read and closes.
    mode "greet-first": sends a greeting, half-closes, then reads until EOF
    and records what arrived after its own FIN.
    """

    GREETING = b"HELLO FROM SERVER\n"

    def __init__(self, mode="echo"):
        super().__init__(16, 0.2)
        self.mode = mode
        self.received = []
        self.connections = 0
        self.saw_eof = []

    def _accepted(self, pair):
        self.connections += 1
        threading.Thread(target=self._handle, args=(pair[0],), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(0.5)
        try:
            if self.mode == "greet-first":
                conn.sendall(self.GREETING)
                conn.shutdown(socket.SHUT_WR)
                data, eof = read_to_eof(conn)
                self.received.append(data)
                self.saw_eof.append(eof)
            else:
                data, eof = read_to_eof(conn)
                self.received.append(data)
                self.saw_eof.append(eof)
                if eof:
                    conn.sendall(b"ECHO " + data)
        except OSError:
            pass
        finally:
            conn.close()


# ---- embargo ---------------------------------------------------------------------


def yaml_str(s):
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


INTERNAL_ALLOW_LOOPBACK = "internal:\n  allow: [127.0.0.0/8]\n"


def make_config(connect_ports=(443,), timeouts=None, limits=None, clients=None,
                exceptions=(), vendors=None, extra="", allow_loopback=True,
                tls_inspect_ports=None):
    """Builds an embargo YAML config. Listeners, resolvers and the log are
    given on the command line. Every test destination is on loopback, which
    embargo refuses as internal unless `internal.allow` covers it."""
    lines = ["# integration test configuration",
             "connect_ports: [%s]" % ", ".join(str(p) for p in connect_ports)]
    if allow_loopback:
        lines.append(INTERNAL_ALLOW_LOOPBACK.rstrip("\n"))
    if tls_inspect_ports is not None:
        lines.append("tls_inspect:\n  ports: [%s]" % ", ".join(str(p) for p in tls_inspect_ports))
    t = {"request_head": "5s", "resolve": "3s", "connect": "3s", "response": "20s",
         "idle": "20s", "tunnel_idle": "20s", "upstream_idle": "20s"}
    t.update(timeouts or {})
    lines.append("timeouts:")
    lines += ["  %s: %s" % (k, v) for k, v in t.items()]
    if limits:
        lines.append("limits:")
        lines += ["  %s: %s" % (k, v) for k, v in limits.items()]
    if clients is not None:
        lines.append("clients: [%s]" % ", ".join(clients))
    if vendors is not None:
        lines.append("vendors:")
        lines += ["  - %s" % v for v in vendors]
    if exceptions:
        lines.append("exceptions:")
        for e in exceptions:
            lines.append("  - host: %s" % yaml_str(e["host"]))
            if "expires" in e:
                lines.append("    expires: %s" % e["expires"])
            if "reason" in e:
                lines.append("    reason: %s" % yaml_str(e["reason"]))
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


# The User-Agent of Embargo.log_barrier's requests.
LOG_BARRIER_AGENT = "embargo-test-log-barrier/"


class Embargo:
    """One embargo process with its own config file, port, log and stderr."""

    _seq = 0
    _barriers = 0

    def __init__(self, workdir, config_text, resolver_port, now=None, monitor=False,
                 extra_args=(), env=None, port=None, listen_arg=True):
        Embargo._seq += 1
        self.n = Embargo._seq
        self.workdir = workdir
        self.config_path = os.path.join(workdir, "embargo-%d.yaml" % self.n)
        self.log_path = os.path.join(workdir, "embargo-%d.log.jsonl" % self.n)
        self.stderr_path = os.path.join(workdir, "embargo-%d.stderr" % self.n)
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.config_text = config_text
        self.resolver_port = resolver_port
        self.now = now
        self.monitor = monitor
        self.extra_args = list(extra_args)
        self.env = env
        self.port = port
        # False: the configuration's own `listen` entries serve (PORT must be
        # the port of one of them), no --listen replaces them.
        self.listen_arg = listen_arg
        self.proc = None
        self.returncode = None
        self.stopped = False
        self.test_mark = None  # log_mark() at the current test's start (EmbargoTestCase)

    @property
    def listener(self):
        return "%s:%d" % (LOOPBACK, self.port)

    @property
    def proxy_url(self):
        return "http://%s:%d" % (LOOPBACK, self.port)

    def start(self):
        if not BINARY or not os.access(BINARY, os.X_OK):
            raise RuntimeError("embargo binary not found: pass --binary PATH (got %r)" % BINARY)
        if self.port is None:
            self.port = free_port()
        args = [BINARY] + (["-v"] if os.environ.get("EMBARGO_VERBOSE") else []) + [
            "run", "--config", self.config_path]
        if self.listen_arg:
            args += ["--listen", self.listener]
        args += ["--resolver", "%s:%d" % (LOOPBACK, self.resolver_port), "--log", self.log_path]
        if self.now:
            args += ["--now", self.now]
        if self.monitor:
            args.append("--monitor")
        args += self.extra_args
        env = dict(os.environ)
        env.update(self.env or {})
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, env=env, preexec_fn=tied_to_parent)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()  # whatever went wrong (an interrupt too), nothing is left running
            raise
        return self

    def _wait_listening(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for _ in range(int(STARTUP_TIMEOUT / 0.02) + 1):
            if self.proc.poll() is not None:
                raise RuntimeError("embargo exited with %s at start:\n%s"
                                   % (self.proc.returncode, self.stderr_text()))
            if "listening on" in self.stderr_text():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        raise RuntimeError("embargo did not start listening:\n" + self.stderr_text())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stderr_text(self):
        return read_text(self.stderr_path)

    def log_text(self):
        return read_text(self.log_path)

    def records(self, since=None):
        """Every decision log line, each parsed with json.loads (one object a
        line); with SINCE (from log_mark), only lines made after the mark.
        A last line still being written (no newline yet) and log_barrier's
        own lines are left out."""
        try:
            with open(self.log_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(raw.split(b"\n")[:-1]):
            if not line:
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise AssertionError("decision log line %d is not JSON (%s): %r" % (i + 1, e, line))
            if not isinstance(obj, dict):
                raise AssertionError("decision log line %d is not an object: %r" % (i + 1, line))
            if str(obj.get("user_agent", "")).startswith(LOG_BARRIER_AGENT):
                continue
            if since is not None and obj.get("time", "") < since:
                continue
            out.append(obj)
        return out

    def wait_records(self, pred, count=1, timeout=5.0, since=None):
        """Waits until COUNT records made after the mark SINCE (by default
        test_mark: the current test's start, for a test case's embargo)
        satisfy PRED; returns them. Embargo writes a line shortly after the
        response it logs, so a test polls for it rather than reading once,
        and a line of an earlier test still on its way is not taken for it."""
        since = self.test_mark if since is None else since

        def got():
            r = [x for x in self.records(since) if pred(x)]
            return r if len(r) >= count else None
        return wait_until(got, timeout, 0.02, "%d matching decision log line(s)" % count)

    def log_mark(self):
        """See log_mark(); records(since=mark) gives the lines made after it."""
        return log_mark()

    def log_barrier(self, host="s07.upd.kaspersky.com"):
        """Waits until every decision line made so far is in the file: sends
        a request for HOST (a name this embargo denies, so no upstream is
        dialled) with a User-Agent of its own and waits for that request's
        line; lines are written in the order they are made. Lets a test
        assert that a line was NOT written. records() leaves barrier lines out."""
        Embargo._barriers += 1
        agent = "%s%d" % (LOG_BARRIER_AGENT, Embargo._barriers)
        r = http_get(self.port, "http://%s/" % host, headers=[("User-Agent", agent)])
        if r.status != 403:
            raise AssertionError("log barrier: %s was not denied: %r" % (host, r))
        wait_until(lambda: ('"user_agent":"%s"' % agent) in self.log_text(), 10.0, 0.02,
                   "the log barrier's own line")

    def wait_stderr(self, needle, timeout=10.0):
        """Waits until standard error contains NEEDLE (a string, or a compiled
        regular expression); returns the text. Diagnostics, like decision
        lines, reach the file shortly after the event."""
        def got():
            text = self.stderr_text()
            found = needle.search(text) if hasattr(needle, "search") else needle in text
            return text if found else None
        return wait_until(got, timeout, 0.02, "%r on embargo's standard error" % (needle,))

    def stop(self):
        """SIGTERM, then wait; returns (returncode, stderr)."""
        if self.proc is None or self.stopped:
            return self.returncode, self.stderr_text()
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.returncode = "killed: did not exit within 30s of SIGTERM"
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._stderr.close()
        return self.returncode, self.stderr_text()

    def check_clean_exit(self):
        """Stops the process; raises AssertionError unless it exited 0 with no
        sanitizer report on stderr."""
        rc, err = self.stop()
        problems = []
        if rc != 0:
            problems.append("exit status %r after SIGTERM" % (rc,))
        for m in SANITIZER_MARKERS:
            if m in err:
                problems.append("stderr contains %r" % m)
        if problems:
            raise AssertionError("embargo #%d: %s\n--- stderr ---\n%s"
                                 % (self.n, "; ".join(problems), err[-20000:]))

    def diagnostics(self):
        return ("--- embargo #%d (port %s) stderr ---\n%s\n--- embargo #%d decision log ---\n%s"
                % (self.n, self.port, self.stderr_text()[-20000:], self.n,
                   self.log_text()[-20000:]))


# ---- HTTP over raw sockets ----------------------------------------------------------


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.status, self.reason, self.headers,
                                                     len(self.body))


class RawClient:
    """A client socket with a read buffer and an HTTP/1.x response reader."""

    def __init__(self, port, host=LOOPBACK, timeout=IO_TIMEOUT, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        b = self.sock.recv(1 << 16)
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def _readline(self, limit=1 << 16):
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit or not self._fill():
                raise ConnectionError("connection closed or line too long: %r" % bytes(self.buf[:200]))
        raise ConnectionError("line not found")

    def _readn(self, n):
        for _ in range(10_000_000):
            if len(self.buf) >= n:
                break
            if not self._fill():
                raise ConnectionError("connection closed with %d of %d body bytes"
                                      % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        status_line = self._readline()
        head = [status_line]
        headers = []
        for _ in range(1000):
            line = self._readline()
            head.append(line)
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        return version, status, reason, headers, b"".join(head)

    def read_response(self, method="GET"):
        for _ in range(10):
            version, status, reason, headers, raw = self.read_head()
            if status >= 200 or status == 101:
                break
        r = Response(version, status, reason, headers, b"", raw)
        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if method == "HEAD" or status in (204, 304) or (method == "CONNECT" and 200 <= status < 300):
            return r
        if "chunked" in te:
            body = bytearray()
            for _ in range(10_000_000):
                size = int(self._readline().split(b";")[0].strip(), 16)
                if size == 0:
                    for _ in range(100):
                        if self._readline() in (b"\r\n", b"\n"):
                            break
                    break
                body += self._readn(size)
                if self._readn(2) != b"\r\n":
                    raise ConnectionError("bad chunk terminator")
            r.body = bytes(body)
        elif cl is not None:
            r.body = self._readn(int(cl))
        else:
            r.body = self.read_to_eof()
        return r

    def read_to_eof(self, limit=1 << 30):
        for _ in range(10_000_000):
            if len(self.buf) > limit or not self._fill():
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def at_eof(self, timeout=5.0):
        """Whether the peer closes the connection (without sending more) within TIMEOUT."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            b = self.sock.recv(1)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        return b == b""


def http_get(proxy_port, url, headers=(), method="GET", version="HTTP/1.1", body=b""):
    """One request through the proxy on a fresh connection; returns the Response."""
    host = urllib.parse.urlsplit(url).netloc
    lines = ["%s %s %s" % (method, url, version), "Host: " + host, "Connection: close"]
    lines += ["%s: %s" % h for h in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    req = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with RawClient(proxy_port) as c:
        c.send(req)
        return c.read_response(method)


def curl(args, timeout=120):
    """Runs curl with ARGS; returns the CompletedProcess (stdout/stderr as bytes)."""
    if not os.access(CURL, os.X_OK):
        raise unittest.SkipTest("curl not installed")
    return subprocess.run([CURL, "-sS", "--noproxy", "", "--max-time", str(timeout)] + list(args),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 10, env=client_env())


# ---- the test case base -------------------------------------------------------------


class EmbargoTestCase(unittest.TestCase):
    """Starts dnsmasq, an origin and one embargo per class.

    Subclasses set NOW, MONITOR, CONFIG_KW (make_config keywords), TLS (also
    start a TLS origin), TUNNEL_SERVERS (raw TCP servers whose ports CONNECT
    may reach), DNS_CNAMES and DNS_RECORDS.
    """

    NOW = None
    MONITOR = False
    CONFIG_KW = {}
    TLS = False
    TUNNEL_SERVERS = ()
    DNS_CNAMES = ()
    DNS_RECORDS = ()  # extra (name, loopback address) host records
    EMBARGO_ENV = None

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        """Starts the class's peers and its embargo. Each is stopped by a
        class cleanup registered before it is started, so that a set-up
        that fails part way (here or in a subclass, after this returns)
        stops whatever it had started: unittest runs class cleanups when
        setUpClass raises, and after tearDownClass."""
        cls._cleanups_cls = []
        cls.embargo = None
        cls.tmp = tempfile.mkdtemp(prefix="embargo-it-")
        cls.addClassCleanup(cls._run_class_cleanups)  # runs last: removes tmp too
        cls.dns = Dnsmasq(cls.tmp, cnames=cls.DNS_CNAMES, records=cls.DNS_RECORDS)
        cls.addClassCleanup(cls.dns.stop)
        cls.dns.start()
        cls.origin = Origin()
        cls.addClassCleanup(cls.origin.stop)
        cls.origin.start()
        cls.tls_origin = None
        if cls.TLS:
            cls.cert, cls.key = make_cert(cls.tmp)
            cls.tls_origin = TLSOrigin(cls.cert, cls.key)
            cls.addClassCleanup(cls.tls_origin.stop)
            cls.tls_origin.start()
        cls.tunnels = {}
        for mode in cls.TUNNEL_SERVERS:
            cls.tunnels[mode] = TCPServer(mode)
            cls.addClassCleanup(cls.tunnels[mode].stop)
            cls.tunnels[mode].start()
        cls.addClassCleanup(cls._stop_class_embargo)
        cls.embargo = cls.new_embargo()

    @classmethod
    def _stop_class_embargo(cls):
        """Stops the class's embargo if tearDownClass did not (a set-up
        that failed after it started)."""
        if cls.embargo is not None:
            cls.embargo.stop()

    @classmethod
    def connect_ports(cls):
        ports = [443]
        if cls.tls_origin is not None:
            ports.append(cls.tls_origin.port)
        ports += [s.port for s in cls.tunnels.values()]
        return ports

    @classmethod
    def new_embargo(cls, now="class", monitor=None, env=None, port=None, **config_kw):
        """Starts an embargo with the class's settings, overridden by the arguments."""
        kw = {"connect_ports": cls.connect_ports()}
        if cls.tls_origin is not None:  # the TLS origin's ClientHellos are inspected too
            kw["tls_inspect_ports"] = [443, cls.tls_origin.port]
        kw.update(cls.CONFIG_KW)
        kw.update(config_kw)
        e = Embargo(cls.tmp, make_config(**kw), cls.dns.port,
                    now=cls.NOW if now == "class" else now,
                    monitor=cls.MONITOR if monitor is None else monitor,
                    env=cls.EMBARGO_ENV if env is None else env, port=port)
        return e.start()

    @classmethod
    def _run_class_cleanups(cls):
        """Runs what subclasses added to _cleanups_cls, newest first, then
        removes the class's directory. Idempotent."""
        for fn in reversed(getattr(cls, "_cleanups_cls", [])):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                sys.stderr.write("cleanup failed: %r\n" % (e,))
        cls._cleanups_cls = []
        if getattr(cls, "tmp", None):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        """Checks that the class's embargo exits cleanly; the class cleanups
        (run by unittest after this, even when it raises) stop everything
        else."""
        e = getattr(cls, "embargo", None)
        if e is not None:
            try:
                e.check_clean_exit()
            except AssertionError:
                sys.stderr.write(e.diagnostics() + "\n")
                raise

    # Per-test extra embargo processes are stopped and checked in cleanup.
    def start_embargo(self, **kw):
        e = type(self).new_embargo(**kw)
        self._extra_embargos.append(e)
        self.addCleanup(e.check_clean_exit)
        return e

    def setUp(self):
        self._extra_embargos = []
        self.origin.reset_counters()
        self.dns_mark = self.dns.mark()
        self.log_mark = self.embargo.test_mark = self.embargo.log_mark()
        if self.tls_origin is not None:
            self.tls_origin.reset_counters()

    def run(self, result=None):
        before = (len(result.failures) + len(result.errors)) if result is not None else 0
        out = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            procs = [self.embargo] + list(getattr(self, "_extra_embargos", []))
            sys.stderr.write("\n==== diagnostics for %s ====\n" % self.id())
            for e in procs:
                if e is not None:
                    sys.stderr.write(e.diagnostics() + "\n")
        return out

    # ---- helpers

    def new_records(self):
        """Decision log lines the class's embargo made during this test (so
        far: lines reach the file shortly after their response; see
        Embargo.wait_records and Embargo.log_barrier)."""
        return self.embargo.records(since=self.log_mark)

    def url(self, host="allowed.test", path="/", port=None):
        return "http://%s:%d%s" % (host, port or self.origin.port, path)

    def get(self, url, embargo=None, **kw):
        return http_get((embargo or self.embargo).port, url, **kw)

    def assert_healthy(self, embargo=None):
        """A follow-up allowed request succeeds."""
        e = embargo or self.embargo
        self.assertTrue(e.alive(), "embargo died:\n" + e.stderr_text()[-5000:])
        r = http_get(e.port, self.url(path="/health"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok /health\n")

    def assert_proxy_status(self, r, error):
        ps = r.header("Proxy-Status")
        self.assertIsNotNone(ps, "no Proxy-Status in %r" % (r,))
        self.assertTrue(ps.startswith("embargo; error=%s" % error) or
                        ps.startswith("embargo;error=%s" % error), ps)


SKIP_EXIT = 77  # a program whose every case was skipped (ctest's SKIP_RETURN_CODE)


class CaseResult(unittest.TextTestResult):
    """A TextTestResult that also records which cases were started, so that
    cases a failed or skipped setUpClass kept from running are counted."""

    current = None  # the case running now (its cleanups are due if interrupted)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.started = []

    def startTest(self, test):
        self.started.append(test.id())
        CaseResult.current = test
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        CaseResult.current = None


def _interrupted(signum, frame):
    """SIGTERM in the test program: an interrupt, so that cleanups run."""
    raise KeyboardInterrupt("signal %d" % signum)


def _default_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# A process forked from the test program (a multiprocessing worker, which its
# pool ends with SIGTERM) dies of the signal at once, as if no handler were
# set: one interrupted while holding the pool's queue lock hangs the pool.
os.register_at_fork(after_in_child=_default_sigterm)


def _test_classes(base=unittest.TestCase):
    for sub in base.__subclasses__():
        yield sub
        yield from _test_classes(sub)


def clean_up_after_interrupt():
    """What unittest leaves undone when a program is interrupted (SIGINT, or
    SIGTERM, which main turns into the same): the running case's cleanups,
    then every class's pending class cleanups. unittest runs them itself
    when a case or a setUpClass raises an ordinary exception."""
    test = CaseResult.current
    if test is not None:
        test.doCleanups()
    for cls in _test_classes():
        if getattr(cls, "_class_cleanups", None):
            cls.doClassCleanups()


def _leaf_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _leaf_tests(t)
        else:
            yield t


_HOLDER_RE = re.compile(r"^(setUpClass|tearDownClass|setUpModule|tearDownModule) \((.+)\)$")


class _CaseProgram(unittest.TestProgram):
    """unittest's main that notes the ids of the cases it is about to run
    (a suite forgets its cases as it runs them)."""

    def runTests(self):
        self.case_ids = [t.id() for t in _leaf_tests(self.test)]
        super().runTests()


def case_outcomes(case_ids, result):
    """Every case of CASE_IDS as {test id: (outcome, reason)} after RESULT
    (a CaseResult) ran it, outcome "passed", "failed" or "skipped"; a
    setUpClass that failed or skipped stands for each case of its class
    (setUpModule: of its module). A failure outside any case (tearDownClass,
    a class cleanup) is one failed case of its own, keyed by its
    description."""
    cases = list(case_ids)
    out = {tid: ("passed", "") if tid in result.started else ("skipped", "not run")
           for tid in cases}

    def ids_of(test):
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        if isinstance(test, unittest.TestCase):
            return [test.id()]
        m = _HOLDER_RE.match(getattr(test, "description", ""))
        if m and m.group(1) in ("setUpClass", "setUpModule"):
            prefix = m.group(2) + "."
            return [tid for tid in cases if tid.startswith(prefix)]
        return [getattr(test, "description", str(test))]

    for test, reason in result.skipped:
        for tid in ids_of(test):
            if out.get(tid, ("",))[0] != "failed":
                out[tid] = ("skipped", reason)
    for test, trace in result.failures + result.errors:
        for tid in ids_of(test):
            out[tid] = ("failed", trace.strip().splitlines()[-1] if trace.strip() else "")
    for test in result.unexpectedSuccesses:
        for tid in ids_of(test):
            out[tid] = ("failed", "unexpected success")
    return out


def _skip_lines(name, outcomes):
    """One line per reason: the skipped cases (grouped by class) and why."""
    by_reason = collections.OrderedDict()
    for tid, (outcome, reason) in sorted(outcomes.items()):
        if outcome == "skipped":
            by_reason.setdefault(reason, []).append(tid.split(".", 1)[-1])
    lines = []
    for reason, tids in by_reason.items():
        classes = collections.OrderedDict()
        for tid in tids:
            cls, _, meth = tid.rpartition(".")
            classes.setdefault(cls or tid, []).append(meth)
        what = ", ".join("%s (%d case%s)" % (c, len(m), "" if len(m) == 1 else "s")
                         if len(m) > 1 else "%s.%s" % (c, m[0]) for c, m in classes.items())
        lines.append("SKIP %s: %s: %s" % (name, what, reason))
    return lines


def run_cases(name, argv):
    """Runs the unittest cases of __main__ with ARGV (verbosity 2). Prints
    a SKIP line per reason something was skipped, a FAIL line per failed
    case, then

        SUMMARY NAME: STATUS: N cases: P passed, F failed, S skipped in Ts

    (STATUS OK, FAILED or SKIPPED), counted in cases. Returns
    (passed, failed, skipped)."""
    start = time.monotonic()
    runner = unittest.TextTestRunner(verbosity=2, resultclass=CaseResult)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        prog = _CaseProgram(module="__main__", argv=argv, exit=False, testRunner=runner)
    except KeyboardInterrupt:
        clean_up_after_interrupt()
        print("SUMMARY %s: FAILED: interrupted" % name)
        sys.stdout.flush()
        raise
    outcomes = case_outcomes(prog.case_ids, prog.result)
    counts = collections.Counter(o for o, _ in outcomes.values())
    passed, failed, skipped = counts["passed"], counts["failed"], counts["skipped"]
    for line in _skip_lines(name, outcomes):
        print(line)
    for tid, (outcome, why) in sorted(outcomes.items()):
        if outcome == "failed":
            print("FAIL %s: %s: %s" % (name, tid.split(".", 1)[-1], why[:200]))
    status = "FAILED" if failed else "SKIPPED" if skipped and not passed else "OK"
    print("SUMMARY %s: %s: %d case%s: %d passed, %d failed, %d skipped in %.1fs"
          % (name, status, len(outcomes), "" if len(outcomes) == 1 else "s", passed, failed,
             skipped, time.monotonic() - start))
    sys.stdout.flush()
    return passed, failed, skipped


def exit_status(passed, failed, skipped):
    """1 if a case failed; SKIP_EXIT if every case was skipped; else 0. A
    program where some cases passed and others were skipped exits 0: its
    SUMMARY line carries the skipped count."""
    if failed:
        return 1
    return SKIP_EXIT if skipped and not passed else 0


def main():
    """unittest main that takes --binary PATH; prints SKIP and SUMMARY lines
    (run_cases) and exits with exit_status: 0, 1, or 77 when every case was
    skipped."""
    global BINARY
    argv = [sys.argv[0]]
    args = sys.argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--binary" and i + 1 < len(args):
            BINARY = args[i + 1]
            i += 2
            continue
        if a.startswith("--binary="):
            BINARY = a.split("=", 1)[1]
        else:
            argv.append(a)
        i += 1
    if BINARY:
        BINARY = os.path.abspath(BINARY)
    name = os.path.basename(sys.argv[0])
    if not BINARY or not os.access(BINARY, os.X_OK):
        print("%s: embargo binary not found; pass --binary PATH" % name, file=sys.stderr)
        print("SUMMARY %s: FAILED: no binary" % name)
        sys.exit(2)
    sys.exit(exit_status(*run_cases(name, argv)))
