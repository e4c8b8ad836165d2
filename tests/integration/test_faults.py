"""Faults, with real processes and bounded in time: a node frozen, a node slow, the proxy restarted,
the disk full, idle and slowloris connections by the thousand. In each, the keys that can be served
are, the others get a clear answer within the deadlines, and nothing acknowledged is lost."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from kvtest import Client, Cluster, Load, harness, owners, proxy_node_state, put_all, wait_until, write_ring


def check_outage(test, load, own, victim, began, ended, port, keys, values):
    """Stops `load` and checks a node's outage between `began` and `ended`: the other nodes' keys all
    answered 200; the victim's got 504 while slow, 503 once marked down (at least one 503), and never
    hung (each answer within the 400-500 ms budgets plus the 50 ms deadline sweep, with slack for a
    loaded machine); afterwards every key reads back through `port` with its value."""
    results = load.finish().results
    mine = [r for r in results if own[r[1]] == victim and began < r[0] - r[3] < ended]
    others = [r for r in results if own[r[1]] != victim]
    test.assertTrue(mine and others)
    test.assertEqual([r for r in others if r[2] != 200], [], "keys of the other nodes must keep answering")
    test.assertTrue({r[2] for r in mine} <= {200, 503, 504}, {r[2] for r in mine})
    test.assertIn(503, {r[2] for r in mine})
    test.assertLess(max(r[3] for r in mine), 3.0, f"a request to {victim} hung")
    c = Client(port)
    for k in keys:
        status, _, body = c.get(k)
        test.assertEqual((status, json.loads(body)["value"]), (200, values[k]))
    c.close()


class FrozenNodeTest(unittest.TestCase):
    def setUp(self):
        # Tight deadlines so the test is short: a node gets 400 ms to answer. (A node left frozen by a
        # failed test is stopped all the same: the harness sends SIGCONT after SIGTERM.)
        self.cluster = harness(self).cluster(3, proxy_extra=["--response-timeout-ms", "400",
                                                             "--connect-timeout-ms", "300"])

    def test_sigstop_a_node_under_load_then_sigcont(self):
        keys = [f"frozen-{i}" for i in range(90)]
        own = owners(self.cluster.ring, keys)
        values = {k: "value of " + k for k in keys}
        self.assertEqual(put_all(self.cluster.port, values), [])
        load = Load.fixed(self.cluster.port, keys, values, threads=3).start()
        self.addCleanup(load.finish)
        self.assertTrue(wait_until(lambda: load.fewest_results() > 30, 20))
        frozen = self.cluster.nodes["n2"]
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        # The checks (300 ms timeout, 2 failures) mark it down; its keys then answer 503 at once.
        self.assertTrue(wait_until(lambda: self.cluster.node_state("n2") == "DOWN", 10))
        wait_until(lambda: time.monotonic() > stopped_at + 2.0, 3)
        frozen.proc.send_signal(signal.SIGCONT)
        self.assertTrue(wait_until(lambda: self.cluster.node_state("n2") == "UP", 10))
        resumed_at = time.monotonic()
        wait_until(lambda: time.monotonic() > resumed_at + 0.5, 2)
        check_outage(self, load, own, "n2", stopped_at, resumed_at, self.cluster.port, keys, values)


class SlowNodeTest(unittest.TestCase):
    def test_a_slow_node_slows_only_its_own_keys(self):
        h = harness(self)
        nodes = [h.node(f"n{i}", engine="memory") for i in (1, 2)]
        delay = 0.4

        def slow(request_line, headers):
            time.sleep(delay)
            body = b'{"status":"success","value":"slow"}'
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        fake = h.fake_node(slow)
        ring = write_ring(h.path("ring.yaml"), [("n1", nodes[0].port), ("n2", nodes[1].port), ("slow", fake.port)])
        proxy = h.proxy(ring)  # one worker thread: slow answers must not hold it
        keys = [f"k{i}" for i in range(60)]
        own = owners(ring, keys)
        slow_keys = [k for k in keys if own[k] == "slow"]
        fast_keys = [k for k in keys if own[k] != "slow"]
        self.assertEqual(put_all(proxy.port, {k: "v" for k in fast_keys}), [])
        stop = threading.Event()
        self.addCleanup(stop.set)
        slow_times = []

        def hammer_slow():
            c = Client(proxy.port)
            while not stop.is_set():
                t0 = time.monotonic()
                c.get(slow_keys[0])
                slow_times.append(time.monotonic() - t0)
            c.close()
        threads = [threading.Thread(target=hammer_slow, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        self.assertTrue(wait_until(lambda: len(slow_times) >= 8, 10))
        c = Client(proxy.port)
        fast_times = []
        for k in fast_keys * 3:
            t0 = time.monotonic()
            status, _, _ = c.get(k)
            fast_times.append(time.monotonic() - t0)
            self.assertEqual(status, 200)
        c.close()
        stop.set()
        for t in threads:
            t.join()
        self.assertGreaterEqual(min(slow_times), delay)
        # Eight requests always waiting on the slow node, yet no fast key waited as long as one
        # slow answer takes: nothing queues behind it.
        self.assertLess(max(fast_times), delay, sorted(fast_times)[-5:])


class ProxyRestartTest(unittest.TestCase):
    def test_proxy_restarted_under_load_loses_nothing_acknowledged(self):
        cluster = harness(self).cluster(3)
        acked = {}
        stop = threading.Event()
        self.addCleanup(stop.set)  # the writers end even when an assertion fails
        failures = []

        def writer(t):
            c = Client(cluster.port, timeout=5)
            i = 0
            while not stop.is_set():
                k, v = f"w{t}-{i % 200}", f"value {i}"
                try:
                    status, _, _ = c.put(k, v)
                    if status == 200:
                        acked[k] = v
                    else:
                        failures.append(status)
                except OSError:
                    failures.append("connection")
                    c.close()
                    time.sleep(0.05)
                    c = Client(cluster.port, timeout=5)  # reconnect, as a client would
                i += 1
            c.close()
        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(3)]
        for t in threads:
            t.start()
        self.assertTrue(wait_until(lambda: len(acked) > 100, 20))
        port = cluster.port
        self.assertEqual(cluster.proxy.terminate(), 0)
        cluster.restart_proxy(0, same_port=True)
        before = len(acked)
        self.assertTrue(wait_until(lambda: len(acked) > before + 100, 20), "clients did not get back in")
        stop.set()
        for t in threads:
            t.join()
        c = Client(port)
        for k, v in acked.items():
            status, _, body = c.get(k)
            self.assertEqual((status, json.loads(body)["value"]), (200, v), k)
        c.close()
        # Only connection errors while the proxy was away; no wrong answers.
        self.assertEqual([f for f in failures if f != "connection"], [])


class DiskFullTest(unittest.TestCase):
    def test_write_failure_is_a_clear_500_and_reads_go_on(self):
        h = harness(self)
        mnt = h.path("small")
        os.makedirs(mnt)
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], capture_output=True, text=True)
        if res.returncode != 0:
            self.skipTest(f"cannot mount a small tmpfs here (needs root): {res.stderr.strip()}")
        h.defer(subprocess.run, ["umount", mnt], capture_output=True)  # after the node stops
        node = h.node(data_dir=os.path.join(mnt, "db"))
        c = Client(node.port)
        self.assertEqual(c.put("kept", "safe")[0], 200)
        failed = None
        for i in range(200):
            status, _, body = c.put(f"big-{i}", "x" * 200_000)
            if status != 200:
                failed = (status, json.loads(body)["detail"])
                break
        self.assertIsNotNone(failed, "the disk never filled")
        self.assertEqual(failed[0], 500)
        self.assertIn("No space left on device", failed[1])
        # Further writes are refused with the reason; reads are served; the process is up.
        status, _, body = c.put("after", "y")
        self.assertEqual(status, 500)
        self.assertIn("writes stopped after a storage error", json.loads(body)["detail"])
        status, _, body = c.get("kept")
        self.assertEqual((status, json.loads(body)["value"]), (200, "safe"))
        health = json.loads(c.request("GET", "/health")[2])
        self.assertFalse(health["writable"])
        self.assertIn("kvnode_writable 0", c.request("GET", "/metrics")[2].decode())
        c.close()
        self.assertTrue(node.alive())
        self.assertEqual(node.terminate(), 0)


class IdleAndSlowlorisTest(unittest.TestCase):
    def test_normal_clients_are_served_among_idle_and_slowloris_connections(self):
        cluster = harness(self).cluster(2, engine="memory", proxy_extra=["--client-header-timeout-ms", "1000"])
        idle, slow = [], []
        stop = threading.Event()
        self.addCleanup(lambda: [s.close() for s in idle + slow])
        self.addCleanup(stop.set)
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", cluster.port)))
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", cluster.port))
            s.sendall(b"GET /get?key=a HTTP/1.1\r\nX-Slow: ")
            slow.append(s)

        def drip():  # a byte per 100 ms on every slowloris connection
            while not stop.is_set():
                for s in slow:
                    try:
                        s.sendall(b"a")
                    except OSError:
                        pass
                time.sleep(0.1)
        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        c = Client(cluster.port)
        statuses = [c.put(f"k{i}", "v")[0] for i in range(300)]
        c.close()
        self.assertEqual(set(statuses), {200})
        # Every slowloris connection is answered 408 when its header deadline passes.
        answers = []
        for s in slow:
            s.settimeout(5)
            try:
                answers.append(s.recv(200).split(b"\r\n")[0])
            except OSError as e:
                answers.append(repr(e).encode())
        stop.set()
        dripper.join()
        self.assertEqual(set(answers), {b"HTTP/1.1 408 Request Timeout"})


class NetworkCutTest(unittest.TestCase):
    """A node in its own network namespace behind a veth pair; its link taken down, then up again."""

    def test_link_down_is_like_a_dead_node_and_it_recovers(self):
        h = harness(self)
        ns = h.netns()
        token = h.write("token", "netns-test-token-0123456789\n")
        remote = h.node("far", netns=ns, bind=ns.addr, extra=["--admin-token-file", token])
        local = h.node("near", engine="memory")
        ring = write_ring(h.path("ring.yaml"), [("far", f"{ns.addr}:{remote.port}"), ("near", local.port)])
        proxy = h.proxy(ring, checks=Cluster.CHECKS, extra=["--response-timeout-ms", "500", "--connect-timeout-ms", "300"])
        keys = [f"net-{i}" for i in range(60)]
        own = owners(ring, keys)
        values = {k: "v-" + k for k in keys}
        self.assertEqual(put_all(proxy.port, values), [])
        load = Load.fixed(proxy.port, keys, values, threads=3).start()
        self.addCleanup(load.finish)
        self.assertTrue(wait_until(lambda: load.fewest_results() > 20, 20))
        ns.link(False)
        cut_at = time.monotonic()

        def state():
            return proxy_node_state(proxy.admin_port, "far")
        self.assertTrue(wait_until(lambda: state() == "DOWN", 10))
        wait_until(lambda: time.monotonic() > cut_at + 1.5, 3)
        ns.link(True)
        self.assertTrue(wait_until(lambda: state() == "UP", 15))
        back_at = time.monotonic()
        wait_until(lambda: time.monotonic() > back_at + 0.5, 2)
        check_outage(self, load, own, "far", cut_at, back_at, proxy.port, keys, values)


if __name__ == "__main__":
    unittest.main()
