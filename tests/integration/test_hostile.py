"""Hostile input over raw sockets, against kvnode and kvproxy alike: each bad request gets its 4xx (or a
clean close), nothing is smuggled through the proxy, and the process keeps serving the next client."""
import json
import socket
import time
import unittest

from kvtest import Client, harness, parse_responses, raw_exchange, write_ring

# name -> (raw request bytes, the status of each answer expected, in order; [] for a close without one)
CASES = {
    "malformed request line": (b"GARBAGE\r\n\r\n", [400]),
    "unknown method": (b"FOO /get?key=a HTTP/1.1\r\nHost: x\r\n\r\n", [405]),
    "HTTP/0.9": (b"GET /get?key=a\r\n\r\n", [400]),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400]),
    "unknown version": (b"GET /get?key=a HTTP/9.9\r\n\r\n", [400]),
    "bare LF line ends": (b"GET /get?key=a HTTP/1.1\nHost: x\n\n", [400]),
    "oversized header": (b"GET /get?key=a HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", [431]),
    "too many headers": (b"GET /get?key=a HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n",
                         [431]),
    "header without a colon": (b"GET /get?key=a HTTP/1.1\r\nNoColonHere\r\n\r\n", [400]),
    "space before the colon": (b"GET /get?key=a HTTP/1.1\r\nHost : x\r\n\r\n", [400]),
    "oversized body": (b"POST /put?key=a HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n", [413]),
    "negative Content-Length": (b"POST /put?key=a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", [400]),
    "Content-Length with Transfer-Encoding": (
        b"POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [400]),
    "two different Content-Lengths": (
        b"POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", [400]),
    "bad chunk size": (b"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", [400]),
    "unknown transfer coding": (b"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", [400]),
    "invalid percent-encoding": (b"GET /get?key=%ZZ HTTP/1.1\r\n\r\n", [400]),
    "NUL in the key": (b"GET /get?key=a%00b HTTP/1.1\r\n\r\n", [400]),
    "control byte in the target": (b"GET /get?key=a\x01b HTTP/1.1\r\n\r\n", [400]),
    "invalid UTF-8 in JSON": (b"POST /put?key=a HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\"value\":\"\xff\"}", [400]),
    "JSON that is not an object": (b"POST /put?key=a HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", [400]),
    "truncated body, then EOF": (b"POST /put?key=a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", []),
    "garbage pipelined after a valid request": (b"GET /get?key=absent HTTP/1.1\r\n\r\n\x00\x01garbage\r\n\r\n",
                                                [404, 400]),
}


def exchange(port, payload):
    """Sends `payload`, half-closes, reads until the server closes; returns the statuses answered."""
    return [status for status, _, _ in parse_responses(raw_exchange(port, payload, timeout=5.0, shut_write=True))]


class HostileInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h = harness(cls)
        cls.node = h.node("n1")
        cls.proxy = h.proxy(write_ring(h.path("ring.yaml"), [("n1", cls.node.port)]))

    def check_all(self, port, server):
        for name, (payload, expected) in CASES.items():
            with self.subTest(server=server, case=name):
                self.assertEqual(exchange(port, payload), expected)
                # The process is up and serves the next client normally.
                c = Client(port)
                try:
                    self.assertEqual(c.request("GET", "/health")[0], 200)
                finally:
                    c.close()
        self.assertTrue(self.node.alive() and self.proxy.alive())

    def test_kvnode(self):
        self.check_all(self.node.port, "kvnode")

    def test_kvproxy(self):
        self.check_all(self.proxy.port, "kvproxy")

    def test_no_request_smuggling_through_the_proxy(self):
        """A body that hides a second request, framed two ways at once, is refused, never forwarded."""
        c = Client(self.proxy.port)
        self.assertEqual(c.put("victim", "still here")[0], 200)
        c.close()
        hidden = b"DELETE /del?key=victim HTTP/1.1\r\nHost: x\r\n\r\n"
        chunked = b"0\r\n\r\n" + hidden
        attempts = [
            b"POST /put?key=a HTTP/1.1\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked) + chunked,
            b"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunked,
            b"POST /put?key=a HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(hidden) + hidden,
            b"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunked,
            b"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked,
        ]
        for payload in attempts:
            with self.subTest(payload=payload[:80]):
                statuses = exchange(self.proxy.port, payload)
                self.assertTrue(statuses and statuses[0] == 400, statuses)
                self.assertNotIn(200, statuses[1:])
        c = Client(self.proxy.port)
        status, _, body = c.get("victim")
        c.close()
        self.assertEqual((status, json.loads(body)["value"]), (200, "still here"))

    def test_a_long_head_is_refused_however_it_arrives(self):
        """A head over the limit (8 KiB) made of many short fields gets 431 whether it comes in one
        piece or field by field: the limit holds for the whole head, not for each read."""
        head = b"GET /get?key=a HTTP/1.1\r\n" + b"".join(b"X-F%03d: %s\r\n" % (i, b"v" * 90) for i in range(100)) + b"\r\n"
        self.assertGreater(len(head), 8192)
        for port, server in [(self.node.port, "kvnode"), (self.proxy.port, "kvproxy")]:
            for pieces in (False, True):
                with self.subTest(server=server, pieces=pieces):
                    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as s:
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        if pieces:
                            for i in range(0, len(head), 100):
                                try:
                                    s.sendall(head[i:i + 100])
                                except OSError:
                                    break  # refused already, and the connection closed
                                time.sleep(0.002)
                        else:
                            s.sendall(head)
                        first = s.recv(4096).split(b"\r\n")[0]
                    self.assertEqual(first, b"HTTP/1.1 431 Request Header Fields Too Large")

    def test_a_refusal_answers_in_the_clients_http_version(self):
        """A body over the limit, refused on its Content-Length before the head is done, is answered in
        the HTTP/1.0 the client spoke, by kvnode and by kvproxy, whichever parser read the head."""
        for port, server in [(self.node.port, "kvnode"), (self.proxy.port, "kvproxy")]:
            for extra in (b"", b"Upgrade: x\r\n", b"X-A: caf\xc3\xa9\r\n"):
                with self.subTest(server=server, extra=extra):
                    payload = b"POST /put?key=a HTTP/1.0\r\n" + extra + b"Content-Length: 100000000\r\n\r\n"
                    first = raw_exchange(port, payload, timeout=5.0, shut_write=True).split(b"\r\n")[0]
                    self.assertEqual(first, b"HTTP/1.0 413 Payload Too Large")

    def test_health_and_metrics_answer_alike_on_every_listener(self):
        """/health and /metrics take GET and HEAD, and refuse any other method with 405, Allow: GET, HEAD
        and a JSON detail, the same way on kvnode, kvproxy's data path and its admin listener."""
        for port, server in [(self.node.port, "kvnode"), (self.proxy.port, "kvproxy"),
                             (self.proxy.admin_port, "kvproxy admin")]:
            for path in ("/health", "/metrics"):
                with self.subTest(server=server, path=path):
                    c = Client(port)
                    try:
                        status, headers, body = c.request("GET", path)
                        self.assertEqual(status, 200)
                        status, headers, head_body = c.request("HEAD", path)
                        self.assertEqual((status, head_body), (200, b""))
                        self.assertGreater(int(headers["Content-Length"]), 0)
                        status, headers, body = c.request("POST", path, b"{}")
                        self.assertEqual((status, headers.get("Allow")), (405, "GET, HEAD"))
                        self.assertEqual(headers["Content-Type"], "application/json")
                        self.assertEqual(json.loads(body), {"status": "error", "detail": "Method not allowed"})
                    finally:
                        c.close()


if __name__ == "__main__":
    unittest.main()
