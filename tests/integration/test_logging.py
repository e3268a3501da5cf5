"""The decision log stays one JSON object per line whatever bytes clients
send: control bytes, quotes, backslashes and non-ASCII in the target, the
method and the authority; very long targets are truncated, still JSON."""

import json
import struct

import harness
from harness import EmbargoTestCase, RawClient

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


if __name__ == "__main__":
    harness.main()
