"""`embargo report`: the inventory of client machines per vendor, read from
decision logs by the real binary.

A generator writes decision log lines the way proxy/base/log.c does (several
vendors and categories, IPv4 and IPv6 clients, lines before and after each
cutoff, lines without a vendor, malformed lines) and keeps its own count of
what it wrote; every figure in the table, CSV, JSON and HTML outputs must
equal the generator's. Logs are read as plain files, gzip files (one of them
two concatenated gzip members) and standard input. A 1,000,000-line log
(200,000 under ASan) streamed through a pipe checks the counts at scale and
that peak memory does not grow with the number of lines. The HTML report is
opened in headless Chromium, inside a network namespace of its own so it
cannot reach anything: the page must render, the SVG chart must be there, a
screenshot is taken and the numbers of the rendered DOM must equal the log's.
One more test reads the log the real proxy wrote for requests it denied.

EMBARGO_KEEP_TMP=1 keeps the temporary directory (logs, reports, screenshot).
"""

import csv
import datetime
import gzip
import html.parser
import io
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import SANITIZER_MARKERS

DAY_MS = 86400000
START_MS = 1726790400000  # 2024-09-20T00:00:00Z
SPAN_MS = 20 * DAY_MS     # to 2024-10-10

# vendor -> category -> cutoff (None: the category has none), hosts, TLS hosts
VENDORS = {
    "kaspersky": {
        "categories": {"updates": "2024-09-29T04:00:00Z", "new-installs": "2024-07-20T04:00:00Z",
                       "ksn": "2024-09-29T04:00:00Z"},
        "hosts": {"updates": ["dnl-01.geo.kaspersky.com", "s07.upd.kaspersky.com"],
                  "new-installs": ["activation-v2.kaspersky.com"],
                  "ksn": ["ksn-a-1.geoksn.kaspersky.com", "ds.kaspersky.com"]},
    },
    "acme": {
        "categories": {"licensing": "2024-10-05T00:00:00Z", "telemetry": None},
        "hosts": {"licensing": ["lic.acme.example"], "telemetry": ["t.acme.example", "t2.acme.example"]},
    },
}
CLIENTS_V4 = ["10.20.%d.%d" % (i // 5, 10 + i) for i in range(12)]
CLIENTS_V6 = ["2001:db8:7::%x" % (0xa0 + i) for i in range(6)]
JA4S = ["t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d1715h2_5b57614c22b0_3d5424432f57",
        "t12d1209h1_d34a8e72043a_b39be8c56a14"]
AGENTS = ["Kaspersky Endpoint Security/12.3 (Windows NT 10.0; Win64)", "KSC updater/14.2",
          "curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64) <script>alert(1)</script>",
          "=cmd|' /C calc'!A0"]  # a spreadsheet formula: CSV must defuse it
MALFORMED = [b"not json at all", b"{\"time\":\"2024-09-21T00:00:00Z\",\"vendor\":\"kaspersky\"",
             b"[\"an\",\"array\"]", b"{\"time\":\"yesterday\",\"vendor\":\"kaspersky\"}",
             b"{\"time\":\"2024-09-21T00:00:00Z\",\"vendor\":42}",
             b"{\"time\":\"2024-09-21T00:00:00Z\",\"vendor\":\"acme\",\"sni\":\"x\"}",
             b"{\"time\":\"2024-09-21T00:00:00Z\",\"vendor\":\"acme\",\"host\":\"\xff\xfe\"}",
             b"\x00\x01\x02binary", b"{" + b"\"k\":1," * 60000 + b"\"end\":2}"]  # > 256 KiB

RELEASE_LINES = 1000000
ASAN_LINES = 100000


def fmt_ms(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def parse_ms(text):
    t = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    frac = text[20:23] if text[19:20] == "." else "000"
    return int(t.timestamp()) * 1000 + int(frac)


def is_asan():
    return "build-asan" in harness.BINARY or os.environ.get("EMBARGO_ASAN") == "1"


class Expected:
    """The generator's own count: per (vendor, client), exactly what the
    report must say, for the attempts fed in the order embargo reads them."""

    DEST_MAX, JA4_MAX, AGENT_MAX = 64, 16, 16

    def __init__(self):
        self.clients = {}
        self.days = {}
        self.lines = self.malformed = self.no_vendor = 0

    def add(self, a):
        vendor, ip, t, cat, after, dests, ja4, ua = a
        c = self.clients.get((vendor, ip))
        if c is None:
            c = self.clients[(vendor, ip)] = {
                "attempts": 0, "after": 0, "first": t, "last": t, "cats": {},
                "dests": [], "dests_not_kept": 0, "ja4": [], "ja4_not_kept": 0,
                "agents": [], "agents_not_kept": 0}
        c["attempts"] += 1
        c["after"] += after
        c["first"] = min(c["first"], t)
        c["last"] = max(c["last"], t)
        ca = c["cats"].setdefault(cat, [0, 0])
        ca[0] += 1
        ca[1] += after
        for d in dests:
            self._keep(c, "dests", d, self.DEST_MAX)
        if ja4:
            self._keep(c, "ja4", ja4, self.JA4_MAX)
        if ua:
            self._keep(c, "agents", ua, self.AGENT_MAX)
        day = datetime.datetime.fromtimestamp(t // 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
        self.days[(vendor, day)] = self.days.get((vendor, day), 0) + 1

    @staticmethod
    def _keep(c, key, value, cap):
        if value in c[key]:
            return
        if len(c[key]) < cap:
            c[key].append(value)
        else:
            c[key + "_not_kept"] += 1

    def attempts(self, vendor=None):
        return sum(c["attempts"] for (v, _), c in self.clients.items() if vendor in (None, v))


class LogGen:
    """Writes decision log lines like proxy/base/log.c and remembers every attempt."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.conn = 0
        self.attempts = []  # (vendor, ip, t, category, after, dests, ja4, ua) in line order

    def attempt_line(self, t, vendor, ip, category, connect=None):
        rng = self.rng
        self.conn += 1
        cutoff = VENDORS[vendor]["categories"][category]
        after = cutoff is not None and t >= parse_ms(cutoff)
        host = rng.choice(VENDORS[vendor]["hosts"][category])
        client = ("[%s]:%d" if ":" in ip else "%s:%d") % (ip, rng.randrange(1024, 65536))
        connect = rng.random() < 0.5 if connect is None else connect
        d = {"time": fmt_ms(t), "event": "deny" if after else "log", "conn": self.conn,
             "client": client, "listener": "0.0.0.0:3128",
             "method": "CONNECT" if connect else "GET", "host": host,
             "port": 443 if connect else 80, "action": "deny" if after else "log",
             "matched_on": "host", "matched": host, "vendor": vendor, "category": category,
             "pattern": host, "rule": "builtin:config/vendors/%s.yaml:80" % vendor}
        if cutoff is not None:
            d["cutoff"] = cutoff
        d["after_cutoff"] = after
        d["rule_action"] = "deny" if after else "log"
        dests, ja4, ua = [host], None, None
        if connect:
            sni = host if rng.random() < 0.8 else "cdn-%d.%s.example" % (rng.randrange(3), vendor)
            ja4 = rng.choice(JA4S)
            d.update({"tls": "hello", "sni": [sni], "alpn": ["http/1.1"],
                      "tls_versions": ["TLS1.3"], "ech": False, "ja4": ja4})
            dests.append(sni)
        elif rng.random() < 0.8:
            ua = rng.choice(AGENTS)
            d["user_agent"] = ua
        d["policy_time"] = fmt_ms(t)[:19] + "Z"
        d["status"] = 403 if after else 200
        self.attempts.append((vendor, ip, t, category, int(after), dests, ja4, ua))
        return json.dumps(d, separators=(",", ":")).encode()

    def other_line(self, t):
        self.conn += 1
        d = {"time": fmt_ms(t), "event": self.rng.choice(["access", "error"]), "conn": self.conn,
             "client": "10.9.9.9:4444", "listener": "0.0.0.0:3128", "method": "GET",
             "host": "allowed.example", "port": 80, "action": "allow"}
        return json.dumps(d, separators=(",", ":")).encode()

    def random_attempt(self):
        rng = self.rng
        vendor = rng.choice(sorted(VENDORS))
        ip = rng.choice(CLIENTS_V4 + CLIENTS_V6)
        category = rng.choice(sorted(VENDORS[vendor]["categories"]))
        return self.attempt_line(START_MS + rng.randrange(SPAN_MS), vendor, ip, category)

    def part(self, n, other=0.1, malformed=0):
        """N lines in random order: attempts, lines without a vendor, MALFORMED bad ones."""
        lines = []
        for _ in range(n):
            lines.append(self.other_line(START_MS + self.rng.randrange(SPAN_MS))
                         if self.rng.random() < other else self.random_attempt())
        for m in MALFORMED[:malformed]:
            lines.insert(self.rng.randrange(len(lines) + 1), m)
        return lines

    def many_destinations(self, n):
        """One client reaching N distinct names: more than the report keeps."""
        out = []
        for i in range(n):
            line = self.attempt_line(START_MS + i * 1000, "acme", "10.99.0.1", "telemetry",
                                     connect=False)
            d = json.loads(line)
            d["host"] = d["matched"] = "h%03d.acme.example" % i
            self.attempts[-1] = self.attempts[-1][:5] + ([d["host"]],) + self.attempts[-1][6:]
            out.append(json.dumps(d, separators=(",", ":")).encode())
        return out


def expected_of(gen, order, since=None, until=None, vendor=None):
    """The generator's expectation for the attempts ORDER (indexes into gen.attempts)."""
    e = Expected()
    for i in order:
        a = gen.attempts[i]
        if vendor is not None and a[0] != vendor:
            continue
        if since is not None and a[2] < parse_ms(since):
            continue
        if until is not None and a[2] >= parse_ms(until):
            continue
        e.add(a)
    return e


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # exited meanwhile
        pass
    return 0


class BigGen:
    """N attempt lines, fast: one template per kind of line, its own count
    per kind as it writes them."""

    def __init__(self, n):
        self.n = n
        self.counts = {}  # kind of line -> lines written
        self.span = {}    # (vendor, ip) -> [first, last]

    def template(self, key):
        vendor, ip, cat, host, tls, extra, after = key
        cutoff = VENDORS[vendor]["categories"][cat]
        d = {"time": "TIME", "event": "deny" if after else "log", "conn": 0, "client": "CLIENT",
             "listener": "0.0.0.0:3128", "method": "CONNECT" if tls else "GET", "host": host,
             "port": 443 if tls else 80, "action": "deny" if after else "log",
             "matched_on": "host", "matched": host, "vendor": vendor, "category": cat,
             "pattern": host, "rule": "builtin:config/vendors/%s.yaml:80" % vendor}
        if cutoff:
            d["cutoff"] = cutoff
        d["after_cutoff"] = after
        d["rule_action"] = d["action"]
        if tls:
            d.update({"tls": "hello", "sni": [extra[0]], "alpn": ["http/1.1"],
                      "tls_versions": ["TLS1.3"], "ech": False, "ja4": extra[1]})
        else:
            d["user_agent"] = extra
        d["policy_time"] = "PTIME"
        d["status"] = 403 if after else 200
        text = json.dumps(d, separators=(",", ":")).replace("%", "%%")
        client = ("[%s]" if ":" in ip else "%s") % ip + ":%d"
        return (text.replace('"TIME"', '"%s.%03dZ"').replace('"CLIENT"', '"' + client + '"')
                .replace('"conn":0', '"conn":%d').replace('"PTIME"', '"%sZ"'))

    PERIOD = 180  # every choice below repeats with i % 180

    def time(self, i):
        return START_MS + i * SPAN_MS // self.n

    def kind(self, i, cats, ips):
        vendor = "kaspersky" if i % 3 else "acme"
        cat = cats[vendor][i % len(cats[vendor])]
        hosts = VENDORS[vendor]["hosts"][cat]
        host = hosts[i % len(hosts)]
        if i % 2:
            extra = ("cdn-%d.%s.example" % (i % 4, vendor) if i % 5 == 0 else host, JA4S[i % 3])
        else:
            extra = AGENTS[i % len(AGENTS)]
        return (vendor, ips[(i * 7) % len(ips)], cat, host, bool(i % 2), extra)

    def lines(self):
        ips = CLIENTS_V4 + CLIENTS_V6
        cats = {v: sorted(VENDORS[v]["categories"]) for v in VENDORS}
        kinds = []
        for r in range(self.PERIOD):
            k = self.kind(r, cats, ips)
            t = VENDORS[k[0]]["categories"][k[2]]
            cutoff = parse_ms(t) if t else None
            kinds.append((k, cutoff, self.template(k + (False,)), self.template(k + (True,))))
        counts = [0] * (2 * self.PERIOD)
        sec, stamp = None, None
        for i in range(self.n):
            t = self.time(i)
            r = i % self.PERIOD
            k, cutoff, before, after_tmpl = kinds[r]
            after = cutoff is not None and t >= cutoff
            counts[2 * r + after] += 1
            if t // 1000 != sec:
                sec = t // 1000
                stamp = fmt_ms(sec * 1000)[:19]
            yield (after_tmpl if after else before) % (stamp, t % 1000, i, 1024 + i % 60000, stamp)
        for r, (k, _, _, _) in enumerate(kinds[:self.n]):
            last = r + (self.n - 1 - r) // self.PERIOD * self.PERIOD  # times grow with i
            sp = self.span.setdefault((k[0], k[1]), [self.time(r), self.time(last)])
            sp[0], sp[1] = min(sp[0], self.time(r)), max(sp[1], self.time(last))
            for after in (0, 1):
                if counts[2 * r + after]:
                    key = k + (bool(after),)
                    self.counts[key] = self.counts.get(key, 0) + counts[2 * r + after]

    def write_to(self, pipe):
        try:
            batch = []
            for line in self.lines():
                batch.append(line)
                if len(batch) == 4000:
                    pipe.write(("\n".join(batch) + "\n").encode())
                    batch = []
            if batch:
                pipe.write(("\n".join(batch) + "\n").encode())
        except BrokenPipeError:
            pass
        finally:
            try:
                pipe.close()
            except BrokenPipeError:
                pass

    def expected(self):
        e = Expected()
        for (vendor, ip), (first, last) in self.span.items():
            e.clients[(vendor, ip)] = {"attempts": 0, "after": 0, "first": first, "last": last,
                                       "cats": {}, "dests": set(), "ja4": set(), "agents": set()}
        for (vendor, ip, cat, host, tls, extra, after), n in self.counts.items():
            c = e.clients[(vendor, ip)]
            c["attempts"] += n
            c["after"] += n * after
            ca = c["cats"].setdefault(cat, [0, 0])
            ca[0] += n
            ca[1] += n * after
            c["dests"].add(host)
            if tls:
                c["dests"].add(extra[0])
                c["ja4"].add(extra[1])
            else:
                c["agents"].add(extra)
        return e


# ---- reading the outputs back -------------------------------------------------------

def from_json(doc):
    got = {}
    for v in doc["vendors"]:
        for c in v["clients"]:
            got[(v["vendor"], c["client"])] = {
                "attempts": c["attempts"], "after": c["after_cutoff"],
                "first": parse_ms(c["first_seen"]), "last": parse_ms(c["last_seen"]),
                "cats": {k["category"]: [k["attempts"], k["after_cutoff"]] for k in c["categories"]},
                "dests": c["destinations"], "dests_not_kept": c["destinations_not_kept"],
                "ja4": c["ja4"], "ja4_not_kept": c["ja4_not_kept"],
                "agents": c["user_agents"], "agents_not_kept": c["user_agents_not_kept"]}
    return got


CATEGORY_RE = re.compile(r"(\S+) (\d+) \((\d+) after cutoff\)")


def split_list(text, sep):
    if text in ("", "-"):
        return []
    return [x for x in text.split(sep) if not x.startswith("+")]


def from_csv(text):
    got = {}
    for r in csv.DictReader(io.StringIO(text)):
        got[(r["vendor"], r["client"])] = {
            "attempts": int(r["attempts"]), "after": int(r["after_cutoff"]),
            "first": parse_ms(r["first_seen"]), "last": parse_ms(r["last_seen"]),
            "cats": {m[0]: [int(m[1]), int(m[2])] for m in CATEGORY_RE.findall(r["categories"])},
            "dests": set(split_list(r["destinations"], " | ")),
            "dests_not_kept": int(r["destinations_not_kept"]),
            "ja4": set(split_list(r["ja4"], " | ")),
            "agents": set(a.lstrip("'") for a in split_list(r["user_agents"], " | "))}
    return got


def from_table(text):
    """Rows of the aligned table, cut at the heading's column positions."""
    lines = text.split("\n")
    head = lines[0]
    names = ["VENDOR", "CLIENT", "FIRST SEEN", "LAST SEEN", "ATTEMPTS", "AFTER CUTOFF",
             "CATEGORIES", "DESTINATIONS", "JA4", "USER AGENTS"]
    starts = [head.index(n) for n in names]
    # right-aligned numbers end where their heading ends
    got = {}
    for line in lines[1:]:
        if not line.strip():
            break
        cells = [line[starts[i]:starts[i + 1] if i + 1 < len(starts) else None].strip()
                 for i in range(len(names))]
        got[(cells[0], cells[1])] = {
            "attempts": int(cells[4]), "after": int(cells[5]),
            "first": parse_ms(cells[2]), "last": parse_ms(cells[3]),
            "cats": {m[0]: [int(m[1]), int(m[2])] for m in CATEGORY_RE.findall(cells[6])},
            "dests": set(split_list(cells[7], ", ")), "ja4": set(split_list(cells[8], ", ")),
            "agents": set(split_list(cells[9], ", "))}
    return got, lines


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], []

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def all_text(self):
        return "".join(self.text) + "".join(c.all_text() for c in self.children)

    def find(self, tag=None, cls=None):
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.classes()):
                yield c
            yield from c.find(tag, cls)


class TreeParser(html.parser.HTMLParser):
    VOID = {"br", "meta", "link", "img", "input", "hr", "wbr", "area", "base", "col"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {}, None)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def parse_dom(text):
    p = TreeParser()
    p.feed(text)
    p.close()
    return p.root


class ReportTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embargo-report-")
        gen = cls.gen = LogGen(seed=7)
        parts, cls.bounds = [], []
        for make in (lambda: gen.part(700, malformed=4), lambda: gen.part(600, malformed=3),
                     lambda: gen.part(400),
                     lambda: gen.many_destinations(80) + gen.part(300, malformed=2)):
            first = len(gen.attempts)
            parts.append(make())
            cls.bounds.append((first, len(gen.attempts)))  # attempts of each part
        cls.plain = cls.write("a.log", parts[0])
        cls.gz = cls.write_gz("b.log.gz", [parts[1]])
        cls.stdin_lines = parts[2]
        half = len(parts[3]) // 2  # two gzip members, as `cat x.gz y.gz` makes
        cls.gz2 = cls.write_gz("c.log.gz", [parts[3][:half], parts[3][half:]])
        cls.nlines = sum(len(p) for p in parts)
        cls.nmalformed = 9
        cls.nother = sum(1 for p in parts for line in p if b'"event":"access"' in line
                         or b'"event":"error"' in line)

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("EMBARGO_KEEP_TMP") == "1":  # keep logs, reports and the screenshot
            print("kept %s" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def write(cls, name, lines):
        path = os.path.join(cls.tmp, name)
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        return path

    @classmethod
    def write_gz(cls, name, members):
        path = os.path.join(cls.tmp, name)
        with open(path, "wb") as f:
            for m in members:
                f.write(gzip.compress(b"\n".join(m) + b"\n"))
        return path

    def report(self, *args, stdin=b"", timeout=120):
        p = subprocess.run([harness.BINARY, "report"] + list(args), input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        err = p.stderr.decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err)
        return p.returncode, p.stdout.decode("utf-8"), err

    def all_inputs(self, *args):
        """The four logs in this order: plain, gzip, standard input, two-member gzip."""
        rc, out, err = self.report(*args, self.plain, self.gz, "-", self.gz2,
                                   stdin=b"\n".join(self.stdin_lines) + b"\n")
        self.assertEqual(rc, 0, err)
        return out, err

    def expected(self, **flt):
        return expected_of(self.gen, range(len(self.gen.attempts)), **flt)

    def assert_clients(self, got, exp, fields, as_sets=False):
        want = {}
        for k, c in exp.clients.items():
            want[k] = {f: (set(c[f]) if as_sets and isinstance(c[f], list) else c[f])
                       for f in fields}
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            have = {f: (set(got[k][f]) if as_sets and isinstance(got[k][f], list) else got[k][f])
                    for f in fields}
            self.assertEqual(have, want[k], k)

    def assert_summary(self, err, attempts, outside=0):
        m = re.search(r"(\d+) lines read, (\d+) attempts counted, (\d+) left out by "
                      r"--since/--until/--vendor, (\d+) without a vendor, (\d+) malformed", err)
        self.assertIsNotNone(m, err)
        self.assertEqual([int(x) for x in m.groups()],
                         [self.nlines, attempts, outside, self.nother, self.nmalformed], err)

    # ---- formats

    def test_json_equals_the_generator(self):
        out, err = self.all_inputs("--format", "json")
        doc = json.loads(out)
        exp = self.expected()
        self.assert_clients(from_json(doc), exp,
                            ["attempts", "after", "first", "last", "cats", "dests",
                             "dests_not_kept", "ja4", "ja4_not_kept", "agents", "agents_not_kept"])
        self.assertEqual(doc["lines"], {"read": self.nlines, "attempts": exp.attempts(),
                                        "outside": 0, "no_vendor": self.nother,
                                        "malformed": self.nmalformed})
        days = {(v["vendor"], d["day"]): d["attempts"] for v in doc["vendors"] for d in v["days"]}
        self.assertEqual(days, exp.days)
        for v in doc["vendors"]:
            self.assertEqual(v["attempts"], exp.attempts(v["vendor"]))
            cut = {(k["category"], k["cutoff"]) for k in v["cutoffs"]}
            want = {(c, (t[:19] + ".000Z") if t else None)
                    for c, t in VENDORS[v["vendor"]]["categories"].items()}
            self.assertEqual(cut, want)
        bounded = exp.clients[("acme", "10.99.0.1")]
        self.assertEqual(len(bounded["dests"]), 64)
        self.assertGreaterEqual(bounded["dests_not_kept"], 16)
        self.assert_summary(err, exp.attempts())
        print("json: %d clients, %d attempts, %d malformed lines reported"
              % (len(exp.clients), exp.attempts(), doc["lines"]["malformed"]))

    def test_csv_equals_the_generator(self):
        out, _ = self.all_inputs("--format", "csv")
        exp = self.expected()
        self.assertTrue(out.startswith("vendor,client,first_seen,last_seen,attempts,after_cutoff,"))
        self.assert_clients(from_csv(out), exp,
                            ["attempts", "after", "first", "last", "cats", "dests",
                             "dests_not_kept", "ja4", "agents"], as_sets=True)
        self.assertIn(",'=cmd|' /C calc'!A0", out.replace('"', ""))
        self.assertNotIn(",=cmd", out.replace('"', ""))

    def test_table_equals_the_generator(self):
        out, err = self.all_inputs()
        exp = self.expected()
        got, lines = from_table(out)
        self.assert_clients(got, exp, ["attempts", "after", "first", "last", "cats", "ja4",
                                       "agents"], as_sets=True)
        starts = [m.start() for m in re.finditer(r"(?<=  )[A-Z]", lines[0])]
        self.assertEqual(len(starts), 9)
        for line in lines[1:len(got) + 1]:  # every cell padded to its column's width
            self.assertEqual([line[s - 2:s] for s in starts], ["  "] * 9, line)
        for vendor in VENDORS:
            n = sum(1 for k in exp.clients if k[0] == vendor)
            self.assertIn("%s: %d clients, %d attempts" % (vendor, n, exp.attempts(vendor)), out)
        self.assertIn("first 64 destinations", out)
        self.assert_summary(err, exp.attempts())

    # ---- filters and inputs

    def test_since_until_and_vendor_filter(self):
        since, until = "2024-09-25T12:00:00Z", "2024-10-03T06:30:00.500Z"
        for args, flt in ((["--since", since], {"since": since}),
                          (["--until", until], {"until": until}),
                          (["--since", since, "--until", until, "--vendor", "kaspersky"],
                           {"since": since, "until": until, "vendor": "kaspersky"}),
                          (["--vendor", "acme"], {"vendor": "acme"})):
            out, err = self.all_inputs("--format", "json", *args)
            doc = json.loads(out)
            exp = self.expected(**flt)
            self.assert_clients(from_json(doc), exp, ["attempts", "after", "first", "last", "cats"])
            self.assertEqual(doc["lines"]["attempts"], exp.attempts())
            self.assert_summary(err, exp.attempts(), self.expected().attempts() - exp.attempts())
            if "vendor" in flt:
                self.assertEqual({v["vendor"] for v in doc["vendors"]}, {flt["vendor"]})

    def test_standard_input_alone(self):
        with open(self.gz, "rb") as f:  # gzip data on standard input is read too
            rc, out, err = self.report("--format", "json", stdin=f.read())
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["inputs"], ["-"])
        self.assertEqual(doc["lines"]["malformed"], 3)  # the second part's bad lines
        exp = expected_of(self.gen, range(*self.bounds[1]))
        self.assert_clients(from_json(doc), exp, ["attempts", "after", "first", "last", "cats",
                                                  "dests", "ja4", "agents"])

    def test_unreadable_inputs_are_errors_but_the_rest_is_reported(self):
        truncated = os.path.join(self.tmp, "truncated.log.gz")
        with open(self.gz, "rb") as f:
            data = f.read()
        with open(truncated, "wb") as f:
            f.write(data[:len(data) // 2])
        missing = os.path.join(self.tmp, "missing.log")
        rc, out, err = self.report("--format", "json", self.plain, missing, truncated)
        self.assertEqual(rc, 1, err)
        self.assertIn("missing.log: No such file or directory", err)
        self.assertIn("truncated.log.gz: truncated gzip data", err)
        self.assertGreater(json.loads(out)["lines"]["attempts"], 0)
        rc, _, err = self.report(self.tmp)
        self.assertEqual(rc, 1, err)
        self.assertIn(self.tmp, err)

    def test_bad_options_are_usage_errors(self):
        for args, text in ((["--format", "xml"], "--format"), (["--since", "yesterday"], "--since"),
                           (["--until", "2024-13-01T00:00:00Z"], "--until"), (["--bogus"], "")):
            rc, out, err = self.report(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(text, err)
            self.assertIn("Usage: embargo report", err)
            self.assertEqual(out, "")

    def test_nothing_to_report(self):
        rc, out, err = self.report(stdin=b"")
        self.assertEqual(rc, 0, err)
        self.assertIn("No attempt", out)
        rc, out, err = self.report("--format", "json", "--vendor", "nobody", self.plain)
        self.assertEqual(json.loads(out)["vendors"], [])

    # ---- scale

    def test_a_million_lines_stream_in_bounded_memory(self):
        big = ASAN_LINES if is_asan() else RELEASE_LINES
        small = big // 10
        rss_small, _ = self.run_big(small)
        rss_big, secs = self.run_big(big)
        print("report over %d lines: peak RSS %d KiB (over %d lines: %d KiB), %.1f s"
              % (big, rss_big, small, rss_small, secs))
        # The inventory holds 2 vendors x 18 clients with bounded lists: well
        # under 1 MiB. What remains is the process itself (libc, OpenSSL,
        # jansson, zlib: a few MiB), the 256 KiB line buffer, and under ASan
        # its shadow memory and a quarantine limited to 16 MiB below. The log
        # is about 550 bytes a line (550 MB for a million): keeping it, or
        # anything per line, would break both bounds.
        bound = 128 * 1024 if is_asan() else 16 * 1024
        self.assertLess(rss_big, bound)
        self.assertLess(rss_big - rss_small, 2 * 1024, "ten times the lines, more memory")

    def run_big(self, nlines):
        """Streams NLINES generated lines into `embargo report` through a pipe;
        checks its counts; returns (peak RSS in KiB, seconds)."""
        gen = BigGen(nlines)
        env = dict(os.environ)
        if is_asan():
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
        out_path = os.path.join(self.tmp, "big.json")
        err_path = os.path.join(self.tmp, "big.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen([harness.BINARY, "report", "--format", "json"],
                                 stdin=subprocess.PIPE, stdout=out, stderr=err, env=env)
        start = time.monotonic()
        feeder = threading.Thread(target=gen.write_to, args=(p.stdin,))
        feeder.start()
        # VmHWM is the peak RSS of the process since its exec (the rusage of
        # a child spawned from this interpreter would also count the
        # interpreter's pages it borrowed before exec). Sample it until exit.
        peak, usage = 0, None
        while usage is None and time.monotonic() - start < 300:
            peak = max(peak, vm_hwm_kb(p.pid))
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                p.returncode, usage = os.waitstatus_to_exitcode(status), ru
            else:
                time.sleep(0.01)
        if usage is None:
            p.kill()
            p.wait(timeout=30)
            self.fail("embargo report still running after 300 s")
        feeder.join(timeout=30)
        secs = time.monotonic() - start
        print("%d lines: %.1f s of CPU in embargo report, %.1f s in all"
              % (nlines, usage.ru_utime + usage.ru_stime, secs))
        with open(err_path, encoding="utf-8", errors="replace") as f:
            err = f.read()
        self.assertEqual(p.returncode, 0, err)
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, err)
        with open(out_path) as f:
            doc = json.load(f)
        self.assertEqual(doc["lines"]["read"], nlines)
        self.assertEqual(doc["lines"]["malformed"], 0)
        self.assertGreater(peak, 0)
        self.assert_clients(from_json(doc), gen.expected(),
                            ["attempts", "after", "first", "last", "cats", "dests", "ja4",
                             "agents"], as_sets=True)
        return peak, secs

    # ---- HTML in a browser

    def html_report(self):
        out, _ = self.all_inputs("--format", "html")
        self.assertTrue(out.startswith("<!DOCTYPE html>"))
        self.assertNotIn("<script", out)
        self.assertNotIn("<script>alert", out)  # a user agent's markup is escaped
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", out)
        self.assertIsNone(re.search(r"\b(src|href)\s*=|url\(|@import", out), "no external assets")
        return out

    def test_html_report_numbers(self):
        """The page as written (every build, ASan included): its numbers."""
        self.check_rendered(parse_dom(self.html_report()))

    def test_html_report_renders_in_chromium(self):
        chromium = shutil.which("chromium")
        if chromium is None:
            self.skipTest("chromium is not installed (Debian package chromium)")
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
            self.skipTest("cannot create a network namespace (unshare -n) to isolate chromium")
        out = self.html_report()
        page = os.path.join(self.tmp, "report.html")
        with open(page, "w") as f:
            f.write(out)
        shot = os.path.join(self.tmp, "report.png")
        self.chromium(chromium, "--window-size=1280,2200", "--screenshot=" + shot, page)
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 20000, "the screenshot is not a blank page")
        print("screenshot of the HTML report: %s (%d bytes)" % (shot, len(png)))
        dom = self.chromium(chromium, "--dump-dom", page)
        self.check_rendered(parse_dom(dom))

    def chromium(self, chromium, *args):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        url = "file://" + args[-1]
        # A network namespace of its own: the browser cannot reach anything,
        # whatever its background services try.
        p = subprocess.run(["unshare", "-n", chromium, "--headless", "--no-sandbox",
                            "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--user-data-dir=" + profile] + list(args[:-1])
                           + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
        self.assertEqual(p.returncode, 0, p.stderr.decode("utf-8", "replace")[-3000:])
        return p.stdout.decode("utf-8")

    def check_rendered(self, root):
        exp = self.expected()
        self.assertEqual(next(root.find("title")).all_text(),
                         "Embargo report: machines still calling banned vendors")
        total = next(root.find("span", "total")).all_text()
        self.assertEqual(int(total), exp.attempts())
        got, seen = {}, set()
        for sec in root.find("section", "vendor"):
            vendor = sec.attrs["data-vendor"]
            seen.add(vendor)
            self.assertEqual(int(next(sec.find("b", "attempts")).all_text()), exp.attempts(vendor))
            svg = next(sec.find("svg"), None)
            self.assertIsNotNone(svg, "chart of %s" % vendor)
            bars = {b.attrs["data-day"]: int(b.attrs["data-attempts"]) for b in svg.find("rect", "bar")}
            self.assertEqual(bars, {d: n for (v, d), n in exp.days.items() if v == vendor})
            for b in svg.find("rect", "bar"):
                self.assertEqual(next(b.find("title")).all_text(),
                                 "%s: %s attempts" % (b.attrs["data-day"], b.attrs["data-attempts"]))
            cutoffs = {line.attrs["data-cutoff"][:10] for line in svg.find("line", "cutoff")}
            inside = {t[:10] for t in VENDORS[vendor]["categories"].values()
                      if t and START_MS <= parse_ms(t) < START_MS + SPAN_MS}
            self.assertEqual(cutoffs, inside, "cutoff dates marked for %s" % vendor)
            for row in sec.find("tr", "client"):
                cell = {c: next(row.find("td", c)).all_text() for c in
                        ("addr", "first", "last", "attempts", "after")}
                got[(vendor, cell["addr"])] = {
                    "attempts": int(cell["attempts"]), "after": int(cell["after"]),
                    "first": parse_ms(cell["first"]), "last": parse_ms(cell["last"])}
        self.assertEqual(seen, set(VENDORS))
        self.assert_clients(got, exp, ["attempts", "after", "first", "last"])
        self.assertEqual(int(next(root.find("span", "malformed")).all_text()), self.nmalformed)


class ReportOfProxyLogTest(harness.EmbargoTestCase):
    """The log the real proxy writes, read back by `embargo report`."""

    def test_report_counts_what_the_proxy_denied(self):
        hosts = ["dnl-01.geo.kaspersky.com", "s07.upd.kaspersky.com", "dnl-01.geo.kaspersky.com"]
        for h in hosts:
            r = self.get("http://%s/" % h)
            self.assertEqual(r.status, 403)
        self.embargo.wait_records(lambda x: x.get("vendor") == "kaspersky", count=len(hosts))
        records = [x for x in self.embargo.records() if x.get("vendor")]
        p = subprocess.run([harness.BINARY, "report", "--format", "json", self.embargo.log_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["lines"]["malformed"], 0)
        (vendor,) = doc["vendors"]
        (client,) = vendor["clients"]
        self.assertEqual((vendor["vendor"], client["client"]), ("kaspersky", "127.0.0.1"))
        self.assertEqual(client["attempts"], len(records))
        self.assertEqual(client["after_cutoff"], sum(1 for x in records if x["after_cutoff"]))
        self.assertEqual(sorted(client["destinations"]), sorted(set(hosts)))
        self.assertEqual(client["first_seen"], min(x["time"] for x in records))
        self.assertEqual(client["last_seen"], max(x["time"] for x in records))


class ReportCsvFormulaTest(unittest.TestCase):
    """A defused CSV cell stays one cell: the "'" that stops a spreadsheet
    from running a hostile user agent as a formula goes inside the quotes,
    not before them (where it made the quotes literal and the commas split
    the cell)."""

    def test_a_formula_with_commas_and_quotes_stays_one_cell(self):
        agent = '=HYPERLINK("http://x.example/?a,b","c")'
        line = json.dumps({"time": "2026-12-01T00:00:00Z", "event": "deny", "vendor": "kaspersky",
                           "client": "10.0.0.1:5", "category": "updates", "host": "-x,y",
                           "user_agent": agent})
        p = subprocess.run([harness.BINARY, "report", "--format", "csv"],
                           input=(line + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        header, row = list(csv.reader(io.StringIO(p.stdout.decode(), newline="")))
        self.assertEqual(len(row), len(header), row)
        cells = dict(zip(header, row))
        self.assertEqual(cells["user_agents"], "'" + agent)
        self.assertEqual(cells["destinations"], "'-x,y")


if __name__ == "__main__":
    harness.main()
