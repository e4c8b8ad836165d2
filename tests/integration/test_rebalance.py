"""ring-rebalance plan and apply against real kvnodes and kvproxies, under concurrent load.

Every scenario: static keys loaded first (never touched again) and live keys that client threads
write, delete and read through the proxies during the whole apply, each thread owning its keys so it
knows their exact state. Afterwards every key's state matches its last acknowledged operation, read
through the proxy, and each existing key is on exactly its new owner (found by scanning every node).
"""
import json
import os
import signal
import struct
import subprocess
import unittest

from kvtest import (RING_REBALANCE, Client, Cluster, Load, admin, fingerprint, free_ports, harness, key_hash, metrics,
                    migration, owners, plan, put_all, q, request, ring_rebalance, run_kvproxy, wait_until, write_ring)

STATIC_KEYS = 6000
LIVE_KEYS_PER_THREAD = 150


def scan_node(port):
    """Every user key a node stores, with its value: the node's /admin/scan over the whole ring."""
    c = Client(port)
    out = {}
    after = ""
    try:
        while True:
            target = "/admin/scan?limit=2000" + (f"&after={after}" if after else "")
            status, headers, body = c.request("POST", target, "0000000000000000 ffffffffffffffff\n",
                                              {"Content-Type": "text/plain"})
            assert status == 200, (status, body)
            pos = 0
            while pos < len(body):
                (klen,) = struct.unpack_from(">I", body, pos)
                key = body[pos + 4:pos + 4 + klen]
                pos += 4 + klen
                (vlen,) = struct.unpack_from(">I", body, pos)
                out[key[8:].decode()] = body[pos + 4:pos + 4 + vlen].decode()
                pos += 4 + vlen
            if headers["X-KV-Scan-Done"] == "1":
                return out
            after = headers["X-KV-Scan-Cursor"]
    finally:
        c.close()


def live_load(ports, prefix="live"):
    """Client threads through `ports`, each owning LIVE_KEYS_PER_THREAD keys (see kvtest.Load)."""
    return Load.owned(ports, prefix, LIVE_KEYS_PER_THREAD).start()


class RebalanceTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.h = harness(self)

    def start(self, node_ids, old_members, new_members, names=("old.yaml", "new.yaml"), proxies=1):
        """Nodes (RocksDB) and two ring files of some of them; `proxies` proxies on the first, each on
        its own copy with its own proxy: settings, which a rebalance must keep. Returns the rings."""
        self.cluster = Cluster(self.h, node_ids)
        old = self.cluster.write_ring(old_members, names[0])
        new = self.cluster.write_ring(new_members, names[1])
        for i in range(proxies):
            self.cluster.start_proxy(old, own_copy=f"proxy{i}.yaml", settings={"threads": 2, "maxconn": 5000 + i},
                                     checks={"interval": 200})
        return old, new

    def preload(self):
        """Static keys through the first proxy, 4 threads; returns {key: value}."""
        data = {f"static-{i}": f"value-{i}-{'x' * (i % 50)}" for i in range(STATIC_KEYS)}
        failed = put_all(self.cluster.port, data, threads=4)
        self.assertFalse(failed, failed[:5])
        return data

    def apply(self, old, new, *extra):
        res = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args(), "--progress", "lines",
                             "--json", *extra)
        if res.returncode != 0:
            # A node or proxy that exited says why in its own output (a sanitizer report, say).
            gone = {name: p.output()[-4000:] for name, p in
                    [*self.cluster.nodes.items(), *((f"proxy{i}", p) for i, p in enumerate(self.cluster.proxies))]
                    if not p.alive()}
            self.fail(f"apply exited {res.returncode}: {res.stderr}\nexited meanwhile: {gone}")
        return json.loads(res.stdout), res.stderr

    def verify(self, new_ring, static, *loads):
        """Every key's state through the proxy, and each existing key on exactly its new owner."""
        expected = dict(static)
        for load in loads:
            self.assertEqual(load.errors, [], "requests failed during the rebalance")
            self.assertEqual(load.violations, [], "answers contradicted acknowledged operations")
            self.assertGreater(load.ops, 100, "the load did not run")
            expected.update(load.state)
        for i, proxy in enumerate(self.cluster.proxies):
            c = Client(proxy.port)
            wrong = []
            for k, v in expected.items():
                status, headers, body = c.get(k)
                if v is None:
                    if status != 404:
                        wrong.append((k, status))
                elif status != 200 or json.loads(body)["value"] != v:
                    wrong.append((k, status, body[:80]))
            c.close()
            self.assertEqual(wrong[:10], [], f"proxy {i}: keys read back wrong")
        owner = owners(new_ring, expected.keys())
        where = {}
        for nid, p in self.cluster.nodes.items():
            for k, v in scan_node(p.port).items():
                where.setdefault(k, []).append((nid, v))
        misplaced = []
        for k, v in expected.items():
            if v is None:
                if k in where:
                    misplaced.append((k, "deleted, but on", where[k]))
            elif where.get(k) != [(owner[k], v)]:
                misplaced.append((k, "owner", owner[k], "found", where.get(k)))
        stray = [k for k in where if k not in expected]
        self.assertEqual(misplaced[:10], [], "keys not on exactly their new owner")
        self.assertEqual(stray[:10], [])

    def moved_share_matches_plan(self, old, new, static, summary):
        the_plan = plan(old, new)
        self.assertAlmostEqual(summary["moved_share"], the_plan["moved"], places=9)
        before = owners(old, static.keys())
        after = owners(new, static.keys())
        moved = sum(1 for k in static if before[k] != after[k])
        # Keys that change owner, as a share of all keys, against the plan's share of the hash space.
        self.assertLess(abs(moved / len(static) - the_plan["moved"]), 0.02, (moved, the_plan["moved"]))
        # Every static key that changes owner was copied (the live keys add a few more).
        self.assertGreaterEqual(summary["keys_copied"], moved)
        self.assertLessEqual(summary["keys_copied"], moved + 2 * LIVE_KEYS_PER_THREAD * len(self.cluster.proxies))
        return the_plan

    def check_proxies_on(self, ring_path):
        """Every proxy routes by the ring in `ring_path` and saved it as its ring file, keeping its own
        proxy: settings; the file from before is kept as .prev."""
        want = fingerprint(ring_path)
        for i, p in enumerate(self.cluster.proxies):
            state = migration(p.admin_port)
            self.assertEqual((state["phase"], state["fingerprint"]), ("none", want))
            path = self.cluster.proxy_ring_path(i)
            saved = plan(path, ring_path)
            self.assertEqual(saved["from"]["fingerprint"], want)
            with open(path) as f:
                self.assertIn(f"maxconn: {5000 + i}", f.read())
            self.assertTrue(os.path.exists(path + ".prev"))
            self.assertFalse(os.path.exists(path + ".migration"))

    def test_add_a_node_under_load_through_two_proxies(self):
        old, new = self.start(["n1", "n2", "n3", "n4"], [("n1", 1), ("n2", 1), ("n3", 1)],
                              [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)], proxies=2)
        static = self.preload()
        load = live_load([p.port for p in self.cluster.proxies])
        wait_until(lambda: load.ops > 200, timeout=30)
        summary, log = self.apply(old, new)
        load.finish()
        self.assertIn("step: dual_write", log)
        self.assertIn("step: read_new", log)
        self.assertIn("copy: 100%", log)
        self.moved_share_matches_plan(old, new, static, summary)
        self.assertEqual({f["to"] for f in summary["flows"]}, {"n4"})
        self.verify(new, static, load)
        self.check_proxies_on(new)
        # Running it again finds everything done and changes nothing.
        again = ring_rebalance("apply", "--from", old, "--to", new, *self.cluster.admin_args())
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("the copy had finished in an earlier run", again.stderr)

    def apply_under_load(self, node_ids, old_members, new_members):
        """Nodes, a proxy on OLD, static keys, two client threads; apply OLD -> NEW under that load."""
        old, new = self.start(node_ids, old_members, new_members)
        static = self.preload()
        load = live_load([self.cluster.port, self.cluster.port])
        wait_until(lambda: load.ops > 200, timeout=30)
        summary, _ = self.apply(old, new)
        load.finish()
        the_plan = self.moved_share_matches_plan(old, new, static, summary)
        return old, new, static, load, summary, the_plan

    def test_remove_a_node_under_load(self):
        old, new, static, load, summary, _ = self.apply_under_load(
            ["n1", "n2", "n3", "n4"], [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)], [("n1", 1), ("n2", 1), ("n3", 1)])
        self.assertEqual({f["from"] for f in summary["flows"]}, {"n4"})
        self.verify(new, static, load)
        self.assertEqual(scan_node(self.cluster.nodes["n4"].port), {}, "the removed node still holds data")

    def test_reweigh_a_node_under_load(self):
        old, new, static, load, summary, the_plan = self.apply_under_load(
            ["n1", "n2", "n3"], [("n1", 1), ("n2", 1), ("n3", 1)], [("n1", 1), ("n2", 3), ("n3", 1)])
        self.assertEqual({f["to"] for f in the_plan["flows"]}, {"n2"})
        self.verify(new, static, load)

    def test_apply_killed_mid_copy_then_run_again_completes(self):
        old, new = self.start(["n1", "n2", "n3", "n4"], [("n1", 1), ("n2", 1), ("n3", 1)],
                              [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)])
        static = self.preload()
        load = live_load([self.cluster.port, self.cluster.port])
        wait_until(lambda: load.ops > 200, timeout=30)
        # Throttled so that it is surely mid-copy when killed.
        tool = self.h.popen([RING_REBALANCE, "apply", "--from", old, "--to", new, *self.cluster.admin_args(),
                             "--progress", "lines", "--batch-keys", "50", "--max-rate", "300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = []
        for line in tool.stderr:
            seen.append(line)
            if "copy:" in line and "100%" not in line:
                break
        tool.send_signal(signal.SIGKILL)
        tool.wait(10)
        tool.stderr.close()
        self.assertTrue(any("copy:" in s for s in seen), "".join(seen))
        self.assertEqual(migration(self.cluster.admin)["phase"], "dual_write")

        # The proxy restarted meanwhile comes back in the same phase, from the state it saved.
        first_load = load.finish()
        self.cluster.restart_proxy(0)
        self.assertEqual(migration(self.cluster.admin)["phase"], "dual_write")
        load = live_load([self.cluster.port], prefix="live2")
        wait_until(lambda: load.ops > 100, timeout=30)

        summary, log = self.apply(old, new)
        load.finish()
        self.assertIn("resuming", log)
        self.verify(new, static, first_load, load)
        self.check_proxies_on(new)

    def test_apply_refuses_when_proxies_disagree(self):
        a, b = self.start(["n1", "n2", "n3"], [("n1", 1), ("n2", 1)], [("n1", 1), ("n2", 1), ("n3", 1)],
                          names=("a.yaml", "b.yaml"))
        self.cluster.start_proxy(b, own_copy="proxy-b.yaml")
        res = ring_rebalance("apply", "--from", a, "--to", b, *self.cluster.admin_args())
        self.assertEqual(res.returncode, 1)
        self.assertIn("the proxies do not agree on a state this rebalance can start or resume from", res.stderr)
        self.assertIn(f"127.0.0.1:{self.cluster.proxies[1].admin_port}: ring ", res.stderr)
        for p in self.cluster.proxies:
            self.assertEqual(migration(p.admin_port)["phase"], "none")

    def test_apply_stops_naming_a_proxy_it_cannot_reach_and_a_rerun_finishes(self):
        a, b = self.start(["n1", "n2", "n3"], [("n1", 1), ("n2", 1)], [("n1", 1), ("n2", 1), ("n3", 1)],
                          names=("a.yaml", "b.yaml"), proxies=2)
        gone = self.cluster.proxies[1]
        gone.kill()
        res = ring_rebalance("apply", "--from", a, "--to", b, *self.cluster.admin_args(), "--timeout-ms", "1000")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn(f"127.0.0.1:{gone.admin_port}", res.stderr)
        self.assertIn("run the same command again to go on", res.stderr)
        self.assertEqual(migration(self.cluster.proxies[0].admin_port)["phase"], "none")  # nothing begun
        self.cluster.restart_proxy(1)
        self.apply(a, b)
        self.check_proxies_on(b)

    def test_apply_resumes_when_one_proxy_finished_and_another_did_not(self):
        # Found by the long linearizability run: apply killed between the proxies' finish steps, then
        # run again, takes read-new on a proxy that is already on NEW; that is a step it is past.
        a, b = self.start(["n1", "n2", "n3"], [("n1", 1), ("n2", 1)], [("n1", 1), ("n2", 1), ("n3", 1)],
                          names=("a.yaml", "b.yaml"), proxies=2)
        fp_a = migration(self.cluster.admin)["fingerprint"]
        with open(b) as f:
            yaml = f.read()
        for p in self.cluster.proxies:
            self.assertEqual(admin(p.admin_port, "POST", f"/admin/migration/begin?from={fp_a}", yaml)[0], 200)
        fp_b = migration(self.cluster.admin)["to"]
        for p in self.cluster.proxies:
            self.assertEqual(admin(p.admin_port, "POST", f"/admin/migration/read-new?to={fp_b}")[0], 200)
        self.assertEqual(admin(self.cluster.proxies[1].admin_port, "POST", f"/admin/migration/finish?to={fp_b}")[0], 200)
        _, log = self.apply(a, b)
        self.assertIn("resuming: 0 proxies on OLD, 0 in dual_write, 1 in read_new, 1 on NEW", log)
        self.check_proxies_on(b)

    def test_proxy_refuses_reloads_and_wrong_steps_during_a_rebalance(self):
        a, b = self.start(["n1", "n2", "n3"], [("n1", 1), ("n2", 1)], [("n1", 1), ("n2", 1), ("n3", 1)],
                          names=("a.yaml", "b.yaml"))
        port = self.cluster.admin
        fp_a = migration(port)["fingerprint"]
        with open(b) as f:
            b_text = f.read()
        status, body = admin(port, "POST", "/admin/migration/begin?from=0123456789abcdef", b_text)
        self.assertEqual(status, 409)
        self.assertEqual(body["detail"], f"this proxy's ring is {fp_a}, not 0123456789abcdef")
        status, body = admin(port, "POST", f"/admin/migration/begin?from={fp_a}", "nodes: [")
        self.assertEqual(status, 400)
        status, body = admin(port, "POST", f"/admin/migration/begin?from={fp_a}", b_text)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["phase"], "dual_write")
        fp_b = body["to"]
        status, body = admin(port, "POST", f"/admin/migration/finish?to={fp_b}")
        self.assertEqual(status, 409)
        self.assertIn("read-new comes before finish", body["detail"])
        status, body = admin(port, "POST", "/admin/ring", b_text)
        self.assertEqual(status, 400)
        self.assertIn("a rebalance to ring " + fp_b + " is in progress (phase dual_write)", body["detail"])
        status, body = admin(port, "POST", "/admin/migration/abort")
        self.assertEqual(status, 200)
        self.assertEqual(body["phase"], "none")
        self.assertFalse(os.path.exists(self.cluster.proxy_ring_path(0) + ".migration"))
        # Clients cannot reach the nodes' rebalancing endpoints through the proxy.
        status, _, body = request(self.cluster.port, "POST", "/admin/drop?what=all&key=x",
                                  "0000000000000000 ffffffffffffffff\n")
        self.assertEqual(status, 404)


    def test_phases_route_each_request_as_specified(self):
        """One key at a time through the phases: where reads go, where writes and deletes land."""
        a, b = self.start(["n1", "n2", "n3"], [("n1", 1), ("n2", 1)], [("n1", 1), ("n2", 1), ("n3", 1)],
                          names=("a.yaml", "b.yaml"))
        port = self.cluster.admin
        keys = [f"k{i}" for i in range(200)]
        old, new = owners(a, keys), owners(b, keys)
        moving = next(k for k in keys if new[k] == "n3")
        staying = next(k for k in keys if new[k] == old[k])
        nodes = {nid: Client(p.port) for nid, p in self.cluster.nodes.items()}
        c = Client(self.cluster.port)
        fp_a = migration(port)["fingerprint"]
        with open(b) as f:
            status, body = admin(port, "POST", f"/admin/migration/begin?from={fp_a}", f.read())
        self.assertEqual(status, 200, body)
        fp_b = body["to"]

        # The stats page, stats.json and metrics show the rebalance and the joining node.
        stats = admin(port, "GET", "/stats.json")[1]
        self.assertEqual(stats["rebalance"], {"phase": "dual_write", "to": fp_b})
        n3 = next(n for n in stats["nodes"] if n["id"] == "n3")
        self.assertTrue(n3["joining"])
        self.assertAlmostEqual(n3["next_ownership"], 1 / 3, delta=0.02)
        html = request(port, "GET", "/stats")[2].decode()
        text = metrics(port)
        self.assertIn("rebalancing to ring " + fp_b + ", phase dual_write", html)
        self.assertIn("n3 (joining)", html)
        self.assertIn("kvproxy_rebalance_phase 1", text)
        self.assertIn('kvproxy_node_up{node="n3"} 1', text)

        # dual_write: writes reach both owners, reads come from the old one.
        self.assertEqual(c.put(moving, "v1")[0], 200)
        self.assertEqual(nodes[old[moving]].get(moving)[0], 200)
        self.assertEqual(nodes["n3"].get(moving)[0], 200)
        status, headers, _ = c.get(moving)
        self.assertEqual((status, headers["X-KV-Node"]), (200, old[moving]))
        self.assertEqual(c.put(staying, "s")[0], 200)
        self.assertEqual(nodes["n3"].get(staying)[0], 404)  # keys that do not move are not doubled
        # A delete leaves a tombstone on the new owner: a late copy of the old value is skipped.
        self.assertEqual(c.delete(moving)[0], 200)
        self.assertEqual(nodes[old[moving]].get(moving)[0], 404)
        h = key_hash(b, moving)
        record = struct.pack(">I", 8 + len(moving)) + h + moving.encode() + struct.pack(">I", 2) + b"v1"
        status, _, data = nodes["n3"].request("POST", "/admin/ingest", record, {"Content-Type": "application/octet-stream"})
        self.assertEqual(json.loads(data)["skipped"], 1)
        self.assertEqual(c.put(moving, "v2")[0], 200)

        # read_new: reads come from the new owner; writes still reach both.
        status, body = admin(port, "POST", f"/admin/migration/read-new?to={fp_b}")
        self.assertEqual((status, body["phase"]), (200, "read_new"))
        status, headers, data = c.get(moving)
        self.assertEqual((status, headers["X-KV-Node"], json.loads(data)["value"]), (200, "n3", "v2"))
        self.assertEqual(c.put(moving, "v3")[0], 200)
        self.assertEqual(json.loads(nodes[old[moving]].get(moving)[2])["value"], "v3")
        # A value only the old owner holds (written to it straight, as by a proxy still on OLD): reads
        # of both owners answer the newer, and first write it back to the new owner.
        self.assertEqual(nodes[old[moving]].put(moving, "v-old-only")[0], 200)
        status, headers, data = c.get(moving)
        self.assertEqual((status, headers["X-KV-Node"], json.loads(data)["value"]), (200, old[moving], "v-old-only"))
        self.assertEqual(json.loads(nodes["n3"].get(moving)[2])["value"], "v-old-only")
        self.assertNotIn("X-KV-Version", headers)  # node-to-node fields never reach a client
        # A write the first owner (the one not read from) refuses goes no further.
        status, headers, _ = c.request("POST", "/put?key=" + q(moving), "not json")
        self.assertEqual((status, headers["X-KV-Node"]), (400, old[moving]))

        # finish: NEW alone.
        status, body = admin(port, "POST", f"/admin/migration/finish?to={fp_b}")
        self.assertEqual((status, body["phase"], body["fingerprint"]), (200, "none", fp_b))
        self.assertEqual(c.put(moving, "v4")[0], 200)
        self.assertEqual(json.loads(nodes[old[moving]].get(moving)[2])["value"], "v-old-only")  # no longer written
        c.close()
        for n in nodes.values():
            n.close()


    def test_proxy_refuses_to_start_on_a_saved_state_that_does_not_fit_its_ring(self):
        cluster = Cluster(self.h, ["n1", "n2"])
        a = cluster.write_ring([("n1", 1)], "a.yaml")
        b = cluster.write_ring([("n1", 1), ("n2", 1)], "b.yaml")
        with open(b) as f:
            b_text = f.read()
        cases = [
            ("garbage\n", "line 1: expected \"# kvring rebalance in progress: phase=... from=... to=...\""),
            ("# kvring rebalance in progress: phase=sideways from=0123456789abcdef to=0123456789abcdef\n",
             "line 1: phase: expected dual_write or read_new, got 'sideways'"),
            ("# kvring rebalance in progress: phase=dual_write from=0123456789abcdef to=0123456789abcdef\n" + b_text,
             "from: the rebalance began from ring 0123456789abcdef, but "),
        ]
        for text, message in cases:
            with open(a + ".migration", "w") as f:
                f.write(text)
            res = run_kvproxy("--ring", a, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn(f"kvproxy: {a}.migration: {message}", res.stderr)


class NodeAdminTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)
        self.node = self.h.node(extra=["--max-value-bytes", "100"])
        self.c = Client(self.node.port)

    def tearDown(self):
        self.c.close()

    def test_bad_requests_get_exact_400s(self):
        cases = [
            ("POST", "/admin/scan", "0 1\n", 'ranges: line 1: expected "LO HI" as two 16-digit hex numbers'),
            ("POST", "/admin/drop?what=everything", "", "what: expected data, tombstones or all"),
            ("POST", "/admin/scan?limit=0", "", "limit: expected 1..100000"),
            ("POST", "/admin/scan?after=xyz", "", "after: expected a stored key in hex (at least 16 digits)"),
            ("POST", "/admin/ingest", "\x00\x00\x00\x09abc", "records: entry 1: truncated key"),
        ]
        for method, target, body, detail in cases:
            status, _, data = self.c.request(method, target, body, {"Content-Type": "text/plain"})
            self.assertEqual(status, 400, target)
            self.assertEqual(json.loads(data)["detail"], detail)
        status, headers, _ = self.c.request("GET", "/admin/scan")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "POST")
        self.assertEqual(self.c.request("POST", "/admin/nothing", "")[0], 404)

    def test_ingest_refuses_a_key_under_the_wrong_hash(self):
        body = struct.pack(">I", 9) + b"\x00" * 8 + b"k" + struct.pack(">I", 1) + b"v"
        status, _, data = self.c.request("POST", "/admin/ingest", body, {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(data)["detail"], "records: entry 1: hash prefix does not match the key")

    def test_admin_bodies_may_exceed_the_client_limit_but_client_bodies_may_not(self):
        # --max-value-bytes 100 makes the client body limit about 4.7 KB; a 64 KB range list is fine.
        ranges = "".join(f"{i * 2:016x} {i * 2:016x}\n" for i in range(2000))
        status, _, data = self.c.request("POST", "/admin/count", ranges, {"Content-Type": "text/plain"})
        self.assertEqual(status, 200, data)
        status, _, _ = self.c.request("POST", "/put?key=a", "x" * 70000)
        self.assertEqual(status, 413)

    def test_a_delete_leaves_a_tombstone_that_blocks_an_older_copy(self):
        ring = write_ring(self.h.path("r.yaml"), [("n1", self.node.port)])
        h = key_hash(ring, "gone")
        self.assertEqual(self.c.put("gone", "v")[0], 200)
        self.assertEqual(self.c.delete("gone")[0], 200)
        # A plain record (no version) is stored only where the node holds nothing, tombstones included.
        body = struct.pack(">I", 12) + h + b"gone" + struct.pack(">I", 3) + b"old"
        status, _, data = self.c.request("POST", "/admin/ingest", body, {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data), {"status": "success", "written": 0, "skipped": 1, "conflicts": 0})
        self.assertEqual(self.c.get("gone")[0], 404)
        # A versioned record: older than the tombstone, skipped; newer, stored.
        status, headers, _ = self.c.request("GET", "/get?key=gone", headers={"X-KV-Versioned": "1"})
        self.assertEqual((status, headers["X-KV-Tombstone"]), (404, "1"))
        counter, writer = headers["X-KV-Version"].split(".")
        for c, want in ((int(counter) - 1, 0), (int(counter) + 1, 1)):
            rec = (struct.pack(">I", 12) + h + b"gone" + b"v" + struct.pack(">QQ", c, int(writer, 16)) +
                   struct.pack(">I", 3) + b"new")
            status, _, data = self.c.request("POST", "/admin/ingest?versions=1", rec,
                                             {"Content-Type": "application/octet-stream"})
            self.assertEqual((status, json.loads(data)["written"]), (200, want), data)
        self.assertEqual(json.loads(self.c.get("gone")[2])["value"], "new")


class PlanTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)
        ports = free_ports(4)
        self.old = write_ring(self.h.path("old.yaml"), [("n1", ports[0]), ("n2", ports[1]), ("n3", ports[2])])
        self.new = write_ring(self.h.path("new.yaml"),
                              [("n1", ports[0]), ("n2", ports[1]), ("n3", ports[2]), ("n4", ports[3])])
        self.ports = ports

    def test_plan_text_and_json(self):
        res = ring_rebalance("plan", "--from", self.old, "--to", self.new)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("of the key space moves (ideal 25.000%", res.stdout)
        for src in ("n1", "n2", "n3"):
            self.assertRegex(res.stdout, rf"\n{src} +n4 +\d+\.\d+% +8\.333%")
        j = plan(self.old, self.new)
        self.assertEqual([n["id"] for n in j["nodes"]], ["n1", "n2", "n3", "n4"])
        self.assertAlmostEqual(j["ideal_moved"], 0.25)
        self.assertLess(abs(j["moved"] - 0.25), 0.01)
        self.assertAlmostEqual(sum(f["share"] for f in j["flows"]), j["moved"])
        self.assertEqual(j["nodes"][3]["weight_before"], 0)
        ranges = plan(self.old, self.new, "--ranges")["ranges"]
        self.assertEqual(len(ranges), j["range_count"])
        self.assertTrue(all(r["to"] == "n4" for r in ranges))
        same = ring_rebalance("plan", "--from", self.old, "--to", self.old)
        self.assertIn("nothing moves", same.stdout)

    def test_inconsistent_or_invalid_files_are_refused_with_exit_2(self):
        moved = write_ring(self.h.path("moved.yaml"), [("n1", self.ports[0]), ("n2", 1), ("n3", self.ports[2])])
        res = ring_rebalance("plan", "--from", self.old, "--to", moved)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(),
                         f"ring-rebalance: {moved}: nodes[1].address: node n2 is at 127.0.0.1:{self.ports[1]} in "
                         f"{self.old}; a rebalance cannot move a node to another address (its data stays at the old one)")
        vn = write_ring(self.h.path("vn.yaml"), [("n1", self.ports[0])], vnodes=64)
        res = ring_rebalance("plan", "--from", self.old, "--to", vn)
        self.assertEqual(res.returncode, 2)
        self.assertIn("vnodes: 64 differs from", res.stderr)
        bad = self.h.write("bad.yaml", "nodes: []\n")
        res = ring_rebalance("plan", "--from", self.old, "--to", bad)
        self.assertEqual(res.returncode, 2)
        self.assertTrue(res.stderr.startswith(f"ring-rebalance: {bad}: nodes:"), res.stderr)
        res = ring_rebalance("apply", "--from", self.old, "--to", self.new, "--proxy-admin", "nonsense")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--proxy-admin: expected HOST:PORT, got 'nonsense'", res.stderr)
        res = ring_rebalance("apply", "--from", self.old, "--to", self.new, "--proxy-admin", "127.0.0.1:1", "--timeout-ms", "500")
        self.assertEqual(res.returncode, 1)
        self.assertIn("run the same command again", res.stderr)


if __name__ == "__main__":
    unittest.main()
