"""kvring across hosts: nodes and proxies each in a network namespace of its own, on one bridge
(tests/integration/multihost.py), with the network's faults.

The harness first: what a proxy answers, seen from outside, while a node's host is isolated, cut off
one way, or out of the proxy's sight, and after each is undone. Then linearizability across hosts:
lintest's workload through two proxies while one nemesis at a time strikes, checked by
tools/histcheck.py. With one owner per key, requests for a key whose owner cannot be reached fail
(fail or info outcomes); the check is that nothing acknowledged is lost or goes back in time. With
replicas: 3, the same and two more nemeses (a proxy that sees a minority, proxies with clocks minutes
apart), and no request may fail while its key keeps a majority.

The store's deliberately broken mode (kvproxy --unsafe-unversioned, ring-rebalance
--unsafe-unversioned-copy) is not run here: it only changes how keys that move during a ring change
are written and read, and these nemeses change no ring, so it would pass; test_linearizable.py runs
it with the ring change it breaks.
"""
import json
import os
import socket
import unittest

import multihost
from kvtest import SANITIZER, harness, proxy_node_state, proxy_stats, put_all, q, request, wait_until
from multihost import Hosts, MultiHostCluster
from test_linearizable import save

SECONDS = float(os.environ.get("KVRING_MULTIHOST_SECONDS", "3"))
PROXY_TIMEOUTS = ("--connect-timeout-ms", "500", "--response-timeout-ms", "1500")


def get(address, key):
    """GET /get of `key` at `address`: (status, the value or the error's detail)."""
    status, _, body = request(address, "GET", f"/get?key={q(key)}", timeout=5)
    doc = json.loads(body)
    return status, doc.get("value", doc.get("detail"))


class HostsTest(unittest.TestCase):
    """Nodes n1..n3 on hosts h1..h3, a proxy on h4."""

    def setUp(self):
        self.hosts = Hosts(harness(self), 4)
        self.c = MultiHostCluster(self.hosts, nodes=3, proxies=1, proxy_extra=PROXY_TIMEOUTS)
        self.proxy = self.c.proxies[0]
        self.n1, self.n2, self.n3 = self.c.nodes
        self.keys = self.c.keys_per_node("harness", 4)
        self.values = {k: f"value of {k}" for ks in self.keys.values() for k in ks}
        self.assertTrue(wait_until(self.c.healthy, 10), "the proxy never saw every node up")
        self.assertEqual(put_all(self.proxy.addr, self.values), [])

    def state(self, node):
        return proxy_node_state(self.proxy.admin, node.name)

    def assert_through_proxy(self, served, down=()):
        """The keys of the nodes in `served` read back through the proxy; those of the nodes in `down`
        answer 503, the proxy knowing their node is down."""
        for node in served:
            for k in self.keys[node.name]:
                self.assertEqual(get(self.proxy.addr, k), (200, self.values[k]), k)
        for node in down:
            for k in self.keys[node.name]:
                self.assertEqual(get(self.proxy.addr, k), (503, f"Node {node.name} ({node.host.addr}:"
                                                                f"{multihost.NODE_PORT}) is down"), k)

    def test_keys_live_on_their_owners_hosts(self):
        # Through the proxy, each answer names the owner; the owner has the key on its own host.
        for node in self.c.nodes:
            for k in self.keys[node.name]:
                status, headers, body = request(self.proxy.addr, "GET", f"/get?key={q(k)}")
                self.assertEqual((status, headers.get("X-KV-Node"), json.loads(body)["value"]),
                                 (200, node.name, self.values[k]), k)
                self.assertEqual(get(node.addr, k), (200, self.values[k]), k)

    def test_isolated_host(self):
        self.hosts.isolate(self.n2.host)
        self.assertTrue(wait_until(lambda: self.state(self.n2) == "DOWN", 10))
        self.assert_through_proxy([self.n1, self.n3], down=[self.n2])
        with self.assertRaises(OSError):  # nor does the test process reach it
            socket.create_connection(self.n2.addr, timeout=0.5).close()
        self.hosts.rejoin(self.n2.host)
        self.assertTrue(wait_until(lambda: self.state(self.n2) == "UP", 10))
        self.assert_through_proxy(self.c.nodes)

    def test_one_way_cut(self):
        # n3's host sends nothing to the proxy's: the proxy's connections reach n3, its answers do not
        # come back (the listener drops the requests it cannot answer), and anyone else reaches n3.
        drops = self.n3.host.listen_drops()
        self.hosts.cut(self.n3.host, self.proxy.host)
        self.assertTrue(wait_until(lambda: self.state(self.n3) == "DOWN", 10))
        self.assert_through_proxy([self.n1, self.n2], down=[self.n3])
        self.assertTrue(wait_until(lambda: self.n3.host.listen_drops() > drops, 5),
                        "the proxy's connections never reached n3")
        for k in self.keys["n3"]:
            self.assertEqual(get(self.n3.addr, k), (200, self.values[k]))
        self.hosts.uncut(self.n3.host, self.proxy.host)
        self.assertTrue(wait_until(lambda: self.state(self.n3) == "UP", 10))
        self.assert_through_proxy(self.c.nodes)

    def test_proxy_cut_off_from_a_majority(self):
        self.hosts.cut_off(self.proxy.host, [self.n1.host, self.n2.host])
        self.assertTrue(wait_until(lambda: self.state(self.n1) == self.state(self.n2) == "DOWN", 10))
        self.assertEqual(self.state(self.n3), "UP")
        self.assert_through_proxy([self.n3], down=[self.n1, self.n2])
        for k in self.keys["n1"]:  # the nodes themselves are fine
            self.assertEqual(get(self.n1.addr, k), (200, self.values[k]))
        self.hosts.reconnect(self.proxy.host, [self.n1.host, self.n2.host])
        self.assertTrue(wait_until(self.c.healthy, 10))
        self.assert_through_proxy(self.c.nodes)

    def test_heal_undoes_every_fault_at_once(self):
        # A crashed node comes back on its address with its data; a paused one resumes.
        self.hosts.isolate(self.n1.host)
        self.n2.pause()
        self.n3.kill()
        self.assertTrue(wait_until(lambda: {self.state(n) for n in self.c.nodes} == {"DOWN"}, 10))
        self.assert_through_proxy([], down=self.c.nodes)
        self.hosts.heal()
        self.assertTrue(wait_until(self.c.healthy, 10))
        self.assert_through_proxy(self.c.nodes)


class LinearizableAcrossHostsTest(unittest.TestCase):
    def check_tombstones_gone(self, nemesis, summary):
        """With the nodes purging (multihost.NODE_FLAGS), every replica up and equal: no tombstone is
        still needed, and every one is purged (issue 18: the count drops to the ones still needed)."""
        if multihost.PURGING:
            converged = summary["converged"]
            self.assertIsNotNone(converged["tombstones_gone"], f"{nemesis}: tombstones left once converged: {converged}")

    def check_history(self, nemesis, summary, recorder, result):
        """A run that struck, with a history thick enough to say something, all of it linearizable."""
        ops = [o for o in recorder.ops() if o["process"] != "final"]
        ok = lambda f: sum(1 for o in ops if o["f"] == f and o["outcome"] == "ok")  # noqa: E731
        self.assertEqual(summary["workload_errors"], [])
        self.assertTrue(summary["log"], "the nemesis never struck")
        # A history too thin to say anything would pass any checker.
        self.assertGreater(ok("get"), 40, summary)
        self.assertGreater(ok("put"), 25, summary)
        self.assertGreater(ok("del"), 5, summary)
        self.assertEqual(summary["failed_keys"], [], f"{nemesis}: not linearizable:\n{result.report()}")
        self.assertEqual(summary["lost_writes"], 0, f"{nemesis}: lost writes:\n{result.report()}")
        self.assertEqual(summary["unknown_keys"], [], f"{nemesis}: the checker ran out of budget")

    def test_two_proxies_three_nodes_one_nemesis_at_a_time(self):
        # n1..n3 on h1..h3, proxies on h4 and h5; each nemesis on keys of its own, for SECONDS.
        h = harness(self)
        c = MultiHostCluster(Hosts(h, 5), nodes=3, proxies=2, proxy_extra=PROXY_TIMEOUTS)
        self.assertTrue(wait_until(c.healthy, 10), "the proxies never saw every node up")
        for i, nemesis in enumerate(multihost.NEMESES):
            with self.subTest(nemesis=nemesis):
                summary, recorder, result = multihost.lin_run(c, nemesis, SECONDS, seed=1 + i)
                save(f"multihost-{nemesis}", summary, recorder)
                self.check_history(nemesis, summary, recorder, result)
                # The faults were felt: requests failed, or waited out a pause (a SIGSTOP shorter than
                # the proxy's response timeout delays requests without failing them).
                slowest = max((op["complete"] or op["invoke"]) - op["invoke"] for op in recorder.ops())
                self.assertTrue(sum(summary["not_ok"].values()) > 0 or slowest >= 0.5, (slowest, summary))

    def test_replicas_three_two_proxies_one_nemesis_at_a_time(self):
        # replicas: 3 on n1..n3: every key on every node. Under the nemeses that leave every key a
        # majority through every proxy, no request may fail; the fault shows in the replicas' errors.
        h = harness(self)
        c = MultiHostCluster(Hosts(h, 5), nodes=3, proxies=2, proxy_extra=PROXY_TIMEOUTS, replicas=3)
        self.assertTrue(wait_until(c.healthy, 10), "the proxies never saw every node up")

        def replica_errors():
            return sum(sum(n["errors"].values()) for p in c.proxies for n in proxy_stats(p.admin)["nodes"])

        for i, nemesis in enumerate(multihost.REPLICATED_NEMESES):
            with self.subTest(nemesis=nemesis):
                errors_before = replica_errors()
                summary, recorder, result = multihost.lin_run(c, nemesis, SECONDS, seed=21 + i)
                save(f"multihost-replicas3-{nemesis}", summary, recorder)
                self.check_history(nemesis, summary, recorder, result)
                # Healed and the load stopped, anti-entropy makes every replica equal.
                self.assertIsNotNone(summary["converged"]["seconds"], f"{nemesis}: replicas still differ: {summary['converged']}")
                self.check_tombstones_gone(nemesis, summary)
                if nemesis in multihost.KEEP_A_MAJORITY:
                    self.assertEqual(summary["not_ok"], {}, f"{nemesis}: a request failed while its key kept a majority")
                    self.assertGreater(replica_errors(), errors_before, "the fault was never felt")
                elif nemesis == "proxy-minority":
                    self.assertTrue(summary["not_ok"], "a proxy that sees a minority answered everything")

    def test_replicas_three_ring_changes_across_hosts(self):
        # replicas: 3 on n1..n3 under the load through two proxies, with n4 and n5 on hosts of their
        # own, and every kind of ring change ring-rebalance apply makes: n4 added, n2 reweighed, 3 -> 5
        # replicas (n5 too), 5 -> 3, 3 -> 1, 1 -> 3; then the same with each apply killed part way and
        # run again; then n4 in and out with a node of either ring killed during each change. The nodes
        # run anti-entropy and adopt each ring in place as apply goes; every run ends back on n1..n3,
        # whose replicas must converge. No request may fail: every key keeps a majority of its old and
        # of its new set throughout (no node is killed where a side has replicas 1). Last,
        # n1..n3 -> n1, n4, n5 and back, two of every key's three replicas replaced at once, each change
        # plain, with apply killed part way, or with a node killed, at random (the long runs' change-*
        # nemeses, bench/linearizability.py --hosts).
        h = harness(self)
        c = MultiHostCluster(Hosts(h, 7), nodes=3, proxies=2, proxy_extra=PROXY_TIMEOUTS, replicas=3, spare=True)
        self.assertTrue(wait_until(c.healthy, 10), "the proxies never saw every node up")
        nemeses = [*multihost.RING_NEMESES, "change-replace"]
        if SANITIZER:  # ring-changes' changes, with faults around them; linearizable replaces two of three
            nemeses = ["ring-changes-apply-killed", "ring-change-kill-node"]
        for i, nemesis in enumerate(nemeses):
            with self.subTest(nemesis=nemesis):
                summary, recorder, result = multihost.lin_run(c, nemesis, SECONDS, seed=41 + i, max_rounds=1)
                save(f"multihost-replicas3-{nemesis}", summary, recorder)
                self.check_history(nemesis, summary, recorder, result)
                first = "apply A -> R" if nemesis == "change-replace" else "apply A -> B"
                self.assertTrue(summary["log"][0].startswith(first), summary["log"])
                self.assertIsNotNone(summary["converged"]["seconds"], f"{nemesis}: replicas still differ: {summary['converged']}")
                self.check_tombstones_gone(nemesis, summary)
                # Nodes adopt each ring in place, so every key keeps a majority of its old and of its new
                # set throughout (one node killed at most, never where a side has replicas 1): no request
                # may fail.
                self.assertEqual(summary["not_ok"], {}, f"{nemesis}: a request failed while its key kept a majority "
                                 f"of both sets: {[o for o in recorder.ops() if o['outcome'] != 'ok'][:5]}; "
                                 f"held on a floor failure: {summary.get('floor_failures')}")


if __name__ == "__main__":
    unittest.main()
