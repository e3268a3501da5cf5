"""The PROXY protocol settings through the real binary: `config check`
shows a listener behind a balancer and the sources it trusts, and refuses
one without sources (`embargo run` too, before it listens). Serving such a
listener is test_proxy_protocol.py's."""

import os
import shutil
import subprocess
import tempfile
import unittest

import harness

GOOD = ('listen:\n'
        '  - {address: "127.0.0.1:%d", proxy_protocol: true}\n'
        'proxy_protocol_from: [10.0.0.0/24, "fd00:1::/64"]\n')


class ProxyProtocolConfigTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embargo-pp-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def write(self, text):
        path = os.path.join(self.tmp, "embargo.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def embargo(self, *args):
        return subprocess.run([harness.BINARY] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)

    def test_config_check_shows_the_listener_and_its_sources(self):
        port = harness.free_port()
        p = self.embargo("config", "check", self.write(GOOD % port))
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("Listeners:      127.0.0.1:%d (PROXY protocol)\n" % port, out)
        self.assertIn("PROXY sources:  10.0.0.0/24, fd00:1::/64 (proxy_protocol_from)\n", out)

    def test_a_listener_without_sources_is_refused_with_its_place(self):
        path = self.write('listen:\n  - {address: "127.0.0.1:3128", proxy_protocol: true}\n')
        p = self.embargo("config", "check", path)
        self.assertEqual(p.returncode, 2)
        self.assertIn("%s:2:5: listen[0].proxy_protocol: needs proxy_protocol_from" % path,
                      p.stderr.decode())

    def test_run_refuses_a_listener_without_sources_before_listening(self):
        port = harness.free_port()
        path = self.write('listen:\n  - {address: "127.0.0.1:%d", proxy_protocol: true}\n' % port)
        p = self.embargo("run", "--config", path, "--log", "/dev/null")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("listen[0].proxy_protocol: needs proxy_protocol_from", p.stderr.decode())
        self.assertNotIn("listening on", p.stderr.decode())


if __name__ == "__main__":
    harness.main()
