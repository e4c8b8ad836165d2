"""replicas: N through kvproxy (../shared/REPLICATION.md, guarantees 2-4): every key on N kvnodes, each
request decided by a majority, so one node's death fails no request and a lost majority is a 503
that names the missing replicas and says whether a failed write may have happened."""
import json
import os
import signal
import socket
import threading
import time
import unittest

from kvtest import (Client, Cluster, admin, harness, metric, metrics, proxy_node_state, proxy_stats, request,
                    wait_until, write_ring)


def proxy_node(admin_port, node_id):
    return next(n for n in proxy_stats(admin_port)["nodes"] if n["id"] == node_id)


def held(port, key):
    """What one kvnode holds of `key`: (status, value or None, its version)."""
    status, headers, body = request(port, "GET", f"/replica/get?key={key}")
    doc = json.loads(body)
    return status, doc.get("value"), headers.get("X-KV-Version")


class ReplicationTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)
        self.cluster = Cluster(self.h, 3)
        self.ring = ring = write_ring(self.h.path("ring.yaml"),
                                      [(i, n.port) for i, n in sorted(self.cluster.nodes.items())], replicas=3)
        self.proxy = self.h.proxy(ring, checks=Cluster.CHECKS)
        self.c = Client(self.proxy.port)
        self.addCleanup(self.c.close)

    def nodes(self):
        return sorted(self.cluster.nodes.items())

    def quorum(self):
        """The proxy's quorum figures, from stats.json and Prometheus (which must agree)."""
        q = proxy_stats(self.proxy.admin_port)["quorum"]
        text = metrics(self.proxy.admin_port)
        for op, results in q["requests"].items():
            for result, n in results.items():
                self.assertEqual(metric(text, f'kvproxy_quorum_requests_total{{op="{op}",result="{result}"}}'), n)
        self.assertEqual(metric(text, "kvproxy_quorum_write_backs_total"), q["write_backs"])
        for cause, n in q["failures"].items():
            self.assertEqual(metric(text, f'kvproxy_quorum_failures_total{{cause="{cause}"}}'), n)
        for reason, n in q["spares_asked"].items():
            self.assertEqual(metric(text, f'kvproxy_quorum_spares_asked_total{{reason="{reason}"}}'), n)
        self.assertEqual(metric(text, "kvproxy_quorum_requeries_total"), q["requeries"])
        return q

    def test_every_replica_holds_each_write_and_delete(self):
        status, headers, _ = self.c.put("alice", "v1")
        self.assertEqual(status, 200)
        self.assertIn(headers["X-KV-Node"], {"n1", "n2", "n3"})
        self.assertGreaterEqual(len(headers["X-KV-Replicas"].split(",")), 2)  # a majority acknowledged
        # The third store runs on after the answer: every replica ends with the same version.
        self.assertTrue(wait_until(lambda: len({held(n.port, "alice") for _, n in self.nodes()}) == 1, 5))
        status, value, version = held(self.nodes()[0][1].port, "alice")
        self.assertEqual((status, value), (200, "v1"))
        status, _, body = self.c.get("alice")
        self.assertEqual((status, json.loads(body)["value"]), (200, "v1"))
        status, _, _ = self.c.put("alice", "v2")
        # Again every replica before the reads: a read that meets the one still storing v2 would write
        # it back (legitimately), and this test counts write-backs.
        self.assertTrue(wait_until(lambda: all(held(n.port, "alice")[1] == "v2" for _, n in self.nodes()), 5))
        self.assertEqual(self.c.get("alice")[0], 200)
        self.assertEqual(json.loads(self.c.get("alice")[2])["value"], "v2")
        self.assertEqual(self.c.delete("alice")[0], 200)
        self.assertTrue(wait_until(lambda: all(held(n.port, "alice")[0] == 404 for _, n in self.nodes()), 5))
        self.assertEqual(self.c.delete("alice")[0], 404)
        self.assertTrue(wait_until(lambda: len({held(n.port, "alice") for _, n in self.nodes()}) == 1, 5))
        self.assertEqual(self.c.get("alice")[0], 404)
        self.assertTrue(wait_until(lambda: all(held(n.port, "alice")[0] == 404 for _, n in self.nodes()), 5))
        # Counted: 4 reads, 2 writes, 2 deletes, all decided, none written back.
        self.assertEqual(proxy_stats(self.proxy.admin_port)["replicas"], 3)
        q = self.quorum()
        self.assertEqual(q["requests"], {"get": {"ok": 4, "refused": 0, "failed": 0},
                                         "put": {"ok": 2, "refused": 0, "failed": 0},
                                         "del": {"ok": 2, "refused": 0, "failed": 0}})
        self.assertEqual(q["write_backs"], 0)
        self.assertEqual(sum(q["failures"].values()), 0)
        # Each replica's requests are in its node's figures: every store reached all three (4 each);
        # each of the 8 query steps (4 reads, 4 tag queries) asked a majority, two replicas, and its
        # spare only if one of those failed or was late (a busy machine).
        counts = [n["requests"] for n in proxy_stats(self.proxy.admin_port)["nodes"]]
        self.assertTrue(all(c >= 4 for c in counts), counts)
        self.assertEqual(sum(counts), 4 * 3 + 8 * 2 + sum(q["spares_asked"].values()), (counts, q))
        text = metrics(self.proxy.admin_port)
        self.assertEqual(metric(text, "kvproxy_replicas"), 3)
        self.assertEqual(metric(text, "kvproxy_quorum_duration_seconds_count"), 8)
        page = request(self.proxy.admin_port, "GET", "/stats")[2].decode()
        self.assertIn("Replicated keys: 3 replicas each", page)
        self.assertIn("100.00% of reads in one round trip", page)

    def test_wrong_methods_and_a_client_gone_mid_request(self):
        for method, target, allow in (("POST", "/get?key=a", "GET, HEAD"), ("GET", "/put?key=a", "POST"),
                                      ("PUT", "/put?key=a", "POST"), ("GET", "/del?key=a", "DELETE")):
            status, headers, body = request(self.proxy.port, method, target, {"value": "v"} if method != "GET" else None)
            self.assertEqual((status, headers["Allow"], json.loads(body)["detail"]), (405, allow, "Method not allowed"))
        self.assertEqual(self.c.get("a")[0], 404)  # nothing was written
        # A client that leaves while its request waits on a paused majority: the proxy goes on serving.
        n2, n3 = self.cluster.nodes["n2"], self.cluster.nodes["n3"]
        for n in (n2, n3):
            os.kill(n.proc.pid, signal.SIGSTOP)
        try:
            s = socket.create_connection(("127.0.0.1", self.proxy.port))
            s.sendall(b"GET /get?key=a HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)  # the request is in the coordinator's hands (nothing to wait for: it cannot end)
            s.close()
        finally:
            for n in (n2, n3):
                os.kill(n.proc.pid, signal.SIGCONT)
        self.assertTrue(wait_until(lambda: self.c.put("a", "after")[0] == 200, 20))
        self.assertEqual(json.loads(self.c.get("a")[2])["value"], "after")

    def test_a_read_repairs_a_replica_that_missed_a_write(self):
        self.assertEqual(self.c.put("bob", "old")[0], 200)
        self.assertTrue(wait_until(lambda: all(held(n.port, "bob")[1] == "old" for _, n in self.nodes()), 5))
        # A newer write on one replica only (as a write interrupted after one store): a read that sees
        # it must make a majority hold it before answering it.
        n1 = self.cluster.nodes["n1"]
        status, headers, _ = request(n1.port, "POST", "/replica/put?key=bob", {"value": "new"},
                                     headers={"X-KV-Version": "4611686018427387000.1"})
        self.assertEqual((status, headers["X-KV-Applied"]), (200, "1"))
        # n3 paused, so that every majority has n1: the read meets the newest write.
        n3 = self.cluster.nodes["n3"]
        os.kill(n3.proc.pid, signal.SIGSTOP)
        try:
            status, _, body = self.c.get("bob")
            self.assertEqual((status, json.loads(body)["value"]), (200, "new"))
            self.assertEqual(held(self.cluster.nodes["n2"].port, "bob")[1], "new")  # written back first
        finally:
            os.kill(n3.proc.pid, signal.SIGCONT)
        # Once read, never older.
        for _ in range(20):
            self.assertEqual(json.loads(self.c.get("bob")[2])["value"], "new")
        # The first read wrote back; n3, resumed without "new", may make a later one write back too.
        self.assertGreaterEqual(self.quorum()["write_backs"], 1)

    def test_a_node_killed_under_load_fails_no_request(self):
        failures, acked = [], {}
        writes = [0]  # acknowledged writes so far (acked holds the last value of each of 150 keys)
        stop = threading.Event()

        def worker(t):
            c = Client(self.proxy.port, timeout=10)
            i = 0
            try:
                while not stop.is_set():
                    key, value = f"w{t}-{i % 50}", f"v{i}"
                    status, _, body = c.put(key, value)
                    if status == 200:
                        acked[key] = value
                        writes[0] += 1
                    else:
                        failures.append(("put", status, body))
                    status, _, body = c.get(key)
                    if status != 200 or json.loads(body)["value"] != acked.get(key):
                        failures.append(("get", status, body))
                    i += 1
            except Exception as e:  # a connection the proxy dropped is a failed request too
                failures.append(("connection", repr(e)))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(3)]
        for t in threads:
            t.start()
        self.addCleanup(stop.set)
        self.assertTrue(wait_until(lambda: writes[0] > 60 or failures, 20), failures)
        self.cluster.nodes["n2"].kill()
        self.assertTrue(wait_until(lambda: proxy_node_state(self.proxy.admin_port, "n2") == "DOWN", 10))
        before = writes[0]
        self.assertTrue(wait_until(lambda: writes[0] > before + 60 or failures, 20), failures)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        for key, value in acked.items():
            status, _, body = self.c.get(key)
            self.assertEqual((status, json.loads(body)["value"]), (200, value), key)

    def test_a_reload_changes_no_replica_set(self):
        nodes = [(i, n.port) for i, n in self.nodes()]
        for name, text, what in (
                ("one.yaml", dict(replicas=1), "replicas: 3 -> 1"),
                ("heavier.yaml", dict(replicas=3, heavier=True), "the membership of a ring with replicas: 3")):
            path = write_ring(self.h.path(name), [(*n, 2) if text.get("heavier") and n[0] == "n1" else n for n in nodes],
                              replicas=text["replicas"])
            with open(path) as f:
                status, body = admin(self.proxy.admin_port, "POST", "/admin/ring", f.read())
            self.assertEqual(status, 400)
            self.assertEqual(body["detail"], f"<admin body>: {what} cannot change by a reload, which moves no data (a "
                                             "majority of the new replica sets could hold none of a key's writes); "
                                             "only proxy settings can")
        # The same membership with other proxy settings: taken.
        path = write_ring(self.h.path("settings.yaml"), nodes, replicas=3, proxy={"timeouts": {"response": 3000}})
        with open(path) as f:
            self.assertEqual(admin(self.proxy.admin_port, "POST", "/admin/ring", f.read())[0], 200)
        self.assertEqual(self.c.put("after-reload", "v")[0], 200)

    def test_a_replica_marked_down_by_mistake_still_counts_when_needed(self):
        # n2 is alive but marked down (a check failed while it was paused, and the proxy wants a
        # hundred good ones, a second apart, before it believes it again); then n3 hangs. Without n2, no majority: the
        # proxy asks n2 all the same once n3's time is up, and the request succeeds.
        proxy = self.h.proxy(self.ring, checks={"interval": 1000, "timeout": 100, "fall": 1, "rise": 100},
                             extra=("--response-timeout-ms", "500"))
        self.assertEqual(request(proxy.port, "POST", "/put?key=dave", {"value": "v1"})[0], 200)
        n2, n3 = self.cluster.nodes["n2"], self.cluster.nodes["n3"]
        os.kill(n2.proc.pid, signal.SIGSTOP)
        try:
            self.assertTrue(wait_until(lambda: proxy_node_state(proxy.admin_port, "n2") == "DOWN", 10))
        finally:
            os.kill(n2.proc.pid, signal.SIGCONT)
        os.kill(n3.proc.pid, signal.SIGSTOP)
        try:
            status, headers, _ = request(proxy.port, "POST", "/put?key=dave", {"value": "v2"})
            self.assertEqual((status, set(headers["X-KV-Replicas"].split(","))), (200, {"n1", "n2"}))
            status, _, body = request(proxy.port, "GET", "/get?key=dave")
            self.assertEqual((status, json.loads(body)["value"]), (200, "v2"))
            self.assertEqual(proxy_node_state(proxy.admin_port, "n2"), "DOWN")  # still: it was asked anyway
        finally:
            os.kill(n3.proc.pid, signal.SIGCONT)
        # When the reserve is truly gone too, the 503 says both.
        n2.kill()
        os.kill(n3.proc.pid, signal.SIGSTOP)
        try:
            status, headers, body = request(proxy.port, "POST", "/put?key=dave", {"value": "v3"})
        finally:
            os.kill(n3.proc.pid, signal.SIGCONT)
        detail = json.loads(body)["detail"]
        self.assertEqual(status, 503)
        self.assertIn("n2 (127.0.0.1:%d): marked down; asked all the same: connect: " % n2.port, detail)
        self.assertRegex(detail, r"n3 \(127.0.0.1:%d\): (marked down; asked all the same: )?no answer within 500 ms" % n3.port)

    def test_a_stalled_or_dead_replica_costs_a_spare_not_a_failure(self):
        # Each query step asks a majority (the first two replicas up, in placement order); the third is
        # asked when one of them is still silent after --spare-after-ms, or at once when one fails. The
        # health checks are slowed down so that n1 is never marked down here.
        proxy = self.h.proxy(self.ring, checks={"interval": 60000, "timeout": 1000, "fall": 3, "rise": 1},
                             extra=("--spare-after-ms", "50"))
        keys = [f"spare{i}" for i in range(30)]
        for k in keys:
            self.assertEqual(request(proxy.port, "POST", f"/put?key={k}", {"value": k})[0], 200)

        def spares():
            return proxy_stats(proxy.admin_port)["quorum"]["spares_asked"]

        self.assertEqual(spares(), {"failed": 0, "late": 0})
        n1 = self.cluster.nodes["n1"]
        os.kill(n1.proc.pid, signal.SIGSTOP)
        try:
            for k in keys:
                status, headers, body = request(proxy.port, "GET", f"/get?key={k}")
                self.assertEqual((status, json.loads(body)["value"]), (200, k))
                self.assertNotIn("n1", headers["X-KV-Replicas"].split(","))
                self.assertEqual(request(proxy.port, "POST", f"/put?key={k}", {"value": k + "-2"})[0], 200)
        finally:
            os.kill(n1.proc.pid, signal.SIGCONT)
        late = spares()["late"]
        self.assertGreater(late, 0)  # n1 is among the first two of about two keys in three
        self.assertEqual(spares()["failed"], 0)
        # Gone (connections refused): the spare is asked as soon as the failure is known (the first
        # failure marks n1 down; from then on it is held in reserve, not asked first). The queries
        # that waited on n1 end first, so that none of their failures marks it down before.
        self.assertTrue(wait_until(lambda: proxy_node(proxy.admin_port, "n1")["pool"]["active"] == 0, 10))
        n1.kill()
        for k in keys:
            status, _, body = request(proxy.port, "GET", f"/get?key={k}")
            self.assertEqual((status, json.loads(body)["value"]), (200, k + "-2"))
        self.assertGreater(spares()["failed"], 0)
        self.assertEqual(spares()["late"], late)
        self.assertEqual(proxy_stats(proxy.admin_port)["quorum"]["failures"],
                         {c: 0 for c in proxy_stats(proxy.admin_port)["quorum"]["failures"]})

    def test_without_a_majority_a_clear_503_and_the_outcome(self):
        self.assertEqual(self.c.put("carol", "v")[0], 200)
        for node_id in ("n2", "n3"):
            self.cluster.nodes[node_id].kill()
        self.assertTrue(wait_until(lambda: all(proxy_node_state(self.proxy.admin_port, n) == "DOWN" for n in ("n2", "n3")), 10))
        status, headers, body = self.c.put("carol", "w")
        detail = json.loads(body)["detail"]
        self.assertEqual((status, headers["X-KV-Outcome"]), (503, "none"))
        self.assertTrue(detail.startswith("No majority of the replicas of this key answered: "), detail)
        for node_id in ("n2", "n3"):
            self.assertIn(f"{node_id} (127.0.0.1:{self.cluster.nodes[node_id].port}): marked down", detail)
        self.assertNotIn("n1 (", detail)
        status, headers, body = self.c.get("carol")
        self.assertEqual(status, 503)
        self.assertNotIn("X-KV-Outcome", headers)  # a read changes nothing
        self.assertEqual(self.c.delete("carol")[1]["X-KV-Outcome"], "none")
        q = self.quorum()
        self.assertEqual([q["requests"][op]["failed"] for op in ("get", "put", "del")], [1, 1, 1])
        self.assertEqual(q["failures"]["down"], 3)
        # Back: the value written before the failure, untouched by the writes that failed.
        for node_id in ("n2", "n3"):
            self.cluster.start_node(node_id, self.cluster.nodes[node_id].port)
        self.assertTrue(wait_until(lambda: all(proxy_node_state(self.proxy.admin_port, n) == "UP" for n in ("n2", "n3")), 10))
        status, _, body = self.c.get("carol")
        self.assertEqual((status, json.loads(body)["value"]), (200, "v"))


class PurgedTombstoneTest(unittest.TestCase):
    """A read or delete that a purged tombstone leaves undecided asks again (proxy/quorum.hpp,
    ambiguous()). Scripted replicas stand for the moment real ones only reach by timing: f1 answers
    the first query with a value deleted meanwhile (the delete had not reached it yet), and every
    later one with nothing, the tombstone since purged; f2 already purged it (nothing, below floor
    9, and refuses the write-back of the old value under it); f3 is cut off. With the first answers
    alone the request cannot know whether the value was deleted: it must query again, not fail."""

    FLOOR = b"9"

    def setUp(self):
        self.h = harness(self)
        self.queries = {}  # (replica, key) -> queries answered
        self.stores = []   # (replica, request line)
        self.failing, self.slow = set(), {}  # replicas whose write-back fails (500), or waits for an event
        self.query_fails = set()  # replicas whose first query fails (500)
        self.stored = {}  # replica of self.slow -> an event set when its write-back arrived

    def answer(self, replica, line, headers):
        method, target, _ = line.split(" ")
        key = target.split("key=")[1]
        nothing = (b"HTTP/1.1 404 Not Found\r\nX-KV-Version: 0.0\r\nX-KV-Floor: " + self.FLOOR +
                   b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        if target.startswith("/replica/get"):
            n = self.queries[(replica, key)] = self.queries.get((replica, key), 0) + 1
            if n == 1 and replica in self.query_fails:
                return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}"
            if replica == "f1" and n == 1:
                body = b'{"status":"success","value":"deleted"}'
                head = (b"HTTP/1.1 200 OK\r\nX-KV-Version: 5.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body))
                return head if method == "HEAD" else head + body
            return nothing if method == "GET" else nothing[:-2]
        self.stores.append((replica, line))
        if method == "POST" and replica in self.failing:
            for event in self.stored.values():  # fails once the slow replicas' write-backs are under way
                event.wait(10)
            return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\n{}"
        if method == "POST" and replica in self.slow:  # answers once the request has started over
            self.stored[replica].set()
            self.slow[replica].wait(10)
            return b"HTTP/1.1 200 OK\r\nX-KV-Version: 5.1\r\nX-KV-Applied: 1\r\nContent-Length: 2\r\n\r\n{}"
        if method == "POST":  # a write-back of the old value: below the floor where the key holds nothing
            return b"HTTP/1.1 409 Conflict\r\nX-KV-Floor: " + self.FLOOR + b"\r\nContent-Length: 2\r\n\r\n{}"
        version = headers["x-kv-version"].encode()  # the delete's tombstone, above the floor: applied
        return (b"HTTP/1.1 404 Not Found\r\nX-KV-Version: " + version + b"\r\nX-KV-Tombstone: 1\r\n"
                b"X-KV-Applied: 1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def test_a_read_or_delete_a_purge_left_undecided_queries_again(self):
        f1 = self.h.fake_node(lambda line, headers: self.answer("f1", line, headers))
        f2 = self.h.fake_node(lambda line, headers: self.answer("f2", line, headers))
        cut = socket.socket()  # f3: a port nothing listens on
        cut.bind(("127.0.0.1", 0))
        f3 = cut.getsockname()[1]
        cut.close()
        ring = write_ring(self.h.path("ring.yaml"), [("f1", f1.port), ("f2", f2.port), ("f3", f3)], replicas=3)
        proxy = self.h.proxy(ring, checks=Cluster.CHECKS)
        self.assertTrue(wait_until(lambda: proxy_node_state(proxy.admin_port, "f3") == "DOWN", 10))
        c = Client(proxy.port)
        self.addCleanup(c.close)

        status, headers, body = c.get("gone")
        self.assertEqual(status, 404, body)  # not the deleted value, and not a 503
        self.assertEqual(self.queries[("f1", "gone")], 2)
        self.assertIn(("f2", "POST /replica/put?key=gone HTTP/1.1"), self.stores)  # the first round's write-back

        status, headers, body = c.delete("gone-too")
        self.assertEqual(status, 404, body)  # it found nothing to delete; its tombstone is stored
        self.assertEqual(self.queries[("f1", "gone-too")], 2)
        self.assertEqual(sorted(r for r, line in self.stores if line.startswith("DELETE /replica/del?key=gone-too")),
                         ["f1", "f2"])

        q = proxy_stats(proxy.admin_port)["quorum"]
        self.assertEqual(q["requeries"], 2)
        self.assertEqual(metric(metrics(proxy.admin_port), "kvproxy_quorum_requeries_total"), 2)
        self.assertEqual((q["requests"]["get"]["failed"], q["requests"]["del"]["failed"]), (0, 0))

    def test_a_replica_still_busy_with_the_first_round_is_queried_once_it_is_done(self):
        # Five replicas, all asked at once: f1 has the old value, f2 and f3 nothing below the floor, and
        # f4 and f5 fail their first query, so the first round's majority is f1-f3 whatever the order
        # of the answers. The write-back waits on f5, and fails on f2-f4 once f5's is under way, so the
        # request starts over while f5's write-back is under way; f5's query must follow it, and the
        # write-back's late answer must not count.
        fakes = {f"f{i}": self.h.fake_node(lambda line, headers, r=f"f{i}": self.answer(r, line, headers))
                 for i in range(1, 6)}
        self.failing, self.slow = {"f2", "f3", "f4"}, {"f5": threading.Event()}
        self.query_fails, self.stored = {"f4", "f5"}, {"f5": threading.Event()}
        ring = write_ring(self.h.path("ring.yaml"), [(r, f.port) for r, f in sorted(fakes.items())], replicas=5)
        proxy = self.h.proxy(ring, checks=Cluster.CHECKS, extra=["--spare-after-ms", "0"])
        c = Client(proxy.port)
        self.addCleanup(c.close)
        self.addCleanup(self.slow["f5"].set)
        self.addCleanup(self.stored["f5"].set)
        status, _, body = c.get("gone")
        self.assertEqual(status, 404, body)  # the second round: f1-f4 found nothing
        self.assertEqual(self.queries.get(("f5", "gone")), 1)  # f5's second query waits for its write-back
        self.assertIn(("f5", "POST /replica/put?key=gone HTTP/1.1"), self.stores)
        self.slow["f5"].set()
        self.assertTrue(wait_until(lambda: self.queries.get(("f5", "gone")) == 2, 10))
        self.assertEqual(proxy_stats(proxy.admin_port)["quorum"]["requeries"], 1)
        self.assertEqual(c.get("gone")[0], 404)  # the coordinator was left in a state to reuse


class ClockSkewTest(unittest.TestCase):
    def test_a_proxy_whose_clock_is_behind_still_writes_after_one_ahead(self):
        # Last-write-wins by timestamp (Riak, Cassandra) drops the second write here: its clock says it
        # came first. A tag's counter takes the clock only when that is larger than what was seen.
        h = harness(self)
        cluster = Cluster(h, 3)
        ring = write_ring(h.path("ring.yaml"), [(i, n.port) for i, n in sorted(cluster.nodes.items())], replicas=3)
        ahead = h.proxy(ring, extra=("--test-clock-offset-ms", str(10 * 60_000)))
        behind = h.proxy(ring, extra=("--test-clock-offset-ms", str(-10 * 60_000)))
        now_ms = time.time() * 1000
        self.assertEqual(request(ahead.port, "POST", "/put?key=k", {"value": "first"})[0], 200)
        n1 = cluster.nodes["n1"].port
        self.assertTrue(wait_until(lambda: held(n1, "k")[1] == "first", 5))  # the third store may trail
        counter = int(held(n1, "k")[2].split(".")[0])
        self.assertGreater(counter, now_ms + 9 * 60_000)  # the clock ten minutes ahead is in the tag
        self.assertEqual(request(behind.port, "POST", "/put?key=k", {"value": "second"})[0], 200)
        self.assertTrue(wait_until(lambda: held(n1, "k")[1] == "second", 5))
        self.assertEqual(int(held(n1, "k")[2].split(".")[0]), counter + 1)
        for p in (ahead, behind):
            status, _, body = request(p.port, "GET", "/get?key=k")
            self.assertEqual((status, json.loads(body)["value"]), (200, "second"))
        self.assertEqual(request(behind.port, "DELETE", "/del?key=k")[0], 200)
        self.assertEqual(request(ahead.port, "GET", "/get?key=k")[0], 404)


class NodeTokenTest(unittest.TestCase):
    def test_nodes_that_want_their_token_get_it_from_the_proxy(self):
        h = harness(self)
        token = h.write("token", "the-nodes-admin-token-0123\n")
        nodes = [h.node(f"n{i}", extra=["--admin-token-file", token]) for i in (1, 2, 3)]
        ring = write_ring(h.path("ring.yaml"), [(f"n{i + 1}", n.port) for i, n in enumerate(nodes)], replicas=3)
        # Without the token every replica refuses the proxy: a 503 that says what to give.
        without = h.proxy(ring)
        status, headers, body = request(without.port, "POST", "/put?key=k", {"value": "v"})
        detail = json.loads(body)["detail"]
        self.assertEqual((status, headers["X-KV-Outcome"]), (503, "none"))
        self.assertIn("answered 401 (the node wants its admin token: kvproxy --node-token-file)", detail)
        self.assertEqual(proxy_stats(without.admin_port)["quorum"]["failures"]["node_error"], 1)
        # With it, the replicas answer; a client's own Authorization is not what the proxy sends.
        proxy = h.proxy(ring, extra=("--node-token-file", token))
        self.assertEqual(request(proxy.port, "POST", "/put?key=k", {"value": "v"})[0], 200)
        status, _, body = request(proxy.port, "GET", "/get?key=k", headers={"Authorization": "Bearer wrong-token-here"})
        self.assertEqual((status, json.loads(body)["value"]), (200, "v"))


if __name__ == "__main__":
    unittest.main()
