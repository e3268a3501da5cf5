"""The examples of README.md and ARCHITECTURE.md that show Embargo's own
output are produced by the real binary and compared, so the docs cannot
drift from it.

A fenced block that shows output is marked by an HTML comment on the line
right before its fence:

    <!-- example: NAME -->                 compared whole
    <!-- example: NAME keys=subset -->     JSON lines abbreviated with `...`
    <!-- example: NAME lines=excerpt -->   text with `...` lines for what is left out
    <!-- example: none (REASON) -->        illustrative, cannot be produced here

Every NAME has one generator here (`example_NAME`, dashes as underscores)
that runs the binary the way the docs say (with the configuration they
imply, on loopback, with --now where the date matters) and returns what it
printed, with a `$ COMMAND` line where the docs show one. Text is compared
exactly, after the normalisers the example needs (TEXT_NORMALISERS; each
of NORMALISERS says what legitimately varies between runs and why). A JSON
line must have the binary's keys, in its order (with keys=subset: some of
them, in its order, and the block must then show `...` where it leaves
some out), and equal values for every key but the VOLATILE ones the
example names (JSON_VOLATILE), whose values in the docs must still have
their form. Rule line numbers are never normalised: they come from the
list file through the binary.

Messages the prose quotes in a code span (QUOTES: a warning, an error, a
status line) are each produced too, and must match what the binary
printed, their placeholders aside.

A fenced block that looks like Embargo's output (a `$ ` transcript, an HTTP
status line, a decision line, a diagnostic, a bundle manifest, an export
header, firewall rules) without a marker fails the scan, and so do a marker
without a generator and a generator without its block. Every
`kaspersky.yaml:LINE[:COL]` the docs mention, in a block or in the text,
must be where an entry of config/vendors/kaspersky.yaml starts.

The transparent-interception lines need network namespaces (root); that
case is reported skipped, with the reason, where they cannot be made.
"""

import collections
import difflib
import gzip
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import unittest

import harness
import test_transparent
from harness import (LOOPBACK, SANITIZER_MARKERS, EmbargoTestCase, RawClient, free_port,
                     wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DOCS = ("README.md", "ARCHITECTURE.md")
KASPERSKY_LIST = os.path.join(SOURCE, "config", "vendors", "kaspersky.yaml")

# ---- the blocks of the docs ---------------------------------------------------

FENCE_RE = re.compile(r"^(\s*)(`{3,})(\S*)\s*$")
MARKER_RE = re.compile(r"^\s*<!-- example: (.*?) -->\s*$")
NONE_RE = re.compile(r"^none \((.+)\)$")
NAME_RE = re.compile(r"^([a-z0-9-]+)((?: [a-z]+=[a-z]+)*)$")
OPTIONS = {"keys": ("subset",), "lines": ("excerpt",)}

# Examples made by a test class of their own (network namespaces).
IN_NAMESPACES = ("intercept-lines",)

Block = collections.namedtuple("Block", "doc line marker options reason text")


def doc_blocks(doc):
    """Every fenced block of DOC (a path under SOURCE) as a Block: line
    (1-based, of the opening fence), marker (the example's name, "none", or
    None), options (dict), reason (for "none"), text (the block's lines
    without the fence's indentation, joined with newlines)."""
    with open(os.path.join(SOURCE, doc), encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m.group(1), m.group(2)
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        body = [l[len(indent):] if l.startswith(indent) else l.lstrip() for l in lines[i + 1:j]]
        marker, options, reason = None, {}, None
        mm = MARKER_RE.match(lines[i - 1]) if i > 0 else None
        if mm:
            spec = mm.group(1)
            nm = NONE_RE.match(spec)
            if nm:
                marker, reason = "none", nm.group(1)
            else:
                pm = NAME_RE.match(spec)
                marker = pm.group(1) if pm else "<malformed: %s>" % spec
                for opt in (pm.group(2).split() if pm else ()):
                    k, _, v = opt.partition("=")
                    options[k] = v
        out.append(Block(doc, i + 1, marker, options, reason, "\n".join(body)))
        i = j + 1
    return out


def all_blocks():
    return [b for doc in DOCS for b in doc_blocks(doc)]


# First lines (stripped) that make a block look like Embargo's output.
OUTPUT_STARTS = ("$ ", "HTTP/1.", "{\"", "embargo: ", "embargo-lists ", "; Embargo ",
                 "policy time:", "readiness:", "liveness:", "#!/usr/sbin/nft", "*nat", "*mangle",
                 "*filter", "VENDOR ", "lists.bundle: ")
# Any line like these, anywhere in a block, too.
OUTPUT_LINE_RE = re.compile(r'^\s*(\{"(time|event)"|embargo: (warning|error|info): |'
                            r'\S+:\d+: (DENY|ALLOW|LOG|REFUSED)\b|HTTP/1\.[01] [45]\d\d )')


def looks_like_output(text):
    lines = [l for l in text.split("\n") if l.strip()]
    if not lines:
        return False
    if lines[0].strip().startswith(OUTPUT_STARTS):
        return True
    return any(OUTPUT_LINE_RE.match(l) for l in lines)


# ---- what legitimately varies ---------------------------------------------------

# Text normalisers: NAME -> a regular expression with one group, for a part
# of an example that differs from run to run, for the reason given above
# it. The group is replaced by <NAME> in the docs and in the binary's
# output alike, so the docs must still show something of that form there.
NORMALISERS = {
    # `check` prints the policy clock it judged at: the wall clock of the run.
    "policy-time": r"^policy time: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$",
    # A policy version is a hash of every source file (config, built-in
    # default, lists): any edit of a list changes it.
    "policy-version": r"\bpolicy:?\s+([0-9a-f]{16})\b",
    # When the running policy was loaded: the start of the test's process.
    "loaded": r" loaded (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$",
    # A bundle's creation time is when the test signed it.
    "created": r"^created (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$",
    # The signing key is made by the test: its id and its signatures are
    # new each run. The docs may abbreviate them with an ellipsis.
    "key-id": r"^key ([0-9a-f]{16}|[0-9a-f]+…[0-9a-f]*)$",
    "signature": r"^signature ([A-Za-z0-9+/]{86}==|[A-Za-z0-9+/]+…[A-Za-z0-9+/=]*)$",
    # SHA-256 digests of list files, which change with every edit: written
    # whole by the binary, abbreviated with an ellipsis in the docs.
    "sha256": r"(?<![0-9a-f])([0-9a-f]{64}|[0-9a-f]{2,}…[0-9a-f]*)(?![0-9a-f])",
    # The bundle server the test runs is on loopback, at a port the kernel
    # picks; the docs name a server of the site.
    "server": r"https://([^/\s]+)/",
}

# JSON keys whose values differ from run to run, for the reason given above
# each: KEY -> the form the value must have, in the docs and in the binary's
# line alike.
TIME_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
ENDPOINT = r"(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]):\d{1,5}"
VOLATILE = {
    # The wall clock when the line was made.
    "time": TIME_MS,
    # The policy clock: the wall clock, or --now advancing from its start.
    "policy_time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
    # A hash of the sources: changes with any edit of a list.
    "policy_version": r"[0-9a-f]{16}",
    # Connection ids count every connection the process accepted before.
    "conn": r"\d+",
    # The test's client: a loopback address (or a namespace's), and a port
    # the kernel picked.
    "client": ENDPOINT,
    # The test's proxy listens on a loopback port the kernel picked.
    "listener": ENDPOINT,
    # The version of curl on the machine.
    "user_agent": r"curl/\d+\.\d+\.\d+",
}


def normalise(text, names):
    for name in names:
        regex = NORMALISERS[name]

        def sub(m, name=name):
            s, e = m.span(1)
            return m.group(0)[:s - m.start()] + "<%s>" % name + m.group(0)[e - m.start():]
        text = re.sub(regex, sub, text, flags=re.MULTILINE)
    return text


ELLIPSIS_RE = re.compile(r",\s*\.\.\.(?=\s*[,}])|(?<=\{)\s*\.\.\.\s*,")


def parse_doc_json(line):
    """A JSON line of the docs as an ordered list of (key, value), and
    whether it left keys out with `...`."""
    abbreviated = bool(ELLIPSIS_RE.search(line))
    text = ELLIPSIS_RE.sub("", line)
    pairs = json.loads(text, object_pairs_hook=list)
    return pairs, abbreviated


def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def excerpt_matches(doc_lines, real_lines):
    """Whether DOC_LINES, where a line `...` stands for any number of lines
    left out, is REAL_LINES: the first run of lines at the start, the last
    at the end unless the docs end with `...`, each run in order."""
    runs, cur = [], []
    for l in doc_lines:
        if l.strip() in ("...", "…"):
            runs.append(cur)
            cur = []
        else:
            cur.append(l)
    runs.append(cur)
    pos = 0
    for k, run in enumerate(runs):
        if not run:
            continue
        if k == 0:
            if real_lines[:len(run)] != run:
                return False
            pos = len(run)
            continue
        for start in range(pos, len(real_lines) - len(run) + 1):
            if real_lines[start:start + len(run)] == run:
                pos = start + len(run)
                break
        else:
            return False
    return pos == len(real_lines) or not runs[-1]


# Messages the docs quote in their text, in a code span (which may wrap):
# NAME -> the span as the docs have it. In a quote, `...` and `…` stand for
# what the docs leave out, hex digits before `…` for an abbreviated id or
# digest, and the PLACEHOLDERS words for a value. Each has a generator (`quote_NAME`) returning
# what the binary printed; the quote must be a code span of the docs and
# match a line of that output.
QUOTES = {
    "resolver-port": "embargo: --resolver: invalid port in '127.0.0.1:99999' (expected ip:port, "
                     "port 1 to 65535)",
    "log-symlink": "embargo: cannot open the log: /var/log/embargo/decisions.log is a symbolic "
                   "link: refused (name the file itself)",
    "unreadable-config": "embargo: warning: /etc/embargo/embargo.yaml will not be readable by "
                         "user nobody (uid 65534, gid 65534) once Embargo started as root runs "
                         "as it, so a reload would fail: no search permission on directory "
                         "/etc/embargo (mode 0700, owner 0:0)",
    "stale-warning": "warning: vendor list kaspersky (builtin:config/vendors/kaspersky.yaml) is "
                     "stale: reviewed 2026-11-28T00:00:00Z, max_age 180d, past it since "
                     "2027-05-27T00:00:00Z; still enforced; review it and update it (this "
                     "warning repeats daily)",
    "status-stale-list": "list kaspersky: reviewed 185 day(s) ago, max_age 180 day(s): STALE, "
                         "still enforced",
    "liveness": "liveness: ok",
    "override-unknown-category": "vendors[1].override.clouds: no category 'clouds' in vendor "
                                 "list hikvision (it has: firmware, cloud, p2p, unclassified)",
    "verify-other-key": "signature does not verify: the bundle names key 1f0c…, the public key "
                        "is 7ba4…",
    "verify-digest": "kaspersky.yaml: SHA-256 …, the manifest says …",
    "mint-totals": "block-page certificates: N minted, N from the cache, N evicted, N cached "
                   "(bound N)",
    "client-rejected": "client sent alert unknown CA after the minted certificate",
    "reload-rejected": "reload rejected, policy VERSION stays in force: ...",
    "restart-key": "reload: KEY changed, which needs a restart; keeping the running value",
    "reopen-failed": "cannot reopen the log: ...; still writing to the old file",
    "bundle-reloaded": "reloaded …: policy NEW (was OLD)",
    "bundle-in-force": "lists: bundle serial N in force: policy NEW",
}

# Words in capitals that stand for a value in a quote.
PLACEHOLDERS = {"N": r"\d+", "VERSION": "[0-9a-f]{16}", "NEW": "[0-9a-f]{16}",
                "OLD": "[0-9a-f]{16}", "KEY": r"[a-z_.]+"}


def collapse(text):
    return re.sub(r"\s+", " ", text).strip()


def code_spans(doc):
    """The code spans of DOC's prose (fenced blocks left out), each with
    its white space collapsed."""
    with open(os.path.join(SOURCE, doc), encoding="utf-8") as f:
        text = f.read()
    prose = re.sub(r"^([ \t]*)(`{3,}).*?^\1\2[ \t]*$", "", text, flags=re.M | re.S)
    return [collapse(m.group(1)) for m in re.finditer(r"`([^`]+)`", prose)]


def quote_pattern(quote):
    """A regular expression for QUOTE's placeholders."""
    out = []
    words = "|".join(PLACEHOLDERS)
    for tok in re.split(r"([0-9a-f]*…|\.\.\.|\b(?:%s)\b)" % words, quote):
        if tok in ("...", "…"):
            out.append(".*?")
        elif tok in PLACEHOLDERS:
            out.append(PLACEHOLDERS[tok])
        elif tok.endswith("…"):
            out.append("[0-9a-f]+")
        else:
            out.append(re.escape(tok))
    return "".join(out)


def compare_json(tc, b, real, where, volatile):
    """Compares the JSON lines of block B with the binary's lines REAL
    (with TC's assertions); VOLATILE: the keys whose values may differ."""
    doc_lines = [l for l in b.text.split("\n") if l.strip()]
    real_lines = [l for l in real.split("\n") if l.strip()]
    if len(doc_lines) != len(real_lines):
        tc.fail("binary:\n%s\n%s: %d lines in the docs, the binary wrote %d"
                % (real, where, len(doc_lines), len(real_lines)))
    subset = b.options.get("keys") == "subset"
    for n, (dl, rl) in enumerate(zip(doc_lines, real_lines), 1):
        what = "%s, line %d" % (where, n)
        doc_pairs, abbreviated = parse_doc_json(dl)
        real_obj = json.loads(rl, object_pairs_hook=collections.OrderedDict)
        doc_keys, real_keys = [k for k, _ in doc_pairs], list(real_obj)
        problems = []
        if len(set(doc_keys)) != len(doc_keys):
            problems.append("a key twice")
        if subset and not abbreviated:
            problems.append("keys=subset, but the line shows no `...`")
        if not subset and abbreviated:
            problems.append("`...` without keys=subset")
        if subset:
            extra = [k for k in doc_keys if k not in real_obj]
            if extra:
                problems.append("keys the binary does not write: %s" % ", ".join(extra))
            elif not is_subsequence(doc_keys, real_keys):
                problems.append("keys in another order than the binary's")
        elif doc_keys != real_keys:
            problems.append("keys not the binary's: missing %s, not written %s"
                            % ([k for k in real_keys if k not in doc_keys],
                               [k for k in doc_keys if k not in real_keys])
                            if set(doc_keys) != set(real_keys) else "keys in another order")
        for k, v in doc_pairs:
            if k not in real_obj:
                continue
            if k in volatile:
                for side, val in (("docs", v), ("binary", real_obj[k])):
                    if not re.fullmatch(VOLATILE[k], str(val)):
                        problems.append("the %s's %s %r is not of its form" % (side, k, val))
            elif v != real_obj[k]:
                problems.append("%s is %s, the binary wrote %s"
                                % (k, json.dumps(v), json.dumps(real_obj[k])))
        if problems:
            tc.fail("docs:   %s\nbinary: %s\n%s: %s" % (dl, rl, what, "; ".join(problems)))


# The normalisers each text example needs (see NORMALISERS).
TEXT_NORMALISERS = {
    "check-deny": ("policy-time",),
    "status": ("policy-version", "loaded"),
    "export-header": ("policy-version",),
    "bundle": ("created", "key-id", "sha256", "signature"),
    "lists-refused": ("server", "sha256"),
}

# The volatile keys of each JSON example (see VOLATILE).
JSON_VOLATILE = {
    "deny-line": ("time", "policy_version", "conn", "client", "listener", "user_agent",
                  "policy_time"),
    "path-deny-line": (),
    "sni-deny-line": (),
    "intercept-lines": ("client",),
}


# ---- running the binary ----------------------------------------------------------


def run(args, cwd=None, input_bytes=None, timeout=60):
    """Runs the binary with ARGS; the CompletedProcess, output decoded. A
    sanitizer report fails the test."""
    p = subprocess.run([harness.BINARY] + list(args), cwd=cwd, input=input_bytes,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       stdin=None if input_bytes is not None else subprocess.DEVNULL)
    p.out, p.err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    for m in SANITIZER_MARKERS:
        if m in p.err:
            raise AssertionError("%s: %r on standard error:\n%s" % (args, m, p.err[-5000:]))
    return p


def chrome_hello(sni):
    """A TLS ClientHello with the cipher suites, extensions and signature
    algorithms of a Chromium browser (JA4 t13d1516h2_8daaf6152771_e5627efa2ab1,
    FoxIO's Chrome example; no GREASE values, no ECH) naming SNI."""
    def ext(t, d):
        return struct.pack(">HH", t, len(d)) + d

    def u16s(xs):
        return b"".join(struct.pack(">H", x) for x in xs)
    name = sni.encode()
    alpn = b"".join(bytes([len(p)]) + p for p in (b"h2", b"http/1.1"))
    sigalgs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    share = struct.pack(">HH", 0x001D, 32) + b"\x42" * 32
    exts = b"".join([
        ext(0x0000, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name),
        ext(0x0017, b""),                                    # extended master secret
        ext(0xff01, b"\x00"),                                # renegotiation info
        ext(0x000a, struct.pack(">H", 6) + u16s((0x001D, 0x0017, 0x0018))),
        ext(0x000b, b"\x01\x00"),                            # EC point formats
        ext(0x0023, b""),                                    # session ticket
        ext(0x0010, struct.pack(">H", len(alpn)) + alpn),
        ext(0x0005, b"\x01\x00\x00\x00\x00"),                # status request
        ext(0x000d, struct.pack(">H", 2 * len(sigalgs)) + u16s(sigalgs)),
        ext(0x0012, b""),                                    # signed certificate timestamps
        ext(0x0033, struct.pack(">H", len(share)) + share),
        ext(0x002d, b"\x01\x01"),                            # PSK modes
        ext(0x002b, b"\x04\x03\x04\x03\x03"),                # TLS 1.3, TLS 1.2
        ext(0x001b, b"\x02\x00\x02"),                        # compress certificate (brotli)
        ext(0x4469, b"\x00\x03\x02h2"),                      # application settings
        ext(0x0015, b"\x00" * 8),                            # padding
    ])
    ciphers = u16s((0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                    0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035))
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x20" + b"\x22" * 32 +
            struct.pack(">H", len(ciphers)) + ciphers + b"\x01\x00" +
            struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def report_line(**kw):
    """A decision line with the keys proxy/base/log.c writes, in its order."""
    order = ("time", "event", "policy_version", "conn", "client", "listener", "method", "host",
             "port", "user_agent", "action", "matched_on", "matched", "vendor", "category",
             "pattern", "rule", "cutoff", "after_cutoff", "rule_action", "tls", "sni", "ja4",
             "policy_time", "status", "error")
    return json.dumps({k: kw[k] for k in order if k in kw}, separators=(",", ":"))


class BundleServer(threading.Thread):
    """HTTPS on 127.0.0.1 answering GET /embargo/lists.bundle with BODY."""

    def __init__(self, cert, key, body):
        super().__init__(daemon=True)
        self.body = body
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.requests = []

    def run(self):
        harness.serve_until_stopped(self.stopping, self.sock.accept, self._serve)

    def _serve(self, pair):
        conn = pair[0]
        try:
            conn.settimeout(10)
            with self.ctx.wrap_socket(conn, server_side=True) as s:
                head = b""
                for _ in range(100):
                    if b"\r\n\r\n" in head:
                        break
                    b = s.recv(4096)
                    if not b:
                        break
                    head += b
                path = head.split(b" ")[1].decode() if head.count(b" ") >= 2 else ""
                self.requests.append(path)
                ok = path == "/embargo/lists.bundle"
                body = self.body if ok else b"not found\n"
                s.sendall(b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % (b"200 OK" if ok else b"404 Not Found", len(body)) + body)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)
        self.sock.close()


# ---- the examples -----------------------------------------------------------------


class DocsExamplesTest(EmbargoTestCase):
    """Every marked example, produced by the binary and compared."""

    DNS_RECORDS = (("allowed.example", LOOPBACK),)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.blocks = all_blocks()
        cls.by_name = collections.defaultdict(list)
        for b in cls.blocks:
            if b.marker not in (None, "none"):
                cls.by_name[b.marker].append(b)
        cls.curl_deny = None  # the 403 curl printed, and the decision line, once made

    # ---- the checks every example goes through

    def block(self, name):
        blocks = self.by_name.get(name, [])
        self.assertEqual(len(blocks), 1, "example %r: %d marked blocks in the docs (want 1)"
                         % (name, len(blocks)))
        return blocks[0]

    def check_example(self, name):
        b = self.block(name)
        real = getattr(self, "example_" + name.replace("-", "_"))(b)
        where = "%s:%d: example %s" % (b.doc, b.line, name)
        if all(l.lstrip().startswith("{") for l in b.text.split("\n") if l.strip()):
            compare_json(self, b, real, where, JSON_VOLATILE[name])
            return
        self.assertNotIn("keys", b.options, where + ": keys= is for JSON lines")
        norms = TEXT_NORMALISERS.get(name, ())
        want = normalise(b.text, norms).split("\n")
        got = normalise(real.rstrip("\n"), norms).split("\n")
        if b.options.get("lines") == "excerpt":
            self.assertTrue(any(l.strip() in ("...", "…") for l in want),
                            where + ": lines=excerpt but no `...` line")
            if not excerpt_matches(want, got):
                self.fail("--- docs ---\n%s\n--- binary ---\n%s\n%s: the docs are not an "
                          "excerpt of what the binary printed"
                          % ("\n".join(want), "\n".join(got), where))
            return
        if want != got:
            diff = "\n".join(difflib.unified_diff(want, got, "docs", "binary", lineterm=""))
            first = next(d for d in diff.split("\n")[2:] if d[:1] in "-+")
            self.fail("%s\n%s differs from the binary's output, first at: %s"
                      % (diff, where, first))

    # ---- helpers for the generators

    def dns_resolver(self):
        return "%s:%d" % (LOOPBACK, self.dns.port)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def deny_by_curl(self):
        """`curl -i -x PROXY http://dnl-01.geo.kaspersky.com/` through the
        class's embargo: (what curl printed, the request's decision line)."""
        if type(self).curl_deny is None:
            mark = self.embargo.log_mark()
            p = harness.curl(["-i", "-x", self.embargo.proxy_url,
                              "http://dnl-01.geo.kaspersky.com/"])
            self.assertEqual(p.returncode, 0, p.stderr)
            line = self.line_of(self.embargo,
                                lambda r: r.get("host") == "dnl-01.geo.kaspersky.com", mark)
            type(self).curl_deny = (p.stdout.decode().replace("\r\n", "\n"), line)
        return type(self).curl_deny

    def line_of(self, embargo, pred, since):
        """The raw text of the decision line PRED picks (keys in the order
        written)."""
        rec = embargo.wait_records(pred, since=since)[-1]
        for l in embargo.log_text().split("\n"):
            if l.startswith("{") and json.loads(l) == rec:
                return l
        raise AssertionError("line not found: %r" % rec)

    # ---- the generators: each returns what the binary printed

    def example_deny_page(self, block):
        # The docs' proxy is proxy:3128; the test's listens on a loopback
        # port the kernel picked.
        page, _ = self.deny_by_curl()
        return "$ curl -i -x http://proxy:3128 http://dnl-01.geo.kaspersky.com/\n" + page

    def example_deny_line(self, block):
        return self.deny_by_curl()[1]

    def example_check_deny(self, block):
        # The built-in configuration, resolving through the test's dnsmasq
        # (a name denied by name is not resolved at all).
        p = run(["check", "--resolver", self.dns_resolver(), "dnl-01.geo.kaspersky.com"])
        self.assertEqual(p.returncode, 1, p.err)
        return "$ embargo check dnl-01.geo.kaspersky.com\n" + p.out

    def example_path_deny_line(self, block):
        mark = self.embargo.log_mark()
        r = harness.http_get(self.embargo.port,
                             "http://mirror.example.org/kav/Updates/index/u0607g.xml")
        self.assertEqual(r.status, 403, r)
        return self.line_of(self.embargo, lambda x: x.get("host") == "mirror.example.org", mark)

    def example_sni_deny_line(self, block):
        # A CONNECT to an allowed name whose ClientHello (a Chromium
        # browser's) names an update server.
        mark = self.embargo.log_mark()
        with RawClient(self.embargo.port) as c:
            c.send(b"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n")
            r = c.read_response("CONNECT")
            self.assertEqual(r.status, 200, r)
            c.send(chrome_hello("s07.upd.kaspersky.com"))
            alert = c.read_to_eof()
        self.assertEqual(alert[:1] + alert[5:7], b"\x15\x02\x31", alert)  # access_denied
        return self.line_of(self.embargo, lambda x: x.get("host") == "allowed.example", mark)

    def example_rules(self, block):
        # The listeners of the transparent example and the site's resolver,
        # in a file named as in the docs.
        conf = ("listen:\n"
                "  - 0.0.0.0:3128\n"
                "  - {address: 0.0.0.0:3129, mode: intercept}\n"
                "  - {address: \"[::]:3129\", mode: intercept}\n"
                "resolvers: [\"10.0.0.53:53\"]\n")
        d = tempfile.mkdtemp(dir=self.tmp)
        with open(os.path.join(d, "embargo.yaml"), "w") as f:
            f.write(conf)
        args = ["rules", "--config", "embargo.yaml", "--format", "nft", "--mode", "intercept"]
        p = run(args, cwd=d)
        self.assertEqual(p.returncode, 0, p.err)
        return ("$ cat embargo.yaml\n" + conf + "$ embargo " + " ".join(args) + "\n" + p.out)

    def example_config_show(self, block):
        p = run(["config", "show"])
        self.assertEqual(p.returncode, 0, p.err)
        return "$ embargo config show\n" + p.out

    def example_export_header(self, block):
        p = run(["export", "--format", "rpz", "--now", "2025-06-01T00:00:00Z"])
        self.assertEqual(p.returncode, 0, p.err)
        head = "\n".join(p.out.split("\n")[:6])
        return ("$ embargo export --format rpz --now 2025-06-01T00:00:00Z > embargo.rpz\n" +
                p.err + "$ head -n 6 embargo.rpz\n" + head + "\n")

    EXPORT_LINE_RE = re.compile(r"^(.*?\S)\s{2,}\((\S+?)(?:, (.*))?\)$")

    def example_export_lines(self, block):
        # Lines picked from several formats' output, each followed by its
        # format in parentheses (and how it was run); an ellipsis stands
        # for the rest of the line. Each is returned as the docs show it
        # when the format's output has it, else what is missing.
        outputs = {}
        got = []
        for line in block.text.split("\n"):
            m = self.EXPORT_LINE_RE.match(line)
            self.assertIsNotNone(m, "export-lines: %r names no format" % line)
            text, fmt, note = m.group(1), m.group(2), m.group(3) or ""
            args = ("--action", "any") if "--action any" in note else ()
            key = (fmt,) + args
            if key not in outputs:
                p = run(["export", "--format", fmt] + list(args))
                self.assertEqual(p.returncode, 0, p.err)
                outputs[key] = p.out.split("\n")
            pattern = "^%s$" % ".*".join(re.escape(part) for part in text.split("…"))
            found = any(re.match(pattern, l) for l in outputs[key])
            got.append(line if found else "(not in `embargo export --format %s%s`) %s"
                       % (fmt, "".join(" " + a for a in args), text))
        return "\n".join(got)

    def signing_dir(self):
        """A directory (mode 0755) holding lists/ (the shipped Kaspersky list
        alone) and two key pairs, lists.key and other.key."""
        d = tempfile.mkdtemp(dir=self.tmp)
        os.chmod(d, 0o755)
        os.mkdir(os.path.join(d, "lists"))
        shutil.copy(KASPERSKY_LIST, os.path.join(d, "lists"))
        for k in ("lists.key", "other.key"):
            p = run(["lists", "keygen", "--key", os.path.join(d, k)])
            self.assertEqual(p.returncode, 0, p.err)
        return d

    def sign(self, d, serial, out, tamper=False):
        """Signs D's lists with lists.key as SERIAL into OUT; with TAMPER, a
        byte of kaspersky.yaml (after the manifest) is changed afterwards.
        Returns the bundle's bytes."""
        p = run(["lists", "sign", os.path.join(d, "lists"), "--key",
                 os.path.join(d, "lists.key"), "--serial", str(serial), "--output", out])
        self.assertEqual(p.returncode, 0, p.err)
        with open(out, "rb") as f:
            data = f.read()
        if tamper:
            i = data.rindex(b"s[0-1][0-9].upd.kaspersky.com")
            data = data[:i] + b"t" + data[i + 1:]
            with open(out, "wb") as f:
                f.write(data)
        return data

    def example_bundle(self, block):
        # The shipped Kaspersky list alone, signed as the docs' serial.
        d = self.signing_dir()
        data = self.sign(d, 1764305432, os.path.join(d, "lists.bundle"))
        with open(KASPERSKY_LIST, "rb") as f:
            listed = f.read()
        manifest, _, rest = data.partition(b"\nsignature ")
        sig, _, files = rest.partition(b"\n")
        self.assertEqual(files, listed, "the bundle's file is not the list as it is")
        return (manifest.decode() + "\nsignature " + sig.decode() +
                "\n<kaspersky.yaml's %d bytes>\n" % len(listed))

    def lists_embargo(self, tamper):
        """An embargo whose cache holds a good bundle (serial 1764305432),
        fetching every second from a server that offers a later one
        (1764305500), whose kaspersky.yaml was changed after signing with
        TAMPER."""
        d = self.signing_dir()
        cache = os.path.join(d, "cache")
        os.mkdir(cache)
        self.sign(d, 1764305432, os.path.join(cache, "lists.bundle"))
        offered = self.sign(d, 1764305500, os.path.join(d, "next.bundle"), tamper=tamper)
        cert, ckey = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
        subprocess.run([harness.OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ckey, "-out", cert,
                        "-days", "2", "-subj", "/CN=lists.test", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        server = BundleServer(cert, ckey, offered)
        server.start()
        self.addCleanup(server.stop)
        return self.start_embargo(extra="user: root\nlists:\n"
                                  "  url: https://127.0.0.1:%d/embargo/lists.bundle\n"
                                  "  pubkey: %s\n  cache_dir: %s\n  ca_file: %s\n"
                                  "  interval: 1s\n"
                                  % (server.port, os.path.join(d, "lists.key.pub"), cache, cert))

    def example_lists_refused(self, block):
        text = self.lists_embargo(tamper=True).wait_stderr("bundle refused")
        return [l for l in text.split("\n") if "bundle refused" in l][0]

    def example_report(self, block):
        lines = [
            report_line(time="2024-09-27T08:12:03.120Z", event="log", client="10.1.4.23:50112",
                        method="GET", host="dnl-01.geo.kaspersky.com", port=80,
                        user_agent="KES/12.3", action="log", matched_on="host",
                        matched="dnl-01.geo.kaspersky.com", vendor="kaspersky",
                        category="updates", cutoff="2024-09-29T04:00:00Z", after_cutoff=False,
                        rule_action="log", status=200),
            report_line(time="2024-10-02T09:40:11.007Z", event="deny", client="10.1.4.23:50131",
                        method="CONNECT", host="s07.upd.kaspersky.com", port=443,
                        user_agent="KES/12.3", action="deny", matched_on="sni",
                        matched="s07.upd.kaspersky.com", vendor="kaspersky",
                        category="updates", cutoff="2024-09-29T04:00:00Z", after_cutoff=True,
                        rule_action="deny", tls="hello", sni=["s07.upd.kaspersky.com"],
                        ja4="t13d1516h2_8daaf6152771_e5627efa2ab1",
                        error="tls_alert_access_denied"),
            report_line(time="2024-10-03T14:02:55.431Z", event="deny",
                        client="[2001:db8:10::7]:40200", method="CONNECT",
                        host="ksn-a-1.geoksn.kaspersky.com", port=443, action="deny",
                        matched_on="sni", matched="ksn-a-1.geoksn.kaspersky.com",
                        vendor="kaspersky", category="telemetry",
                        cutoff="2024-09-29T04:00:00Z", after_cutoff=True, rule_action="deny",
                        tls="hello", sni=["ksn-a-1.geoksn.kaspersky.com"],
                        ja4="t13d1516h2_8daaf6152771_e5627efa2ab1",
                        error="tls_alert_access_denied"),
        ]
        paths = []
        for n, group in ((2, lines[:2]), (1, lines[2:])):
            path = os.path.join(self.tmp, "decisions.log.%d.gz" % n)
            with gzip.open(path, "wb") as f:
                f.write(("\n".join(group) + "\n").encode())
            paths.append(path)
        p = run(["report"] + paths)
        self.assertEqual(p.returncode, 0, p.err)
        return "$ embargo report /var/log/embargo/decisions.log*.gz\n" + p.out + p.err

    def example_report_unmatched(self, block):
        def access(t, client, host):
            return report_line(time=t, event="access", client=client + ":40000", method="GET",
                               host=host, port=80, action="allow", status=200)
        lines = [access("2026-12-01T10:00:00.000Z", "10.0.0.5", "new-upd.kaspersky.com"),
                 access("2026-12-01T10:01:00.000Z", "10.0.0.6", "new-upd.kaspersky.com"),
                 access("2026-12-01T10:02:00.000Z", "10.0.0.5", "new-upd.kaspersky.com"),
                 access("2026-12-01T10:03:00.000Z", "10.0.0.5", "allowed.example"),
                 access("2026-12-01T10:05:00.000Z", "10.0.0.9", "mx.kaspersky-labs.com")]
        log = self.write("decisions.log", "\n".join(lines) + "\n")
        conf = self.write("unmatched.yaml", "vendors:\n  - builtin: kaspersky\n")
        p = run(["report", "--unmatched", "-c", conf, log])
        self.assertEqual(p.returncode, 0, p.err)
        return ("$ embargo report --unmatched -c /etc/embargo/embargo.yaml "
                "/var/log/embargo/decisions.log\n" + p.out)

    def example_block_page_tls(self, block):
        # The CA the docs make in step 1, trusted by curl (--cacert stands
        # for the trust store of step 2), and the configuration of step 3.
        ca = os.path.join(self.tmp, "ca")
        p = run(["ca", "init", "--dir", ca, "--subject", "Example Corp",
                 "--permit", "kaspersky.com", "--permit", "kaspersky-labs.com"])
        self.assertEqual(p.returncode, 0, p.err)
        e = self.start_embargo(extra="certs:\n  ca_dir: %s\ntls_inspect:\n  deny_with: page\n"
                               % ca)
        p = harness.curl(["-i", "--cacert", os.path.join(ca, "ca.crt"), "--proxy", e.proxy_url,
                          "https://s07.upd.kaspersky.com/"])
        self.assertEqual(p.returncode, 0, p.stderr)
        return ("$ curl -i --proxy http://proxy:3128 https://s07.upd.kaspersky.com/\n" +
                p.stdout.decode().replace("\r\n", "\n"))

    def example_status(self, block):
        # A proxy with the admin endpoint and two workers, its clock half a
        # year after the list's review; one plain HTTP and one CONNECT deny.
        admin = free_port()
        conf = self.write("status.yaml", "workers: 2\nadmin:\n  listen: 127.0.0.1:%d\n" % admin)
        e = self.start_embargo(now="2027-06-01T00:00:00Z",
                               extra="workers: 2\nadmin:\n  listen: 127.0.0.1:%d\n" % admin)
        for url in ("http://dnl-01.geo.kaspersky.com/", "https://s07.upd.kaspersky.com/"):
            harness.curl(["-x", e.proxy_url, "-o", os.devnull, url])

        def settled():
            p = run(["status", "-c", conf])
            return p if "0 open, 2 accepted" in p.out else None
        p = wait_until(settled, 10, 0.1, "both client connections closed")
        self.assertEqual(p.returncode, 0, p.err)
        return "$ embargo status -c /etc/embargo/embargo.yaml\n" + p.out


    # ---- messages quoted in the text: each returns what the binary printed

    def check_quote(self, name):
        quote = QUOTES[name]
        spans = [s for doc in DOCS for s in code_spans(doc)]
        self.assertTrue(collapse(quote) in spans, "no code span of the docs is %r" % quote)
        real = getattr(self, "quote_" + name.replace("-", "_"))()
        pattern = re.compile(quote_pattern(collapse(quote)))
        lines = [collapse(l) for l in real.split("\n")]
        if not any(pattern.search(l) for l in lines):
            self.fail("the binary printed:\n%s\nthe docs quote %r, which it did not print"
                      % (real, quote))

    def quote_resolver_port(self):
        p = run(["run", "--listen", "127.0.0.1:%d" % free_port(), "--resolver",
                 "127.0.0.1:99999"])
        self.assertEqual(p.returncode, 2, p.err)
        return p.err

    def quote_log_symlink(self):
        # The docs' log path stands for the test's own (a temporary path).
        d = tempfile.mkdtemp(dir=self.tmp)
        log = os.path.join(d, "decisions.log")
        os.symlink(os.path.join(d, "elsewhere.log"), log)
        p = run(["run", "--listen", "127.0.0.1:%d" % free_port(), "--resolver",
                 self.dns_resolver(), "--log", log], timeout=20)
        self.assertEqual(p.returncode, 2, p.err)
        self.assertFalse(os.path.exists(os.path.join(d, "elsewhere.log")))
        return p.err.replace(log, "/var/log/embargo/decisions.log")

    def quote_unreadable_config(self):
        # /etc/embargo stands for a directory of the test's, mode 0700 like
        # the docs' (its parent lets anyone through).
        if os.geteuid() != 0:
            self.skipTest("the quoted warning names a directory owned by root (owner 0:0)")
        top = tempfile.mkdtemp(prefix="embargo-docs-")  # the class's directory is 0700
        self.addCleanup(shutil.rmtree, top, True)
        os.chmod(top, 0o755)
        etc = os.path.join(top, "etc", "embargo")
        os.makedirs(etc)
        os.chmod(os.path.dirname(etc), 0o755)
        os.chmod(etc, 0o700)
        conf = os.path.join(etc, "embargo.yaml")
        with open(conf, "w") as f:
            f.write("user: nobody\n")
        os.chmod(conf, 0o644)
        p = run(["config", "check", conf])
        self.assertEqual(p.returncode, 0, p.err)
        return (p.out + p.err).replace(etc, "/etc/embargo")

    def admin_embargo(self):
        """An embargo with the admin endpoint, its clock half a year after
        the Kaspersky list's review; (embargo, config file for `status`)."""
        admin = free_port()
        conf = self.write("admin-%d.yaml" % admin, "admin:\n  listen: 127.0.0.1:%d\n" % admin)
        e = self.start_embargo(now="2027-06-01T00:00:00Z",
                               extra="admin:\n  listen: 127.0.0.1:%d\n" % admin)
        return e, conf

    def quote_stale_warning(self):
        e, _ = self.admin_embargo()
        return e.wait_stderr("is stale:")

    def quote_status_stale_list(self):
        e, conf = self.admin_embargo()
        p = run(["status", "-c", conf])
        self.assertEqual(p.returncode, 0, p.err)
        return p.out

    def quote_liveness(self):
        e, conf = self.admin_embargo()
        p = run(["status", "--live", "-c", conf])
        self.assertEqual(p.returncode, 0, p.err)
        return p.out

    def quote_override_unknown_category(self):
        # The docs' override example, with a category name mistyped.
        conf = self.write("override.yaml", "profile: us-federal\nvendors:\n"
                          "  - builtin: kaspersky\n  - builtin: hikvision\n    override:\n"
                          "      clouds: { after: log }\n")
        p = run(["config", "check", conf])
        self.assertEqual(p.returncode, 2, p.err)
        return p.err

    def quote_verify_other_key(self):
        d = self.signing_dir()
        self.sign(d, 1764305432, os.path.join(d, "lists.bundle"))
        p = run(["lists", "verify", os.path.join(d, "lists.bundle"), "--pubkey",
                 os.path.join(d, "other.key.pub")])
        self.assertEqual(p.returncode, 1, p.err)
        return p.out + p.err

    def quote_verify_digest(self):
        d = self.signing_dir()
        self.sign(d, 1764305432, os.path.join(d, "lists.bundle"), tamper=True)
        p = run(["lists", "verify", os.path.join(d, "lists.bundle"), "--pubkey",
                 os.path.join(d, "lists.key.pub")])
        self.assertEqual(p.returncode, 1, p.err)
        return p.out + p.err

    def quote_mint_totals(self):
        ca = os.path.join(self.tmp, "mint-ca")
        self.assertEqual(run(["ca", "init", "--dir", ca, "--permit", "kaspersky.com"]).returncode,
                         0)
        e = self.start_embargo(extra="certs:\n  ca_dir: %s\ntls_inspect:\n  deny_with: page\n"
                               % ca)
        p = harness.curl(["--cacert", os.path.join(ca, "ca.crt"), "--proxy", e.proxy_url,
                          "-o", os.devnull, "https://s07.upd.kaspersky.com/"])
        self.assertEqual(p.returncode, 0, p.stderr)
        e.check_clean_exit()
        return e.stderr_text()

    def quote_client_rejected(self):
        # A client that does not trust the block-page CA.
        ca = os.path.join(self.tmp, "untrusted-ca")
        self.assertEqual(run(["ca", "init", "--dir", ca, "--permit", "kaspersky.com"]).returncode,
                         0)
        e = self.start_embargo(extra="certs:\n  ca_dir: %s\ntls_inspect:\n  deny_with: page\n"
                               % ca)
        mark = e.log_mark()
        p = harness.curl(["--proxy", e.proxy_url, "https://s07.upd.kaspersky.com/"])
        self.assertNotEqual(p.returncode, 0)
        rec = e.wait_records(lambda r: r.get("error") == "client_rejected_certificate",
                             since=mark)[-1]
        return rec["detail"]

    def reloaded(self, e, text, needle):
        """Writes TEXT as E's configuration, sends SIGHUP, and waits for
        NEEDLE on E's standard error; returns it."""
        with open(e.config_path, "w") as f:
            f.write(text)
        e.proc.send_signal(signal.SIGHUP)
        return e.wait_stderr(needle)

    def quote_reload_rejected(self):
        e = self.start_embargo(extra="user: root")
        return self.reloaded(e, e.config_text + "no_such_key: 1\n", "reload rejected")

    def quote_restart_key(self):
        e = self.start_embargo(extra="user: root")
        return self.reloaded(e, e.config_text + "log_buffer: 1048576\n", "needs a restart")

    def quote_reopen_failed(self):
        # The log's path made a symbolic link, then SIGUSR1.
        e = self.start_embargo(extra="user: root")
        os.rename(e.log_path, e.log_path + ".1")
        os.symlink(e.log_path + ".1", e.log_path)
        e.proc.send_signal(signal.SIGUSR1)
        return e.wait_stderr("cannot reopen the log")

    def quote_bundle_reloaded(self):
        return self.lists_embargo(tamper=False).wait_stderr("in force: policy")

    def quote_bundle_in_force(self):
        return self.lists_embargo(tamper=False).wait_stderr("in force: policy")

def _add_example_tests():
    """One test per example the docs mark."""
    names = sorted({b.marker for b in all_blocks()
                    if b.marker not in (None, "none") and b.marker not in IN_NAMESPACES} |
                   {n[len("example_"):].replace("_", "-") for n in dir(DocsExamplesTest)
                    if n.startswith("example_")})
    for name in names:
        def test(self, name=name):
            self.check_example(name)
        test.__name__ = "test_example_" + name.replace("-", "_")
        test.__doc__ = "The docs' example %s is what the binary prints." % name
        setattr(DocsExamplesTest, test.__name__, test)
    for name in QUOTES:
        def test(self, name=name):
            self.check_quote(name)
        test.__name__ = "test_quote_" + name.replace("-", "_")
        test.__doc__ = "The docs quote the binary's message %s as it prints it." % name
        setattr(DocsExamplesTest, test.__name__, test)


_add_example_tests()


class DocsScanTest(unittest.TestCase):
    """What the docs hold without running anything but reading the list."""

    def test_every_output_block_is_marked(self):
        unmarked = ["%s:%d: %s" % (b.doc, b.line, b.text.split("\n")[0][:80])
                    for b in all_blocks() if b.marker is None and looks_like_output(b.text)]
        self.assertFalse(unmarked, "blocks that look like Embargo's output without an "
                         "<!-- example: NAME --> or <!-- example: none (reason) --> marker:\n"
                         + "\n".join(unmarked))

    def test_markers_are_well_formed(self):
        bad = []
        for b in all_blocks():
            if b.marker is None:
                continue
            if b.marker.startswith("<malformed"):
                bad.append("%s:%d: %s" % (b.doc, b.line, b.marker))
            for k, v in b.options.items():
                if v not in OPTIONS.get(k, ()):
                    bad.append("%s:%d: option %s=%s" % (b.doc, b.line, k, v))
        self.assertFalse(bad, "\n".join(bad))

    def test_every_marked_example_has_a_generator(self):
        names = {b.marker for b in all_blocks()
                 if b.marker not in (None, "none") and b.marker not in IN_NAMESPACES}
        missing = sorted(n for n in names
                         if not hasattr(DocsExamplesTest, "example_" + n.replace("-", "_")))
        self.assertFalse(missing, "examples marked in the docs that no test produces: "
                         + ", ".join(missing))

    def test_every_generator_has_its_block(self):
        names = {b.marker for b in all_blocks()}
        orphans = sorted(n[len("example_"):].replace("_", "-") for n in dir(DocsExamplesTest)
                         if n.startswith("example_") and
                         n[len("example_"):].replace("_", "-") not in names)
        orphans += sorted(n for n in IN_NAMESPACES if n not in names)
        self.assertFalse(orphans, "generators whose example the docs no longer mark: "
                         + ", ".join(orphans))

    def test_rule_references_point_at_list_entries(self):
        with open(KASPERSKY_LIST, encoding="utf-8") as f:
            entries = f.read().split("\n")
        bad = []
        for doc in DOCS:
            with open(os.path.join(SOURCE, doc), encoding="utf-8") as f:
                text = f.read()
            for m in re.finditer(r"kaspersky\.yaml:(\d+)(?::(\d+))?", text):
                line, col = int(m.group(1)), m.group(2)
                where = "%s:%d: %s" % (doc, text.count("\n", 0, m.start()) + 1, m.group(0))
                src = entries[line - 1] if 0 < line <= len(entries) else ""
                start = len(src) - len(src.lstrip())
                if not src.lstrip().startswith("- "):
                    bad.append("%s: line %d is not an entry: %r" % (where, line, src.strip()))
                elif col is not None and int(col) != start + 3:
                    bad.append("%s: the entry on line %d starts at column %d"
                               % (where, line, start + 3))
        self.assertFalse(bad, "rule references that are not where the list has an entry:\n"
                         + "\n".join(bad))


# ---- transparent interception: lines made in network namespaces ---------------


class DocsInterceptTest(test_transparent.Rig):
    """The intercept listener's lines of the docs, made by the router the
    transparent tests build (client, egress running embargo behind the
    rules `embargo rules` prints, origin), with the docs' destinations
    added to the origin."""

    MODE = "intercept"
    PORT = 3129
    # cdn.example resolves to another address than the one the client
    # dials: a dst_mismatch.
    DNS_RECORDS = (("cdn.example", "198.51.100.10", "fd00:203:2::10"),)
    DESTS = ("203.0.113.7", "198.51.100.9")

    @classmethod
    def _setup(cls):
        super()._setup()
        oe, eo = cls.net.links[3], cls.net.links[2]
        for a in cls.DESTS:
            cls.net.ns(cls.net.o, "ip", "addr", "add", a + "/32", "dev", oe)
            cls.net.ns(cls.net.e, "ip", "route", "add", a + "/32", "via",
                       test_transparent.V4["origin"], "dev", eo)

    def test_example_intercept_lines(self):
        blocks = [b for b in all_blocks() if b.marker == "intercept-lines"]
        self.assertEqual(len(blocks), 1)
        b = blocks[0]
        p = self.curl("--resolve", "s07.upd.kaspersky.com:443:203.0.113.7", "-k",
                      "https://s07.upd.kaspersky.com/", timeout=30)
        self.assertIn("alert access denied", p.stderr.decode().lower())
        deny = self.wait_log(lambda r: r.get("host") == "s07.upd.kaspersky.com", "deny")[-1]
        p = self.curl("--resolve", "cdn.example:80:198.51.100.9", "http://cdn.example/",
                      timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        log = self.wait_log(lambda r: r.get("host") == "cdn.example", "mismatch")[-1]
        raw = {}
        for l in harness.read_text(self.log).split("\n"):
            if l.startswith("{"):
                obj = json.loads(l)
                for k, rec in (("deny", deny), ("log", log)):
                    if obj == rec:
                        raw[k] = l
        compare_json(self, b, raw["deny"] + "\n" + raw["log"],
                     "%s:%d: example intercept-lines" % (b.doc, b.line),
                     JSON_VOLATILE["intercept-lines"])


if __name__ == "__main__":
    harness.main()
