"""Ring changes with replicas (../shared/REPLICATION.md, guarantee 8).

JointQuorumTest, kvproxy's part: while a change is in progress, a key whose replica set changes is
asked at the union of its old and new sets, and each step needs a majority of each set (joint
quorums). Driven through the proxy's admin steps, as ring-rebalance takes them; nodes are killed and
started again to show which majorities a request needs in each phase.

ApplyTest: `ring-rebalance apply` under load through two proxies, adding a node and going from 1 to 3
replicas. Afterwards every key reads back as last acknowledged through both proxies, each value is
held by a majority of its key's new replica set, and no node outside that set holds it."""
import json
import subprocess
import unittest

from kvtest import (RING_REBALANCE, Client, Cluster, Load, admin, fingerprint, free_ports, harness, metric, metrics, migration,
                    node_health, proxy_node_state, put_all, request, ring_rebalance, wait_until, write_ring)
from test_rebalance import scan_node


def replica_sets(ring, keys):
    """{key: [node ids]}: each key's replica set in placement order, as ring-rebalance computes it."""
    keys = list(keys)
    out = {}
    for i in range(0, len(keys), 2000):  # a bounded command line
        res = subprocess.run([RING_REBALANCE, "owner", "--ring", ring, *keys[i:i + 2000]], capture_output=True,
                             text=True, check=True, timeout=60)
        for line in res.stdout.splitlines():
            fields = line.split("\t")
            out[fields[0]] = fields[4].split(",") if len(fields) > 4 else [fields[1]]
    return out


def held(node, key):
    """What one kvnode holds of `key` (its own copy): the value, or None."""
    status, _, body = request(node.port, "GET", f"/replica/get?key={key}")
    return json.loads(body).get("value") if status == 200 else None


class JointQuorumTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)
        self.cluster = Cluster(self.h, ["n1", "n2", "n3", "n4"])

    def start(self, old_members, new_members, old_replicas, new_replicas):
        old = self.cluster.write_ring(old_members, "old.yaml", replicas=old_replicas)
        new = self.cluster.write_ring(new_members, "new.yaml", replicas=new_replicas)
        self.cluster.start_proxy(old, own_copy="proxy.yaml", checks=Cluster.CHECKS)
        self.c = Client(self.cluster.port)
        self.addCleanup(self.c.close)
        return old, new

    def begin(self, new):
        port = self.cluster.admin
        with open(new) as f:
            text = f.read()
        status, body = admin(port, "POST", f"/admin/migration/begin?from={migration(port)['fingerprint']}", text)
        self.assertEqual((status, body["phase"]), (200, "dual_write"), body)
        return body["to"]

    def step(self, name, fingerprint, phase):
        status, body = admin(self.cluster.admin, "POST", f"/admin/migration/{name}?to={fingerprint}")
        self.assertEqual((status, body["phase"]), (200, phase), body)

    def kill(self, *ids):
        for i in ids:
            self.cluster.nodes[i].kill()
        for i in ids:
            self.assertTrue(wait_until(lambda: proxy_node_state(self.cluster.admin, i) == "DOWN", 10))

    def revive(self, *ids):
        for i in ids:
            self.cluster.start_node(i, port=self.cluster.nodes[i].port)
        for i in ids:
            self.assertTrue(wait_until(lambda: proxy_node_state(self.cluster.admin, i) == "UP", 10))

    def test_a_node_added_under_replicas_3_needs_a_majority_of_the_old_and_the_new_set(self):
        old, new = self.start(["n1", "n2", "n3"], ["n1", "n2", "n3", "n4"], 3, 3)
        keys = [f"k{i}" for i in range(60)]
        before, after = replica_sets(old, keys), replica_sets(new, keys)
        moving = [k for k in keys if set(before[k]) != set(after[k])]
        staying = [k for k in keys if set(before[k]) == set(after[k])]
        self.assertTrue(moving and staying)
        key = moving[0]
        kept = [n for n in before[key] if n in after[key]]
        dropped = next(n for n in before[key] if n not in after[key])
        self.assertEqual((len(kept), after[key].count("n4")), (2, 1))
        for k in keys:
            self.assertEqual(self.c.put(k, "v1")[0], 200)

        fp_new = self.begin(new)
        # dual_write: a write of a moving key reaches its old set and its new one (n4 too).
        status, headers, _ = self.c.put(key, "v2")
        self.assertEqual(status, 200)
        self.assertTrue(wait_until(lambda: all(held(self.cluster.nodes[n], key) == "v2" for n in ("n1", "n2", "n3", "n4")), 5))
        self.assertGreater(metric(metrics(self.cluster.admin), "kvproxy_rebalance_routed_total"), 0)
        # n4 and one kept replica gone: the old set still has a majority, the new set has one of three.
        # The request fails (503 naming them), where a proxy on the old ring alone would have gone on.
        self.kill("n4", kept[0])
        status, _, body = self.c.put(key, "v3")
        self.assertEqual(status, 503, body)
        detail = json.loads(body)["detail"]
        self.assertIn("n4", detail)
        self.assertIn(kept[0], detail)
        self.assertEqual(self.c.get(key)[0], 503)
        # A key whose set does not change needs only its own majority.
        other = next((k for k in staying if kept[0] in before[k]), None)
        if other:
            self.assertEqual(self.c.put(other, "v3")[0], 200)
        self.revive(kept[0])
        # n4 alone gone: the kept replicas are a majority of both sets.
        self.assertEqual(self.c.put(key, "v4")[0], 200)
        self.assertEqual(json.loads(self.c.get(key)[2])["value"], "v4")
        # The replica the new set drops, gone with n4: two of the old set, two of the new (the kept ones).
        self.kill(dropped)
        self.assertEqual(self.c.put(key, "v5")[0], 200)
        self.revive("n4", dropped)

        # read_new routes alike; then finish: the new ring alone, where n4 makes the majority.
        self.step("read-new", fp_new, "read_new")
        self.assertEqual(json.loads(self.c.get(key)[2])["value"], "v5")
        self.step("finish", fp_new, "none")
        self.assertEqual(migration(self.cluster.admin)["fingerprint"], fp_new)
        self.kill(dropped)  # no longer a replica of the key
        self.assertEqual(self.c.put(key, "v6")[0], 200)
        self.assertEqual(json.loads(self.c.get(key)[2])["value"], "v6")
        self.assertEqual(held(self.cluster.nodes["n4"], key), "v6")

    def test_replicas_1_to_3_keeps_the_old_owner_in_every_quorum(self):
        old, new = self.start(["n1", "n2", "n3"], ["n1", "n2", "n3"], 1, 3)
        key = "grows"
        owner = replica_sets(old, [key])[key][0]
        others = [n for n in ("n1", "n2", "n3") if n != owner]
        self.assertEqual(self.c.put(key, "v1")[0], 200)
        self.assertEqual([held(self.cluster.nodes[n], key) for n in others], [None, None])  # one copy
        fp_new = self.begin(new)
        self.assertEqual(self.c.put(key, "v2")[0], 200)
        self.assertTrue(wait_until(lambda: all(held(self.cluster.nodes[n], key) == "v2" for n in ("n1", "n2", "n3")), 5))
        # Two of the three new replicas are up, but the old set (its one owner) is not: 503.
        self.kill(owner)
        status, _, body = self.c.put(key, "v3")
        self.assertEqual(status, 503, body)
        self.assertIn(owner, json.loads(body)["detail"])
        self.revive(owner)
        # One of the new replicas gone: the owner and the other make a majority of both sets.
        self.kill(others[0])
        self.assertEqual(self.c.put(key, "v4")[0], 200)
        self.revive(others[0])
        self.step("read-new", fp_new, "read_new")
        self.step("finish", fp_new, "none")
        # Replicas 3 from now on: the old owner's death fails nothing.
        self.kill(owner)
        self.assertEqual(self.c.put(key, "v5")[0], 200)
        self.assertEqual(json.loads(self.c.get(key)[2])["value"], "v5")


class ApplyTest(unittest.TestCase):
    maxDiff = None
    STATIC_KEYS = 3000

    def setUp(self):
        self.h = harness(self)

    def start(self, node_ids, old_members, new_members, old_replicas, new_replicas):
        self.cluster = Cluster(self.h, node_ids)
        old = self.cluster.write_ring(old_members, "old.yaml", replicas=old_replicas)
        new = self.cluster.write_ring(new_members, "new.yaml", replicas=new_replicas)
        for i in range(2):
            self.cluster.start_proxy(old, own_copy=f"proxy{i}.yaml", checks={"interval": 200})
        return old, new

    def preload(self):
        data = {f"static-{i}": f"value-{i}-{'x' * (i % 40)}" for i in range(self.STATIC_KEYS)}
        failed = put_all(self.cluster.port, data, threads=4)
        self.assertFalse(failed, failed[:5])
        return data

    def apply(self, old, new, *extra):
        res = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args(), "--progress", "lines",
                             "--json", *extra, timeout=240)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout), res.stderr

    def verify(self, new_ring, static, load):
        self.assertEqual(load.errors, [], "requests failed during the change")
        self.assertEqual(load.violations, [], "answers contradicted acknowledged operations")
        self.assertGreater(load.ops, 100, "the load did not run")
        expected = dict(static)
        expected.update(load.state)
        for i, proxy in enumerate(self.cluster.proxies):
            c = Client(proxy.port)
            wrong = []
            for k, v in expected.items():
                status, _, body = c.get(k)
                if (v is None and status != 404) or (v is not None and (status != 200 or json.loads(body)["value"] != v)):
                    wrong.append((k, v, status, body[:80]))
            c.close()
            self.assertEqual(wrong[:10], [], f"proxy {i}: keys read back wrong")
        sets = replica_sets(new_ring, expected.keys())
        where = {}
        for nid, p in self.cluster.nodes.items():
            for k, v in scan_node(p.port).items():
                where.setdefault(k, []).append((nid, v))
        wrong = []
        for k, v in expected.items():
            members = sets[k]
            outside = [nid for nid, _ in where.get(k, []) if nid not in members]
            holding = [nid for nid, got in where.get(k, []) if got == v]
            if outside:
                wrong.append((k, "held outside its replica set", members, outside))
            if v is not None and len(holding) < len(members) // 2 + 1:
                wrong.append((k, "held by less than a majority of", members, where.get(k)))
        self.assertEqual(wrong[:10], [])

    def test_add_a_node_at_replicas_3_under_load_through_two_proxies(self):
        old, new = self.start(["n1", "n2", "n3", "n4"], ["n1", "n2", "n3"], ["n1", "n2", "n3", "n4"], 3, 3)
        static = self.preload()
        # plan --count: the keys each node gains and loses, counted on the nodes, exactly those whose
        # replica set it joins or leaves (once every third store, which runs on after the answer, is in).
        def stored():
            return sum(admin(self.cluster.nodes[n].port, "POST", "/admin/count", "0000000000000000 ffffffffffffffff\n")[1]["keys"]
                       for n in ("n1", "n2", "n3"))
        self.assertTrue(wait_until(lambda: stored() == 3 * len(static), 10))
        res = ring_rebalance("plan", "--from", old, "--to", new, "--count", "--json")
        self.assertEqual(res.returncode, 0, res.stderr)
        counted = {n["id"]: n for n in json.loads(res.stdout)["nodes"]}
        before, after = replica_sets(old, static), replica_sets(new, static)
        for nid in ("n1", "n2", "n3", "n4"):
            gains = sum(1 for k in static if nid in after[k] and nid not in before[k])
            losses = sum(1 for k in static if nid in before[k] and nid not in after[k])
            self.assertEqual((counted[nid]["gains_keys"], counted[nid]["losses_keys"]), (gains, losses), nid)
            self.assertGreater(counted[nid]["gains_bytes"] + counted[nid]["losses_bytes"], 40 * (gains + losses) - 1)
        text = ring_rebalance("plan", "--from", old, "--to", new, "--count").stdout
        self.assertIn("keys and bytes (as stored), counted on the nodes now", text)
        load = Load.owned([p.port for p in self.cluster.proxies], "live", 100).start()
        self.assertTrue(wait_until(lambda: load.ops > 200, 20))
        summary, log = self.apply(old, new)
        load.finish()
        self.assertIn("removing the moved ranges from the replicas that left them", log)
        self.assertGreater(summary["keys_copied"], 0)
        self.verify(new, static, load)
        for i in range(2):
            self.assertEqual(migration(self.cluster.proxies[i].admin_port)["phase"], "none")

    def test_replicas_1_to_3_under_load(self):
        old, new = self.start(["n1", "n2", "n3"], ["n1", "n2", "n3"], ["n1", "n2", "n3"], 1, 3)
        static = self.preload()
        load = Load.owned([p.port for p in self.cluster.proxies], "live", 100).start()
        self.assertTrue(wait_until(lambda: load.ops > 200, 20))
        self.apply(old, new)
        load.finish()
        self.verify(new, static, load)
        # Replicas 3 now: a node's death fails no request.
        self.cluster.nodes["n2"].kill()
        c = Client(self.cluster.port)
        self.addCleanup(c.close)
        for k in list(static)[:100]:
            status, _, body = c.get(k)
            self.assertEqual((status, json.loads(body)["value"]), (200, static[k]))

    def test_nodes_with_anti_entropy_adopt_the_new_ring_and_converge_on_it(self):
        # Every node runs anti-entropy on a ring file of its own: n1..n3 on the old ring, n4 (new) on
        # the new one. apply has each node of the new ring adopt it (starting again on it, one at a
        # time, while the proxies still route by the old ring) before the change begins: n4 then learns
        # from its peers that it is new, and serves. Afterwards every node exchanges with its three
        # peers of the new ring, all in sync, and none pulled back what it dropped.
        self.cluster = Cluster(self.h, [])
        ports = dict(zip(["n1", "n2", "n3", "n4"], free_ports(4)))
        old = write_ring(self.h.path("old.yaml"), [(n, ports[n]) for n in ("n1", "n2", "n3")], replicas=3)
        new = write_ring(self.h.path("new.yaml"), [(n, ports[n]) for n in ("n1", "n2", "n3", "n4")], replicas=3)
        for n in ("n1", "n2", "n3", "n4"):
            ring = self.h.path(f"{n}-ring.yaml")
            with open(new if n == "n4" else old) as src, open(ring, "w") as dst:
                dst.write(src.read())
            self.cluster.nodes[n] = self.h.node(n, self.h.path(f"{n}-data"), port=ports[n],
                                                extra=["--ring", ring, "--anti-entropy-interval-ms", "200"])
        for i in range(2):
            self.cluster.start_proxy(old, own_copy=f"proxy{i}.yaml", checks={"interval": 200})
        static = self.preload()
        load = Load.owned([p.port for p in self.cluster.proxies], "live", 100).start()
        self.assertTrue(wait_until(lambda: load.ops > 200, 20))
        pids = {n: p.pid for n, p in self.cluster.nodes.items()}
        summary, log = self.apply(old, new)
        load.finish()
        self.assertIn("the nodes that follow a ring of their own run on NEW, serving (3 adopted it in place, 1 on it "
                      "already)", log)
        self.assertLess(log.index("run on NEW, serving"), log.index("dual_write"))
        self.assertEqual({n: p.pid for n, p in self.cluster.nodes.items()}, pids)  # in place, the same processes
        for n in ("n1", "n2", "n3"):
            with open(self.h.path(f"{n}-ring.yaml")) as f, open(new) as g:
                self.assertEqual(f.read(), g.read())
        self.verify(new, static, load)

        def converged():
            health = [node_health(p.port) for p in self.cluster.nodes.values()]
            return all(h.get("state") == "serving" and h["anti_entropy"]["peers"] == 3 and
                       h["anti_entropy"]["peers_in_sync"] == 3 for h in health)
        self.assertTrue(wait_until(converged, 60), [node_health(p.port) for p in self.cluster.nodes.values()])
        # Converged on the new ring: still no copy outside a key's new replica set, and now every
        # replica of every key holds it (n4 rebuilt what it had not been copied, if anything).
        self.verify(new, static, load)

    def ring_following_cluster(self, old_members, new_members, all_members, node_extra=()):
        """Nodes each on a ring file of their own (those of NEW only on NEW), one proxy on OLD; each
        kvnode with `node_extra` too."""
        self.cluster = Cluster(self.h, [])
        ports = dict(zip(all_members, free_ports(len(all_members))))
        old = write_ring(self.h.path("old.yaml"), [(n, ports[n]) for n in old_members], replicas=3)
        new = write_ring(self.h.path("new.yaml"), [(n, ports[n]) for n in new_members], replicas=3)
        self.node_args = {}
        for n in all_members:
            ring = self.h.path(f"{n}-ring.yaml")
            with open(old if n in old_members else new) as src, open(ring, "w") as dst:
                dst.write(src.read())
            self.node_args[n] = (n, self.h.path(f"{n}-data"))
            self.cluster.nodes[n] = self.h.node(n, self.h.path(f"{n}-data"), port=ports[n],
                                                extra=["--ring", ring, "--anti-entropy-interval-ms", "200", *node_extra])
        self.cluster.start_proxy(old, own_copy="proxy0.yaml", checks={"interval": 200})
        self.assertTrue(wait_until(lambda: all(node_health(self.cluster.nodes[n].port).get("state") == "serving"
                                               for n in old_members), 20))
        return old, new, ports

    def purging_cluster_with_tombstones(self):
        """n1..n3 on OLD, n4 on NEW, all purging tombstones; 40 keys written through the proxy, 20 of
        them deleted. Returns (old, new, ports, {key: value or None})."""
        old, new, ports = self.ring_following_cluster(["n1", "n2", "n3"], ["n1", "n2", "n3", "n4"],
                                                      ["n1", "n2", "n3", "n4"])
        self.assertTrue(node_health(ports["n1"])["anti_entropy"]["purging"])
        c = Client(self.cluster.port)
        self.addCleanup(c.close)
        expected = {f"p{i}": f"v{i}" for i in range(40)}
        for k, v in expected.items():
            self.assertEqual(c.put(k, v)[0], 200)
        for i in range(20):
            self.assertEqual(c.delete(f"p{i}")[0], 200)
            expected[f"p{i}"] = None
        return old, new, ports, expected

    def expect_after_change(self, new, ports, expected):
        """Every node of NEW purges again, the deleted keys stay deleted, and their tombstones go."""
        for n, port in ports.items():
            self.assertIsNone(node_health(port)["anti_entropy"]["purges_paused"], n)
        c = Client(self.cluster.port)
        self.addCleanup(c.close)
        for k, v in expected.items():
            status, _, body = c.get(k)
            self.assertEqual((status, json.loads(body).get("value")), (404, None) if v is None else (200, v), k)
        self.assertTrue(wait_until(lambda: all(node_health(p)["tombstones"] == 0 for p in ports.values()), 30),
                        {n: node_health(p)["tombstones"] for n, p in ports.items()})

    def test_apply_pauses_tombstone_purges_for_the_change(self):
        # A node purges on the evidence of its own ring's sets while a change's requests go to the
        # union of the old and new sets: it could purge a tombstone a new member never got, which
        # then holds the deleted value (node/floors.hpp). So apply pauses every node's purges before
        # any node adopts NEW or any proxy stores to a new set, and resumes them at the end.
        old, new, ports, expected = self.purging_cluster_with_tombstones()
        _, log = self.apply(old, new)
        self.assertIn("tombstone purges paused on 4 of 4 nodes, until the change ends", log)
        self.assertIn("tombstone purges resumed on the 4 nodes", log)
        self.assertLess(log.index("tombstone purges paused"), log.index("run on NEW, serving"))
        self.assertGreater(log.index("tombstone purges resumed"), log.index("removing the moved ranges"))
        # Each node says so itself: on n1..n3 the pause came before the adoption of NEW, the resume after.
        # The change's id: OLD-NEW.G, G one past the highest any node remembers (none: 1).
        change = f"{fingerprint(old)}-{fingerprint(new)}.1"
        self.assertIn(f"; change {change}", log)
        for n in ("n1", "n2", "n3", "n4"):
            out = self.cluster.nodes[n].output()
            paused = out.index(f"tombstone purges paused for the ring change {change}")
            resumed = out.index(f"tombstone purges resumed (the ring change {change} ended)")
            if n != "n4":
                self.assertLess(paused, out.index("adopting the ring"), n)
                self.assertLess(out.index(f"runs on the ring {fingerprint(new)} now"), resumed, n)
            self.assertEqual(node_health(ports[n])["anti_entropy"]["purges_resumed"], change, n)
        self.expect_after_change(new, ports, expected)

    def test_ring_changes_back_and_forth_pause_under_ids_never_used_before(self):
        # OLD -> NEW, NEW -> OLD, OLD -> NEW: a node paused for a change resumes itself when a peer
        # says it was resumed for the same id, so the third must not reuse the first's (a node that
        # missed the second would still say "resumed for" the first: tools/resume.hpp, change_id).
        old, new, ports, expected = self.purging_cluster_with_tombstones()
        ids = []
        for g, (a, b) in enumerate([(old, new), (new, old), (old, new)], start=1):
            _, log = self.apply(a, b)
            ids.append(f"{fingerprint(a)}-{fingerprint(b)}.{g}")
            self.assertIn(f"; change {ids[-1]}", log)
            self.assertEqual(node_health(ports["n1"])["anti_entropy"]["purges_resumed"], ids[-1])
        self.assertEqual(len(set(ids)), 3, ids)
        self.expect_after_change(new, ports, expected)

    def test_apply_stops_when_two_replicas_of_a_set_cannot_pause_their_purges(self):
        # n2 and n3 do not answer: they may be alive and cut off from ring-rebalance only, purging by
        # each other's evidence. apply stops before any proxy or node takes a step; n1 keeps its pause
        # (durably: the change is under way as far as it knows) until the same command, run again once
        # n2 and n3 answer, goes through and resumes every node.
        old, new, ports, expected = self.purging_cluster_with_tombstones()
        for n in ("n2", "n3"):
            self.cluster.nodes[n].kill()
        res = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args(), timeout=60)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("ring-rebalance: apply failed: tombstone purges could not be paused on n2, n3, replicas of the same "
                      "keys in OLD, and the nodes purge tombstones (kvnode without --keep-tombstones): if they are up "
                      "but cut off from here, they could purge tombstones that the change still needs (node/purge_pause.hpp). Run again "
                      "once they answer", res.stderr.splitlines())
        self.assertEqual(migration(self.cluster.admin)["phase"], "none")  # no proxy took a step
        self.assertEqual(node_health(ports["n1"])["ring"], fingerprint(old))  # no node adopted NEW
        change = f"{fingerprint(old)}-{fingerprint(new)}.1"
        self.assertEqual(node_health(ports["n1"])["anti_entropy"]["purges_paused"], change)
        for n in ("n2", "n3"):
            node_id, data_dir = self.node_args[n]
            self.cluster.nodes[n] = self.h.node(node_id, data_dir, port=ports[n],
                                                extra=["--ring", self.h.path(f"{n}-ring.yaml"),
                                                       "--anti-entropy-interval-ms", "200"])
        _, log = self.apply(old, new)
        # The run again is the same change: the same id, so that a node it cannot reach resumes
        # itself once it sees a peer resumed for it.
        self.assertIn(f"tombstone purges paused on 4 of 4 nodes, until the change ends; change {change}", log)
        self.assertIn("tombstone purges resumed on the 4 nodes", log)
        for n, port in ports.items():
            self.assertEqual(node_health(port)["anti_entropy"]["purges_resumed"], change, n)
        self.expect_after_change(new, ports, expected)

    def test_nodes_adopt_the_ring_while_another_is_down(self):
        # n3 killed just before apply, under load. Every node of OLD shares every key's set; n1 and n2
        # adopt NEW in place, serving throughout, so each key keeps two of three replicas and no
        # request fails. apply reaches n3 last and waits for it (--node-wait-ms), started again once
        # n1 and n2 run on NEW, on OLD's file.
        old, new, ports = self.ring_following_cluster(["n1", "n2", "n3"], ["n1", "n2", "n3", "n4"],
                                                      ["n1", "n2", "n3", "n4"])
        static = self.preload()
        load = Load.owned([self.cluster.port], "live", 100).start()
        self.assertTrue(wait_until(lambda: load.ops > 200, 20))
        self.cluster.nodes["n3"].kill()
        apply = subprocess.Popen([RING_REBALANCE, "apply", "--from", old, "--to", new, *self.cluster.admin_args(),
                                  "--progress", "lines"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.assertTrue(wait_until(lambda: all(node_health(self.cluster.nodes[n].port)["ring"] == fingerprint(new)
                                               for n in ("n1", "n2")), 30), "n1 and n2 did not adopt NEW while n3 was down")
        n, data_dir = self.node_args["n3"]
        self.cluster.nodes["n3"] = self.h.node(n, data_dir, port=ports["n3"],
                                               extra=["--ring", self.h.path("n3-ring.yaml"), "--anti-entropy-interval-ms", "200"])
        _, log = apply.communicate(timeout=240)
        load.finish()
        self.assertEqual(apply.returncode, 0, log)
        self.assertIn("run on NEW, serving (3 adopted it in place, 1 on it already)", log)
        self.verify(new, static, load)  # no request failed, every key where it belongs

    def test_a_dead_node_replaced_is_not_waited_for(self):
        # n3 dead, the change replacing it with n4: apply has n1, n2 and n4 adopt NEW without waiting for
        # n3, switches the proxies, and stops only where it must drop the ranges n3 left (run again
        # once n3 is back, or with n3 gone for good, its data with it).
        old, new, ports = self.ring_following_cluster(["n1", "n2", "n3"], ["n1", "n2", "n4"], ["n1", "n2", "n3", "n4"])
        self.cluster.nodes["n3"].kill()
        res = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args(), "--progress", "lines",
                             "--node-wait-ms", "300", "--timeout-ms", "1000", timeout=240)
        self.assertIn("run on NEW, serving (2 adopted it in place, 1 on it already)", res.stderr)
        self.assertIn("finish: every proxy routes by NEW", res.stderr)
        self.assertIn(f"apply failed: node n3 (127.0.0.1:{ports['n3']}): ", res.stderr)
        for n in ("n1", "n2", "n4"):
            self.assertEqual(node_health(self.cluster.nodes[n].port)["ring"], fingerprint(new), n)
        # A node of NEW down for good: apply waits --node-wait-ms for it, then stops, saying so.
        self.cluster.nodes["n4"].kill()
        res = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args(), "--progress", "lines",
                             "--node-wait-ms", "300", "--timeout-ms", "1000", timeout=240)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn(f"ring-rebalance: apply failed: n4 (127.0.0.1:{ports['n4']}) did not answer /health within "
                      "--node-wait-ms (300 ms): it must adopt NEW; run again once it is up", res.stderr.splitlines())

    def test_nodes_with_anti_entropy_through_replicas_3_to_1_and_back(self):
        # On a ring with replicas 1 a node keeps no replica state (no anti-entropy), but it still runs
        # on that ring: apply has it adopt replicas 1, and later replicas 3 again.
        self.cluster = Cluster(self.h, [])
        ports = dict(zip(["n1", "n2", "n3"], free_ports(3)))
        three = write_ring(self.h.path("three.yaml"), [(n, ports[n]) for n in ports], replicas=3)
        one = write_ring(self.h.path("one.yaml"), [(n, ports[n]) for n in ports], replicas=1)
        for n in ports:
            ring = self.h.path(f"{n}-ring.yaml")
            with open(three) as src, open(ring, "w") as dst:
                dst.write(src.read())
            self.cluster.nodes[n] = self.h.node(n, self.h.path(f"{n}-data"), port=ports[n],
                                                extra=["--ring", ring, "--anti-entropy-interval-ms", "200"])
        self.cluster.start_proxy(three, own_copy="proxy0.yaml", checks={"interval": 200})
        # New directories: each node first learns from its peers that it is new (node/incarnation.hpp).
        self.assertTrue(wait_until(lambda: all(node_health(p.port).get("state") == "serving"
                                               for p in self.cluster.nodes.values()), 20))
        data = {f"k{i}": f"v{i}" for i in range(300)}
        self.assertFalse(put_all(self.cluster.port, data, threads=2))
        for old, new, replicas in ((three, one, 1), (one, three, 3)):
            _, log = self.apply(old, new)
            self.assertIn("the nodes that follow a ring of their own run on NEW, serving (3 adopted it in place", log)
            for n, node in self.cluster.nodes.items():
                health = node_health(node.port)
                self.assertEqual(health["ring"], fingerprint(new), n)
                self.assertEqual("state" in health, replicas > 1, health)  # no replica state at replicas 1
            c = Client(self.cluster.port)
            answers = {k: c.get(k) for k in data}
            c.close()
            wrong = [(k, a[0]) for k, a in answers.items() if a[0] != 200 or json.loads(a[2])["value"] != data[k]]
            self.assertEqual(wrong, [])
        self.assertTrue(wait_until(lambda: all(node_health(p.port)["anti_entropy"]["peers_in_sync"] == 2
                                               for p in self.cluster.nodes.values()), 30))


class NodeRingTest(unittest.TestCase):
    """kvnode's POST /admin/ring: what it refuses, and a ring it runs on already (no restart)."""

    def test_refusals_and_the_same_ring(self):
        h = harness(self)
        plain = h.node("n1")
        status, body = admin(plain.port, "POST", "/admin/ring", "nodes: []\n")
        self.assertEqual((status, body["detail"]), (409, "this node runs without --ring: it has no ring to change"))
        port, other = free_ports(2)
        ring = write_ring(h.path("ring.yaml"), [("n1", port), ("n2", other), ("n3", other + 1)], replicas=3)
        with open(ring) as f:
            text = f.read()
        node = h.node("n1", h.path("n1-ring-data"), port=port, extra=["--ring", ring, "--anti-entropy-interval-ms", "0"])
        status, body = admin(node.port, "POST", "/admin/ring", "replicas: 3\nnodes: [")
        self.assertEqual(status, 400)
        self.assertTrue(body["detail"].startswith("<admin body>: "), body)
        elsewhere = text.replace("id: n1", "id: n9")
        status, body = admin(node.port, "POST", "/admin/ring", elsewhere)
        self.assertEqual((status, body["detail"]),
                         (409, "'n1' is not a node of this ring: a node leaving the ring keeps its own"))
        status, body = admin(node.port, "POST", "/admin/ring", text)
        self.assertEqual((status, body), (200, {"status": "success", "adopting": False, "restarting": False}))
        status, _, _ = request(node.port, "GET", "/admin/ring")
        self.assertEqual(status, 405)
        self.assertTrue(node.alive())

    def test_nodes_sharing_a_ring_file_each_adopt_a_new_ring(self):
        # The first node to adopt writes the shared file; the second runs on the old ring all the same,
        # so it must adopt it too (the ring a node runs on counts, not the file).
        h = harness(self)
        ports = free_ports(3)
        ring = write_ring(h.path("shared.yaml"), [(f"n{i + 1}", p) for i, p in enumerate(ports[:2])], replicas=2)
        nodes = [h.node(f"n{i + 1}", h.path(f"n{i + 1}-data"), port=ports[i],
                        extra=["--ring", ring, "--anti-entropy-interval-ms", "0"]) for i in range(2)]
        bigger = write_ring(h.path("bigger.yaml"), [(f"n{i + 1}", p) for i, p in enumerate(ports)], replicas=2)
        with open(bigger) as f:
            text = f.read()
        for node in nodes:
            status, body = admin(node.port, "POST", "/admin/ring", text)
            self.assertEqual((status, body), (200, {"status": "success", "adopting": True, "restarting": False}))
        pids = [node.pid for node in nodes]
        for node in nodes:  # adopted in place: the same ring is now a no-op
            self.assertTrue(wait_until(lambda: node_health(node.port)["ring"] == fingerprint(bigger), 20))
            self.assertEqual(node_health(node.port)["ring"], fingerprint(bigger))  # the ring it runs on
            self.assertEqual(node_health(node.port)["state"], "serving")
            self.assertEqual(admin(node.port, "POST", "/admin/ring", text),
                             (200, {"status": "success", "adopting": False, "restarting": False}))
        self.assertEqual([node.pid for node in nodes], pids)


if __name__ == "__main__":
    unittest.main()
