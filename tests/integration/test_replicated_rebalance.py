"""Ring changes with replicas (../shared/REPLICATION.md, guarantee 8), kvproxy's part: while a change is
in progress, a key whose replica set changes is asked at the union of its old and new sets, and each
step needs a majority of each set (joint quorums). Driven through the proxy's admin steps, as
ring-rebalance takes them; the nodes are killed and started again to show which majorities a request
needs in each phase."""
import json
import subprocess
import unittest

from kvtest import (RING_REBALANCE, Client, Cluster, admin, harness, metric, metrics, migration, proxy_node_state,
                    request, wait_until)


def replica_sets(ring, keys):
    """{key: [node ids]}: each key's replica set in placement order, as ring-rebalance computes it."""
    res = subprocess.run([RING_REBALANCE, "owner", "--ring", ring, *keys], capture_output=True, text=True,
                         check=True, timeout=60)
    out = {}
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


if __name__ == "__main__":
    unittest.main()
