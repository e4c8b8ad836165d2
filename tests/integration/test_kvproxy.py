"""kvproxy from the outside: real kvnodes and a real kvproxy on run-time ports, real HTTP."""
import json
import os
import signal
import socket
import threading
import time
import unittest

from kvtest import (Client, Cluster, Load, harness, metric, metrics, owners, parse_responses, proxy_ring, put_all,
                    raw_exchange, run_kvproxy, wait_until, write_ring)


class RoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = harness(cls).cluster(3, proxy_extra=["--threads", "2"])  # two workers, two sets of pools
        cls.port = cls.cluster.port

    @classmethod
    def tearDownClass(cls):
        codes = cls.cluster.close()
        assert set(codes.values()) == {0}, codes

    def setUp(self):
        self.c = Client(self.port)

    def tearDown(self):
        self.c.close()
        self.assertTrue(self.cluster.proxy.alive(), self.cluster.proxy.output())

    def test_every_key_lives_on_exactly_its_owner(self):
        keys = [f"route-{i}" for i in range(300)] + ["a b", "ключ", "x/y?z", "100%"]
        want = owners(self.cluster.ring, keys)
        for k in keys:
            status, headers, _ = self.c.put(k, "v:" + k)
            self.assertEqual(status, 200)
            self.assertEqual(headers["X-KV-Node"], want[k], k)
        self.assertEqual(set(want.values()), {"n1", "n2", "n3"})
        direct = {n: self.cluster.node_client(n) for n in self.cluster.nodes}
        for k in keys:
            for node_id, c in direct.items():
                status = c.get(k)[0]
                self.assertEqual(status, 200 if node_id == want[k] else 404, f"{k} on {node_id}")
        for c in direct.values():
            c.close()
        for k in keys[:50]:
            status, headers, body = self.c.get(k)
            self.assertEqual((status, headers["X-KV-Node"], json.loads(body)["value"]), (200, want[k], "v:" + k))

    def test_two_proxies_with_the_list_in_another_order_route_alike(self):
        h = harness(self)
        ring = write_ring(h.path("ring.yaml"), [(i, self.cluster.nodes[i].port) for i in ("n3", "n1", "n2")])
        other = h.proxy(ring)
        c2 = Client(other.port)
        for i in range(200):
            k = f"order-{i}"
            a = self.c.get(k)[1]["X-KV-Node"]
            b = c2.get(k)[1]["X-KV-Node"]
            self.assertEqual(a, b, k)
        c2.close()
        self.assertEqual(other.terminate(), 0)

    def test_api_rows_through_the_proxy(self):
        self.assertEqual(self.c.put("api-k", "one")[::2], (200, b'{"status":"success"}'))
        self.assertEqual(self.c.get("api-k")[::2], (200, b'{"status":"success","value":"one"}'))
        self.assertEqual(self.c.delete("api-k")[0], 200)
        self.assertEqual(self.c.get("api-k")[::2], (404, b'{"status":"error","detail":"Key not found"}'))
        self.assertEqual(self.c.delete("api-k")[0], 404)
        # The node's own 4xx answers are relayed, with the node named.
        status, headers, body = self.c.request("POST", "/put?key=api-bad", b"not json")
        self.assertEqual(status, 400)
        self.assertIn("X-KV-Node", headers)
        self.assertTrue(json.loads(body)["detail"].startswith("Invalid JSON body"))
        status, headers, _ = self.c.request("GET", "/put?key=api-bad")
        self.assertEqual((status, headers["Allow"]), (405, "POST"))

    def test_head_through_the_proxy(self):
        self.assertEqual(self.c.put("px-head", "v")[0], 200)
        get = self.c.get("px-head")
        status, headers, body = self.c.request("HEAD", "/get?key=px-head")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Length"], str(len(get[2])))  # the node's, passed on
        self.assertEqual(headers["X-KV-Node"], get[1]["X-KV-Node"])
        self.assertEqual(self.c.get("px-head")[::2], get[::2])  # nothing was left on the connection
        for _ in range(3):  # the node connection stays in step too
            self.assertEqual(self.c.request("HEAD", "/get?key=px-head")[0], 200)
            self.assertEqual(self.c.get("px-head")[::2], get[::2])
        data = raw_exchange(self.port, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"  # the proxy's own answer
                                       b"HEAD /get?key=px-absent HTTP/1.1\r\nHost: x\r\n\r\n"
                                       b"GET /get?key=px-head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first, _, rest = data.partition(b"\r\n\r\n")
        second, _, rest = rest.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 200 OK\r\n"), first)
        self.assertTrue(second.startswith(b"HTTP/1.1 404 "), second)
        (status, _, body), = parse_responses(rest)
        self.assertEqual((status, body), (200, get[2]))

    def test_errors_the_proxy_answers_itself(self):
        for target, want_status, want_detail in [("/get", 400, "Missing key parameter"),
                                                 ("/get?key=", 400, "Empty key"),
                                                 ("/get?key=%zz", 400, "Invalid percent-encoding in key"),
                                                 ("/get?key=" + "k" * 1025, 413, "Key too long")]:
            with self.subTest(target=target):
                status, headers, body = self.c.request("GET", target)
                self.assertEqual((status, json.loads(body)["detail"]), (want_status, want_detail))
                self.assertNotIn("X-KV-Node", headers)  # no node was asked
        (status, _, body), = parse_responses(raw_exchange(
            self.port, b"GET /get?key=a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n"))
        self.assertEqual((status, json.loads(body)["detail"]), (431, "Request headers too large"))
        (status, _, _), = parse_responses(raw_exchange(self.port, b"NOT HTTP AT ALL\r\n\r\n"))
        self.assertEqual(status, 400)

    def test_pipelined_requests_to_different_nodes_answer_in_order(self):
        keys = [f"pipe-{i}" for i in range(12)]
        want = owners(self.cluster.ring, keys)
        reqs = b""
        for k in keys:
            body = json.dumps({"value": k}).encode()
            reqs += (f"POST /put?key={k} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        for k in keys:
            reqs += f"GET /get?key={k} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        reqs += b"GET /get?key=pipe-absent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        responses = parse_responses(raw_exchange(self.port, reqs))
        self.assertEqual(len(responses), 2 * len(keys) + 1)
        for i, k in enumerate(keys):
            status, headers, body = responses[len(keys) + i]
            self.assertEqual((status, headers["x-kv-node"], json.loads(body)["value"]), (200, want[k], k))
        self.assertEqual(responses[-1][0], 404)

    def test_chunked_body_and_a_mebibyte_value(self):
        body = json.dumps({"value": "chunked through"}).encode()
        payload = (b"POST /put?key=px-chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
                   + b"GET /get?key=px-chunk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        responses = parse_responses(raw_exchange(self.port, payload))
        self.assertEqual([r[0] for r in responses], [200, 200])
        self.assertEqual(json.loads(responses[1][2])["value"], "chunked through")
        value = "".join(chr(0x30 + i % 40) for i in range(1 << 20))
        self.assertEqual(self.c.put("px-mib", value)[0], 200)
        self.assertEqual(json.loads(self.c.get("px-mib")[2])["value"], value)

    def test_expect_100_continue_through_the_proxy(self):
        body = b'{"value":"expected"}'
        head = (b"POST /put?key=px-expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode())
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(head)
            self.assertEqual(s.recv(64), b"HTTP/1.1 100 Continue\r\n\r\n")  # from the proxy
            s.sendall(body + b"GET /get?key=px-expect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        responses = parse_responses(data)
        self.assertEqual([r[0] for r in responses], [200, 200])  # final answers only, no relayed 100
        self.assertEqual(json.loads(responses[1][2])["value"], "expected")

    def test_health_metrics_and_stats(self):
        self.assertEqual(self.c.request("GET", "/health")[0], 200)
        self.c.put("m-key", "v")
        text = self.c.request("GET", "/metrics")[2].decode()
        for n in ("n1", "n2", "n3"):
            self.assertEqual(metric(text, f'kvproxy_node_up{{node="{n}"}}'), 1)
        self.assertGreaterEqual(sum(metric(text, f'kvproxy_responses_total{{node="{n}",code="2xx"}}')
                                    for n in ("n1", "n2", "n3")), 1)
        self.assertIn('kvproxy_request_duration_seconds_bucket{node="n1",le="+Inf"}', text)
        stats = self.cluster.stats()
        self.assertEqual([n["id"] for n in stats["nodes"]], ["n1", "n2", "n3"])
        self.assertAlmostEqual(sum(n["ownership"] for n in stats["nodes"]), 1.0, places=5)
        for n in stats["nodes"]:
            self.assertEqual(n["state"], "UP")
        self.assertEqual(proxy_ring(self.cluster.admin)["points"], 3 * 32768)


class UpstreamBehaviourTest(unittest.TestCase):
    """A fake node stands in where a real kvnode never misbehaves."""

    OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"status":"success"}'

    def setUp(self):
        self.h = harness(self)

    def proxy_for(self, fake, extra=()):
        ring = write_ring(self.h.path("ring.yaml"), [("f1", fake.port)])
        return self.h.proxy(ring, checks={"interval": 60000}, extra=extra)

    def test_hop_by_hop_headers_are_not_forwarded_either_way(self):
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive, X-Node-Private\r\n"
                  b"X-Node-Private: secret\r\nKeep-Alive: timeout=5\r\nX-Node-Public: yes\r\nContent-Length: 20\r\n\r\n"
                  b'{"status":"success"}')
        fake = self.h.fake_node(lambda line, headers: answer)
        proxy = self.proxy_for(fake)
        data = raw_exchange(proxy.port, b"GET /get?key=h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Client-Private\r\n"
                                        b"X-Client-Private: 1\r\nX-Client-Public: 2\r\nKeep-Alive: 300\r\nTE: trailers\r\n"
                                        b"Proxy-Connection: keep-alive\r\n\r\n"
                                        b"GET /get?key=h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        (status, headers, _), _ = parse_responses(data)
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-kv-node"], "f1")
        self.assertEqual(headers["x-node-public"], "yes")
        for h in ("x-node-private", "keep-alive"):
            self.assertNotIn(h, headers)
        _, got, _ = next(s for s in fake.seen if "/get" in s[0])
        self.assertEqual(got["x-client-public"], "2")
        self.assertEqual(got["host"], "x")
        for h in ("x-client-private", "keep-alive", "te", "proxy-connection", "connection"):
            self.assertNotIn(h, got)
        self.assertEqual(proxy.terminate(), 0)

    def test_answers_of_every_shape_are_relayed(self):
        # Most answers are read by a fast scanner; the rest by Beast's parser. Both must relay alike.
        body = b'{"status":"success","value":"shape"}'
        plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        big = b"v" * 100_000
        answers = {
            "plain": plain,
            "pieces": [plain[i:i + 7] for i in range(0, len(plain), 7)],  # head and body in 7-byte reads
            "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                        b"%x\r\n%s\r\n" % (len(body[:10]), body[:10]),
                        b"%x\r\n%s\r\n0\r\n\r\n" % (len(body[10:]), body[10:])],
            "interim": b"HTTP/1.1 100 Continue\r\n\r\n" + plain,
            "big": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big,
            "folded": b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
            "notfound": b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
            "close": plain.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1),
        }
        fake = self.h.fake_node(lambda line, headers: answers[line.split("key=")[1].split()[0]])
        proxy = self.proxy_for(fake)
        c = Client(proxy.port)
        for key, want in (("plain", body), ("pieces", body), ("chunked", body), ("interim", body), ("big", big),
                          ("folded", body), ("notfound", b"no"), ("plain", body)):
            status, headers, got = c.get(key)
            headers = {k.lower(): v for k, v in headers.items()}
            self.assertEqual((key, status, got), (key, 404 if key == "notfound" else 200, want))
            self.assertEqual(headers["content-length"], str(len(want)))
            self.assertEqual(headers["x-kv-node"], "f1")
        connects = self.pool_metrics(proxy.port)[0]
        self.assertEqual(connects, 1)  # every answer above left the connection reusable
        self.assertEqual(c.get("close")[0], 200)  # the node says close: not pooled
        self.assertEqual(c.get("plain")[0], 200)
        self.assertEqual(self.pool_metrics(proxy.port)[0], 2)
        text = c.request("GET", "/metrics")[2].decode()
        self.assertEqual(metric(text, "kvproxy_retries_total"), 0)
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_no_answer_in_time_is_504(self):
        fake = self.h.fake_node(lambda line, headers: None)
        proxy = self.proxy_for(fake, ["--response-timeout-ms", "300"])
        c = Client(proxy.port)
        status, _, body = c.get("slow")
        self.assertEqual(status, 504)
        self.assertEqual(json.loads(body)["detail"], "Node f1 (127.0.0.1:%d): no answer within 300 ms" % fake.port)
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_an_answer_cut_off_by_the_timeout_leaves_nothing_behind(self):
        # A chunked answer (read by Beast's parser) stalls mid-body until the response timeout. The
        # next request on the same client connection, a HEAD (which always goes to Beast's parser),
        # must be read afresh, not as the rest of the stalled answer.
        def behaviour(line, headers):
            if line.startswith("HEAD "):
                return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n"
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"

        fake = self.h.fake_node(behaviour)
        proxy = self.proxy_for(fake, ["--response-timeout-ms", "300"])
        c = Client(proxy.port)
        self.assertEqual(c.get("stall")[0], 504)
        status, headers, body = c.request("HEAD", "/get?key=stall")
        self.assertEqual((status, headers.get("Content-Length"), body), (200, "42", b""))
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_malformed_answer_is_502(self):
        fake = self.h.fake_node(lambda line, headers: b"NONSENSE\r\n\r\n", close_after=True)
        proxy = self.proxy_for(fake)
        c = Client(proxy.port)
        status, _, body = c.get("garbage")
        self.assertEqual(status, 502)
        self.assertTrue(json.loads(body)["detail"].startswith("Node f1"))
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_a_pooled_connection_the_node_closed_is_not_used(self):
        # Answers as if the connection stays open, then closes it: the proxy sees the FIN and drops
        # the connection from its pool, so the next request opens a fresh one, with no retry.
        fake = self.h.fake_node(lambda line, headers: self.OK, close_after=True)
        proxy = self.proxy_for(fake)
        c = Client(proxy.port)
        watch = Client(proxy.port)

        def dropped():
            # The FIN is seen by the proxy's loop, not at the moment the node closes: wait for the
            # pool to let the connection go before the next request (else a request may meet it
            # first, and be retried: another test covers that case).
            text = watch.request("GET", "/metrics")[2].decode()
            return metric(text, 'kvproxy_pool_connections{node="f1",state="idle"}') == 0

        self.assertEqual(c.get("r")[0], 200)
        self.assertTrue(fake.closed.wait(5))
        self.assertTrue(wait_until(dropped, 5), "the proxy kept a connection the node closed")
        for i in range(3):
            fake.closed.clear()
            self.assertEqual(c.get("r")[0], 200)
            self.assertTrue(fake.closed.wait(5))
            self.assertTrue(wait_until(dropped, 5), "the proxy kept a connection the node closed")
        watch.close()
        text = c.request("GET", "/metrics")[2].decode()
        self.assertEqual(metric(text, 'kvproxy_node_connects_total{node="f1"}'), 4)
        self.assertEqual(metric(text, "kvproxy_retries_total"), 0)
        self.assertEqual(metric(text, 'kvproxy_errors_total{node="f1",cause="bad_response"}'), 0)
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_a_pooled_connection_closed_as_the_request_arrives_is_retried_once(self):
        # The node closes a kept-alive connection just as the next request reaches it (its idle
        # timer ran out at that moment): no byte of an answer, so the request goes again, once, on a
        # fresh connection.
        fake = self.h.fake_node(lambda line, headers: self.OK, close_on=2)
        proxy = self.proxy_for(fake)
        c = Client(proxy.port)
        for i in range(4):
            self.assertEqual(c.get("r")[0], 200)
        text = c.request("GET", "/metrics")[2].decode()
        # Each request after the first meets a connection closing on its second request, and
        # goes again on a fresh one: 3 retries, 4 connections.
        self.assertEqual(metric(text, "kvproxy_retries_total"), 3)
        self.assertEqual(metric(text, 'kvproxy_node_connects_total{node="f1"}'), 4)
        self.assertEqual(metric(text, 'kvproxy_errors_total{node="f1",cause="bad_response"}'), 0)
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def test_a_fresh_connection_closed_without_an_answer_is_502(self):
        # Only a reused connection is retried: on a fresh one, a close before any answer is the
        # node's failure, and the client hears of it.
        fake = self.h.fake_node(lambda line, headers: None, close_on=1)
        proxy = self.proxy_for(fake)
        c = Client(proxy.port)
        status, _, body = c.get("r")
        self.assertEqual(status, 502)
        self.assertEqual(json.loads(body)["detail"],
                         "Node f1 (127.0.0.1:%d): closed the connection without answering" % fake.port)
        text = c.request("GET", "/metrics")[2].decode()
        self.assertEqual(metric(text, "kvproxy_retries_total"), 0)
        c.close()
        self.assertEqual(proxy.terminate(), 0)

    def burst(self, port, n):
        """n clients with one request each, all in flight at the node at once."""
        codes = []
        def one(i):
            c = Client(port, timeout=30)
            codes.append(c.get(f"b{i}")[0])
            c.close()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(codes, [200] * n)

    def pool_metrics(self, port):
        text = metrics(port)
        return (metric(text, 'kvproxy_node_connects_total{node="f1"}'),
                metric(text, 'kvproxy_pool_connections{node="f1",state="idle"}'))

    def test_a_burst_keeps_its_connections_for_the_next(self):
        # Each answer waits until 150 requests are in flight: 150 node connections at once. The next
        # burst reuses all of them; a pool that kept fewer (128 once) reconnects for every burst.
        n = 150
        barrier = threading.Barrier(n, timeout=30)
        def behaviour(line, headers):
            barrier.wait()
            return self.OK
        fake = self.h.fake_node(behaviour)
        proxy = self.proxy_for(fake)
        self.burst(proxy.port, n)
        self.assertEqual(self.pool_metrics(proxy.port), (n, n))
        self.burst(proxy.port, n)
        self.assertEqual(self.pool_metrics(proxy.port), (n, n))
        self.assertEqual(proxy.terminate(), 0)

    def test_pool_max_idle_zero_opens_a_connection_per_request(self):
        fake = self.h.fake_node(lambda line, headers: self.OK)
        proxy = self.proxy_for(fake, ["--pool-max-idle", "0"])
        c = Client(proxy.port)
        for i in range(5):
            self.assertEqual(c.get(f"z{i}")[0], 200)
        c.close()
        self.assertEqual(self.pool_metrics(proxy.port), (5, 0))
        self.assertEqual(proxy.terminate(), 0)

    def test_connections_left_idle_after_a_burst_are_closed(self):
        n = 8
        barrier = threading.Barrier(n, timeout=30)
        calm = threading.Event()
        def behaviour(line, headers):
            if not calm.is_set():
                barrier.wait()
            return self.OK
        fake = self.h.fake_node(behaviour)
        proxy = self.proxy_for(fake, ["--pool-idle-timeout-ms", "300"])
        self.burst(proxy.port, n)
        self.assertEqual(self.pool_metrics(proxy.port), (n, n))
        calm.set()
        # One request at a time for longer than the timeout: one connection stays warm, the
        # seven others idle past it and are closed.
        c = Client(proxy.port)
        end = time.monotonic() + 0.9
        while time.monotonic() < end:
            self.assertEqual(c.get("calm")[0], 200)
            time.sleep(0.02)
        c.close()
        self.assertEqual(self.pool_metrics(proxy.port), (n, 1))
        self.assertEqual(proxy.terminate(), 0)


class FailureTest(unittest.TestCase):
    def setUp(self):
        self.cluster = harness(self).cluster(3, proxy_extra=["--threads", "2"])  # reloads reach both workers

    def test_kill_9_a_node_under_load(self):
        keys = [f"load-{i}" for i in range(120)]
        own = owners(self.cluster.ring, keys)
        values = {k: "value of " + k for k in keys}
        self.assertEqual(put_all(self.cluster.port, values), [])
        load = Load.fixed(self.cluster.port, keys, values, threads=4).start()
        self.addCleanup(load.finish)
        self.assertTrue(wait_until(lambda: load.fewest_results() > 50, 20))
        killed_at = time.monotonic()
        self.cluster.nodes["n3"].kill()
        interval = Cluster.CHECKS["interval"] / 1000
        # Within one check interval, n3's keys answer 503; then keep the load on for a while.
        self.assertTrue(wait_until(lambda: self.cluster.node_state("n3") == "DOWN", 10))
        deadline = time.monotonic() + 1.0
        wait_until(lambda: time.monotonic() > deadline, 2)
        results = load.finish().results
        others = [r for r in results if own[r[1]] != "n3"]
        mine = [r for r in results if own[r[1]] == "n3"]
        self.assertTrue(others and mine)
        self.assertEqual([r for r in others if r[2] != 200], [], "keys of live nodes must never fail")
        late = [r for r in mine if r[0] > killed_at + interval]
        self.assertTrue(late)
        self.assertEqual({r[2] for r in late}, {503}, "n3's keys answer 503, never another node")
        self.assertTrue({r[2] for r in mine} <= {200, 404, 502, 503}, {r[2] for r in mine})

        # Back again with its data: served as soon as a check sees it.
        self.cluster.start_node("n3", port=self.cluster.nodes["n3"].port)
        self.assertTrue(wait_until(lambda: self.cluster.node_state("n3") == "UP", 10))
        c = Client(self.cluster.port)
        for k in keys:
            status, headers, body = c.get(k)
            self.assertEqual((status, json.loads(body)["value"]), (200, values[k]), k)
            self.assertEqual(headers["X-KV-Node"], own[k])
        c.close()
        self.assertIn("kvproxy: node n3", self.cluster.proxy.output())

    def test_reload_under_load_fails_no_request(self):
        keys = [f"reload-{i}" for i in range(60)]
        values = {k: "v" + k for k in keys}
        self.assertEqual(put_all(self.cluster.port, values), [])
        load = Load.fixed(self.cluster.port, keys, values, threads=3).start()
        self.addCleanup(load.finish)
        admin = Client(self.cluster.admin)
        versions = []
        for i in range(6):
            # The same nodes in another order: a new ring version, the same owners.
            order = ["n3", "n2", "n1"] if i % 2 else ["n2", "n1", "n3"]
            self.cluster.write_ring(order)
            if i % 2:
                os.kill(self.cluster.proxy.proc.pid, signal.SIGHUP)
                want = len(versions) + 2
                self.assertTrue(wait_until(lambda: proxy_ring(self.cluster.admin)["version"] == want, 10))
            else:
                with open(self.cluster.ring) as f:
                    status, _, body = admin.request("POST", "/admin/ring", f.read())
                self.assertEqual(status, 200, body)
            versions.append(proxy_ring(self.cluster.admin)["version"])
        # A bad config is refused with its reason, and the ring in use stays.
        status, _, body = admin.request("POST", "/admin/ring", "nodes:\n  - {id: n1, address: nowhere}\n")
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["detail"],
                         "<admin body>: nodes[0].address: expected host:port (port 1-65535), got 'nowhere'")
        with open(self.cluster.ring, "w") as f:
            f.write("nodes: [\n")
        os.kill(self.cluster.proxy.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload refused" in self.cluster.proxy.output().split("version 6")[-1], 10))
        results = load.finish().results
        self.assertEqual(versions, [2, 3, 4, 5, 6, 7])
        self.assertEqual(proxy_ring(self.cluster.admin)["version"], 7)
        self.assertGreater(len(results), 100)
        self.assertEqual([r for r in results if r[2] != 200], [])
        admin.close()


class ProcessTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)

    def test_check_mode_and_config_errors(self):
        good = write_ring(self.h.path("good.yaml"), [("n1", 18081), ("n2", 18082)])
        r = run_kvproxy("--ring", good, "--check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"kvproxy: {good} is valid: 2 nodes, 65536 ring points")
        bad = self.h.write("bad.yaml", "nodes:\n  - {id: n1, address: 127.0.0.1:1, weight: 0}\n")
        for args in (["--check"], []):
            r = run_kvproxy("--ring", bad, *args)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stderr.strip(), f"kvproxy: {bad}: nodes[0].weight: must be between 1 and 256, got 0")
        unresolvable = self.h.write("dns.yaml", "nodes:\n  - {id: n1, address: no-such-host.invalid:8081}\n")
        r = run_kvproxy("--ring", unresolvable, "--check")
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith(f"kvproxy: {unresolvable}: nodes[0].address: cannot resolve 'no-such-host.invalid'"),
                        r.stderr)
        r = run_kvproxy("--ring", self.h.path("absent.yaml"))
        self.assertEqual(r.returncode, 2)
        r = run_kvproxy()
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.splitlines()[0], "kvproxy: --ring is required")
        r = run_kvproxy("--ring", good, "--listen", "nowhere")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "kvproxy: --listen: expected host:port, got 'nowhere'"))
        r = run_kvproxy("--ring", good, "--io", "kqueue")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--io: kqueue not in {auto,uring,epoll}", r.stderr)
        self.assertEqual(run_kvproxy("--help").returncode, 0)
        self.assertRegex(run_kvproxy("--version").stdout.strip(), r"^kvproxy \d+\.\d+\.\d+$")

    def test_the_io_loop_is_chosen_and_said(self):
        node = self.h.fake_node(lambda line, headers: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        ring = write_ring(self.h.path("ring.yaml"), [("f1", node.port)])
        for io, name in (("epoll", "epoll"), ("uring", "io_uring")):
            try:
                proxy = self.h.proxy(ring, io=io)
            except RuntimeError as e:
                # Only io_uring may be missing (an old kernel, a sandbox): then it says why.
                self.assertEqual(io, "uring", str(e))
                self.assertIn("kvproxy: --io uring: io_uring", str(e))
                continue
            self.assertIn(f", {name})", proxy.output().splitlines()[0])
            c = Client(proxy.port)
            self.assertEqual(c.get("k")[:1], (200,))
            c.close()
            self.assertEqual(proxy.terminate(), 0)

    def test_access_log_has_a_line_per_request(self):
        log = self.h.path("access.log")
        cluster = self.h.cluster(2, engine="memory", proxy_extra=["--access-log", log])
        c = Client(cluster.port)
        c.put("logged", "v")
        c.get("logged")
        c.get("")
        c.close()
        self.assertEqual(cluster.close()["proxy"], 0)
        with open(log) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertRegex(lines[0], r"^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] POST /put\?key=logged "
                                   r"n\d 200 20 Tr=[\d.]+ Tc=[\d.]+ Tf=[\d.]+ Tt=[\d.]+$")
        self.assertRegex(lines[1], r" GET /get\?key=logged n\d 200 \d+ Tr=[\d.]+ Tc=-1\.000 ")  # pooled
        self.assertRegex(lines[2], r" GET /get\?key= - 400 \d+ ")

    def test_sigterm_lets_the_request_in_flight_finish(self):
        fake = self.h.fake_node(lambda line, headers: None)  # never answers: the request stays in flight
        ring = write_ring(self.h.path("ring.yaml"), [("f1", fake.port)])
        proxy = self.h.proxy(ring, extra=["--response-timeout-ms", "1500", "--check-interval-ms", "60000"])
        idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        busy = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        self.addCleanup(idle.close)
        self.addCleanup(busy.close)
        busy.sendall(b"GET /get?key=k HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(wait_until(lambda: any("/get" in s[0] for s in fake.seen), 10))
        proxy.proc.send_signal(signal.SIGTERM)
        self.assertEqual(idle.recv(100), b"")  # idle: closed by the drain
        data = b""
        while chunk := busy.recv(65536):
            data += chunk
        (status, headers, _), = parse_responses(data)
        self.assertEqual((status, headers["connection"]), (504, "close"))  # answered, then closed
        self.assertEqual(proxy.proc.wait(20), 0)

    def test_maxconn_holds_extra_clients_in_the_backlog(self):
        cluster = self.h.cluster(1, engine="memory", proxy_extra=["--maxconn", "2"])
        first = [Client(cluster.port) for _ in range(2)]
        for c in first:
            self.assertEqual(c.get("mc")[0], 404)
        third = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
        third.sendall(b"GET /get?key=mc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        third.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            third.recv(100)  # held in the backlog while two connections are open
        first[0].close()
        third.settimeout(10)
        self.assertTrue(third.recv(100).startswith(b"HTTP/1.1 404"))
        third.close()
        first[1].close()
        self.assertEqual(cluster.close()["proxy"], 0)


if __name__ == "__main__":
    unittest.main()
