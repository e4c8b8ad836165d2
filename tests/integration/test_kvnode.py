"""kvnode from the outside: the real binary, a real socket, real HTTP."""
import json
import socket
import threading
import time
import unittest

from kvtest import Client, harness, metric, parse_responses, raw_exchange, run_kvnode

NOT_FOUND = b'{"status":"error","detail":"Key not found"}'
SUCCESS = b'{"status":"success"}'


class NodeTest(unittest.TestCase):
    """One rocksdb node for the whole class; tests use distinct keys."""

    @classmethod
    def setUpClass(cls):
        cls.node = harness(cls).node(extra=["--max-key-bytes", "64"])
        cls.port = cls.node.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.node.terminate()
        assert rc == 0, cls.node.output()

    def setUp(self):
        self.c = Client(self.port)

    def tearDown(self):
        self.c.close()
        self.assertTrue(self.node.alive(), "kvnode died:\n" + self.node.output())

    def error(self, status, data):
        body = json.loads(data)
        self.assertEqual(body["status"], "error")
        self.assertIsInstance(body["detail"], str)
        return status, body["detail"]

    # --- every row of the API table ---

    def test_put_get_delete(self):
        status, headers, body = self.c.put("alpha", "one")
        self.assertEqual((status, body), (200, SUCCESS))
        self.assertEqual(headers["Content-Type"], "application/json")
        status, _, body = self.c.get("alpha")
        self.assertEqual((status, body), (200, b'{"status":"success","value":"one"}'))
        self.assertEqual(self.c.put("alpha", "two")[0], 200)  # overwrite
        self.assertEqual(json.loads(self.c.get("alpha")[2])["value"], "two")
        self.assertEqual(self.c.delete("alpha")[:3:2], (200, SUCCESS))
        self.assertEqual(self.c.get("alpha")[::2], (404, NOT_FOUND))
        self.assertEqual(self.c.delete("alpha")[::2], (404, NOT_FOUND))

    def test_get_missing_key_is_404(self):
        self.assertEqual(self.c.get("never-written")[::2], (404, NOT_FOUND))

    def test_empty_value_is_a_value(self):
        self.assertEqual(self.c.put("empty-value", "")[0], 200)
        self.assertEqual(self.c.get("empty-value")[2], b'{"status":"success","value":""}')

    # --- bad input: 4xx with a JSON detail, and the process keeps serving ---

    def test_key_errors(self):
        cases = [
            ("/get", 400, "Missing key parameter"),
            ("/get?other=1", 400, "Missing key parameter"),
            ("/get?key=", 400, "Empty key"),
            ("/get?key=%zz", 400, "Invalid percent-encoding in key"),
            ("/get?key=a%00b", 400, "Key contains a control character"),
            ("/get?key=" + "k" * 65, 413, "Key too long"),
            ("/del?key=", 400, "Empty key"),
        ]
        for target, want_status, want_detail in cases:
            with self.subTest(target=target):
                status, _, body = self.c.request("GET" if target.startswith("/get") else "DELETE", target)
                self.assertEqual(self.error(status, body), (want_status, want_detail))
        status, _, body = self.c.request("POST", "/put", {"value": "v"})
        self.assertEqual(self.error(status, body), (400, "Missing key parameter"))
        self.assertEqual(self.c.get("k" * 64)[0], 404)  # exactly at the limit is fine

    def test_body_errors(self):
        cases = [
            (b"", "Invalid JSON body"),
            (b"not json", "Invalid JSON body"),
            (b'{"value": "unterminated', "Invalid JSON body"),
            (b'{"value": "\xff\xfe"}', "Invalid JSON body"),  # invalid UTF-8
            (b'["value"]', "Body must be a JSON object with a string field 'value'"),
            (b'{"val": "x"}', "Missing field 'value'"),
            (b'{"value": 42}', "Field 'value' must be a string"),
            (b'{"value": null}', "Field 'value' must be a string"),
            (b'{"value": {"a": 1}}', "Field 'value' must be a string"),
        ]
        for body, want in cases:
            with self.subTest(body=body):
                status, _, data = self.c.request("POST", "/put?key=bodyerr", body)
                status, detail = self.error(status, data)
                self.assertEqual(status, 400)
                self.assertTrue(detail.startswith(want), detail)
        self.assertEqual(self.c.get("bodyerr")[0], 404)  # nothing was written

    def test_value_too_large_is_413(self):
        big = "v" * ((1 << 20) + 1)
        status, _, body = self.c.put("too-big", big)
        self.assertEqual(self.error(status, body), (413, "Value too large (limit 1048576 bytes)"))
        self.assertEqual(self.c.get("too-big")[0], 404)

    def test_body_over_the_limit_is_413_and_closes(self):
        # Over the body limit (6 MiB + 4 KiB of JSON): refused from Content-Length, before the body.
        n = 7 << 20
        head = (f"POST /put?key=huge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {n}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(head)
            try:
                s.sendall(b"x" * (1 << 20))  # part of the body; the server may already have answered
            except (BrokenPipeError, ConnectionResetError):
                pass
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
        (status, headers, body), = parse_responses(data)
        self.assertEqual(self.error(status, body), (413, "Request body too large"))
        self.assertEqual(headers["connection"], "close")

    def test_headers_over_the_limit_is_431(self):
        payload = (b"GET /get?key=a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n")
        (status, _, body), = parse_responses(raw_exchange(self.port, payload))
        self.assertEqual(self.error(status, body), (431, "Request headers too large"))

    def test_unknown_path_is_404(self):
        status, _, body = self.c.request("GET", "/nope?key=a")
        self.assertEqual(self.error(status, body), (404, "Not found"))

    def test_wrong_method_is_405_with_allow(self):
        for method, target, allow in [("GET", "/put?key=a", "POST"), ("PUT", "/put?key=a", "POST"),
                                      ("POST", "/get?key=a", "GET, HEAD"), ("GET", "/del?key=a", "DELETE"),
                                      ("DELETE", "/health", "GET, HEAD")]:
            with self.subTest(method=method, target=target):
                status, headers, body = self.c.request(method, target)
                self.assertEqual(self.error(status, body), (405, "Method not allowed"))
                self.assertEqual(headers["Allow"], allow)

    def test_head_is_a_get_without_the_body(self):
        self.assertEqual(self.c.put("head-k", "v")[0], 200)
        get = self.c.get("head-k")
        status, headers, body = self.c.request("HEAD", "/get?key=head-k")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Length"], str(len(get[2])))  # what GET would send
        self.assertEqual(self.c.get("head-k")[::2], get[::2])  # nothing was left on the connection
        data = raw_exchange(self.port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                       b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
        (status, _, _), = parse_responses(rest)  # the next answer follows the head at once
        self.assertEqual(status, 404)

    def test_malformed_request_is_400_and_next_client_is_served(self):
        data = raw_exchange(self.port, b"THIS IS NOT HTTP\r\n\r\n")
        (status, _, body), = parse_responses(data)
        self.assertEqual(status, 400)
        other = Client(self.port)
        self.assertEqual(other.get("after-garbage")[0], 404)
        other.close()

    # --- connection handling ---

    def test_pipelined_requests_answer_in_order(self):
        reqs = [
            b'POST /put?key=pipe1 HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{"value":"one"}',
            b"GET /get?key=pipe1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /get?key=pipe-missing HTTP/1.1\r\nHost: x\r\n\r\n",
            b"DELETE /del?key=pipe1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /get?key=pipe1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]
        responses = parse_responses(raw_exchange(self.port, b"".join(reqs)))
        self.assertEqual([r[0] for r in responses], [200, 200, 404, 200, 404])
        self.assertEqual(responses[1][2], b'{"status":"success","value":"one"}')

    def test_pipelined_requests_split_at_every_byte(self):
        # The same two requests, delivered one byte at a time.
        payload = (b'POST /put?key=split HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"value":"s"}'
                   b"GET /get?key=split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(payload)):
                s.sendall(payload[i:i + 1])
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        responses = parse_responses(data)
        self.assertEqual([r[0] for r in responses], [200, 200])
        self.assertEqual(responses[1][2], b'{"status":"success","value":"s"}')

    def test_chunked_request_body(self):
        body = b'{"value":"chunked!"}'
        payload = (b"POST /put?key=chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"5\r\n" + body[:5] + b"\r\n" + f"{len(body) - 5:x}".encode() + b"\r\n" + body[5:]
                   + b"\r\n0\r\n\r\n"
                   + b"GET /get?key=chunky HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        responses = parse_responses(raw_exchange(self.port, payload))
        self.assertEqual([r[0] for r in responses], [200, 200])
        self.assertEqual(json.loads(responses[1][2])["value"], "chunked!")

    def test_expect_100_continue(self):
        body = b'{"value":"after-continue"}'
        head = (b"POST /put?key=expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(head)
            self.assertEqual(s.recv(64), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        self.assertEqual(parse_responses(data)[0][0], 200)

    def test_http_1_0_closes_after_response(self):
        data = raw_exchange(self.port, b"GET /get?key=x10 HTTP/1.0\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.0 404"), data)

    def test_keep_alive_connection_serves_many_requests(self):
        for i in range(200):
            self.assertEqual(self.c.put(f"ka{i}", str(i))[0], 200)
        for i in range(200):
            self.assertEqual(json.loads(self.c.get(f"ka{i}")[2])["value"], str(i))

    # --- values and keys ---

    def test_one_mebibyte_value_round_trips(self):
        value = "".join(chr(0x41 + (i * 7) % 26) for i in range(1 << 20))
        self.assertEqual(self.c.put("mib", value)[0], 200)
        status, _, body = self.c.get("mib")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["value"], value)

    def test_unicode_values_and_escapes(self):
        value = "héllo wörld ✓ 😀 \"quoted\" back\\slash\nnew line\ttab \u0001 \u2028"
        self.assertEqual(self.c.put("uni-value", value)[0], 200)
        self.assertEqual(json.loads(self.c.get("uni-value")[2])["value"], value)

    def test_unicode_and_percent_encoded_keys(self):
        keys = ["ключ", "a/b", "a b", "a+b", "100%", "x&y=z", "日本語のキー", "emoji😀", "?#[]@!$'()*,;"]
        for i, key in enumerate(keys):
            self.assertEqual(self.c.put(key, f"v{i}")[0], 200, key)
        for i, key in enumerate(keys):
            with self.subTest(key=key):
                self.assertEqual(json.loads(self.c.get(key)[2])["value"], f"v{i}")
        # One key, three spellings of it.
        self.assertEqual(json.loads(self.c.request("GET", "/get?key=a+b")[2])["value"], "v2")
        self.assertEqual(json.loads(self.c.request("GET", "/get?key=a%20b")[2])["value"], "v2")
        self.assertEqual(json.loads(self.c.request("GET", "/get?x=1&key=a%2Fb&key=zzz")[2])["value"], "v1")

    # --- health and metrics ---

    def test_health(self):
        status, _, body = self.c.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["status"], "ok")

    def test_metrics_count_requests(self):
        self.c.put("metric-key", "v")
        self.c.get("metric-key")
        self.c.get("metric-absent")
        status, headers, body = self.c.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        text = body.decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        self.assertGreaterEqual(samples['kvnode_requests_total{route="put",code="200"}'], 1)
        self.assertGreaterEqual(samples['kvnode_requests_total{route="get",code="404"}'], 1)
        self.assertGreaterEqual(samples['kvnode_request_duration_seconds_count{route="get"}'], 2)
        self.assertIn('kvnode_request_duration_seconds_bucket{route="get",le="+Inf"}', samples)
        self.assertGreaterEqual(samples["kvnode_keys"], 1)
        self.assertGreaterEqual(samples["kvnode_connections_open"], 1)
        # RocksDB's own gauges, with the block cache at its default size.
        self.assertEqual(samples["kvnode_rocksdb_block_cache_capacity_bytes"], 256 << 20)
        for gauge in ("sst_bytes", "memtable_bytes", "pending_compaction_bytes", "running_compactions",
                      "running_flushes", "l0_files", "block_cache_bytes"):
            self.assertIn(f"kvnode_rocksdb_{gauge}", samples)


    # --- per-key versions (common/version.hpp): the node-to-node fields ---

    def test_versioned_writes_and_reads(self):
        t5 = "5.0000000000000001"
        status, h, body = self.c.request("POST", "/put?key=ver-a", {"value": "x"}, {"X-KV-Version": "5.1"})
        self.assertEqual((status, body, h["X-KV-Version"], h["X-KV-Applied"]), (200, SUCCESS, t5, "1"))
        self.assertNotIn("X-KV-Tombstone", h)
        # Older: success, superseded, the key unchanged.
        status, h, _ = self.c.request("POST", "/put?key=ver-a", {"value": "old"}, {"X-KV-Version": "4.ff"})
        self.assertEqual((status, h["X-KV-Version"], h["X-KV-Applied"]), (200, t5, "0"))
        status, h, body = self.c.request("GET", "/get?key=ver-a", headers={"X-KV-Versioned": "1"})
        self.assertEqual((status, body, h["X-KV-Version"]), (200, b'{"status":"success","value":"x"}', t5))
        # One tag, another value: 409.
        status, h, body = self.c.request("POST", "/put?key=ver-a", {"value": "y"}, {"X-KV-Version": "5.1"})
        self.assertEqual(self.error(status, body), (409, f"version {t5} already holds another value"))
        # A tagged delete: 200 (a value was held), a tombstone with the tag.
        status, h, body = self.c.request("DELETE", "/del?key=ver-a", headers={"X-KV-Version": "6.1"})
        self.assertEqual((status, body, h["X-KV-Tombstone"], h["X-KV-Applied"]), (200, SUCCESS, "1", "1"))
        status, h, body = self.c.request("GET", "/get?key=ver-a", headers={"X-KV-Versioned": "1"})
        self.assertEqual((status, body, h["X-KV-Version"], h["X-KV-Tombstone"]),
                         (404, NOT_FOUND, "6.0000000000000001", "1"))
        # A plain client sees the same as ever, without a version field.
        for status, h, _ in [self.c.get("ver-a"), self.c.put("ver-b", "v"), self.c.get("ver-b"), self.c.delete("ver-b")]:
            self.assertFalse([f for f in h if f.lower() in ("x-kv-version", "x-kv-applied", "x-kv-tombstone")], h)
        # An untagged write after the delete is ordered after it: its counter is the node's next, above
        # every counter the node stored (the node is shared with the other tests: not exactly 7).
        status, h, _ = self.c.request("POST", "/put?key=ver-a", {"value": "z"}, {"X-KV-Versioned": "1"})
        self.assertEqual(status, 200)
        self.assertGreater(int(h["X-KV-Version"].split(".")[0]), 6, h)
        self.assertNotIn("X-KV-Applied", h)
        status, _, body = self.c.request("POST", "/put?key=ver-a", {"value": "x"}, {"X-KV-Version": "5.z"})
        self.assertEqual(self.error(status, body), (400, "X-KV-Version: expected <counter>.<writer in hex>"))
        text = self.c.request("GET", "/metrics")[2].decode()
        self.assertGreaterEqual(metric(text, "kvnode_version_conflicts_total"), 1)
        self.assertGreaterEqual(metric(text, "kvnode_writes_superseded_total"), 1)

    def test_versioned_scan_returns_tombstones(self):
        self.assertEqual(self.c.request("DELETE", "/del?key=ver-scan", headers={"X-KV-Version": "3.2"})[0], 404)
        self.assertEqual(self.c.put("ver-scan-value", "v")[0], 200)
        everything = "0000000000000000 ffffffffffffffff\n"

        def records(body, versioned):
            """{user key: (kind, counter, writer, value)} of a scan answer (common/transfer.hpp)."""
            out, i = {}, 0
            while i < len(body):
                klen = int.from_bytes(body[i:i + 4], "big")
                key = body[i + 4 + 8:i + 4 + klen].decode()
                i += 4 + klen
                kind, counter, writer = "v", 0, 0
                if versioned:
                    kind, counter, writer = chr(body[i]), int.from_bytes(body[i + 1:i + 9], "big"), int.from_bytes(body[i + 9:i + 17], "big")
                    i += 17
                vlen = int.from_bytes(body[i:i + 4], "big")
                out[key] = (kind, counter, writer, body[i + 4:i + 4 + vlen])
                i += 4 + vlen
            return out

        status, _, body = self.c.request("POST", "/admin/scan?limit=100000", everything)
        self.assertEqual(status, 200)
        plain = records(body, False)
        self.assertNotIn("ver-scan", plain)  # plain: values only
        self.assertEqual(plain["ver-scan-value"][3], b"v")
        status, _, body = self.c.request("POST", "/admin/scan?limit=100000&versions=1", everything)
        self.assertEqual(status, 200)
        versioned = records(body, True)
        self.assertEqual(versioned["ver-scan"], ("t", 3, 2, b""))
        self.assertEqual(versioned["ver-scan-value"][0], "v")
        self.assertGreaterEqual(versioned["ver-scan-value"][1], 1)
        status, _, body = self.c.request("POST", "/admin/scan?versions=yes", everything)
        self.assertEqual(self.error(status, body), (400, "versions: expected 1"))

class DurabilityTest(unittest.TestCase):
    """Each test stops and starts a node on the same data directory, `db`."""

    def setUp(self):
        self.h = harness(self)
        self.db = self.h.path("db")

    def start_node(self, extra=()):
        return self.h.node(data_dir=self.db, extra=extra)

    def test_restart_keeps_data(self):
        node = self.start_node()
        c = Client(node.port)
        for i in range(100):
            self.assertEqual(c.put(f"r{i}", f"value {i}")[0], 200)
        self.assertEqual(c.delete("r7")[0], 200)
        c.close()
        self.assertEqual(node.terminate(), 0, node.output())
        node = self.start_node()
        c = Client(node.port)
        for i in range(100):
            status, _, body = c.get(f"r{i}")
            if i == 7:
                self.assertEqual(status, 404)  # a delete is durable too
            else:
                self.assertEqual(json.loads(body)["value"], f"value {i}")
        c.close()
        self.assertEqual(node.terminate(), 0)

    def _kill9_after_acknowledged_writes(self, extra):
        node = self.start_node(extra)
        c = Client(node.port)
        n = 1500
        for i in range(n):
            status, _, _ = c.put(f"crash{i}", f"v{i}")
            self.assertEqual(status, 200)
        node.kill()  # SIGKILL right after the last acknowledgement
        c.close()
        node = self.start_node(extra)
        c = Client(node.port)
        missing = [i for i in range(n) if c.get(f"crash{i}")[0] != 200]
        self.assertEqual(missing, [], f"{len(missing)} acknowledged writes lost")
        self.assertEqual(json.loads(c.get(f"crash{n - 1}")[2])["value"], f"v{n - 1}")
        c.close()
        self.assertEqual(node.terminate(), 0)

    def test_kill_9_loses_no_acknowledged_write(self):
        self._kill9_after_acknowledged_writes([])

    def test_kill_9_with_sync(self):
        self._kill9_after_acknowledged_writes(["--sync"])

    def test_sigterm_finishes_the_request_in_flight(self):
        node = self.start_node()
        idle = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        busy = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        body = b'{"value":"in flight"}'
        busy.sendall(b"POST /put?key=inflight HTTP/1.1\r\nHost: x\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:5])
        # A full round trip on a third connection: by its answer the single worker has taken in the bytes
        # the busy connection sent earlier, so its request is in flight when the signal arrives.
        probe = Client(node.port)
        self.assertEqual(probe.request("GET", "/health")[0], 200)
        probe.close()
        node.proc.send_signal(15)
        # The idle keep-alive connection is closed by the drain...
        self.assertEqual(idle.recv(100), b"")
        # ...while the request in flight is finished, answered with Connection: close.
        busy.sendall(body[5:])
        data = b""
        while chunk := busy.recv(65536):
            data += chunk
        (status, headers, _), = parse_responses(data)
        self.assertEqual(status, 200)
        self.assertEqual(headers["connection"], "close")
        self.assertEqual(node.proc.wait(20), 0, node.output())
        idle.close()
        busy.close()
        node.terminate()
        node = self.start_node()
        c = Client(node.port)
        self.assertEqual(json.loads(c.get("inflight")[2])["value"], "in flight")
        c.close()
        self.assertEqual(node.terminate(), 0)

    def test_sync_mode_group_commits_concurrent_writes(self):
        node = self.start_node(["--sync"])
        conns, each = 16, 50
        socks = [socket.create_connection(("127.0.0.1", node.port), timeout=20) for _ in range(conns)]
        # Every connection's requests are pipelined in one send, so while one batch is being fsynced
        # the next requests are already queued behind it.
        for c, s in enumerate(socks):
            s.sendall(b"".join(
                f"POST /put?key=g{c}-{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n".encode()
                + b'{"value":"v"}' for i in range(each)))
        for s in socks:
            data = b""
            while data.count(b"HTTP/1.1 200") < each:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "connection closed early")
                data += chunk
            s.close()
        c = Client(node.port)
        for conn in range(conns):
            for i in range(each):
                self.assertEqual(c.get(f"g{conn}-{i}")[0], 200)
        metrics = c.request("GET", "/metrics")[2].decode()
        c.close()
        commits = int(next(l.split()[1] for l in metrics.splitlines() if l.startswith("kvnode_group_commits_total")))
        writes = conns * each
        self.assertGreaterEqual(commits, 1)
        self.assertLess(commits, writes, "no fsync was shared between writes")
        self.assertEqual(node.terminate(), 0)

    def test_second_signal_during_shutdown_is_harmless(self):
        # Operators send SIGTERM after Ctrl-C; the second signal must not cut the final flush short.
        node = self.start_node()
        c = Client(node.port)
        self.assertEqual(c.put("twice", "v")[0], 200)
        c.close()
        node.proc.send_signal(2)
        node.proc.send_signal(15)
        self.assertEqual(node.proc.wait(20), 0)
        node.terminate()
        self.assertIn("kvnode: stopped", node.output())
        node = self.start_node()
        c = Client(node.port)
        self.assertEqual(c.get("twice")[0], 200)
        c.close()
        self.assertEqual(node.terminate(), 0)

    def test_memory_engine_serves_and_forgets(self):
        node = self.h.node(engine="memory")
        c = Client(node.port)
        self.assertEqual(c.put("m", "v")[0], 200)
        self.assertEqual(json.loads(c.get("m")[2])["value"], "v")
        self.assertIn(b'"engine":"memory"', c.request("GET", "/health")[2])
        c.close()
        self.assertEqual(node.terminate(), 0)


    def _kill9_keeps_acknowledged_tags(self, extra):
        # Tagged writes, writes the node tagged itself and deletes, each acknowledged, then kill -9:
        # after the restart every key holds the tag its last acknowledged write was answered with.
        node = self.start_node(extra)
        c = Client(node.port)
        want = {}
        for i in range(300):
            key = f"vk{i}"
            if i % 3 == 0:  # tagged by the caller
                status, h, _ = c.request("POST", "/put?key=" + key, {"value": f"v{i}"}, {"X-KV-Version": f"{i + 10}.{i:x}"})
            else:  # tagged by the node
                status, h, _ = c.request("POST", "/put?key=" + key, {"value": f"v{i}"}, {"X-KV-Versioned": "1"})
            self.assertEqual(status, 200)
            want[key] = (200, h["X-KV-Version"], None)
            if i % 5 == 0:
                status, h, _ = c.request("DELETE", "/del?key=" + key, headers={"X-KV-Versioned": "1"})
                self.assertEqual((status, h["X-KV-Tombstone"]), (200, "1"))
                want[key] = (404, h["X-KV-Version"], "1")
        node.kill()  # SIGKILL right after the last acknowledgement
        c.close()
        node = self.start_node(extra)
        c = Client(node.port)
        got = {}
        for key in want:
            status, h, _ = c.request("GET", "/get?key=" + key, headers={"X-KV-Versioned": "1"})
            got[key] = (status, h.get("X-KV-Version"), h.get("X-KV-Tombstone"))
        self.assertEqual({k: v for k, v in got.items() if v != want[k]}, {})
        # The tags still order writes: an older tagged write is superseded after the restart.
        status, h, _ = c.request("POST", "/put?key=vk3", {"value": "older"}, {"X-KV-Version": "1.1"})
        self.assertEqual((status, h["X-KV-Applied"]), (200, "0"))
        self.assertEqual(json.loads(c.get("vk3")[2])["value"], "v3")
        c.close()
        self.assertEqual(node.terminate(), 0)

    def test_kill_9_keeps_acknowledged_tags(self):
        self._kill9_keeps_acknowledged_tags([])

    def test_kill_9_keeps_acknowledged_tags_with_sync(self):
        self._kill9_keeps_acknowledged_tags(["--sync"])


class MultiThreadedTest(unittest.TestCase):
    def test_four_workers_serve_concurrent_clients_consistently(self):
        node = harness(self).node(extra=["--threads", "4"])
        errors = []

        def worker(w):
            c = Client(node.port)
            try:
                for i in range(150):
                    key = f"mt{w}-{i}"
                    if c.put(key, f"{w}:{i}")[0] != 200:
                        errors.append(("put", key))
                    status, _, body = c.get(key)
                    if status != 200 or json.loads(body)["value"] != f"{w}:{i}":
                        errors.append(("get", key, status))
                    if i % 3 == 0 and c.delete(key)[0] != 200:
                        errors.append(("del", key))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        c = Client(node.port)
        for w in range(12):
            for i in range(150):
                self.assertEqual(c.get(f"mt{w}-{i}")[0], 404 if i % 3 == 0 else 200)
        opened = [l for l in c.request("GET", "/metrics")[2].decode().splitlines()
                  if l.startswith("kvnode_connections_total")]
        c.close()
        self.assertGreaterEqual(int(opened[0].split()[1]), 13)
        self.assertEqual(node.terminate(), 0, node.output())


class DeadlineTest(unittest.TestCase):
    def test_slow_headers_get_408_and_idle_connections_close(self):
        node = harness(self).node(engine="memory", extra=["--header-timeout-ms", "300", "--idle-timeout-ms", "400"])
        try:
            with socket.create_connection(("127.0.0.1", node.port), timeout=10) as slow:
                slow.sendall(b"GET /get?key=a HTTP/1.1\r\nHost: x\r\n")  # headers never finish
                data = b""
                while chunk := slow.recv(65536):
                    data += chunk
            (status, headers, body), = parse_responses(data)
            self.assertEqual((status, json.loads(body)["detail"]), (408, "Timed out reading request headers"))
            with socket.create_connection(("127.0.0.1", node.port), timeout=10) as idle:
                started = time.monotonic()
                self.assertEqual(idle.recv(100), b"")  # closed by the server, without an answer
                self.assertGreater(time.monotonic() - started, 0.3)
            c = Client(node.port)  # and the node still serves
            self.assertEqual(c.get("a")[0], 404)
            c.close()
        finally:
            self.assertEqual(node.terminate(), 0)


class CommandLineTest(unittest.TestCase):

    def test_help_and_version(self):
        r = run_kvnode("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--data-dir", r.stdout)
        r = run_kvnode("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.strip(), r"^kvnode \d+\.\d+\.\d+$")

    def test_bad_usage_exits_2_with_a_message(self):
        cases = [
            (["--no-such-flag"], "kvnode: The following argument was not expected: --no-such-flag"),
            (["--port", "0"], "kvnode: --data-dir is required with --engine rocksdb (or use --engine memory)"),
            (["--port", "70000", "--engine", "memory"], "kvnode: --port: Value 70000 not in range 0 to 65535"),
            (["--engine", "leveldb"], "kvnode: --engine: leveldb not in {rocksdb,memory}"),
            (["--block-cache-mb", "0", "--engine", "memory"], "kvnode: --block-cache-mb: Value 0 not in range 1 to 1048576"),
            (["--compression", "lzo", "--engine", "memory"], "kvnode: --compression: lzo not in {lz4,snappy,zstd,none}"),
            (["--repair-busy-percent", "0", "--engine", "memory"], "kvnode: --repair-busy-percent: Value 0 not in range 1 to 100"),
            (["--repair-batch-keys", "10001", "--engine", "memory"],
             "kvnode: --repair-batch-keys: Value 10001 not in range 0 to 10000"),
            (["--repair-nice", "20", "--engine", "memory"], "kvnode: --repair-nice: Value 20 not in range 0 to 19"),
            (["--keep-tombstones", "--purge-tombstones", "--engine", "memory"],
             "kvnode: --purge-tombstones excludes --keep-tombstones"),
            (["--bind", "example.com", "--engine", "memory"],
             "kvnode: --bind: expected an IPv4 or IPv6 address, got 'example.com'"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                r = run_kvnode(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr.splitlines()[0], want)

    def test_port_in_use_exits_1(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            r = run_kvnode("--engine", "memory", "--port", str(port))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"kvnode: cannot listen on 127.0.0.1:{port}: Address already in use", r.stderr)

    def test_locked_data_dir_exits_1(self):
        h = harness(self)
        node = h.node(data_dir=h.path("db"))
        r = run_kvnode("--port", "0", "--data-dir", h.path("db"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("kvnode: cannot open RocksDB at", r.stderr)
        self.assertEqual(node.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
