"""The decision log stays one JSON object per line whatever bytes clients
send: control bytes, quotes, backslashes and non-ASCII in the target, the
method and the authority; very long targets are truncated, still JSON.

The log file is only ever the file named: a symbolic link planted at its
path (dangling or not), a file of another user and a hard link are refused
at start, and a symbolic link planted before SIGUSR1 is refused while the
old file stays in use; whatever they point at is left untouched. A FIFO no
process reads, planted at the path, is refused at start and on SIGUSR1
instead of holding Embargo (or its main loop) in open() for ever."""

import json
import os
import pwd
import re
import shutil
import signal
import struct
import tempfile

import harness
from harness import EmbargoTestCase, RawClient, http_get, wait_until

def client_hello(sni):
    """A minimal TLS ClientHello whose server_name is the raw bytes SNI."""
    ext_sni = struct.pack(">HBH", len(sni) + 3, 0, len(sni)) + sni
    exts = struct.pack(">HH", 0, len(ext_sni)) + ext_sni
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" +
            struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


HOSTILE = [
    b"GET http://it's$(x)!.test/ HTTP/1.1\r\n\r\n",
    b"GET http://s07.upd.kaspersky.com/%00%22?a='$!&b=%5C HTTP/1.1\r\n\r\n",
    b"GET http://a%22b%5Cc%00.test/ HTTP/1.1\r\n\r\n",
    b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n" + client_hello(b'a"b\\c\x01\xff.test'),
    b"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n" + client_hello(b's07.upd.kaspersky.com\x00"\\'),
    b'GET http://a"b\\c.test/ HTTP/1.1\r\nHost: x\r\n\r\n',
    b'GET http://q"uo\\te"s.kaspersky.com/ HTTP/1.1\r\n\r\n',
    b"GET http://\x01\x02\x1b[31mred.test/ HTTP/1.1\r\n\r\n",
    b"GET http://tab\there.test/ HTTP/1.1\r\n\r\n",
    b'G"E\\T http://allowed.test/ HTTP/1.1\r\n\r\n',
    b"\xff\xfe http://allowed.test/ HTTP/1.1\r\n\r\n",
    b"G\x00T http://allowed.test/ HTTP/1.1\r\n\r\n",
    "GET http://été.test/ HTTP/1.1\r\n\r\n".encode("utf-8"),
    b"GET http://\xc3\x28\xa0\xa1.test/ HTTP/1.1\r\n\r\n",
    b"GET http://" + b'"\\' * 3000 + b".test/ HTTP/1.1\r\n\r\n",
    b"GET http://" + b"\x01" * 5000 + b"/ HTTP/1.1\r\n\r\n",
    b'CONNECT a"\\b\x7f:443 HTTP/1.1\r\n\r\n',
    b"CONNECT \xe2\x80\xae\xe2\x80\x8b:443 HTTP/1.1\r\n\r\n",
    b'GET http://s07.upd.kaspersky.com/\x00"\\\xff\r HTTP/1.1\r\n\r\n',
    b"GET http://s07.upd.kaspersky.com/%22%5C%00 HTTP/1.1\r\nX: \"\\\x7f\xff\r\n\r\n",
    b"GET http://allowed.test:%d/\xff\xfe\"\\ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
    b"GET http://s07.upd.kaspersky.com/ HTTP/1.1\r\nUser-Agent: \"\\\x01\xff" + b"u" * 3000 +
    b"\r\n\r\n",
]


class HostileBytesTest(EmbargoTestCase):
    CONFIG_KW = {"extra": "access_log: true"}

    def test_user_agent_of_a_denied_request_is_logged(self):
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(b"GET http://s07.upd.kaspersky.com/bases/ HTTP/1.1\r\n"
                   b"User-Agent: KAVUpdater/11.0 (Windows)\r\n\r\n")
            self.assertEqual(c.read_response().status, 403)
        d = self.embargo.wait_records(lambda r: r.get("user_agent") == "KAVUpdater/11.0 (Windows)")
        self.assertEqual(d[-1]["event"], "deny")

    def test_hostile_requests_produce_valid_json_lines(self):
        answered = 0
        for raw in HOSTILE:
            if b"%d" in raw:
                raw = raw.replace(b"%d", str(self.origin.port).encode())
            with RawClient(self.embargo.port, timeout=10) as c:
                c.send(raw)
                try:
                    r = c.read_response("CONNECT" if raw.startswith(b"CONNECT") else "GET")
                    answered += 1
                    self.assertIn(r.status, (200, 400, 403, 502), (raw[:80], r))
                except ConnectionError:
                    pass  # closing on garbage is acceptable; the log is what is checked
        self.assert_healthy()
        self.embargo.log_barrier()  # every line made so far is in the file
        with open(self.embargo.log_path, "rb") as f:
            raw_log = f.read()
        self.assertTrue(raw_log.endswith(b"\n"))
        lines = [x for x in raw_log.split(b"\n")[:-1]
                 if harness.LOG_BARRIER_AGENT.encode() not in x]
        for line in lines:
            self.assertTrue(all(0x20 <= b < 0x7f for b in line),
                            "raw control or non-ASCII byte in log line: %r" % line[:300])
            obj = json.loads(line.decode("ascii"))
            self.assertIsInstance(obj, dict)
            self.assertIn("event", obj)
            self.assertIn("time", obj)
        recs = self.embargo.records()
        self.assertEqual(len(recs), len(lines))
        self.assertGreaterEqual(len(recs), answered)
        # Targets the parser lets through but the host check rejects are
        # logged as sent, escaped and round-tripping through JSON.
        hosts = [x.get("host", "") for x in recs]
        self.assertIn("http://it's$(x)!.test/", hosts)
        self.assertIn("http://a%22b%5Cc%00.test/", hosts)
        # The kaspersky request with a hostile path is a clean deny; the
        # hellos with hostile server names are refused as malformed.
        denies = [x for x in recs if x.get("event") == "deny"]
        self.assertEqual(len([x for x in denies if x["host"] == "s07.upd.kaspersky.com"]), 1,
                         denies)
        self.assertEqual(len([x for x in denies if x.get("tls") == "malformed"]), 2, denies)
        # Every line of an error carries its status.
        for x in recs:
            if x["event"] == "error":
                self.assertIsInstance(x.get("status"), int, x)


class LogFileTest(EmbargoTestCase):
    """A log directory the runtime user can write (as SIGUSR1 reopening
    needs) lets it plant things at the log's path; Embargo, started as root,
    must not write through them."""

    PRECIOUS = b"root's own file\n"
    agents = 0

    def setUp(self):
        super().setUp()
        # Outside the class's directory, which only root may enter.
        self.dir = tempfile.mkdtemp(prefix="embargo-logdir-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.target = os.path.join(self.dir, "target")
        with open(self.target, "wb") as f:
            f.write(self.PRECIOUS)
        os.chmod(self.target, 0o600)

    def embargo_at(self, workdir):
        e = harness.Embargo(workdir, harness.make_config(), self.dns.port)
        self.addCleanup(e.stop)
        return e

    def agent(self):
        type(self).agents += 1
        return "log-file-test/%d" % type(self).agents

    def assert_refused_at_start(self, e, reason):
        """E does not start, saying REASON; if it does, it is shown writing
        where it should not (a denied request's line)."""
        try:
            e.start()
        except RuntimeError as err:
            msg = str(err)
            self.assertIn("exited with 2 at start", msg)
            self.assertRegex(msg, r"embargo: cannot open the log: %s" % reason)
            for m in harness.SANITIZER_MARKERS:
                self.assertNotIn(m, msg)
            return
        agent = self.agent()
        http_get(e.port, "http://s07.upd.kaspersky.com/", headers=[("User-Agent", agent)])
        wait_until(lambda: agent.encode() in open(self.target, "rb").read(), 10,
                   what="the decision line in the planted file's target")
        self.fail("embargo started and wrote its log to %s" % self.target)

    def assert_untouched(self):
        with open(self.target, "rb") as f:
            self.assertEqual(f.read(), self.PRECIOUS)

    def test_symlink_at_the_log_path_is_refused_at_start(self):
        e = self.embargo_at(self.dir)
        os.symlink(self.target, e.log_path)
        self.assert_refused_at_start(e, re.escape(e.log_path) + " is a symbolic link: refused")
        self.assert_untouched()

    def test_dangling_symlink_creates_nothing(self):
        e = self.embargo_at(self.dir)
        elsewhere = os.path.join(self.dir, "created-elsewhere")
        os.symlink(elsewhere, e.log_path)
        try:
            e.start()
        except RuntimeError as err:
            self.assertIn("is a symbolic link: refused", str(err))
        else:
            self.fail("embargo started with its log a dangling symbolic link")
        self.assertFalse(os.path.lexists(elsewhere), "a file was created through the link")

    def test_hard_link_at_the_log_path_is_refused_at_start(self):
        e = self.embargo_at(self.dir)
        os.link(self.target, e.log_path)
        self.assert_refused_at_start(e, re.escape(e.log_path) + r" has 2 names \(hard links\)")
        self.assert_untouched()

    def test_log_file_of_another_user_is_refused_at_start(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give the log file to another user")
        e = self.embargo_at(self.dir)
        with open(e.log_path, "wb") as f:
            f.write(self.PRECIOUS)
        os.chown(e.log_path, 54321, 54321)
        self.target = e.log_path
        self.assert_refused_at_start(e, re.escape(e.log_path) + " belongs to uid 54321, "
                                     r"neither root nor the user Embargo runs as \(uid \d+\)")
        self.assert_untouched()

    def test_a_fifo_nobody_reads_is_refused_at_start(self):
        """Regression: a FIFO planted at the log's path (no process reading
        it) held Embargo in open() for ever: it never started, and no
        error said why."""
        e = self.embargo_at(self.dir)
        os.mkfifo(e.log_path, 0o600)
        self.assert_refused_at_start(e, re.escape(e.log_path) + " is a FIFO no process reads: "
                                     "refused")

    def test_sigusr1_refuses_a_planted_fifo_and_keeps_serving(self):
        """Regression: SIGUSR1 with a FIFO planted at the log's path blocked
        the main loop in open() (signals, reloads and the admin endpoint's
        probes with it). The FIFO is refused and the old file kept."""
        if os.geteuid() != 0:
            self.skipTest("needs root: Embargo drops to nobody, who owns the log directory")
        nobody = pwd.getpwnam("nobody")
        logdir = os.path.join(self.dir, "logs")
        os.mkdir(logdir, 0o755)
        os.chown(logdir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.dir, 0o755)
        e = self.embargo_at(logdir).start()
        self.addCleanup(e.check_clean_exit)
        rotated = e.log_path + ".1"
        os.rename(e.log_path, rotated)
        os.mkfifo(e.log_path, 0o666)
        os.chown(e.log_path, nobody.pw_uid, nobody.pw_gid)
        e.proc.send_signal(signal.SIGUSR1)
        err = e.wait_stderr(re.compile("cannot reopen the log|reopened"))
        self.assertIn("cannot reopen the log: %s is a FIFO no process reads: refused; still "
                      "writing to the old file" % e.log_path, err)
        agent = self.agent()
        r = http_get(e.port, "http://s07.upd.kaspersky.com/", headers=[("User-Agent", agent)])
        self.assertEqual(r.status, 403)
        wait_until(lambda: agent in harness.read_text(rotated), 10, what="the decision line")

    def test_sigusr1_refuses_a_planted_symlink_and_keeps_the_old_file(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: Embargo drops to nobody, who owns the log directory")
        nobody = pwd.getpwnam("nobody")
        logdir = os.path.join(self.dir, "logs")
        os.mkdir(logdir, 0o755)
        os.chown(logdir, nobody.pw_uid, nobody.pw_gid)  # SIGUSR1 reopening needs this
        os.chmod(self.dir, 0o755)
        os.chmod(self.target, 0o666)  # so that only the link check keeps nobody out
        e = self.embargo_at(logdir).start()
        self.addCleanup(e.check_clean_exit)
        rotated = e.log_path + ".1"
        os.rename(e.log_path, rotated)
        os.symlink(self.target, e.log_path)
        e.proc.send_signal(signal.SIGUSR1)
        err = e.wait_stderr(re.compile("cannot reopen the log|reopened"))
        self.assertIn("cannot reopen the log: %s is a symbolic link: refused (name the file "
                      "itself); still writing to the old file" % e.log_path, err)
        agent = self.agent()
        r = http_get(e.port, "http://s07.upd.kaspersky.com/", headers=[("User-Agent", agent)])
        self.assertEqual(r.status, 403)
        wait_until(lambda: agent in harness.read_text(rotated) or
                   agent in harness.read_text(self.target), 10, what="the decision line")
        self.assertIn(agent, harness.read_text(rotated))
        self.assert_untouched()
        self.assertTrue(os.path.islink(e.log_path))


if __name__ == "__main__":
    harness.main()
