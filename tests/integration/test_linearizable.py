"""Linearizability through two proxies, one nemesis at a time (tests/integration/lintest.py): a few
seconds each here; bench/linearizability.py runs the same code for minutes per nemesis.

Each run must check a real history (enough operations, reads and writes that succeeded) and find no
key that is not linearizable and no lost acknowledged write. And the checker must be able to fail:
the store's deliberately broken modes (the ring change as it was before per-key versions: ring-rebalance
--unsafe-unversioned-copy, kvproxy --unsafe-unversioned; with replicas: 3, reads from one replica
without write-back: kvproxy --unsafe-read-one; ring changes with replicas: 3 and no joint quorums:
kvproxy --unsafe-new-set-only) must make it find anomalies. With replicas: 3 the ring changes move
replica sets: round lintest's cycle of every kind of change, and between A and R, which replaces most of
each set.
"""
import json
import os
import unittest

import lintest
from kvtest import ARTIFACTS, harness, release_only

SECONDS = float(os.environ.get("KVRING_LIN_SECONDS", "6"))


def save(name, summary, recorder):
    os.makedirs(ARTIFACTS, exist_ok=True)
    recorder.dump(os.path.join(ARTIFACTS, f"lin-{name}.jsonl"))
    with open(os.path.join(ARTIFACTS, f"lin-{name}.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)


class Linearizable(unittest.TestCase):
    def check_run(self, nemesis, keys=20, replicas=1, cycle="all"):
        h = harness(self)
        summary, recorder, result = lintest.run(h, nemesis, SECONDS, keys=keys, replicas=replicas, cycle=cycle)
        save(nemesis if replicas == 1 else f"{nemesis}-replicas{replicas}" + ("" if cycle == "all" else f"-{cycle}"),
             summary, recorder)
        ops = recorder.ops()
        ok = lambda f: sum(1 for o in ops if o["f"] == f and o["outcome"] == "ok")
        self.assertEqual(summary["workload_errors"], [])
        # A history too thin to say anything would pass any checker.
        self.assertGreater(ok("get"), 100, summary)
        self.assertGreater(ok("put"), 50, summary)
        self.assertGreater(ok("del"), 10, summary)
        self.assertEqual(summary["failed_keys"], [], f"{nemesis}: not linearizable:\n{result.report()}")
        self.assertEqual(summary["lost_writes"], 0, f"{nemesis}: lost writes:\n{result.report()}")
        self.assertEqual(summary["unknown_keys"], [], f"{nemesis}: the checker ran out of budget")
        return summary

    def test_rebalance_back_and_forth(self):
        self.check_run("rebalance")

    def test_rebalance_killed_at_every_step_and_rerun(self):
        self.check_run("rebalance-killed")

    def test_rebalance_stopped_after_one_proxy_then_rerun(self):
        self.check_run("rebalance-partial")

    def test_node_killed(self):
        self.check_run("kill-node")

    def test_proxy_killed(self):
        self.check_run("kill-proxy")

    def test_node_paused(self):
        self.check_run("stop-node")

    # replicas: 3 on four nodes: every key on three of them, one struck at a time, so every key keeps
    # a majority and no request may fail, the ones in flight at the kill included.
    def test_replicated_node_killed(self):
        summary = self.check_run("kill-node", replicas=3)
        self.assertEqual(summary["not_ok"], {}, "a request failed while its key kept a majority")

    def test_replicated_node_paused(self):
        summary = self.check_run("stop-node", replicas=3)
        self.assertEqual(summary["not_ok"], {}, "a request failed while its key kept a majority")

    def test_replicated_proxy_killed(self):
        self.check_run("kill-proxy", replicas=3)  # requests through the killed proxy fail, of course

    # Ring changes with replicas 3 (n4 out of the replica sets and back): joint quorums while proxies
    # take the steps at different times; with every node up, or one killed during the change, every key
    # keeps a majority of its old and its new set, so no request may fail.
    @release_only("the same change runs in ..._killed_at_every_step_and_rerun and ..._with_a_node_killed")
    def test_replicated_rebalance_back_and_forth(self):
        summary = self.check_run("rebalance", replicas=3)
        self.assertEqual(summary["not_ok"], {}, "a request failed during a ring change with every node up")

    def test_replicated_rebalance_with_a_node_killed_during_it(self):
        summary = self.check_run("rebalance-kill-node", replicas=3)
        self.assertEqual(summary["not_ok"], {}, "a request failed while its key kept a majority of both sets")

    def test_replicated_rebalance_killed_at_every_step_and_rerun(self):
        self.check_run("rebalance-killed", replicas=3)

    @release_only("..._replacing_most_of_each_set_stopped_after_one_proxy stops after one proxy too")
    def test_replicated_rebalance_stopped_after_one_proxy_then_rerun(self):
        self.check_run("rebalance-partial", replicas=3)

    # Most of each replica set replaced in one change (A: n1..n4, R: n1, n2, n5, replicas 3): half the
    # keys keep one member alone, so a majority of the new set can miss every write of the old one.
    @release_only("the same change runs in ..._replacing_most_of_each_set_stopped_after_one_proxy")
    def test_replicated_rebalance_replacing_most_of_each_set(self):
        summary = self.check_run("rebalance", replicas=3, cycle="replace")
        self.assertEqual(summary["not_ok"], {}, "a request failed during a ring change with every node up")

    def test_replicated_rebalance_replacing_most_of_each_set_stopped_after_one_proxy(self):
        self.check_run("rebalance-partial", replicas=3, cycle="replace")

    def test_the_checker_catches_ring_changes_without_joint_quorums(self):
        # The broken mode of ring changes with replicas: a key whose replica set changes is asked at its
        # new set alone (kvproxy --unsafe-new-set-only). While one proxy is in the change and the other
        # is not, their majorities of the old and the new set need not meet, and where most of a set is
        # replaced, a read of the new set goes back to before the writes made through the old.
        failures = []
        for attempt in range(3):
            h = harness(self)
            summary, recorder, result = lintest.run(h, "rebalance-partial", SECONDS, seed=31 + attempt, replicas=3,
                                                    cycle="replace", new_set_only=True)
            save(f"broken-new-set-only-{attempt}", summary, recorder)
            if summary["failed_keys"] or summary["lost_writes"]:
                failures.append(summary)
                break
        self.assertTrue(failures, "ring changes without joint quorums passed the check: the checker proves nothing")

    def test_the_checker_catches_reads_from_one_replica(self):
        # The broken mode with replicas: a read asks one replica (each in turn) and writes nothing
        # back. A node killed and restarted has missed the writes made while it was away; reads that
        # reach it go back in time.
        failures = []
        for attempt in range(3):
            h = harness(self)
            summary, recorder, result = lintest.run(h, "kill-node", SECONDS, seed=11 + attempt, replicas=3,
                                                    read_one=True)
            save(f"broken-read-one-{attempt}", summary, recorder)
            if summary["failed_keys"] or summary["lost_writes"]:
                failures.append(summary)
                break
        self.assertTrue(failures, "reads from one replica passed the check: the checker proves nothing")

    def test_the_checker_catches_the_protocol_without_versions(self):
        # The broken mode is the ring change as it was before per-key versions: the copy stores plain
        # values where the new owner holds nothing (ring-rebalance --unsafe-unversioned-copy), writes
        # of moving keys reach both owners untagged and read_new reads the new owner alone (kvproxy
        # --unsafe-unversioned). While one proxy missed the change, the old owner takes writes the new
        # owner never gets (the nemesis makes some on keys of its own, which nothing heals); once
        # reads flip, they go back in time.
        failures = []
        for attempt in range(3):
            h = harness(self)
            summary, recorder, result = lintest.run(h, "rebalance-partial", SECONDS, seed=7 + attempt,
                                                    unversioned=True)
            save(f"broken-{attempt}", summary, recorder)
            if summary["failed_keys"] or summary["lost_writes"]:
                failures.append(summary)
                break
        self.assertTrue(failures, "the protocol without versions passed the check: the checker proves nothing")


if __name__ == "__main__":
    unittest.main()
