"""Running unattended, through the real binary: SIGHUP reloads under load
without a failed request, a broken config is rejected and the old policy
keeps serving, a keep-alive connection's next request uses the new policy;
SIGTERM lets a slow download finish, a second signal or shutdown_grace ends
it; SIGUSR1 reopens the log; and a decision-log reader that stops reading
(`embargo | a reader that stops reading`) never stops the traffic."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import (EmbargoTestCase, RawClient, free_port, http_get, pattern_sha256,
                     wait_until)
from test_admin import admin_get, parse_metrics

LIST = """vendor: acme
categories:
  updates:
    cutoff: 2024-01-01T00:00:00Z
    hosts: [%s]
"""
BANS_OTHER = LIST % "other.test"
ALLOWS_OTHER = LIST % "never.test"
BROKEN = LIST % "other.test" + "  oops: [\n"


def quick_get(port, url, timeout=5):
    """http_get with a short timeout: a hung proxy fails the test quickly."""
    host = url.split("/")[2]
    with RawClient(port, timeout=timeout) as c:
        c.send(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % (url, host)).encode())
        return c.read_response()


def readable_by_all(*dirs):
    """Started as root, embargo runs as `nobody` (the default `user`): a
    reload reads the files as that user, as it would in production."""
    for d in dirs:
        os.chmod(d, 0o755)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class ReloadTest(EmbargoTestCase):
    TUNNEL_SERVERS = ("echo",)

    @classmethod
    def setUpClass(cls):
        cls.list_dir = harness.tempfile.mkdtemp(prefix="embargo-reload-")
        cls.addClassCleanup(harness.shutil.rmtree, cls.list_dir, True)
        cls.list_path = os.path.join(cls.list_dir, "acme.yaml")
        write_atomically(cls.list_path, BANS_OTHER)
        cls.ADMIN_PORT = free_port()
        cls.CONFIG_KW = {"vendors": ["file: %s" % cls.list_path],
                         "extra": "admin: {listen: 127.0.0.1:%d}\n" % cls.ADMIN_PORT}
        super().setUpClass()
        readable_by_all(cls.tmp, cls.list_dir)

    def reloads(self):
        return self.embargo.stderr_text().count("info: reloaded ")

    def hup(self, text):
        """Installs TEXT as the list, sends SIGHUP, waits for the reload line."""
        n, rejected = self.reloads(), self.embargo.stderr_text().count("reload rejected")
        write_atomically(self.list_path, text)
        self.embargo.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.reloads() > n or
                   self.embargo.stderr_text().count("reload rejected") > rejected,
                   10, what="a reload line on stderr")

    def other_status(self):
        return http_get(self.embargo.port, self.url(host="other.test")).status

    def test_sighup_under_load(self):
        stop = threading.Event()
        results = {"ok": 0, "bad": []}

        def load():
            # Bounded: at most 5000 requests or 60 s, each with its own timeout.
            deadline = time.monotonic() + 60
            for i in range(5000):
                if stop.is_set() or time.monotonic() > deadline:
                    break
                try:
                    if i % 2:
                        r = http_get(self.embargo.port, self.url(path="/load/%d" % i))
                        ok = r.status == 200 and r.body == b"ok /load/%d\n" % i
                    else:  # keep-alive: two requests on one connection
                        with RawClient(self.embargo.port, timeout=10) as c:
                            for j in range(2):
                                c.send(("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                                        % self.url(path="/ka/%d/%d" % (i, j))).encode())
                                r = c.read_response()
                                ok = r.status == 200
                                if not ok:
                                    break
                    if ok:
                        results["ok"] += 1
                    else:
                        results["bad"].append(repr(r))
                except (OSError, ConnectionError) as e:
                    results["bad"].append(repr(e))

        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            for i in range(20):
                banned = i % 2 == 1
                self.hup(BANS_OTHER if banned else ALLOWS_OTHER)
                self.assertEqual(self.other_status(), 403 if banned else 200, "reload %d" % i)
                if i == 10:
                    before = admin_get(self.ADMIN_PORT, "/policy")[2]
                    prior = self.other_status()
                    self.hup(BROKEN)
                    err = self.embargo.stderr_text()
                    self.assertRegex(err, r"reload rejected, policy [0-9a-f]{16} stays in force: "
                                     + re.escape(self.list_path) + r":\d+:\d+: ")
                    self.assertEqual(self.other_status(), prior, "the old policy keeps serving")
                    now = harness.json.loads(admin_get(self.ADMIN_PORT, "/policy")[2])
                    was = harness.json.loads(before)
                    self.assertEqual((now["version"], now["loaded_at"]),
                                     (was["version"], was["loaded_at"]))
                    self.assertIn(self.list_path, now["last_reload_error"])
        finally:
            stop.set()
            t.join(70)
        self.assertFalse(t.is_alive())
        self.assertEqual(results["bad"], [])
        self.assertGreater(results["ok"], 10)  # each takes ~45 ms against the Python origin
        self.assertEqual(self.reloads() >= 20, True)
        m = parse_metrics(admin_get(self.ADMIN_PORT, "/metrics")[2].decode())
        self.assertGreaterEqual(m['embargo_reloads_total{result="success"}'], 20)
        self.assertGreaterEqual(m['embargo_reloads_total{result="failure"}'], 1)

    def test_keep_alive_connection_takes_the_new_policy_at_its_next_request(self):
        self.hup(BANS_OTHER)
        with RawClient(self.embargo.port, timeout=10) as c:
            req = ("GET %s HTTP/1.1\r\nHost: other.test\r\n\r\n"
                   % self.url(host="other.test")).encode()
            c.send(req)
            self.assertEqual(c.read_response().status, 403)
            self.hup(ALLOWS_OTHER)
            c.send(req)
            self.assertEqual(c.read_response().status, 200)
        self.embargo.wait_records(lambda r: r.get("host") == "other.test", since=self.log_mark)
        self.embargo.log_barrier("never.test")  # the list in force bans it
        recs = [r for r in self.new_records() if r.get("host") == "other.test"]
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["event"], "deny")

    def test_tunnel_in_flight_survives_reloads(self):
        port = self.tunnels["echo"].port
        connect = ("CONNECT other.test:%d HTTP/1.1\r\nHost: other.test:%d\r\n\r\n"
                   % (port, port)).encode()
        self.hup(ALLOWS_OTHER)
        with RawClient(self.embargo.port, timeout=10) as c:
            c.send(connect)
            self.assertEqual(c.read_response("CONNECT").status, 200)
            c.send(b"before the reloads, ")
            self.hup(BANS_OTHER)
            # A new tunnel is judged by the new list; the open one keeps its own.
            with RawClient(self.embargo.port, timeout=10) as c2:
                c2.send(connect)
                self.assertEqual(c2.read_response("CONNECT").status, 403)
            self.hup(ALLOWS_OTHER)
            c.send(b"after them")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.read_to_eof(), b"ECHO before the reloads, after them")

    def test_restart_only_setting_is_reported(self):
        text = open(self.embargo.config_path).read()
        try:
            with open(self.embargo.config_path, "a") as f:
                f.write("log_buffer: 65536\n")
            self.hup(BANS_OTHER)
            self.embargo.wait_stderr("reload: log_buffer changed, which needs a restart; "
                                     "keeping the running value")
        finally:
            write_atomically(self.embargo.config_path, text)

    def test_reload_command(self):
        write_atomically(self.list_path, ALLOWS_OTHER)
        p = subprocess.run([harness.BINARY, "reload", "--admin", "127.0.0.1:%d" % self.ADMIN_PORT],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b'"result":"reloaded"', p.stdout)
        self.assertEqual(self.other_status(), 200)
        write_atomically(self.list_path, BROKEN)
        p = subprocess.run([harness.BINARY, "reload", "--admin", "127.0.0.1:%d" % self.ADMIN_PORT],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b'"result":"rejected"', p.stderr)
        self.assertIn(self.list_path.encode(), p.stderr)
        self.assertEqual(self.other_status(), 200)
        write_atomically(self.list_path, BANS_OTHER)


SIZE = 20 * 1000 * 1000


class StopTest(EmbargoTestCase):
    """SIGTERM: no new connections, the ones in flight finish."""

    def start_download(self, e):
        c = RawClient(e.port, timeout=20)
        c.send(("GET %s HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
                % self.url(path="/bytes/%d?seed=7" % SIZE)).encode())
        status = c.read_head()
        return c, status

    def read_slowly(self, c, limit, per_read=256 * 1024, pause=0.02, h=None):
        """Reads up to LIMIT body bytes at a bounded pace; returns (bytes, sha256, eof)."""
        h = h or harness.hashlib.sha256()
        got = 0
        deadline = time.monotonic() + 60
        while got < limit and time.monotonic() < deadline:
            try:
                b = c.sock.recv(min(per_read, limit - got))
            except (ConnectionError, socket.timeout):
                return got, h.hexdigest(), True
            if not b:
                return got, h.hexdigest(), True
            h.update(b)
            got += len(b)
            time.sleep(pause)
        return got, h.hexdigest(), False

    def test_slow_download_finishes_after_sigterm(self):
        e = self.start_embargo(timeouts={"shutdown_grace": "60s"})
        c, head = self.start_download(e)
        with c:
            first = bytes(c.buf)  # body bytes read with the head
            e.proc.send_signal(signal.SIGTERM)
            # No new connections once stopping: the listening socket is gone.
            wait_until(lambda: harness.listen_backlogs(e.port) == [], 10,
                       what="the listener to close")
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", e.port), timeout=2).recv(1)
            got, digest, _ = self.read_slowly(c, SIZE - len(first),
                                              h=harness.hashlib.sha256(first))
        self.assertEqual(len(first) + got, SIZE)
        self.assertEqual(digest, pattern_sha256(SIZE, 7))
        e.proc.wait(timeout=15)
        self.assertEqual(e.proc.returncode, 0)
        self.assertIn("every connection has finished", e.stderr_text())

    def test_second_signal_ends_at_once(self):
        e = self.start_embargo(timeouts={"shutdown_grace": "60s"})
        c, _ = self.start_download(e)
        with c:
            e.proc.send_signal(signal.SIGTERM)
            self.read_slowly(c, 1 << 20)
            e.proc.send_signal(signal.SIGINT)
            e.proc.wait(timeout=30)
            got, _, eof = self.read_slowly(c, SIZE, pause=0)
        # At once: the download was cut with most of it unsent, by the
        # second signal (not the 60 s grace, nor the download's end).
        self.assertTrue(eof)
        self.assertLess(got, SIZE - (1 << 20))
        self.assertEqual(e.proc.returncode, 0)
        err = e.stderr_text()
        self.assertIn("received signal 2 again; closing 1 connection(s) now", err)
        self.assertNotIn("is over", err)
        self.assertNotIn("every connection has finished", err)

    def test_grace_period_ends_a_stalled_download(self):
        e = self.start_embargo(timeouts={"shutdown_grace": "1s"})
        c, _ = self.start_download(e)
        with c:
            t0 = time.monotonic()
            e.proc.send_signal(signal.SIGTERM)  # and the client stops reading
            e.proc.wait(timeout=10)
            elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.9)
        # Ended by the grace timer (not the download's end, nor a signal).
        self.assertEqual(e.proc.returncode, 0)
        err = e.stderr_text()
        self.assertIn("shutdown_grace (1000ms) is over; closing 1 connection(s)", err)
        self.assertNotIn("again", err)
        self.assertNotIn("every connection has finished", err)

    def test_idle_keep_alive_connections_do_not_hold_the_stop(self):
        e = self.start_embargo(timeouts={"shutdown_grace": "60s"})
        with RawClient(e.port, timeout=10) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url()).encode())
            self.assertEqual(c.read_response().status, 200)
            e.proc.send_signal(signal.SIGTERM)
            e.proc.wait(timeout=30)
            self.assertTrue(c.at_eof())
        # It exited as soon as no connection was left (not when the 60 s
        # grace ran out): the idle one was closed, not waited for.
        self.assertEqual(e.proc.returncode, 0)
        err = e.stderr_text()
        self.assertIn("every connection has finished; exiting", err)
        self.assertNotIn("is over", err)


class ReopenTest(EmbargoTestCase):
    def test_sigusr1_reopens_the_log_file(self):
        e = self.start_embargo()
        http_get(e.port, "http://s07.upd.kaspersky.com/a")
        e.wait_records(lambda r: r.get("event") == "deny")
        rotated = e.log_path + ".1"
        os.rename(e.log_path, rotated)
        # logrotate's `create`: the new file belongs to the user embargo runs
        # as (started as root, it runs as `nobody` after binding).
        os.close(os.open(e.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        if os.geteuid() == 0:
            os.chown(e.log_path, os.stat("/proc/%d" % e.proc.pid).st_uid, -1)
            readable_by_all(self.tmp)
        e.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: "reopened" in e.stderr_text(), 10, what="the reopen line")
        http_get(e.port, "http://s07.upd.kaspersky.com/b")
        recs = e.wait_records(lambda r: r.get("event") == "deny")
        self.assertEqual(len(recs), 1)
        self.assertIn('"method":"GET"', harness.read_text(rotated))
        self.assertEqual(harness.read_text(rotated).count("\n"), 1)


class StalledLogReaderTest(EmbargoTestCase):
    """`embargo | a reader that stops reading`: once the pipe's 64 KiB are
    full (about 110 deny lines), the log writer must not stop the loop."""

    DENIED = 400

    def test_denies_beyond_the_pipe_do_not_hang_allowed_traffic(self):
        admin_port = free_port()
        port = free_port()
        cfg = os.path.join(self.tmp, "stalled.yaml")
        snippet = "log_buffer: 65536\nadmin: {listen: 127.0.0.1:%d}\n" % admin_port
        with open(cfg, "w") as f:
            f.write(harness.make_config(extra=snippet))
        err_path = os.path.join(self.tmp, "stalled.stderr")
        r_fd, w_fd = os.pipe()  # the reader end is never read
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([harness.BINARY, "run", "--config", cfg, "--listen",
                                     "127.0.0.1:%d" % port, "--resolver",
                                     "127.0.0.1:%d" % self.dns.port, "--log", "-"],
                                    stdin=subprocess.DEVNULL, stdout=w_fd, stderr=err)
        os.close(w_fd)
        try:
            wait_until(lambda: "listening on" in harness.read_text(err_path), 20,
                       what="embargo listening")
            # Every request is answered while the reader reads nothing.
            for i in range(self.DENIED):
                r = quick_get(port, "http://s07.upd.kaspersky.com/%d" % i)
                self.assertEqual(r.status, 403, i)
            for i in range(20):
                r = quick_get(port, self.url(path="/after/%d" % i))
                self.assertEqual(r.status, 200, i)
            m = parse_metrics(admin_get(admin_port, "/metrics")[2].decode())
            dropped = m['embargo_log_lines_dropped_total{stream="decision"}']
            self.assertGreater(dropped, 0)
            self.assertLess(dropped, self.DENIED)
            wait_until(lambda: "line(s) dropped so far" in harness.read_text(err_path), 10,
                       what="the drop warning")
            # Rate-limited: one warning however many lines were lost.
            self.assertEqual(harness.read_text(err_path).count("dropped so far"), 1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            self.assertEqual(proc.returncode, 0, harness.read_text(err_path)[-5000:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            os.close(r_fd)
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, harness.read_text(err_path))


class SyslogTest(EmbargoTestCase):
    """`log: syslog`: each decision line is one syslog message. /dev/log is
    the test's own socket, bound over /dev in a private mount namespace."""

    def test_decision_lines_go_to_syslog(self):
        unshare = harness.shutil.which("unshare")
        if os.geteuid() != 0 or unshare is None:
            self.skipTest("needs root and unshare(1) for a private mount namespace")
        dev = os.path.join(self.tmp, "dev")
        os.mkdir(dev)
        for name in ("null", "urandom"):
            open(os.path.join(dev, name), "w").close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(dev, "log"))
        sock.settimeout(10)
        port = free_port()
        cfg = os.path.join(self.tmp, "syslog.yaml")
        with open(cfg, "w") as f:
            f.write(harness.make_config(extra="log: syslog\n"))
        script = ("mount --bind /dev/null %(d)s/null && mount --bind /dev/urandom %(d)s/urandom && "
                  "mount --bind %(d)s /dev && exec \"$@\"" % {"d": dev})
        err_path = os.path.join(self.tmp, "syslog.stderr")
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([unshare, "--mount", "--propagation", "private", "sh", "-c",
                                     script, "sh", harness.BINARY, "run", "--config", cfg,
                                     "--listen", "127.0.0.1:%d" % port, "--resolver",
                                     "127.0.0.1:%d" % self.dns.port],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        try:
            wait_until(lambda: "listening on" in harness.read_text(err_path) or
                       proc.poll() is not None, 20, what="embargo listening")
            if proc.poll() is not None:
                self.skipTest("cannot set up the mount namespace: %s"
                              % harness.read_text(err_path)[-500:])
            self.assertEqual(quick_get(port, "http://s07.upd.kaspersky.com/syslog").status, 403)
            msg = sock.recv(65536).decode()
            self.assertRegex(msg, r"^<30>.*embargo\[\d+\]: \{")  # daemon.info
            rec = harness.json.loads(msg[msg.index("{"):])
            self.assertEqual((rec["event"], rec["host"]), ("deny", "s07.upd.kaspersky.com"))
            self.assertRegex(rec["policy_version"], r"^[0-9a-f]{16}$")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            self.assertEqual(proc.returncode, 0, harness.read_text(err_path))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            sock.close()


if __name__ == "__main__":
    harness.main()
