"""A real Squid (Debian's package) for the tests that send Embargo's allowed
traffic through a parent proxy: its own configuration, port, pid file and
logs in a directory of the test's, no cache, names from a hosts file of
the test's (Squid's resolver takes no port, and the tests' dnsmasq does not
listen on 53), everything from the listed sources allowed unless a
`deny_domains` entry matches, optionally Basic authentication against a
password file. Started in the foreground (-N), stopped by its PID.

    s = Squid(workdir, hosts={"allowed.test": "127.0.0.1"}).start()
    s.requests()        # (method, url, status) of each line of its access log
    s.barrier(url)      # a request of the test's own through it, logged
"""

import os
import pwd
import shutil
import signal
import subprocess

import harness

SQUID = shutil.which("squid") or "/usr/sbin/squid"
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"


def available():
    """None, or why Squid cannot run here."""
    if not os.access(SQUID, os.X_OK):
        return "squid not installed (scripts/deps.sh test installs it)"
    return None


class Squid:
    _seq = 0

    def __init__(self, workdir, hosts=None, deny_domains=(), address=harness.LOOPBACK,
                 port=None, sources=("127.0.0.0/8", "::1"), credentials=None, prefix=()):
        Squid._seq += 1
        self.dir = os.path.join(workdir, "squid-%d" % Squid._seq)
        self.hosts = dict(hosts or {})
        self.deny_domains = list(deny_domains)
        self.address = address
        self.port = port
        self.sources = list(sources)
        self.credentials = credentials  # (user, password): Basic authentication required
        self.prefix = list(prefix)      # e.g. ["ip", "netns", "exec", NS]
        self.proc = None

    @property
    def authority(self):
        return ("[%s]:%d" if ":" in self.address else "%s:%d") % (self.address, self.port)

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _config(self):
        lines = [
            "http_port %s" % self.authority,
            "pid_filename %s" % self._path("squid.pid"),
            "access_log stdio:%s" % self._path("access.log"),
            "cache_log %s" % self._path("cache.log"),
            "cache_store_log none",
            "netdb_filename none",
            "coredump_dir %s" % self.dir,
            "hosts_file %s" % self._path("hosts"),
            "dns_nameservers 127.0.0.1",
            "pinger_enable off",
            "cache deny all",
            "shutdown_lifetime 1 seconds",
            "icp_port 0",
            "htcp_port 0",
            "logfile_rotate 0",
            "acl sources src %s" % " ".join(self.sources),
        ]
        if self.deny_domains:
            lines.append("acl denied dstdomain %s" % " ".join(self.deny_domains))
            lines.append("http_access deny denied")
        if self.credentials:
            lines += ["auth_param basic program %s %s" % (NCSA_AUTH, self._path("passwd")),
                      "auth_param basic realm embargo-test",
                      "acl authed proxy_auth REQUIRED",
                      "http_access deny !authed"]
        lines += ["http_access allow sources", "http_access deny all"]
        return "\n".join(lines) + "\n"

    def _write(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(self._path("hosts"), "w") as f:
            for name, ip in self.hosts.items():
                f.write("%s %s\n" % (ip, name))
        if self.credentials:
            user, password = self.credentials
            hashed = subprocess.run([harness.OPENSSL, "passwd", "-1", password], check=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    timeout=30).stdout.decode().strip()
            with open(self._path("passwd"), "w") as f:
                f.write("%s:%s\n" % (user, hashed))
        with open(self._path("squid.conf"), "w") as f:
            f.write(self._config())
        # Started as root, Squid runs as the package's user, which must
        # write its logs here and reach the directory.
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("proxy")
            except KeyError:
                pw = None
            if pw is not None:
                for p in [self.dir] + [self._path(n) for n in os.listdir(self.dir)]:
                    os.chown(p, pw.pw_uid, pw.pw_gid)
            d = os.path.dirname(self.dir)
            os.chmod(d, os.stat(d).st_mode | 0o111)

    def start(self):
        if self.port is None:
            self.port = harness.free_port()
        self._write()
        self._out = open(self._path("squid.out"), "wb")
        self.proc = subprocess.Popen(self.prefix + [SQUID, "-N", "-f", self._path("squid.conf")],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._out, preexec_fn=harness.tied_to_parent)
        try:
            harness.wait_until(self._accepting, 30, 0.05, "squid accepting on %s"
                               % self.authority)
        except BaseException:
            self.stop()
            raise
        return self

    def _accepting(self):
        if self.proc.poll() is not None:
            raise RuntimeError("squid exited with %s:\n%s\n%s" % (
                self.proc.returncode, harness.read_text(self._path("squid.out")),
                harness.read_text(self._path("cache.log"))))
        return "Accepting HTTP Socket connections" in harness.read_text(self._path("cache.log"))

    def stop(self):
        """SIGTERM to its PID, then SIGKILL if it lingers; idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        self.proc = None

    def access_log(self):
        return harness.read_text(self._path("access.log"))

    def requests(self):
        """(method, url, status) of every access log line, in order: the
        native format's sixth, seventh and fourth (action/status) fields."""
        out = []
        for line in self.access_log().splitlines():
            f = line.split()
            if len(f) >= 7:
                out.append((f[5], f[6], int(f[3].rpartition("/")[2] or 0)))
        return out

    def barrier(self, url):
        """A request of the test's own for URL through this Squid; returns
        once its access log line is written (lines are written in the order
        transactions end), so that a request that reached Squid before
        would be logged by then."""
        before = sum(1 for r in self.requests() if r[1] == url)
        p = subprocess.run(self.prefix + [harness.CURL, "-sS", "-o", "/dev/null", "--max-time",
                                          "20", "-x", "http://%s" % self.authority, url],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=harness.client_env())
        if p.returncode != 0:
            raise AssertionError("squid barrier %s: %s" % (url, p.stderr.decode()))
        harness.wait_until(lambda: sum(1 for r in self.requests() if r[1] == url) > before,
                           10, 0.02, "squid's access log line for the barrier %s" % url)
