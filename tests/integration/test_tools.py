"""ring-rebalance's read-only commands and scripts/demo.sh, run as a user would."""
import os
import signal
import socket
import subprocess
import unittest

from kvtest import SOURCE, free_ports, harness, plan, ring_rebalance, run_kvproxy, wait_until

SHIPPED_RING = os.path.join(SOURCE, "configs", "ring.yaml")


def run(*args):
    return ring_rebalance(*args, timeout=60)


class RingRebalanceTest(unittest.TestCase):
    def test_show_lists_every_node_with_its_share(self):
        r = run("show", "--ring", SHIPPED_RING)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split() for line in r.stdout.splitlines()[1:4]]
        self.assertEqual([row[0] for row in rows], ["n1", "n2", "n3"])
        shares = [float(row[4].rstrip("%")) for row in rows]
        self.assertAlmostEqual(sum(shares), 100.0, places=2)
        for s in shares:
            self.assertLess(abs(s - 100 / 3), 100 / 3 * 0.02)  # within 2% of ideal
        self.assertIn("3 nodes, 98304 ring points (vnodes 32768)", r.stdout)

    def test_owner_is_the_same_whatever_the_list_order(self):
        reordered = harness(self).write("ring.yaml", "nodes:\n"
                                                     "  - {id: n3, address: 127.0.0.1:8083}\n"
                                                     "  - {id: n1, address: 127.0.0.1:8081}\n"
                                                     "  - {id: n2, address: 127.0.0.1:8082}\n")
        keys = [f"key{i}" for i in range(300)] + ["a b", "ключ", "x/y"]
        a = run("owner", "--ring", SHIPPED_RING, *keys)
        b = run("owner", "--ring", reordered, *keys)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)
        owners = [line.split("\t")[1] for line in a.stdout.splitlines()]
        self.assertEqual(len(owners), len(keys))
        self.assertEqual(set(owners), {"n1", "n2", "n3"})  # 300 keys reach every node

    def test_bad_config_exits_2_with_the_exact_message(self):
        h = harness(self)
        bad = h.write("bad.yaml", "nodes:\n  - {id: n1, address: 127.0.0.1:8081}\n  - {id: n1, address: 127.0.0.1:8082}\n")
        r = run("show", "--ring", bad)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(), f"ring-rebalance: {bad}: nodes[1].id: duplicate id 'n1' (also nodes[0])")
        r = run("show", "--ring", h.path("absent.yaml"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("absent.yaml: (file): cannot open for reading", r.stderr)

    def test_usage(self):
        self.assertEqual(run("--help").returncode, 0)
        r = run("--version")
        self.assertRegex(r.stdout.strip(), r"^ring-rebalance \d+\.\d+\.\d+$")
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.splitlines()[0], "ring-rebalance: A subcommand is required")
        self.assertEqual(run("owner", "--ring", SHIPPED_RING).returncode, 2)  # no keys


REPLICATED = ("replicas: 3\nvnodes: 4096\nnodes:\n"
              "  - {id: n1, address: 127.0.0.1:8081, zone: a}\n"
              "  - {id: n2, address: 127.0.0.1:8082, zone: a}\n"
              "  - {id: n3, address: 127.0.0.1:8083, zone: b}\n"
              "  - {id: n4, address: 127.0.0.1:8084, zone: c}\n")


class ReplicatedRingTest(unittest.TestCase):
    """replicas: and zone: in ring.yaml, as the tools show them and plan their changes."""

    def test_owner_prints_the_replica_set(self):
        ring = harness(self).write("ring.yaml", REPLICATED)
        keys = [f"key{i}" for i in range(200)]
        r = run("owner", "--ring", ring, *keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        zones = {"n1": "a", "n2": "a", "n3": "b", "n4": "c"}
        for line in r.stdout.splitlines():
            key, first, _, _, replicas = line.split("\t")
            ids = replicas.split(",")
            self.assertEqual(ids[0], first, line)
            self.assertEqual(len(set(ids)), 3, line)
            self.assertEqual({zones[i] for i in ids}, {"a", "b", "c"}, line)  # three zones, one copy each
        # replicas: 1 keeps the four columns of before.
        one = harness(self).write("one.yaml", REPLICATED.replace("replicas: 3", "replicas: 1"))
        self.assertEqual(len(run("owner", "--ring", one, "k").stdout.strip().split("\t")), 4)

    def test_show_and_plan_give_each_nodes_share_of_copies(self):
        h = harness(self)
        ring = h.write("ring.yaml", REPLICATED)
        r = run("show", "--ring", ring)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("4 nodes in 3 zones, replicas 3", r.stdout)
        rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:5]}
        holds = {n: float(row[6].rstrip("%")) for n, row in rows.items()}
        self.assertAlmostEqual(sum(holds.values()), 300.0, places=1)
        # Zones a (two nodes), b and c: every key has a copy in b and in c, and one in a.
        self.assertAlmostEqual(holds["n3"], 100.0, places=2)
        self.assertAlmostEqual(holds["n4"], 100.0, places=2)
        self.assertLess(abs(holds["n1"] - 50.0), 2.0)
        one = h.write("one.yaml", REPLICATED.replace("replicas: 3", "replicas: 1"))
        p = plan(one, ring)
        self.assertEqual((p["replicas_before"], p["replicas_after"]), (1, 3))
        self.assertAlmostEqual(sum(n["held_after"] for n in p["nodes"]), 3.0, places=6)
        self.assertAlmostEqual(sum(n["held_before"] for n in p["nodes"]), 1.0, places=6)
        text = run("plan", "--from", one, "--to", ring).stdout
        self.assertIn("with replication (replicas 1 -> 3)", text)
        # 1 -> 3: every key gains two copies, each copied from its one owner (1.00x the gains).
        self.assertAlmostEqual(p["replica_changed"], 1.0, places=6)
        self.assertAlmostEqual(sum(n["gains"] for n in p["nodes"]), 2.0, places=6)
        self.assertAlmostEqual(p["replica_copied"], 2.0, places=6)
        self.assertIn("apply copies 200.000% (1.00x the gains)", text)

    def test_plan_of_a_node_added_at_replicas_3(self):
        h = harness(self)
        three = REPLICATED.replace("vnodes: 4096\n", "").replace("zone: a", "zone: z").replace("zone: b", "zone: z")
        three = three.replace("zone: c", "zone: z")
        old = h.write("old.yaml", three.split("  - {id: n4")[0])
        new = h.write("new.yaml", three)
        p = plan(old, new)
        nodes = {n["id"]: n for n in p["nodes"]}
        # n4 gains a copy of the share of the key space whose sets it joins; each old node loses about a
        # third of that, against the ideal of 75% and 25%.
        self.assertAlmostEqual(nodes["n4"]["gains"], p["replica_changed"], places=9)
        self.assertLess(abs(nodes["n4"]["gains"] - 0.75), 0.02)
        self.assertAlmostEqual(nodes["n4"]["ideal_gains"], 0.75, places=6)
        self.assertAlmostEqual(sum(nodes[n]["losses"] for n in ("n1", "n2", "n3")), nodes["n4"]["gains"], places=9)
        for n in ("n1", "n2", "n3"):
            self.assertEqual(nodes[n]["gains"], 0)
            self.assertAlmostEqual(nodes[n]["ideal_losses"], 0.25, places=6)
        # Each gained range comes from two of its three old replicas (a majority).
        self.assertEqual({c["to"] for c in p["replica_copies"]}, {"n4"})
        self.assertAlmostEqual(p["replica_copied"], 2 * nodes["n4"]["gains"], places=9)

    def test_errors_and_a_replicated_apply_that_cannot_reach_its_proxy(self):
        h = harness(self)
        two = h.write("two.yaml", "replicas: 3\nnodes:\n  - {id: n1, address: 127.0.0.1:8081}\n"
                                  "  - {id: n2, address: 127.0.0.1:8082}\n")
        r = run("show", "--ring", two)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(),
                         f"ring-rebalance: {two}: replicas: 3 replicas need at least 3 nodes; the ring has 2 (line 1)")
        ring = h.write("ring.yaml", REPLICATED)
        one = h.write("one.yaml", REPLICATED.replace("replicas: 3", "replicas: 1"))
        # A change of replicas is planned like any other (test_replicated_rebalance applies them); here
        # it stops at the proxy it cannot reach, exit 1, before anything begins.
        r = ring_rebalance("apply", "--from", one, "--to", ring, "--proxy-admin", "127.0.0.1:1", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("127.0.0.1:1", r.stderr)
        self.assertIn("run the same command again to go on", r.stderr)
        self.assertEqual(run_kvproxy("--ring", ring, "--check").returncode, 0)  # kvproxy serves it


class ReplicatedConfigErrorsTest(unittest.TestCase):
    """A bad replicas: or zone: is refused the same way by kvproxy --check, kvproxy and ring-rebalance:
    exit code 2 and one line saying what and where."""

    NODES = ("nodes:\n  - {id: n1, address: 127.0.0.1:1}\n  - {id: n2, address: 127.0.0.1:2}\n"
             "  - {id: n3, address: 127.0.0.1:3%s}\n")
    CASES = [
        ("replicas: 0\n", "", "replicas: must be between 1 and 5, got 0"),
        ("replicas: 6\n", "", "replicas: must be between 1 and 5, got 6"),
        ("replicas: -1\n", "", "replicas: expected a whole number, got '-1'"),
        ("replicas: three\n", "", "replicas: expected a whole number, got 'three'"),
        ("replicas: 4\n", "", "replicas: 4 replicas need at least 4 nodes; the ring has 3 (line 1)"),
        ("replicas: 3\n", ", zone: \"a b\"", "nodes[2].zone: 'a b' may contain only letters, digits, '-', '_' and '.'"),
        ("replicas: 3\n", ", zone: [a]", "nodes[2].zone: expected a value, got a list"),
        ("replicas: 3\n", ", zone: ''", "nodes[2].zone: must not be empty (leave the field out for no zone)"),
    ]

    def test_each_bad_configuration_by_each_tool(self):
        h = harness(self)
        for i, (head, zone, message) in enumerate(self.CASES):
            path = h.write(f"bad-{i}.yaml", head + self.NODES % zone)
            for tool, r in (("kvproxy", run_kvproxy("--ring", path, "--check")),
                            ("kvproxy", run_kvproxy("--ring", path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")),
                            ("ring-rebalance", run("show", "--ring", path))):
                with self.subTest(config=head + zone, tool=tool):
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertEqual(r.stderr.strip(), f"{tool}: {path}: {message}")

    def test_replicas_off_loopback_need_the_nodes_token(self):
        h = harness(self)
        path = h.write("off.yaml", "replicas: 3\n" + self.NODES.replace("127.0.0.1:1", "10.9.9.1:7000") % "")
        r = run_kvproxy("--ring", path, "--check")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(), f"kvproxy: {path}: replicas: 3 with node n1 at 10.9.9.1:7000, off loopback: "
                                           "its /replica/ endpoints need its admin token; give --node-token-file")
        token = h.write("token", "a-node-token-of-some-length\n")
        self.assertEqual(run_kvproxy("--ring", path, "--check", "--node-token-file", token).returncode, 0)


class DemoTest(unittest.TestCase):
    def test_demo_brings_up_the_nodes_and_stops_cleanly(self):
        h = harness(self)
        env = dict(os.environ, KVRING_DEMO_DIR=h.dir)
        # The ring names fixed ports, free when picked; should another test bind one before the demo
        # does, the demo stops and says so (the process's log ends "Address already in use"), and
        # the test tries again on other ports.
        for attempt in range(3):
            ports = free_ports(5)
            ring = h.write("ring.yaml", "nodes:\n" + "".join(f"  - id: n{i + 1}\n    address: 127.0.0.1:{p}\n"
                                                              for i, p in enumerate(ports[:3]))
                           + f"proxy:\n  listen: 127.0.0.1:{ports[3]}\n  admin: 127.0.0.1:{ports[4]}\n")
            # Its own process group, stopped whole by the harness should the test fail half-way.
            demo = h.popen(["bash", os.path.join(SOURCE, "scripts", "demo.sh"), ring], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            lines = []
            for line in demo.stdout:
                lines.append(line)
                if "cluster running" in line:
                    break
            out = "".join(lines)
            if "cluster running" in out or "already in use" not in out:
                break
            demo.wait(30)
        self.assertIn("cluster running", out, out)
        for i in range(3):
            self.assertIn(f"demo: n{i + 1} is up at 127.0.0.1:{ports[i]}", out)
        self.assertIn(f"demo: kvproxy is up at 127.0.0.1:{ports[3]}", out)
        self.assertIn('{"status":"success","value":"hello alice"}', out)
        self.assertIn("X-KV-Node: n", out)
        self.assertIn('{"status":"error","detail":"Key not found"}', out)  # alice, after delete
        self.assertRegex(out, r"\d+ keys on n1\n +\d+ keys on n2\n +\d+ keys on n3")
        self.assertIn("(127.0.0.1:%d) is unreachable" % ports[0], out)  # n1 stopped: 503, naming it
        self.assertRegex(out, r'Restarting n1.*\n.*\n\{"status":"success","value":"profile \d+"\}')
        self.assertNotIn("Killed", out)
        # replicas: 3 through a second proxy: the key answers with n1 dead, and takes a write.
        self.assertRegex(out, r'Stopping n1 again.*\n\+ curl[^\n]*\nHTTP/1.1 200 OK\r?\n(.*\n)*?'
                              r'\{"status":"success","value":"kept on three nodes"\}')
        self.assertIn('{"status":"success","value":"written with a node down"}', out)
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
        rest = demo.stdout.read()
        self.assertEqual(demo.wait(30), 0, out + rest)
        self.assertIn("demo: stopped", rest)
        for i in range(5):  # every process exited cleanly and released its port
            with socket.socket() as s:
                self.assertTrue(wait_until(lambda: s.connect_ex(("127.0.0.1", ports[i])) != 0, 10))
        for name in ("n1", "n2", "n3", "kvproxy", "kvproxy-replicas"):  # the replicated one stopped already
            with open(h.path("logs", f"{name}.log")) as f:
                self.assertIn(("kvproxy" if name.startswith("kvproxy") else "kvnode") + ": stopped", f.read())


if __name__ == "__main__":
    unittest.main()
