"""Anti-entropy between kvnodes (../shared/REPLICATION.md, guarantee 6): with --ring on a replicated
ring each node keeps hash trees of what it holds and pulls what it lacks from the other replicas, so
a replica that missed writes and deletes while it was down, or lost its whole directory, comes back
equal to the others: every key at the same version on every replica, no deleted key back. Each node's
holdings are read from its own store (/admin/scan), never through a proxy."""
import json
import re
import shutil
import threading
import time
import unittest

from kvtest import (Client, admin, Cluster, differing_keys, free_ports, harness, holdings, metric, metrics, node_health,
                    node_state, proxy_stats, request, run_kvnode, start_retrying_busy, thread_nices, thread_switches,
                    wait_until, write_ring)

INTERVAL_MS = 200
PROXY_TIMEOUTS = ("--connect-timeout-ms", "500", "--response-timeout-ms", "1000")


class AntiEntropyTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)

    def start(self, intervals=None, rate=None, extra=(), purging=("n1", "n2", "n3"), first=None):
        """Nodes n1..n3 (RocksDB) on a ring of replicas 3, each with --ring and its anti-entropy
        interval (`intervals`: {id: ms}, default INTERVAL_MS), those not in `purging` with
        --keep-tombstones, and one proxy. `first`: {id: flags} for each node's first start only."""
        self.ports = dict(zip(("n1", "n2", "n3"), free_ports(3)))
        self.ring = write_ring(self.h.path("ring.yaml"), sorted(self.ports.items()), replicas=3, vnodes=256)
        self.intervals = intervals or {}
        self.rate = rate
        self.extra = list(extra)
        self.purging = set(purging)
        self.nodes = {}
        for node_id in self.ports:
            self.start_node(node_id, (first or {}).get(node_id, ()))
        # New directories check with their peers before they answer quorum reads (node/incarnation.hpp).
        self.assertTrue(wait_until(lambda: all(self.state(n) == "serving" for n in self.ports), 10))
        self.proxy = self.h.proxy(self.ring, checks=Cluster.CHECKS, extra=PROXY_TIMEOUTS)
        self.c = Client(self.proxy.port)
        self.addCleanup(self.c.close)

    def state(self, node_id):
        return node_state(self.ports[node_id])

    def start_node(self, node_id, extra=()):
        # Nodes here purge tombstones (kvnode's default) unless a test says otherwise.
        extra = ["--ring", self.ring, "--anti-entropy-interval-ms", str(self.intervals.get(node_id, INTERVAL_MS)),
                 *([] if node_id in self.purging else ["--keep-tombstones"]), *self.extra, *extra]
        if self.rate:
            extra += ["--repair-keys-per-second", str(self.rate)]
        data = self.h.path(node_id)
        self.nodes[node_id] = start_retrying_busy(
            lambda: self.h.node(node_id, data, port=self.ports[node_id], extra=extra))
        return self.nodes[node_id]

    def wipe(self, node_id):
        """The node loses its disk: killed, its data directory removed, started again on an empty one."""
        self.nodes[node_id].kill()
        shutil.rmtree(self.h.path(node_id))
        self.start_node(node_id)

    def held(self):
        return {node_id: holdings(port) for node_id, port in self.ports.items()}

    def converged(self):
        return not differing_keys(self.held())

    def ae(self, node_id, name, peer):
        return metric(metrics(self.ports[node_id]), f'kvnode_anti_entropy_{name}{{peer="{peer}"}}')

    def repaired(self, node_id):
        return sum(self.ae(node_id, "keys_repaired_total", p) for p in self.ports if p != node_id)

    def write(self, keys, value):
        for k in keys:
            status, _, body = self.c.put(k, value)
            self.assertEqual(status, 200, body)

    def delete(self, keys):
        for k in keys:
            status, _, body = self.c.delete(k)
            self.assertIn(status, (200, 404), body)

    def tombstones(self, node_id):
        """(tombstones held, tombstones purged) on one node, from its /health."""
        doc = node_health(self.ports[node_id])
        return doc["tombstones"], doc["anti_entropy"]["tombstones_purged"]

    def purged_everywhere(self):
        return all(self.tombstones(n)[0] == 0 for n in self.ports)

    def node_report(self, node_id):
        """What a failed assertion about a node shows: its /health, whether its process still runs (a
        new process starts its counts at 0), and the end of its output."""
        p = self.nodes[node_id]
        return (f"{node_id}: pid {p.pid}, alive {p.alive()}, /health {node_health(self.ports[node_id])}, "
                f"output:\n{p.output()[-3000:]}")

    def purges_settled(self, seconds=30):
        """True once no node holds a tombstone, and two rounds later still none does and none purged
        any more: a node that dropped its tombstones before a peer did may have pulled some back from
        it (harmless, node/floors.hpp, "A purge cut short") after its count was read, and holds them
        until it purges them again."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.purged_everywhere():
                purged = {n: self.tombstones(n)[1] for n in self.ports}
                self.rounds_pass(2)
                if self.purged_everywhere() and {n: self.tombstones(n)[1] for n in self.ports} == purged:
                    return True
            time.sleep(0.1)
        return False

    def expect(self, values):
        """Every replica holds `values` ({key: value, or None for deleted: a tombstone, or nothing once
        purged}) and the proxy reads them."""
        held = self.held()
        self.assertEqual(differing_keys(held), [])
        for node_id, h in held.items():
            for k, v in values.items():
                if v is None:
                    self.assertEqual(h.get(k, ("t",))[0], "t", (node_id, k, "a deleted key came back"))
                else:
                    self.assertEqual((h[k][0], h[k][3]), ("v", v.encode()), (node_id, k))
        for k, v in list(values.items())[:50]:
            status, _, body = self.c.get(k)
            self.assertEqual((status, json.loads(body).get("value")), (200, v) if v is not None else (404, None))

    def test_a_replica_down_under_writes_and_deletes_catches_up_pulling_only_what_it_missed(self):
        self.start()
        base = [f"k{i}" for i in range(300)]
        self.write(base, "v1")
        # The third store of each write runs on after the answer; the trees settle the rest.
        self.assertTrue(wait_until(self.converged, 20), differing_keys(self.held()))
        from_n3 = {n: self.ae(n, "keys_repaired_total", "n3") for n in ("n1", "n2")}
        # Purges wait until the counts below are read: a node that drops its tombstones before a peer
        # does may pull them back from it, then purge them again, which counts as repaired (harmless,
        # node/floors.hpp, "A purge cut short"; seen under TSan).
        for n in self.ports:
            self.assertEqual(admin(self.ports[n], "POST", "/admin/purges?pause=counting")[0], 200)
        self.nodes["n3"].kill()
        self.write(base[:200], "v2")
        self.delete(base[200:250])
        fresh = [f"new{i}" for i in range(100)]
        self.write(fresh, "v3")
        up = {n: holdings(p) for n, p in self.ports.items() if n != "n3"}
        self.assertEqual(differing_keys(up), [])  # the two that stayed up agree
        self.start_node("n3")
        # While n3 was down its copy fell behind by these keys: the checker sees it until repair.
        self.assertTrue(wait_until(self.converged, 30), differing_keys(self.held()))
        values = {k: "v2" for k in base[:200]} | {k: None for k in base[200:250]} | {k: "v1" for k in base[250:]}
        values |= {k: "v3" for k in fresh}
        self.expect(values)
        # n3 (a new process: its counters start at 0) pulled each key it missed once (350: 200
        # overwritten, 50 deleted, 100 new), from one peer or the other; the nodes that stayed up
        # pulled nothing from it.
        self.assertEqual(self.repaired("n3"), 350)
        self.assertEqual({n: self.ae(n, "keys_repaired_total", "n3") for n in ("n1", "n2")}, from_n3)
        self.assertTrue(wait_until(lambda: self.ae("n3", "in_sync", "n1") == 1 and self.ae("n3", "in_sync", "n2") == 1, 10))
        # Its bytes by step add up to its bytes, and the missed keys came as records, asked by digests.
        text = metrics(self.ports["n3"])
        for peer in ("n1", "n2"):
            steps = {s: metric(text, f'kvnode_anti_entropy_step_bytes_total{{peer="{peer}",step="{s}"}}')
                     for s in ("tree", "leaves", "digests", "records", "floors", "purge")}
            self.assertEqual(sum(steps.values()), metric(text, f'kvnode_anti_entropy_bytes_total{{peer="{peer}"}}'), steps)
            self.assertGreater(steps["tree"], 0, steps)
        pulled = lambda s: sum(metric(text, f'kvnode_anti_entropy_step_bytes_total{{peer="{p}",step="{s}"}}') for p in ("n1", "n2"))
        self.assertGreater(pulled("records"), 350 * 20)
        self.assertGreater(pulled("digests"), 0)
        # In sync, an exchange moves the groups of the tree only: 32 hashes and 32 sums, 512 bytes.
        def tree_and_exchanges():
            t = metrics(self.ports["n3"])
            return (metric(t, 'kvnode_anti_entropy_step_bytes_total{peer="n1",step="tree"}'),
                    metric(t, 'kvnode_anti_entropy_exchanges_total{peer="n1"}'))
        tree0, exchanges0 = tree_and_exchanges()
        self.assertTrue(wait_until(lambda: tree_and_exchanges()[1] >= exchanges0 + 3, 10))
        tree1, exchanges1 = tree_and_exchanges()
        # (An exchange counts once it ends, its bytes as they move: one may be under way at each read.)
        self.assertGreaterEqual(tree1 - tree0, 512 * (exchanges1 - exchanges0 - 1))
        self.assertLessEqual(tree1 - tree0, 512 * (exchanges1 - exchanges0 + 1))
        # kvproxy's health checks read each node's /health: its stats show the copy's state and figures.
        def replica(node_id):
            return next(n for n in proxy_stats(self.proxy.admin_port)["nodes"] if n["id"] == node_id).get("replica")
        self.assertTrue(wait_until(lambda: (replica("n3") or {}).get("keys_repaired") == 350, 10), replica("n3"))
        self.assertEqual(replica("n3")["state"], "serving")
        text = metrics(self.proxy.admin_port)
        self.assertEqual(metric(text, 'kvproxy_node_keys_repaired_total{node="n3"}'), 350)
        self.assertEqual(metric(text, 'kvproxy_node_replica_state{node="n3",state="serving"}'), 1)
        # Every replica holds the 50 tombstones now: each node purges its own, and says so. (At least
        # 50: a tombstone pulled back, as above, is purged again.)
        for n in self.ports:
            self.assertEqual(admin(self.ports[n], "POST", "/admin/purges?resume=counting")[0], 200)
        self.assertTrue(wait_until(lambda: all(node_health(p)["tombstones"] == 0 for p in self.ports.values()), 30),
                        {n: node_health(p)["tombstones"] for n, p in self.ports.items()})
        purged = lambda: node_health(self.ports["n1"])["anti_entropy"]["tombstones_purged"]
        self.assertTrue(wait_until(lambda: (replica("n1") or {}).get("tombstones_purged") == purged(), 10), replica("n1"))
        self.assertGreaterEqual(replica("n1")["tombstones_purged"], 50, self.node_report("n1"))
        self.assertEqual(replica("n1")["tombstones"], 0)
        self.assertGreater(replica("n1")["floor_segments"], 0)

    def test_two_replicas_down_in_turn_with_writes_between(self):
        self.start()
        keys = [f"t{i}" for i in range(200)]
        self.write(keys, "a")
        self.assertTrue(wait_until(self.converged, 20))
        self.nodes["n2"].kill()
        self.write(keys[:100], "b")
        self.delete(keys[100:120])
        self.start_node("n2")
        self.assertTrue(wait_until(self.converged, 30), differing_keys(self.held()))
        self.nodes["n3"].kill()
        self.write(keys[50:150], "c")  # some of them deleted above: written again
        self.delete(keys[:10])
        self.start_node("n3")
        self.assertTrue(wait_until(self.converged, 30), differing_keys(self.held()))
        values = {k: "a" for k in keys}
        values |= {k: "b" for k in keys[:100]}
        values |= {k: None for k in keys[100:120]}
        values |= {k: "c" for k in keys[50:150]}
        values |= {k: None for k in keys[:10]}
        self.expect(values)

    def test_a_wiped_replica_rebuilds_from_its_peers(self):
        self.start(rate=2000)
        keys = [f"w{i}" for i in range(400)]
        self.write(keys, "x")
        self.delete(keys[:40])
        self.assertTrue(wait_until(self.converged, 20))
        self.assertTrue(self.purges_settled())  # the deleted keys leave floors behind, and no tombstone
        floors = node_health(self.ports["n2"])["floors"]
        self.wipe("n1")
        self.assertEqual(holdings(self.ports["n1"]), {})
        self.assertTrue(wait_until(self.converged, 30), len(differing_keys(self.held())))
        self.expect({k: None for k in keys[:40]} | {k: "x" for k in keys[40:]})
        self.assertEqual(self.repaired("n1"), 360)  # every value, each once
        # The new directory learned its peers' floors before it took any replicated write.
        self.assertTrue(wait_until(lambda: node_health(self.ports["n1"])["floors"]["known"], 10))
        self.assertEqual(node_health(self.ports["n1"])["floors"], floors | {"known": True, "peers_learned": 2})

    def test_the_pull_bounds_change_while_the_node_runs(self):
        # POST /admin/repair sets what --repair-busy-percent and --repair-keys-per-second set at the
        # start: an operator slows a rebuild that costs the clients too much, or lets one run free.
        # A wiped n1 pulls 5 keys a second; set free, it rebuilds at once, without a restart.
        self.start(rate=5)
        keys = [f"r{i}" for i in range(400)]
        self.write(keys, "x")
        self.assertTrue(wait_until(self.converged, 20))
        self.wipe("n1")
        bounds = lambda: {k: v for k, v in node_health(self.ports["n1"])["anti_entropy"].items() if k.startswith("repair_")}
        self.assertEqual(bounds(), {"repair_busy_percent": 20, "repair_keys_per_second": 5})
        self.assertTrue(wait_until(lambda: self.repaired("n1") >= 1, 20))
        self.assertLess(self.repaired("n1"), 100)  # 20 s of pulling at 5 a second
        for query, detail in [("", None), ("?busy_percent=0", None), ("?busy_percent=101", None),
                              ("?busy_percent=x", None), ("?keys_per_second=-1", None),
                              ("?keys_per_second=4294967296", None), ("?busy_percent=&keys_per_second=", None)]:
            status, body = admin(self.ports["n1"], "POST", "/admin/repair" + query)
            self.assertEqual((status, body.get("detail")), (400, "expected busy_percent=1..100 and/or "
                                                                 "keys_per_second=0..4294967295 (0: no bound)"), query)
        self.assertEqual(admin(self.ports["n1"], "GET", "/admin/repair?busy_percent=50")[0], 405)
        self.assertEqual(bounds(), {"repair_busy_percent": 20, "repair_keys_per_second": 5})  # none of those set anything
        status, body = admin(self.ports["n1"], "POST", "/admin/repair?busy_percent=100&keys_per_second=0")
        self.assertEqual((status, body), (200, {"status": "success", "busy_percent": 100, "keys_per_second": 0}))
        self.assertEqual(bounds(), {"repair_busy_percent": 100, "repair_keys_per_second": 0})
        self.assertTrue(wait_until(self.converged, 30), len(differing_keys(self.held())))
        self.expect({k: "x" for k in keys})
        status, body = admin(self.ports["n1"], "POST", "/admin/repair?keys_per_second=2000")
        self.assertEqual(body, {"status": "success", "busy_percent": 100, "keys_per_second": 2000})

    def rounds(self, node_id):
        return metric(metrics(self.ports[node_id]), "kvnode_anti_entropy_rounds_total")

    def rounds_pass(self, n):
        """Returns once every node has run `n` more anti-entropy rounds."""
        now = {node: self.rounds(node) for node in self.ports}
        self.assertTrue(wait_until(lambda: all(self.rounds(node) >= now[node] + n for node in self.ports), 30))

    def paused(self, node_id):
        return node_health(self.ports[node_id])["anti_entropy"]["purges_paused"]

    def deleted_while_a_replica_was_away(self, unsafe):
        """d0..d19 = v1 on every replica; n3 down; the keys deleted (tombstones on n1 and n2); five
        rounds pass; n3 back, still holding v1. Returns each node's (tombstones held, purged) before
        n3 came back, and the proxy's reads of the keys, (status, value), once every replica agrees."""
        self.start(extra=["--unsafe-purge-early"] if unsafe else ())
        keys = [f"d{i}" for i in range(20)]
        self.write(keys, "v1")
        self.assertTrue(wait_until(self.converged, 20))
        self.nodes["n3"].kill()
        self.delete(keys)
        rounds = {n: self.rounds(n) for n in ("n1", "n2")}
        self.assertTrue(wait_until(lambda: all(self.rounds(n) >= rounds[n] + 5 for n in rounds), 20))
        if unsafe:
            self.assertTrue(wait_until(lambda: all(self.tombstones(n)[0] == 0 for n in ("n1", "n2")), 20))
        before = {n: self.tombstones(n) for n in ("n1", "n2")}
        self.start_node("n3")
        self.assertTrue(wait_until(self.converged, 30), differing_keys(self.held()))
        answers = [self.c.get(k) for k in keys]
        return before, [(status, json.loads(body).get("value")) for status, _, body in answers]

    def test_a_tombstone_is_purged_only_once_every_replica_holds_it(self):
        before, answers = self.deleted_while_a_replica_was_away(unsafe=False)
        # n3 was down: nothing showed that it held the tombstones, so n1 and n2 kept them.
        self.assertEqual(before, {"n1": (20, 0), "n2": (20, 0)})
        self.assertEqual(answers, [(404, None)] * 20)
        # n3 back: it pulled the tombstones; then every node purges its own, and nothing is left.
        self.assertTrue(self.purges_settled(), {n: self.tombstones(n) for n in self.ports})
        # Each node dropped each tombstone at least once (again if it pulled one back from a peer that
        # had not let go yet; a slow machine sees that).
        for n in self.ports:
            held, purged = self.tombstones(n)
            self.assertEqual(held, 0, n)
            self.assertGreaterEqual(purged, 20, self.node_report(n))
        self.assertEqual(self.held(), {n: {} for n in self.ports})
        self.assertEqual([self.c.get(f"d{i}")[0] for i in range(20)], [404] * 20)

    def test_a_purge_a_peer_did_not_confirm_is_sent_again(self):
        # Every node's first purge request to the last peer of a set fails before it is sent
        # (--test-purge-fails-once), after the peers before it dropped the tombstones. Sent again
        # next round, the purge completes (without the retry it would finish only once those peers
        # took the tombstones back and a later round purged them: the next test).
        self.start(extra=["--test-purge-fails-once"])
        keys = [f"p{i}" for i in range(20)]
        self.write(keys, "v")
        self.delete(keys)
        self.assertTrue(self.purges_settled(), {n: self.tombstones(n) for n in self.ports})
        health = {n: node_health(p)["anti_entropy"] for n, p in self.ports.items()}
        self.assertGreater(sum(h["purge_retries"] for h in health.values()), 0, health)
        self.assertTrue(wait_until(lambda: all(node_health(p)["anti_entropy"]["purges_pending"] == 0
                                               for p in self.ports.values()), 10))
        self.assertEqual(self.held(), {n: {} for n in self.ports})
        self.assertEqual([self.c.get(k)[0] for k in keys], [404] * 20)

    def test_a_purge_cut_short_by_a_crash_is_finished_after_the_restart(self):
        # Only n1 purges, and it dies (--test-crash-mid-purge) after its first peer raised its floors
        # and dropped the tombstones, before the last one was asked: a purge half done, its retry
        # forgotten with the process. The peer that dropped them holds nothing where the others hold
        # the tombstones, so their buckets differ; it takes them back from the others (a tombstone at
        # or below a floor is taken, and does not keep an older value out by its tag: node/floors.hpp),
        # the buckets agree again, and n1, started again, purges them everywhere.
        self.start(purging=["n1"], first={"n1": ["--test-crash-mid-purge"]})
        keys = [f"c{i}" for i in range(20)]
        self.write(keys, "v")
        self.delete(keys)
        n1 = self.nodes["n1"]
        self.assertTrue(wait_until(lambda: not n1.alive(), 20), n1.output())
        self.assertEqual(n1.terminate(), 3)
        self.assertIn("crashing for the test (--test-crash-mid-purge)", n1.output())
        # One peer dropped them and raised its floors; the other was never asked.
        dropped = [n for n in ("n2", "n3") if node_health(self.ports[n])["anti_entropy"]["tombstones_purged"] > 0]
        self.assertEqual(len(dropped), 1, {n: node_health(self.ports[n]) for n in ("n2", "n3")})
        peer = dropped[0]
        self.assertGreater(node_health(self.ports[peer])["floors"]["segments"], 0)
        # The peers exchange while n1 is down: the one that dropped the tombstones takes them back,
        # every one it dropped (n1's round may have had evidence for only some of the 20).
        gone = node_health(self.ports[peer])["anti_entropy"]["tombstones_purged"]
        self.assertTrue(wait_until(lambda: self.tombstones(peer)[0] == 20, 20), self.tombstones(peer))
        self.assertGreaterEqual(self.ae(peer, "keys_repaired_total", "n3" if peer == "n2" else "n2"), gone)
        # A store newer than the tombstone taken back but not above the floor (a value some purged
        # delete would have removed) finds that tombstone does not shield the key: refused, as where
        # the key held nothing.
        kind, counter, writer, _ = holdings(self.ports[peer])["c0"]
        self.assertEqual(kind, "t")
        status, headers, body = request(self.ports[peer], "POST", "/replica/put?key=c0", json.dumps({"value": "v"}),
                                        {"X-KV-Version": f"{counter}.{writer + 1:016x}", "Content-Type": "application/json"})
        self.assertEqual((status, headers.get("X-KV-Applied")), (409, "0"), body)
        self.start_node("n1")
        self.assertTrue(wait_until(lambda: self.state("n1") == "serving", 10))
        self.assertTrue(self.purges_settled(), {n: self.tombstones(n) for n in self.ports})
        self.assertEqual(self.held(), {n: {} for n in self.ports})
        self.assertEqual([self.c.get(k)[0] for k in keys], [404] * 20)
        # New writes of the keys go above the floors, everywhere.
        self.write(keys[:5], "w")
        self.assertTrue(wait_until(self.converged, 20), differing_keys(self.held()))
        self.assertEqual([json.loads(self.c.get(k)[2])["value"] for k in keys[:5]], ["w"] * 5)

    def test_purges_paused_on_one_replica_stop_every_purge_of_its_sets_until_resumed(self):
        # ring-rebalance apply pauses purges for a ring change (node/purge_pause.hpp). Here only n2 is
        # paused, as if n1 and n3 had been down when apply asked: each of their purges needs n2, which
        # says it is paused in its tree answers, so no replica drops a tombstone. The pause is durable:
        # n2 started again is still paused. Resumed (by the change it names only), the tombstones go.
        self.start()
        status, body = admin(self.ports["n2"], "POST", "/admin/purges?pause=change-1")
        self.assertEqual((status, body), (200, {"status": "success", "purges_paused": "change-1"}))
        keys = [f"q{i}" for i in range(20)]
        self.write(keys, "v")
        self.delete(keys)

        self.rounds_pass(5)
        self.assertEqual({n: self.tombstones(n) for n in self.ports}, {n: (20, 0) for n in self.ports})
        self.assertEqual(self.paused("n2"), "change-1")
        self.assertEqual(metric(metrics(self.ports["n2"]), "kvnode_tombstone_purges_paused"), 1)
        self.assertEqual(metric(metrics(self.ports["n1"]), "kvnode_tombstone_purges_paused"), 0)
        # kvproxy's health checks read it: stats.json (and the stats page, Prometheus) say which node is paused.
        def replica(node_id):
            return next(n for n in proxy_stats(self.proxy.admin_port)["nodes"] if n["id"] == node_id).get("replica") or {}
        self.assertTrue(wait_until(lambda: replica("n2").get("purges_paused") == "change-1", 10), replica("n2"))
        self.assertIsNone(replica("n1")["purges_paused"])
        self.nodes["n2"].kill()
        self.start_node("n2")
        self.assertTrue(wait_until(lambda: self.state("n2") == "serving", 10))
        self.assertEqual(self.paused("n2"), "change-1")
        self.rounds_pass(5)
        self.assertEqual({n: self.tombstones(n)[0] for n in self.ports}, {n: 20 for n in self.ports})
        # Refusals: another change's resume, and malformed requests.
        for target, code, detail in [
                ("/admin/purges?resume=change-2", 409, "purges are paused for the ring change change-1, not change-2: "
                                                       "resumed by that change's rebalancer only"),
                ("/admin/purges", 400, "expected pause=CHANGE or resume=CHANGE, one of them (CHANGE: 1 to 64 of "
                                       "0-9 A-Z a-z . _ -)"),
                ("/admin/purges?pause=a/b", 400, None), ("/admin/purges?pause=x&resume=x", 400, None)]:
            status, body = admin(self.ports["n2"], "POST", target)
            self.assertEqual(status, code, (target, body))
            if detail:
                self.assertEqual(body["detail"], detail)
        self.assertEqual(admin(self.ports["n2"], "GET", "/admin/purges?pause=x")[0], 405)
        status, body = admin(self.ports["n2"], "POST", "/admin/purges?resume=change-1")
        self.assertEqual((status, body), (200, {"status": "success", "purges_paused": None}))
        self.assertTrue(wait_until(self.purged_everywhere, 20), {n: self.tombstones(n) for n in self.ports})
        self.assertEqual([self.c.get(k)[0] for k in keys], [404] * 20)
        self.assertTrue(wait_until(lambda: replica("n2").get("purges_paused", "") is None, 10), replica("n2"))

    def test_a_replica_that_missed_the_resume_resumes_once_a_peer_was_resumed_for_that_change(self):
        # apply resumes every node once its change is over; a node down at that moment stays paused,
        # durably, and none of its sets would ever purge again. A resumed node names the change in its
        # tree answers, and a node paused for that same change resumes itself on seeing it (apply
        # resumes nodes only once the change and its drops are done: node/purge_pause.hpp). A peer
        # resumed for another change says nothing of this one's.
        self.start()
        for n, change in (("n1", "change-1"), ("n2", "change-1"), ("n3", "change-0")):
            self.assertEqual(admin(self.ports[n], "POST", f"/admin/purges?pause={change}")[0], 200)
        keys = [f"r{i}" for i in range(20)]
        self.write(keys, "v")
        self.delete(keys)
        for n in ("n1", "n2"):
            status, body = admin(self.ports[n], "POST", "/admin/purges?resume=change-1")
            self.assertEqual((status, body), (200, {"status": "success", "purges_paused": None}))
        self.rounds_pass(5)
        self.assertEqual(self.paused("n3"), "change-0")
        self.assertEqual({n: self.tombstones(n) for n in self.ports}, {n: (20, 0) for n in self.ports})
        # As if n3 had been paused for change-1 too, and down when apply resumed the others.
        self.assertEqual(admin(self.ports["n3"], "POST", "/admin/purges?pause=change-1")[0], 200)
        self.assertTrue(wait_until(lambda: self.paused("n3") is None, 10), self.paused("n3"))
        # The line is written before the resume, but read from n3's stderr by another thread: wait for it.
        said = r"n[12] was resumed for the ring change change-1, which is over"
        self.assertTrue(wait_until(lambda: re.search(said, self.nodes["n3"].output()), 10), self.nodes["n3"].output())
        self.assertTrue(wait_until(self.purged_everywhere, 20), {n: self.tombstones(n) for n in self.ports})
        # The resume is durable.
        self.nodes["n3"].terminate()
        self.start_node("n3")
        self.assertTrue(wait_until(lambda: self.state("n3") == "serving", 10))
        self.assertIsNone(self.paused("n3"))
        self.assertEqual([self.c.get(k)[0] for k in keys], [404] * 20)

    def test_a_pause_waiting_for_a_purge_under_way_holds_up_no_peer_request(self):
        # A pause waits until no purge step of the node is under way (node/purge_pause.hpp), which
        # can take a peer's timeout per request. It runs on a pool of its own: on the admin pool, the
        # peers' exchanges and purges with this node would wait behind it all that time.
        self.start(purging=("n1",), first={"n1": ["--test-hold-purge-turn-ms", "15000"]})
        keys = [f"w{i}" for i in range(20)]
        self.write(keys, "v")
        self.delete(keys)
        self.assertTrue(wait_until(lambda: "holding a purge turn" in self.nodes["n1"].output(), 20))
        answer = {}
        pausing = threading.Thread(
            target=lambda: answer.update(r=admin(self.ports["n1"], "POST", "/admin/purges?pause=change-1")))
        pausing.start()
        self.addCleanup(pausing.join)
        # The pause is recorded, and it waits for the purge step under way.
        self.assertTrue(wait_until(lambda: self.paused("n1") == "change-1", 10))
        self.assertTrue(pausing.is_alive())
        # Meanwhile a peer's requests to n1 are answered (the held turn has most of its 15 s to go).
        status, _, body = request(self.ports["n1"], "GET", "/replica/floors", timeout=5)
        self.assertEqual(status, 200, body)
        self.assertNotIn("purge turn released", self.nodes["n1"].output())
        pausing.join()
        self.assertEqual(answer["r"], (200, {"status": "success", "purges_paused": "change-1"}))
        # The pause answered only once the step was over (the line is read from n1's stderr by
        # another thread, which may not have read it yet).
        self.assertTrue(wait_until(lambda: "purge turn released" in self.nodes["n1"].output(), 5))

    def test_the_pull_and_the_peers_requests_run_at_background_priority(self):
        # kvnode --repair-nice (default 10): the exchanger's thread and the thread serving the peers'
        # anti-entropy requests run that many nice levels below the node's other threads, which keep
        # the node's own (the scheduler then hands a core to a client's request first).
        self.start(first={"n2": ["--repair-nice", "0"], "n3": ["--repair-nice", "19"]})
        for node_id, want in (("n1", 10), ("n2", 0), ("n3", 19)):
            threads = thread_nices(self.nodes[node_id].pid)
            base = threads[self.nodes[node_id].pid][1]
            by_name = {}
            for name, nice in threads.values():
                by_name.setdefault(name, set()).add(nice)
            self.assertEqual((by_name.get("kv-exchange"), by_name.get("kv-sync")),
                             ({min(19, base + want)}, {min(19, base + want)}), (node_id, threads))
            self.assertEqual({nice for name, nice in threads.values() if name not in ("kv-exchange", "kv-sync")},
                             {base}, (node_id, threads))
        # The peers' requests (a tree compared every 200 ms) are served on kv-sync, not kv-admin.
        before = {n: thread_switches(self.nodes[n].pid) for n in self.ports}
        self.assertTrue(wait_until(lambda: all(
            thread_switches(self.nodes[n].pid)["kv-sync"] >= before[n]["kv-sync"] + 5 for n in self.ports), 10))
        self.assertEqual([thread_switches(self.nodes[n].pid)["kv-admin"] for n in self.ports],
                         [before[n]["kv-admin"] for n in self.ports])

    def test_control_a_tombstone_purged_early_lets_a_returning_replica_bring_the_key_back(self):
        """The broken mode (--unsafe-purge-early: purged on the evidence of the peers that answered,
        no floors): the same history brings every deleted key back, so the test above is one that
        can fail."""
        before, answers = self.deleted_while_a_replica_was_away(unsafe=True)
        self.assertEqual({n: held for n, (held, _) in before.items()}, {"n1": 0, "n2": 0})  # purged without n3
        self.assertEqual(answers, [(200, "v1")] * 20)

    def test_a_delayed_store_of_a_purged_key_is_refused_and_new_writes_go_above_the_floor(self):
        self.start()
        self.write(["z"], "v1")
        self.assertTrue(wait_until(self.converged, 20))
        _, counter, writer, _ = self.held()["n1"]["z"]
        self.delete(["z"])
        self.assertTrue(self.purges_settled(), {n: self.tombstones(n) for n in self.ports})
        self.assertEqual(self.held(), {n: {} for n in self.ports})
        # The first write's store, delayed until now (as from a paused proxy): refused on every
        # replica, surely not stored, and the key stays deleted.
        for node_id, port in self.ports.items():
            status, headers, body = request(port, "POST", "/replica/put?key=z", json.dumps({"value": "v1"}),
                                            {"X-KV-Version": f"{counter}.{writer:016x}", "Content-Type": "application/json"})
            self.assertEqual((status, headers.get("X-KV-Applied")), (409, "0"), body)
            self.assertGreater(int(headers["X-KV-Floor"]), counter)
            self.assertIn("is not above the floor", json.loads(body)["detail"])
            self.assertEqual(metric(metrics(port), "kvnode_writes_below_floor_total"), 1)
        self.assertEqual(self.c.get("z")[0], 404)
        self.assertEqual(self.held(), {n: {} for n in self.ports})
        # A tag query of the key reports the floor, so a new write's tag goes above it.
        status, headers, _ = request(self.ports["n1"], "HEAD", "/replica/get?key=z")
        self.assertEqual(status, 404)
        floor = int(headers["X-KV-Floor"])
        self.write(["z"], "v2")
        self.assertEqual(json.loads(self.c.get("z")[2])["value"], "v2")
        self.assertTrue(wait_until(self.converged, 20))
        self.assertGreater(self.held()["n1"]["z"][1], floor)

    def stale_read_after_a_disk_loss(self, unsafe):
        """k = v1 everywhere; n3 down, k = v2 (on n1 and n2); n1 loses its disk; n2 paused; n3 and
        a wiped n1 back. The two live replicas, n3 (v1) and n1 (empty), are a majority only if n1
        counts: then a read answers v1, older than the acknowledged v2. Returns that read's answer
        (status, value), then resumes n2 and waits until every replica holds v2."""
        self.start()
        self.write(["k"], "v1")
        self.assertTrue(wait_until(self.converged, 20))
        self.nodes["n3"].kill()
        self.write(["k"], "v2")
        self.nodes["n1"].kill()
        shutil.rmtree(self.h.path("n1"))
        self.nodes["n2"].pause()
        self.start_node("n3")
        self.start_node("n1", ["--unsafe-serve-at-once"] if unsafe else [])
        # n3 remembers n1's old incarnation: n1 rebuilds, and cannot finish while n2 is paused.
        self.assertTrue(wait_until(lambda: self.state("n1") == "recovering", 10))
        status, _, body = self.c.get("k")
        answer = (status, json.loads(body).get("value"))
        self.nodes["n2"].resume()
        self.assertTrue(wait_until(lambda: self.state("n1") == "serving", 30))
        self.assertTrue(wait_until(self.converged, 30), differing_keys(self.held()))
        self.assertEqual(holdings(self.ports["n1"])["k"][3], b"v2")
        return answer

    def test_a_wiped_replica_answers_no_quorum_read_until_it_has_rebuilt(self):
        status, value = self.stale_read_after_a_disk_loss(unsafe=False)
        self.assertEqual(status, 503, value)  # no majority that can be trusted: refused, never stale
        status, _, body = self.c.get("k")
        self.assertEqual((status, json.loads(body)["value"]), (200, "v2"))

    def test_the_proxy_asks_a_rebuilding_replica_no_read_while_the_others_make_a_majority(self):
        # n3 loses its disk and rebuilds slowly (20 keys/s). Once the proxy's health checks say so, it
        # asks n1 and n2 first: no read waits for a spare after n3's 503 (before, two keys in three
        # asked n3 first).
        self.start(rate=20)
        keys = [f"r{i}" for i in range(400)]
        self.write(keys, "v")
        self.assertTrue(wait_until(self.converged, 20))
        self.wipe("n3")

        def n3_seen_as():
            node = next(n for n in proxy_stats(self.proxy.admin_port)["nodes"] if n["id"] == "n3")
            return node.get("replica", {}).get("state")

        self.assertTrue(wait_until(lambda: n3_seen_as() in ("checking", "recovering"), 10), n3_seen_as())
        spares = proxy_stats(self.proxy.admin_port)["quorum"]["spares_asked"]["failed"]
        answers = [self.c.get(k) for k in keys[:60]]
        self.assertEqual([(status, json.loads(body)["value"]) for status, _, body in answers], [(200, "v")] * 60)
        self.assertEqual(self.state("n3"), "recovering")  # still rebuilding when the last read ended
        self.assertEqual(proxy_stats(self.proxy.admin_port)["quorum"]["spares_asked"]["failed"], spares)

    def test_control_a_wiped_replica_that_counts_at_once_serves_a_stale_read(self):
        """The broken mode (--unsafe-serve-at-once): the same history returns v1, so the test above is
        one that can fail."""
        self.assertEqual(self.stale_read_after_a_disk_loss(unsafe=True), (200, "v1"))

    def test_without_anti_entropy_a_replica_stays_behind(self):
        """The control: n3 pulls nothing (interval 0). n1 and n2 exchange with it and find it behind,
        so the convergence check above is one that can fail."""
        self.start(intervals={"n3": 0})
        keys = [f"c{i}" for i in range(100)]
        self.write(keys, "1")
        self.assertTrue(wait_until(self.converged, 20))
        self.nodes["n3"].kill()
        self.write(keys[:30], "2")
        self.start_node("n3")
        exchanges = self.ae("n1", "exchanges_total", "n3")
        self.assertTrue(wait_until(lambda: self.ae("n1", "exchanges_total", "n3") >= exchanges + 3, 20))
        self.assertEqual(len(differing_keys(self.held())), 30)
        self.assertEqual(self.ae("n1", "in_sync", "n3"), 0)
        self.assertEqual(self.ae("n1", "keys_behind", "n3"), 0)  # n1 is not behind n3: n3 is behind n1
        self.assertNotIn("kvnode_anti_entropy_rounds_total", metrics(self.ports["n3"]))


class FlagsTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)

    def test_ring_flag_errors_exit_2_with_the_reason(self):
        ring = write_ring(self.h.path("ring.yaml"), [("n1", 8081), ("n2", 8082), ("n3", 8083)], replicas=3)
        r = run_kvnode("--engine", "memory", "--ring", ring)
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "kvnode: --ring needs --id, this node's id in the ring"))
        r = run_kvnode("--engine", "memory", "--ring", ring, "--id", "n9")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, f"kvnode: --id: 'n9' is not a node of {ring}"))
        r = run_kvnode("--engine", "memory", "--recover")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "kvnode: --recover needs --ring (the peers to rebuild from)"))
        r = run_kvnode("--engine", "memory", "--ring", ring, "--id", "n1", "--recover", "--anti-entropy-interval-ms", "0")
        self.assertEqual((r.returncode, r.stderr.strip()),
                         (2, "kvnode: --recover rebuilds from the other replicas: it needs a ring with replicas of 2 or "
                             "more and --anti-entropy-interval-ms above 0"))
        bad = self.h.write("bad.yaml", "replicas: 3\nnodes:\n  - id: n1\n    address: 127.0.0.1:1\n")
        r = run_kvnode("--engine", "memory", "--ring", bad, "--id", "n1")
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith("kvnode: --ring: " + bad), r.stderr)


if __name__ == "__main__":
    unittest.main()
