"""The clients of the fleet test, run inside its client namespace: plain-HTTP
requests through the load balancer, each on a connection of its own from
the source address the spec names, one after the other. A JSON line per
request is appended to OUT as soon as it ends, so that the test can act
between requests (stop a proxy instance under the loop):

    {"i": 3, "source": "10.219.1.10", "port": 40312, "status": 200,
     "body": "ok allowed.test /x\\n", "error": null}

    python3 fleet_client.py SPEC OUT

SPEC is a JSON file: {"proxy": {"4": [host, port], "6": [host, port]},
"requests": [{"source": ip, "url": url, "agent": text}, ...]}. Every
request is bounded by a 20 s timeout; the program ends after the last one.
"""

import json
import socket
import sys
import urllib.parse

TIMEOUT = 20.0


def one(proxy, req):
    family = socket.AF_INET6 if ":" in req["source"] else socket.AF_INET
    host = urllib.parse.urlsplit(req["url"]).netloc
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    out = {"source": req["source"], "port": None, "status": None, "body": None, "error": None}
    try:
        s.bind((req["source"], 0))
        out["port"] = s.getsockname()[1]
        s.connect(tuple(proxy["6" if family == socket.AF_INET6 else "4"]))
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n"
                   % (req["url"], host, req.get("agent", "fleet-client"))).encode())
        data = b""
        for _ in range(100000):
            b = s.recv(65536)
            if not b:
                break
            data += b
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            out["error"] = "no HTTP response (%d bytes)" % len(data)
        else:
            out["status"] = int(parts[1])
            out["body"] = body.decode("latin-1")
    except OSError as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
    return out


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(sys.argv[2], "a") as out:
        for i, req in enumerate(spec["requests"]):
            r = one(spec["proxy"], req)
            r["i"] = i
            out.write(json.dumps(r) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
