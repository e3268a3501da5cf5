"""Several event loops (`workers: 2`) through the real binary: connections
are spread over both workers (their per-worker metrics), connection ids stay
unique, a DNS answer or query of one worker serves the other, decision lines
of both arrive whole, a reload by SIGHUP and by POST /reload reaches
keep-alive connections held by every worker, a graceful stop lets requests
in flight on every worker finish and closes idle ones,
limits.max_connections holds for the whole process, and a second process
cannot take the port; `workers: 1` is one event loop."""

import os
import signal
import socket
import subprocess
import threading

import harness
from harness import EmbargoTestCase, RawClient, free_port, http_get, wait_until
from test_admin import admin_get, parse_metrics
from test_lifecycle import ALLOWS_OTHER, BANS_OTHER, readable_by_all, write_atomically

WORKERS = "workers: 2\n"


def worker_series(metrics, name):
    """{worker number: value} of the per-worker series NAME."""
    out = {}
    for key, value in metrics.items():
        if key.startswith(name + '{worker="'):
            out[int(key.split('"')[1])] = value
    return out


class WorkersTest(EmbargoTestCase):
    @classmethod
    def setUpClass(cls):
        cls.list_dir = harness.tempfile.mkdtemp(prefix="embargo-workers-")
        cls.addClassCleanup(harness.shutil.rmtree, cls.list_dir, True)
        cls.list_path = os.path.join(cls.list_dir, "acme.yaml")
        write_atomically(cls.list_path, ALLOWS_OTHER)
        cls.ADMIN_PORT = free_port()
        cls.CONFIG_KW = {"vendors": ["file: %s" % cls.list_path],
                         "extra": WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % cls.ADMIN_PORT}
        super().setUpClass()
        readable_by_all(cls.tmp, cls.list_dir)

    def metrics(self, port=None):
        st, _, body = admin_get(port or self.ADMIN_PORT, "/metrics")
        self.assertEqual(st, 200)
        return parse_metrics(body.decode())

    def keep_alive(self, n, host="allowed.test"):
        """N keep-alive connections, each after one answered request."""
        out = []
        for _ in range(n):
            c = RawClient(self.embargo.port, timeout=10)
            self.addCleanup(c.close)
            self.request(c, host, 200)
            out.append(c)
        return out

    def request(self, c, host, status):
        c.send(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.url(host=host), host)).encode())
        r = c.read_response()
        self.assertEqual(r.status, status, r)

    def held_on_both_workers(self, host="allowed.test"):
        """Keep-alive connections, enough that both workers hold some (the
        kernel picks a worker by the connection's addresses and ports)."""
        held = []
        for _ in range(8):
            held += self.keep_alive(8, host)
            active = worker_series(self.metrics(), "embargo_worker_connections_active")
            if len(active) == 2 and min(active.values()) >= 1:
                return held
        self.fail("the kernel put %d connections on one worker: %r" % (len(held), active))

    def hup(self, text):
        n = self.embargo.stderr_text().count("info: reloaded ")
        write_atomically(self.list_path, text)
        self.embargo.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.embargo.stderr_text().count("info: reloaded ") > n, 10,
                   what="the reload line")

    def test_connections_are_spread_over_both_workers(self):
        before = self.metrics()
        for i in range(40):
            r = http_get(self.embargo.port, self.url(path="/spread/%d" % i))
            self.assertEqual(r.status, 200)
        after = self.metrics()
        self.assertEqual(after["embargo_workers"], 2)
        accepted = worker_series(after, "embargo_worker_connections_total")
        was = worker_series(before, "embargo_worker_connections_total")
        self.assertEqual(sorted(accepted), [0, 1])
        gained = {w: accepted[w] - was.get(w, 0) for w in accepted}
        self.assertGreater(gained[0], 0, gained)
        self.assertGreater(gained[1], 0, gained)
        self.assertEqual(sum(gained.values()), 40)
        requests = worker_series(after, "embargo_worker_requests_total")
        self.assertEqual(sum(requests.values()), after['embargo_requests_total{kind="forward"}']
                         + after['embargo_requests_total{kind="connect"}'])
        # Connection ids are unique in the process, whichever worker gave them.
        ids = [r["conn"] for r in self.embargo.records() if "conn" in r]
        self.assertEqual(len(ids), len(set(ids)))

    def test_an_answer_one_worker_got_serves_the_others(self):
        admin = free_port()
        e = self.start_embargo(extra=WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % admin)
        mark = self.dns.mark()
        for i in range(20):  # each response closes its upstream: no pooled connection
            r = http_get(e.port, self.url(host="other.test", path="/close/%d" % (i + 1)))
            self.assertEqual(r.status, 200, r)
            if i == 0:
                first = self.dns.queries(mark).count("other.test")  # A and AAAA
        accepted = worker_series(self.metrics(admin), "embargo_worker_connections_total")
        self.assertTrue(len(accepted) == 2 and min(accepted.values()) >= 1, accepted)
        self.assertGreaterEqual(first, 1)
        self.assertEqual(self.dns.queries(mark).count("other.test"), first,
                         "a worker resolved a name another worker had the answer for")

    def test_concurrent_lookups_on_both_workers_share_one_query(self):
        admin = free_port()
        e = self.start_embargo(extra=WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % admin)
        name = "shared.%s" % harness.DNS_HOLE_DOMAIN  # never answered: each lookup waits
        results = []

        def one():
            try:
                results.append(http_get(e.port, "http://%s/" % name).status)
            except (OSError, ConnectionError) as exc:
                results.append(repr(exc))

        threads = [threading.Thread(target=one, daemon=True) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(results, [504] * 16)
        m = self.metrics(admin)
        accepted = worker_series(m, "embargo_worker_connections_total")
        self.assertTrue(len(accepted) == 2 and min(accepted.values()) >= 1, accepted)
        sent = sum(v for k, v in m.items() if k.startswith("embargo_dns_queries_total{"))
        self.assertEqual(sent, 1, "one query for the name, whichever worker asked")
        self.assertGreaterEqual(m["embargo_dns_cache_joins_total"], 15)

    def test_decision_lines_of_both_workers_never_interleave_on_a_pipe(self):
        # Both loops append their lines to the one decision queue and one
        # writer writes them: lines near PIPE_BUF from both workers at once
        # must arrive whole, one per request.
        port, admin = free_port(), free_port()
        cfg = os.path.join(self.tmp, "pipe-log.yaml")
        with open(cfg, "w") as f:
            f.write(harness.make_config(extra=WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % admin))
        err_path = os.path.join(self.tmp, "pipe-log.stderr")
        lines = []
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([harness.BINARY, "run", "--config", cfg, "--listen",
                                     "127.0.0.1:%d" % port, "--resolver",
                                     "127.0.0.1:%d" % self.dns.port, "--log", "-"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: "listening on" in harness.read_text(err_path) or
                       proc.poll() is not None, 20, what="embargo listening")
            agent = "\u00e9" * 300  # 600 bytes of UTF-8, each escaped: a line of about 4 KB
            statuses = []

            def burst():
                for _ in range(10):
                    r = http_get(port, "http://s07.upd.kaspersky.com/pipe",
                                 headers=(("User-Agent", agent),))
                    statuses.append(r.status)

            threads = [threading.Thread(target=burst, daemon=True) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(statuses, [403] * 160)
            accepted = worker_series(self.metrics(admin), "embargo_worker_connections_total")
            self.assertTrue(len(accepted) == 2 and min(accepted.values()) >= 1, accepted)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            reader.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.assertEqual(proc.returncode, 0, harness.read_text(err_path)[-3000:])
        self.assertEqual(len(lines), 160)
        for line in lines:
            rec = harness.json.loads(line)
            self.assertEqual((rec["event"], rec["host"]), ("deny", "s07.upd.kaspersky.com"))
        self.assertGreater(max(len(line) for line in lines), 3000)

    def test_reload_by_signal_and_by_endpoint_reaches_every_worker(self):
        held = self.held_on_both_workers()
        for c in held:
            self.request(c, "other.test", 200)
        self.hup(BANS_OTHER)
        # Every held connection's next request is judged under the new policy,
        # on whichever worker holds it.
        for c in held:
            self.request(c, "other.test", 403)
        before = worker_series(self.metrics(), "embargo_worker_requests_total")
        for _ in range(20):
            self.assertEqual(http_get(self.embargo.port, self.url(host="other.test")).status, 403)
        after = worker_series(self.metrics(), "embargo_worker_requests_total")
        self.assertTrue(all(after[w] > before[w] for w in (0, 1)), (before, after))
        write_atomically(self.list_path, ALLOWS_OTHER)
        st, _, body = admin_get(self.ADMIN_PORT, "/reload", method="POST")
        self.assertEqual(st, 200, body)
        for c in held:
            self.request(c, "other.test", 200)

    def test_graceful_stop_reaches_every_worker(self):
        admin = free_port()
        e = self.start_embargo(timeouts={"shutdown_grace": "30s"},
                               extra=WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % admin)
        results, threads = [], []

        def slow(c):
            try:
                results.append(c.read_response().status)
            except (OSError, ConnectionError) as exc:
                results.append(repr(exc))

        gate = self.origin.gate("stop")  # the slow requests are answered once it opens
        self.addCleanup(gate.set)
        busy = []
        for _ in range(24):  # in flight on both workers
            c = RawClient(e.port, timeout=20)
            self.addCleanup(c.close)
            c.send(("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                    % self.url(path="/gate/stop")).encode())
            busy.append(c)
        idle = []
        for _ in range(8):
            c = RawClient(e.port, timeout=10)
            self.addCleanup(c.close)
            c.send(("GET %s HTTP/1.1\r\nHost: allowed.test\r\n\r\n" % self.url()).encode())
            self.assertEqual(c.read_response().status, 200)
            idle.append(c)
        wait_until(lambda: len([h for h in self.origin.heads if h["path"] == "/gate/stop"]) ==
                   len(busy), 10, what="every slow request to reach the origin")
        active = worker_series(self.metrics(admin), "embargo_worker_connections_active")
        self.assertTrue(len(active) == 2 and min(active.values()) >= 1, active)
        for c in busy:
            threads.append(threading.Thread(target=slow, args=(c,), daemon=True))
            threads[-1].start()
        e.proc.send_signal(signal.SIGTERM)
        for c in idle:  # between requests: closed at once, on either worker
            self.assertTrue(c.at_eof(10.0), "an idle connection held the stop")
        # ... while every slow one is still waiting for its answer.
        self.assertEqual(results, [], "a slow request ended before the idle connections closed")
        self.assertNotIn("/gate/stop", self.origin.done)
        gate.set()
        for t in threads:
            t.join(20)
        self.assertEqual(results, [200] * len(busy))
        e.proc.wait(timeout=20)
        self.assertEqual(e.proc.returncode, 0)
        self.assertIn("every connection has finished; exiting", e.stderr_text())

    def test_max_connections_holds_for_the_whole_process(self):
        admin = free_port()
        e = self.start_embargo(limits={"max_connections": 4},
                               extra=WORKERS + "admin: {listen: 127.0.0.1:%d}\n" % admin)
        conns = []
        for _ in range(16):
            c = socket.create_connection((harness.LOOPBACK, e.port), timeout=10)
            self.addCleanup(c.close)
            c.sendall(b"GET http://allowed.test:%d/ HTTP/1.1\r\nHo" % self.origin.port)
            conns.append(c)

        def settled():
            """Each worker has taken its pending connections or paused on
            them: a pause for every listening socket that still holds some
            (each worker has its own, SO_REUSEPORT)."""
            m = self.metrics(admin)
            waiting = [n for n in harness.listen_backlogs(e.port) if n > 0]
            pauses = m['embargo_accept_pauses_total{reason="max_connections"}']
            return m if waiting and pauses >= len(waiting) else None
        m = wait_until(settled, 10, what="both workers to take or pause on their connections")
        self.assertEqual(sum(worker_series(m, "embargo_worker_connections_active").values()), 4, m)
        for c in conns:
            c.close()
        wait_until(lambda: self._served(e), 10, what="the proxy to serve again")

    def _served(self, e):
        try:
            return http_get(e.port, self.url(path="/health")).status == 200
        except (ConnectionError, OSError):
            return False

    def test_second_process_cannot_take_the_port(self):
        with self.assertRaises(RuntimeError) as cm:
            type(self).new_embargo(port=self.embargo.port, extra=WORKERS)
        self.assertIn("address already in use", str(cm.exception))
        self.assert_healthy()


class OneWorkerTest(EmbargoTestCase):
    ADMIN_PORT = free_port()
    CONFIG_KW = {"extra": "workers: 1\nadmin: {listen: 127.0.0.1:%d}\n" % ADMIN_PORT}

    def test_one_event_loop(self):
        for i in range(5):
            self.assertEqual(http_get(self.embargo.port, self.url(path="/%d" % i)).status, 200)
        st, _, body = admin_get(self.ADMIN_PORT, "/metrics")
        m = parse_metrics(body.decode())
        self.assertEqual(m["embargo_workers"], 1)
        self.assertEqual(sorted(worker_series(m, "embargo_worker_connections_total")), [0])
        self.embargo.wait_stderr("1 worker(s), one event loop each")


if __name__ == "__main__":
    harness.main()
