"""ring-rebalance plan and apply against real kvnodes and kvproxies, under concurrent load.

Every scenario: static keys loaded first (never touched again) and live keys that client threads
write, delete and read through the proxies during the whole apply, each thread owning its keys so it
knows their exact state. Afterwards every key's state matches its last acknowledged operation, read
through the proxy, and each existing key is on exactly its new owner (found by scanning every node).
"""
import json
import os
import random
import signal
import struct
import subprocess
import threading
import time
import unittest

from kvtest import (KVNODE, KVPROXY, RING_REBALANCE, Client, Process, TempDir, free_ports, q, start_proxy, wait_until,
                    write_ring)

STATIC_KEYS = 6000
LIVE_KEYS_PER_THREAD = 150


def run_tool(*args, timeout=120):
    return subprocess.run([RING_REBALANCE, *args], capture_output=True, text=True, timeout=timeout)


def admin(port, method, target, body=None):
    c = Client(port, timeout=60)
    try:
        status, _, data = c.request(method, target, body)
        return status, json.loads(data) if data else None
    finally:
        c.close()


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


def owners_of(ring, keys):
    out = {}
    keys = list(keys)
    for i in range(0, len(keys), 2000):
        res = subprocess.run([RING_REBALANCE, "owner", "--ring", ring, *keys[i:i + 2000]], capture_output=True,
                             text=True, check=True, timeout=60).stdout
        for line in res.splitlines():
            k, node, *_ = line.split("\t")
            out[k] = node
    return out


class Load:
    """Client threads, one per proxy port, each owning its keys: put, delete and get at random.

    Each thread knows its keys' exact state, so every answer is checked: a get must return the last
    acknowledged value (or 404 after an acknowledged delete), a delete 200 or 404 accordingly.
    Anything else is recorded as a violation; errors (5xx, refused connections) separately.
    """

    def __init__(self, ports, prefix="live"):
        self.stop = threading.Event()
        self.violations = []
        self.errors = []
        self.ops = 0
        self.state = {}  # key -> value, or None when deleted; merged from the threads at the end
        self.threads = []
        for t, port in enumerate(ports):
            keys = [f"{prefix}-{t}-{i}-é" for i in range(LIVE_KEYS_PER_THREAD)]
            th = threading.Thread(target=self._run, args=(port, keys, t), daemon=True)
            self.threads.append(th)

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def _run(self, port, keys, seed):
        rng = random.Random(seed)
        state = {}
        c = Client(port, timeout=30)
        n = 0
        try:
            # Every key starts with a value, so reads of existing keys happen from the start.
            for k in keys:
                n += 1
                status, _, body = c.put(k, f"{k}#{n}")
                if status != 200:
                    self.errors.append(("put", k, status, body))
                    continue
                state[k] = f"{k}#{n}"
            while not self.stop.is_set():
                k = rng.choice(keys)
                r = rng.random()
                n += 1
                if r < 0.35:
                    value = f"{k}#{n}"
                    status, _, body = c.put(k, value)
                    if status == 200:
                        state[k] = value
                    else:
                        self.errors.append(("put", k, status, body))
                elif r < 0.5:
                    status, _, body = c.delete(k)
                    expected = 200 if state.get(k) is not None else 404
                    if status in (200, 404):
                        if status != expected:
                            self.violations.append(("del", k, status, state.get(k)))
                        state[k] = None
                    else:
                        self.errors.append(("del", k, status, body))
                else:
                    status, _, body = c.get(k)
                    want = state.get(k)
                    if status == 200:
                        got = json.loads(body)["value"]
                        if got != want:
                            self.violations.append(("get", k, got, want))
                    elif status == 404:
                        if want is not None:
                            self.violations.append(("get 404 for an existing key", k, want))
                    else:
                        self.errors.append(("get", k, status, body))
                self.ops += 1
        except Exception as e:  # noqa: BLE001 - a dead load thread must fail the test, not hang it
            self.errors.append(("exception", repr(e)))
        finally:
            c.close()
            self.state.update(state)

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(60)
        return self


class Setup:
    """Nodes n1..nN (RocksDB, run-time ports) and proxies on a ring of some of them."""

    def __init__(self, node_ids, proxies=1):
        self.tmp = TempDir()
        self.nodes = {}
        for nid in node_ids:
            self.nodes[nid] = Process([KVNODE, "--port", "0", "--id", nid, "--data-dir",
                                       os.path.join(self.tmp.path, nid)])
        self.proxies = []
        self.n_proxies = proxies

    def ring(self, name, members):
        """members: [(id, weight)]; returns the path of a ring file."""
        return write_ring(os.path.join(self.tmp.path, name),
                          [(nid, self.nodes[nid].port, w) for nid, w in members])

    def start_proxies(self, ring_text_from):
        for i in range(self.n_proxies):
            path = os.path.join(self.tmp.path, f"proxy{i}.yaml")
            with open(ring_text_from) as src, open(path, "w") as dst:
                # Each proxy's own settings, which a rebalance must keep in its ring file.
                dst.write(src.read() + f"proxy:\n  threads: 2\n  maxconn: {5000 + i}\n")
            self.proxies.append(start_proxy(path, ["--check-interval-ms", "200"]))
        return self.proxies

    def proxy_ring_path(self, i):
        return os.path.join(self.tmp.path, f"proxy{i}.yaml")

    def preload(self, n=STATIC_KEYS):
        """Static keys through the first proxy, 4 threads; returns {key: value}."""
        data = {f"static-{i}": f"value-{i}-{'x' * (i % 50)}" for i in range(n)}
        keys = list(data)
        errors = []

        def load(part):
            c = Client(self.proxies[0].port)
            for k in part:
                status, _, _ = c.put(k, data[k])
                if status != 200:
                    errors.append((k, status))
            c.close()

        threads = [threading.Thread(target=load, args=(keys[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        return data

    def admin_args(self):
        out = []
        for p in self.proxies:
            out += ["--proxy-admin", f"127.0.0.1:{p.admin_port}"]
        return out

    def close(self):
        for p in self.proxies:
            if p.alive():
                p.terminate()
        for p in self.nodes.values():
            if p.alive():
                p.terminate()
        self.tmp.cleanup()


class RebalanceTest(unittest.TestCase):
    maxDiff = None

    def tearDown(self):
        if getattr(self, "setup", None):
            self.setup.close()

    def apply(self, old, new, *extra):
        res = run_tool("apply", "--from", old, "--to", new, *self.setup.admin_args(), "--progress", "lines", "--json",
                       *extra)
        if res.returncode != 0:
            # A node or proxy that exited says why in its own output (a sanitizer report, say).
            gone = {name: p.output()[-4000:] for name, p in
                    [*self.setup.nodes.items(), *((f"proxy{i}", p) for i, p in enumerate(self.setup.proxies))]
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
        for i, proxy in enumerate(self.setup.proxies):
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
        owner = owners_of(new_ring, expected.keys())
        where = {}
        for nid, p in self.setup.nodes.items():
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
        plan = json.loads(run_tool("plan", "--from", old, "--to", new, "--json").stdout)
        self.assertAlmostEqual(summary["moved_share"], plan["moved"], places=9)
        before = owners_of(old, static.keys())
        after = owners_of(new, static.keys())
        moved = sum(1 for k in static if before[k] != after[k])
        # Keys that change owner, as a share of all keys, against the plan's share of the hash space.
        self.assertLess(abs(moved / len(static) - plan["moved"]), 0.02, (moved, plan["moved"]))
        # Every static key that changes owner was copied (the live keys add a few more).
        self.assertGreaterEqual(summary["keys_copied"], moved)
        self.assertLessEqual(summary["keys_copied"], moved + 2 * LIVE_KEYS_PER_THREAD * len(self.setup.proxies))
        return plan

    def check_proxies_on(self, ring_path):
        """Every proxy routes by the ring in `ring_path` and saved it as its ring file, keeping its own
        proxy: settings; the file from before is kept as .prev."""
        want = json.loads(run_tool("plan", "--from", ring_path, "--to", ring_path, "--json").stdout)["to"]["fingerprint"]
        for i, p in enumerate(self.setup.proxies):
            status, state = admin(p.admin_port, "GET", "/admin/migration")
            self.assertEqual((state["phase"], state["fingerprint"]), ("none", want))
            path = self.setup.proxy_ring_path(i)
            saved = json.loads(run_tool("plan", "--from", path, "--to", ring_path, "--json").stdout)
            self.assertEqual(saved["from"]["fingerprint"], want)
            with open(path) as f:
                self.assertIn(f"maxconn: {5000 + i}", f.read())
            self.assertTrue(os.path.exists(path + ".prev"))
            self.assertFalse(os.path.exists(path + ".migration"))

    def test_add_a_node_under_load_through_two_proxies(self):
        self.setup = Setup(["n1", "n2", "n3", "n4"], proxies=2)
        old = self.setup.ring("old.yaml", [("n1", 1), ("n2", 1), ("n3", 1)])
        new = self.setup.ring("new.yaml", [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)])
        self.setup.start_proxies(old)
        static = self.setup.preload()
        load = Load([p.port for p in self.setup.proxies]).start()
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
        again = run_tool("apply", "--from", old, "--to", new, *self.setup.admin_args())
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("the copy had finished in an earlier run", again.stderr)

    def apply_under_load(self, node_ids, old_members, new_members):
        """Nodes, a proxy on OLD, static keys, two client threads; apply OLD -> NEW under that load."""
        self.setup = Setup(node_ids)
        old = self.setup.ring("old.yaml", old_members)
        new = self.setup.ring("new.yaml", new_members)
        self.setup.start_proxies(old)
        static = self.setup.preload()
        load = Load([self.setup.proxies[0].port, self.setup.proxies[0].port]).start()
        wait_until(lambda: load.ops > 200, timeout=30)
        summary, _ = self.apply(old, new)
        load.finish()
        plan = self.moved_share_matches_plan(old, new, static, summary)
        return old, new, static, load, summary, plan

    def test_remove_a_node_under_load(self):
        old, new, static, load, summary, _ = self.apply_under_load(
            ["n1", "n2", "n3", "n4"], [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)], [("n1", 1), ("n2", 1), ("n3", 1)])
        self.assertEqual({f["from"] for f in summary["flows"]}, {"n4"})
        self.verify(new, static, load)
        self.assertEqual(scan_node(self.setup.nodes["n4"].port), {}, "the removed node still holds data")

    def test_reweigh_a_node_under_load(self):
        old, new, static, load, summary, plan = self.apply_under_load(
            ["n1", "n2", "n3"], [("n1", 1), ("n2", 1), ("n3", 1)], [("n1", 1), ("n2", 3), ("n3", 1)])
        self.assertEqual({f["to"] for f in plan["flows"]}, {"n2"})
        self.verify(new, static, load)

    def test_apply_killed_mid_copy_then_run_again_completes(self):
        self.setup = Setup(["n1", "n2", "n3", "n4"])
        old = self.setup.ring("old.yaml", [("n1", 1), ("n2", 1), ("n3", 1)])
        new = self.setup.ring("new.yaml", [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1)])
        self.setup.start_proxies(old)
        static = self.setup.preload()
        load = Load([self.setup.proxies[0].port, self.setup.proxies[0].port]).start()
        wait_until(lambda: load.ops > 200, timeout=30)
        # Throttled so that it is surely mid-copy when killed.
        tool = subprocess.Popen([RING_REBALANCE, "apply", "--from", old, "--to", new, *self.setup.admin_args(),
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
        status, state = admin(self.setup.proxies[0].admin_port, "GET", "/admin/migration")
        self.assertEqual(state["phase"], "dual_write")

        # The proxy restarted meanwhile comes back in the same phase, from the state it saved.
        first_load = load.finish()
        self.setup.proxies[0].terminate()
        self.setup.proxies[0] = start_proxy(self.setup.proxy_ring_path(0), ["--check-interval-ms", "200"])
        status, state = admin(self.setup.proxies[0].admin_port, "GET", "/admin/migration")
        self.assertEqual(state["phase"], "dual_write")
        load = Load([self.setup.proxies[0].port], prefix="live2").start()
        wait_until(lambda: load.ops > 100, timeout=30)

        summary, log = self.apply(old, new)
        load.finish()
        self.assertIn("resuming", log)
        self.verify(new, static, first_load, load)
        self.check_proxies_on(new)

    def test_apply_refuses_when_proxies_disagree(self):
        self.setup = Setup(["n1", "n2", "n3"])
        a = self.setup.ring("a.yaml", [("n1", 1), ("n2", 1)])
        b = self.setup.ring("b.yaml", [("n1", 1), ("n2", 1), ("n3", 1)])
        self.setup.n_proxies = 1
        self.setup.start_proxies(a)
        other = os.path.join(self.setup.tmp.path, "proxy-b.yaml")
        with open(b) as src, open(other, "w") as dst:
            dst.write(src.read())
        self.setup.proxies.append(start_proxy(other))
        res = run_tool("apply", "--from", a, "--to", b, *self.setup.admin_args())
        self.assertEqual(res.returncode, 1)
        self.assertIn("the proxies do not agree on a state this rebalance can start or resume from", res.stderr)
        self.assertIn(f"127.0.0.1:{self.setup.proxies[1].admin_port}: ring ", res.stderr)
        for p in self.setup.proxies:
            self.assertEqual(admin(p.admin_port, "GET", "/admin/migration")[1]["phase"], "none")

    def test_proxy_refuses_reloads_and_wrong_steps_during_a_rebalance(self):
        self.setup = Setup(["n1", "n2", "n3"])
        a = self.setup.ring("a.yaml", [("n1", 1), ("n2", 1)])
        b = self.setup.ring("b.yaml", [("n1", 1), ("n2", 1), ("n3", 1)])
        self.setup.start_proxies(a)
        port = self.setup.proxies[0].admin_port
        fp_a = admin(port, "GET", "/admin/migration")[1]["fingerprint"]
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
        self.assertFalse(os.path.exists(self.setup.proxy_ring_path(0) + ".migration"))
        # Clients cannot reach the nodes' rebalancing endpoints through the proxy.
        c = Client(self.setup.proxies[0].port)
        status, _, body = c.request("POST", "/admin/drop?what=all&key=x", "0000000000000000 ffffffffffffffff\n")
        c.close()
        self.assertEqual(status, 404)


    def test_phases_route_each_request_as_specified(self):
        """One key at a time through the phases: where reads go, where writes and deletes land."""
        self.setup = Setup(["n1", "n2", "n3"])
        a = self.setup.ring("a.yaml", [("n1", 1), ("n2", 1)])
        b = self.setup.ring("b.yaml", [("n1", 1), ("n2", 1), ("n3", 1)])
        self.setup.start_proxies(a)
        port = self.setup.proxies[0].admin_port
        keys = [f"k{i}" for i in range(200)]
        old, new = owners_of(a, keys), owners_of(b, keys)
        moving = next(k for k in keys if new[k] == "n3")
        staying = next(k for k in keys if new[k] == old[k])
        nodes = {nid: Client(p.port) for nid, p in self.setup.nodes.items()}
        c = Client(self.setup.proxies[0].port)
        fp_a = admin(port, "GET", "/admin/migration")[1]["fingerprint"]
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
        c_admin = Client(port)
        html = c_admin.request("GET", "/stats")[2].decode()
        metrics = c_admin.request("GET", "/metrics")[2].decode()
        c_admin.close()
        self.assertIn("rebalancing to ring " + fp_b + ", phase dual_write", html)
        self.assertIn("n3 (joining)", html)
        self.assertIn("kvproxy_rebalance_phase 1", metrics)
        self.assertIn('kvproxy_node_up{node="n3"} 1', metrics)

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
        h = bytes.fromhex(subprocess.run([RING_REBALANCE, "owner", "--ring", b, moving], capture_output=True,
                                         text=True, check=True).stdout.split("\t")[3].strip())
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
        # A write the first owner (the one not read from) refuses goes no further.
        status, headers, _ = c.request("POST", "/put?key=" + q(moving), "not json")
        self.assertEqual((status, headers["X-KV-Node"]), (400, old[moving]))

        # finish: NEW alone.
        status, body = admin(port, "POST", f"/admin/migration/finish?to={fp_b}")
        self.assertEqual((status, body["phase"], body["fingerprint"]), (200, "none", fp_b))
        self.assertEqual(c.put(moving, "v4")[0], 200)
        self.assertEqual(json.loads(nodes[old[moving]].get(moving)[2])["value"], "v3")  # no longer written
        c.close()
        for n in nodes.values():
            n.close()


    def test_proxy_refuses_to_start_on_a_saved_state_that_does_not_fit_its_ring(self):
        self.setup = Setup(["n1", "n2"])
        a = self.setup.ring("a.yaml", [("n1", 1)])
        b = self.setup.ring("b.yaml", [("n1", 1), ("n2", 1)])
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
            res = subprocess.run([KVPROXY, "--ring", a, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn(f"kvproxy: {a}.migration: {message}", res.stderr)


class NodeAdminTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.node = Process([KVNODE, "--port", "0", "--data-dir", self.tmp.path, "--max-value-bytes", "100"])
        self.c = Client(self.node.port)

    def tearDown(self):
        self.c.close()
        self.node.terminate()
        self.tmp.cleanup()

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

    def test_delete_with_tombstone_blocks_a_later_copy(self):
        status, _, _ = self.c.request("DELETE", "/del?key=gone", headers={"X-KV-Tombstone": "1"})
        self.assertEqual(status, 404)
        out = subprocess.run([RING_REBALANCE, "owner", "--ring", self._ring(), "gone"], capture_output=True,
                             text=True, check=True).stdout
        h = bytes.fromhex(out.split("\t")[3].strip())
        body = struct.pack(">I", 12) + h + b"gone" + struct.pack(">I", 3) + b"old"
        status, _, data = self.c.request("POST", "/admin/ingest", body, {"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data), {"status": "success", "written": 0, "skipped": 1})
        self.assertEqual(self.c.get("gone")[0], 404)

    def _ring(self):
        return write_ring(os.path.join(self.tmp.path, "r.yaml"), [("n1", self.node.port)])


class PlanTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        ports = free_ports(4)
        self.old = write_ring(os.path.join(self.tmp.path, "old.yaml"), [("n1", ports[0]), ("n2", ports[1]), ("n3", ports[2])])
        self.new = write_ring(os.path.join(self.tmp.path, "new.yaml"),
                              [("n1", ports[0]), ("n2", ports[1]), ("n3", ports[2]), ("n4", ports[3])])
        self.ports = ports

    def tearDown(self):
        self.tmp.cleanup()

    def test_plan_text_and_json(self):
        res = run_tool("plan", "--from", self.old, "--to", self.new)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("of the key space moves (ideal 25.000%", res.stdout)
        for src in ("n1", "n2", "n3"):
            self.assertRegex(res.stdout, rf"\n{src} +n4 +\d+\.\d+% +8\.333%")
        j = json.loads(run_tool("plan", "--from", self.old, "--to", self.new, "--json").stdout)
        self.assertEqual([n["id"] for n in j["nodes"]], ["n1", "n2", "n3", "n4"])
        self.assertAlmostEqual(j["ideal_moved"], 0.25)
        self.assertLess(abs(j["moved"] - 0.25), 0.01)
        self.assertAlmostEqual(sum(f["share"] for f in j["flows"]), j["moved"])
        self.assertEqual(j["nodes"][3]["weight_before"], 0)
        ranges = json.loads(run_tool("plan", "--from", self.old, "--to", self.new, "--json", "--ranges").stdout)["ranges"]
        self.assertEqual(len(ranges), j["range_count"])
        self.assertTrue(all(r["to"] == "n4" for r in ranges))
        same = run_tool("plan", "--from", self.old, "--to", self.old)
        self.assertIn("nothing moves", same.stdout)

    def test_inconsistent_or_invalid_files_are_refused_with_exit_2(self):
        moved = write_ring(os.path.join(self.tmp.path, "moved.yaml"), [("n1", self.ports[0]), ("n2", 1), ("n3", self.ports[2])])
        res = run_tool("plan", "--from", self.old, "--to", moved)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(),
                         f"ring-rebalance: {moved}: nodes[1].address: node n2 is at 127.0.0.1:{self.ports[1]} in "
                         f"{self.old}; a rebalance cannot move a node to another address (its data stays at the old one)")
        vn = write_ring(os.path.join(self.tmp.path, "vn.yaml"), [("n1", self.ports[0])], vnodes=64)
        res = run_tool("plan", "--from", self.old, "--to", vn)
        self.assertEqual(res.returncode, 2)
        self.assertIn("vnodes: 64 differs from", res.stderr)
        bad = os.path.join(self.tmp.path, "bad.yaml")
        with open(bad, "w") as f:
            f.write("nodes: []\n")
        res = run_tool("plan", "--from", self.old, "--to", bad)
        self.assertEqual(res.returncode, 2)
        self.assertTrue(res.stderr.startswith(f"ring-rebalance: {bad}: nodes:"), res.stderr)
        res = run_tool("apply", "--from", self.old, "--to", self.new, "--proxy-admin", "nonsense")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--proxy-admin: expected HOST:PORT, got 'nonsense'", res.stderr)
        res = run_tool("apply", "--from", self.old, "--to", self.new, "--proxy-admin", "127.0.0.1:1", "--timeout-ms", "500")
        self.assertEqual(res.returncode, 1)
        self.assertIn("run the same command again", res.stderr)


if __name__ == "__main__":
    unittest.main()
