"""Self-test of tools/histcheck.py, the history checker: hand-made histories that must pass and must
fail, long random histories from a simulated linearizable register (and one with an injected stale
read), the Recorder, and the command line's exit codes.

Run from the repository root with `python3 -m unittest tests/unit/tools/test_histcheck.py`, or
directly with `python3 tests/unit/tools/test_histcheck.py`. Standard library only."""

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TOOL = os.path.join(ROOT, "tools", "histcheck.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))

import histcheck  # noqa: E402
from histcheck import HistoryError, Recorder, check_history  # noqa: E402


def op(process, f, value, invoke, complete, outcome="ok", key="k"):
    """A history record, briefly."""
    return {"process": process, "key": key, "f": f, "value": value, "invoke": invoke,
            "complete": complete, "outcome": outcome}


def simulate(seed, n_ops, clients=8, keys=("x",), p_get=0.5, p_del=0.1, p_info=0.03, p_fail=0.02):
    """A history of a linearizable register: `clients` clients, one operation at a time each, with
    random think times and latencies (one in 20 ten times slower); every operation takes effect at a
    random point of its interval, in that order. Some writes end "info" (their effect, if any, may land
    long after the client gave up) or "fail" (no effect); some gets end "info" or "fail" too."""
    rng = random.Random(seed)
    free = [rng.uniform(0, 0.001) for _ in range(clients)]
    ops, effects = [], []
    while len(ops) < n_ops:
        c = min(range(clients), key=free.__getitem__)
        invoke = free[c] + rng.expovariate(1 / 0.0005)
        latency = 0.0002 + rng.expovariate(1 / 0.002) * (10 if rng.random() < 0.05 else 1)
        complete = invoke + latency
        free[c] = complete
        key = rng.choice(keys)
        r = rng.random()
        f = "get" if r < p_get else "del" if r < p_get + p_del else "put"
        r = rng.random()
        outcome = "info" if r < p_info else "fail" if r < p_info + p_fail else "ok"
        record = {"process": c, "key": key, "f": f, "value": f"{key}-{len(ops)}" if f == "put" else None,
                  "invoke": invoke, "complete": complete, "outcome": outcome}
        if outcome == "ok":
            effects.append((rng.uniform(invoke, complete), len(ops)))
        elif outcome == "info" and f != "get" and rng.random() < 0.5:
            effects.append((rng.uniform(invoke, complete + 5 * latency), len(ops)))
        if outcome == "info" and rng.random() < 0.3:
            record["complete"] = None
        ops.append(record)
    state = {k: None for k in keys}
    for _, i in sorted(effects):
        o = ops[i]
        if o["f"] == "put":
            state[o["key"]] = o["value"]
        elif o["f"] == "get":
            o["value"] = state[o["key"]]
        else:
            o["value"] = "present" if state[o["key"]] is not None else "absent"
            state[o["key"]] = None
    return ops


def inject_stale_read(ops, rng):
    """Makes one ok get in the middle of the history read a value that was certainly overwritten: the
    value of an ok put P1 followed (in real time) by an ok put P2 that completed before the get began.
    Returns the get's index."""
    puts = [o for o in ops if o["f"] == "put" and o["outcome"] == "ok"]
    gets = [i for i, o in enumerate(ops) if o["f"] == "get" and o["outcome"] == "ok"]
    for i in sorted(gets, key=lambda i: abs(i - len(ops) // 2) + rng.random()):
        g = ops[i]
        before = [p for p in puts if p["key"] == g["key"] and p["complete"] < g["invoke"]]
        stale = [p1 for p1 in before if p1["value"] != g["value"] and
                 any(p1["complete"] < p2["invoke"] for p2 in before)]
        if stale:
            g["value"] = max(stale, key=lambda p: p["complete"])["value"]
            return i
    raise AssertionError("no get to make stale")


def brute_force_linearizable(ops, strict=False, initial=None):
    """A reference checker, as plain as possible, for tiny histories: tries every order of the
    operations' steps (info writes optional, failed operations and info gets left out) that respects
    real time (a step whose operation completed before another's began comes first) against the model.
    An ok del is a read then, not necessarily right after, a write of None (strict: one step)."""
    steps = []   # [kind, argument, invoke, complete (None: optional, may never happen), step it follows]
    for o in ops:
        done = o["outcome"] == "ok"
        if o["outcome"] == "fail" or (o["f"] == "get" and not done):
            continue
        end = o["complete"] if done else None
        if o["f"] == "get":
            steps.append(["read", o["value"], o["invoke"], end, None])
        elif o["f"] == "put":
            steps.append(["write", o["value"], o["invoke"], end, None])
        elif done and strict:
            steps.append(["del", o["value"], o["invoke"], end, None])
        elif done:
            steps.append(["found", o["value"], o["invoke"], end, None])
            steps.append(["write", None, o["invoke"], end, len(steps) - 1])
        else:
            steps.append(["write", None, o["invoke"], None, None])

    def step(state, kind, a):   # (legal, new state)
        if kind == "write":
            return True, a
        if kind == "read":
            return state == a, state
        found = state is not None
        return found == (a == "present"), (None if kind == "del" else state)

    failed = set()

    def search(done, state):
        if all(s[3] is None or i in done for i, s in enumerate(steps)):
            return True
        if (done, state) in failed:
            return False
        for i, (kind, a, invoke, _, after) in enumerate(steps):
            if i in done or (after is not None and after not in done):
                continue
            if any(j not in done and s[3] is not None and s[3] < invoke for j, s in enumerate(steps)):
                continue   # a step that must come first is still to do
            legal, new_state = step(state, kind, a)
            if legal and search(done | {i}, new_state):
                return True
        failed.add((done, state))
        return False

    return search(frozenset(), initial)


def known_at(ops, t):
    """H(t): the history as known at time t (invoked by t; not completed by then: outcome info)."""
    return [o if o["outcome"] != "ok" or o["complete"] <= t else {**o, "outcome": "info"}
            for o in ops if o["invoke"] <= t]


def tiny_history(rng, initial=None):
    """A few operations by 2 to 4 clients, on integer times (ties happen), with random results."""
    ops, values = [], [] if initial is None else [initial]
    for c in range(rng.randint(2, 4)):
        t = rng.randint(0, 3)
        for _ in range(rng.randint(1, 3)):
            f = rng.choice(["put", "put", "get", "get", "del"])
            if f == "put":
                value = f"v{len(values)}"
                values.append(value)
            elif f == "get":
                value = rng.choice(values + [None, None]) if values else None
            else:
                value = rng.choice(["present", "absent"])
            outcome = rng.choice(["ok"] * 5 + ["info"] * 4 + ["fail"])
            end = t + rng.randint(0, 5)
            ops.append(op(c, f, value, t, end, outcome))
            t = end + rng.randint(0, 2)
    return ops


class HandMadeHistories(unittest.TestCase):
    def assertLinearizable(self, ops, **kw):
        result = check_history(ops, **kw)
        self.assertTrue(result.ok, result.report())
        return result

    def assertNotLinearizable(self, ops, **kw):
        result = check_history(ops, **kw)
        self.assertEqual(result.failed_keys, ["k"], result.report())
        return result

    def test_sequential_put_get(self):
        self.assertLinearizable([op(0, "get", None, 0, 1), op(0, "put", "a", 2, 3), op(1, "get", "a", 4, 5),
                                 op(1, "put", "b", 6, 7), op(0, "get", "b", 8, 9)])

    def test_empty_history(self):
        result = check_history([])
        self.assertTrue(result.ok)
        self.assertEqual(result.summary(), "checked 0 ops on 0 keys: 0 keys not linearizable, 0 lost writes")

    def test_concurrent_puts_read_in_either_order(self):
        puts = [op(0, "put", "a", 0, 5), op(1, "put", "b", 1, 6)]
        self.assertLinearizable(puts + [op(2, "get", "a", 7, 8), op(2, "get", "a", 9, 10)])
        self.assertLinearizable(puts + [op(2, "get", "b", 7, 8), op(3, "get", "b", 9, 10)])
        # Reads during the puts may see a then b, or nothing then b...
        self.assertLinearizable(puts + [op(2, "get", "a", 2, 3), op(3, "get", "b", 3.5, 4)])
        self.assertLinearizable(puts + [op(2, "get", None, 0.5, 0.6), op(3, "get", "b", 3.5, 4)])
        # ...but once both completed, the order is fixed.
        self.assertNotLinearizable(puts + [op(2, "get", "b", 7, 8), op(2, "get", "a", 9, 10)])

    def test_stale_read_after_acknowledged_write(self):
        result = self.assertNotLinearizable([op(0, "put", "a", 0, 1), op(0, "put", "b", 2, 3),
                                             op(1, "get", "a", 4, 5)])
        key = result.keys["k"]
        self.assertEqual((key.offending.f, key.offending.value, key.offending.invoke), ("get", "a", 4.0))
        report = key.report()
        self.assertIn('1 get "a" 4..5 ok   <-- offending op', report)
        self.assertIn('"a" was written by: 0 put "a" 0..1 ok', report)
        # The final read returns a state older than the acknowledged put of b: a lost write.
        self.assertEqual([o.value for o in key.lost_writes], ["b"])
        self.assertEqual(len(result.lost_writes), 1)

    def test_read_goes_back_in_time(self):
        # The put of b is still running, so either order is possible: but not both, one after another.
        result = self.assertNotLinearizable([op(0, "put", "a", 0, 1), op(1, "put", "b", 2, 10),
                                             op(2, "get", "b", 3, 4), op(2, "get", "a", 5, 6)])
        self.assertEqual(result.keys["k"].offending.invoke, 5.0)
        self.assertEqual(result.keys["k"].lost_writes, [])   # no final read: the put of b ends last

    def test_deleted_key_comes_back(self):
        ops = [op(0, "put", "a", 0, 1), op(0, "del", "present", 2, 3), op(1, "get", "a", 4, 5)]
        result = self.assertNotLinearizable(ops)
        self.assertEqual(result.keys["k"].offending.f, "get")
        self.assertNotLinearizable(ops, strict_delete=True)
        self.assertLinearizable(ops[:2] + [op(1, "get", None, 4, 5)])

    def test_info_put_that_shows_up_later(self):
        self.assertLinearizable([op(0, "put", "a", 0, 1), op(1, "put", "b", 2, 3, "info"),
                                 op(0, "get", "a", 4, 5), op(2, "get", "b", 50, 51), op(2, "get", "b", 52, 53)])
        # Its completion may be missing altogether.
        self.assertLinearizable([op(1, "put", "b", 2, None, "info"), op(2, "get", "b", 50, 51)])

    def test_info_put_appears_then_disappears(self):
        self.assertNotLinearizable([op(0, "put", "a", 0, 1), op(1, "put", "b", 2, 3, "info"),
                                    op(0, "get", "b", 4, 5), op(0, "get", "a", 6, 7)])

    def test_info_put_never_seen(self):
        self.assertLinearizable([op(0, "put", "a", 0, 1), op(1, "put", "b", 2, 3, "info"),
                                 op(0, "get", "a", 4, 5), op(0, "del", "present", 6, 7), op(0, "get", None, 8, 9)])

    def test_failed_put(self):
        ops = [op(0, "put", "a", 0, 1), op(1, "put", "b", 2, 3, "fail")]
        self.assertLinearizable(ops + [op(0, "get", "a", 4, 5)])
        result = self.assertNotLinearizable(ops + [op(0, "get", "b", 4, 5)])
        self.assertTrue(any("failed put" in a for a in result.anomalies), result.anomalies)

    def test_info_and_failed_gets_are_dropped(self):
        self.assertLinearizable([op(0, "put", "a", 0, 1), op(1, "get", "zzz", 2, 3, "info"),
                                 op(1, "get", "yyy", 4, 5, "fail"), op(0, "get", "a", 6, 7)])

    def test_concurrent_deletes_both_present(self):
        ops = [op(0, "put", "a", 0, 1), op(1, "del", "present", 2, 5), op(2, "del", "present", 3, 6),
               op(0, "get", None, 7, 8)]
        self.assertLinearizable(ops)
        self.assertNotLinearizable(ops, strict_delete=True)
        # One present, one absent is fine either way.
        ops[2] = op(2, "del", "absent", 3, 6)
        self.assertLinearizable(ops, strict_delete=True)

    def test_delete_absent_while_key_present(self):
        self.assertNotLinearizable([op(0, "put", "a", 0, 1), op(1, "del", "absent", 2, 3)])
        # Concurrent with the put, absent is possible.
        self.assertLinearizable([op(0, "put", "a", 0, 3), op(1, "del", "absent", 1, 2), op(1, "get", "a", 4, 5)])
        # A failed delete did nothing; an info one may have.
        self.assertLinearizable([op(0, "put", "a", 0, 1), op(1, "del", None, 2, 3, "fail"), op(0, "get", "a", 4, 5)])
        self.assertLinearizable([op(0, "put", "a", 0, 1), op(1, "del", None, 2, 3, "info"), op(0, "get", None, 4, 5)])

    def test_non_atomic_delete(self):
        # The delete answered "absent", so its read came before the put took effect; yet "a" was read
        # after the put and the key was gone after the delete. Only a delete whose read and write are
        # separate steps (read, put, get, then the write of None) explains it.
        ops = [op(0, "put", "a", 0, 4), op(1, "del", "absent", 1, 10), op(2, "get", "a", 5, 6),
               op(2, "get", None, 11, 12)]
        self.assertLinearizable(ops)
        self.assertNotLinearizable(ops, strict_delete=True)

    def test_failure_located_at_the_delete_whose_answer_is_impossible(self):
        # While the delete runs, the read of nothing is explained by its write; only when its answer
        # ("absent", though "a" was there all along) is known does the history fail.
        result = self.assertNotLinearizable([op(0, "put", "a", 0, 1), op(1, "del", "absent", 2, 10),
                                             op(2, "get", None, 3, 4)])
        self.assertEqual(result.keys["k"].offending.f, "del")

    def test_lost_writes(self):
        # The final read finds the key absent, but the only delete completed before the put of b began.
        ops = [op(0, "put", "a", 0, 1), op(0, "del", "present", 2, 3), op(1, "put", "b", 4, 5),
               op(2, "get", None, 6, 7)]
        result = self.assertNotLinearizable(ops)
        self.assertEqual([o.value for o in result.lost_writes], ["b"])
        self.assertIn("lost write: 1 put \"b\" 4..5 ok (never read; the final read 2 get null 6..7 ok",
                      result.report())
        # With a delete of unknown outcome, which may have come last, the history is fine.
        result = self.assertLinearizable(ops + [op(3, "del", None, 0.5, 0.7, "info")])
        self.assertEqual(result.lost_writes, [])
        # No final read (the last get overlaps a put): nothing lost either.
        ops[3] = op(2, "get", "a", 4.5, 7)
        self.assertEqual(self.assertNotLinearizable(ops).lost_writes, [])

    def test_initial_value(self):
        ops = [op(0, "get", "seed", 0, 1), op(0, "put", "a", 2, 3), op(0, "get", "a", 4, 5)]
        self.assertLinearizable(ops, initial={"k": "seed"})
        self.assertNotLinearizable(ops)

    def test_keys_are_independent(self):
        ops = [op(0, "put", "a", 0, 1, key="k"), op(0, "put", "a", 0, 1, key="j"),
               op(1, "get", None, 2, 3, key="j"), op(1, "get", "a", 4, 5, key="k")]
        result = check_history(ops)
        self.assertEqual((result.failed_keys, sorted(result.keys)), (["j"], ["j", "k"]))

    def test_duplicate_put_value_is_a_history_error(self):
        with self.assertRaisesRegex(HistoryError, 'already written by the put at op #0'):
            check_history([op(0, "put", "a", 0, 1), op(1, "put", "a", 2, 3, "fail")])

    def test_malformed_operations(self):
        for record, message in [
                ({**op(0, "get", None, 0, 1), "f": "cas"}, '"f" must be one of'),
                (op(0, "get", None, 2, 1), "before"),
                (op(0, "get", None, 0, None), "needs a \"complete\""),
                (op(0, "del", "yes", 0, 1), "present"),
                (op(0, "put", None, 0, 1), "must be a string"),
                ({"process": 0, "key": "k", "f": "get", "outcome": "ok"}, 'missing field "invoke"')]:
            with self.subTest(record=record), self.assertRaisesRegex(HistoryError, message):
                check_history([record])

    def test_budget_exceeded_is_unknown(self):
        puts = [op(i, "put", f"v{i}", 0, 10) for i in range(12)]
        result = check_history(puts + [op(0, "get", "nope", 11, 12)], budget=50)
        self.assertEqual(result.unknown_keys, ["k"])
        self.assertFalse(result.ok)
        self.assertIn("1 keys unknown (budget exceeded)", result.summary())


class RandomHistories(unittest.TestCase):
    def test_tiny_histories_against_brute_force(self):
        """The search (with its prunings) against the plain reference checker, in both delete models;
        and the located failure against the first failing H(t), found by trying every t in order."""
        rng = random.Random(1234)
        verdicts = {True: 0, False: 0}
        for n in range(1500):
            strict, initial = n % 2 == 1, ("init" if n % 3 == 0 else None)
            ops = tiny_history(rng, initial)
            expected = brute_force_linearizable(ops, strict, initial)
            verdicts[expected] += 1
            result = check_history(ops, strict_delete=strict, initial={"k": initial})
            self.assertEqual(result.ok, expected, f"strict={strict} initial={initial}\n{json.dumps(ops)}\n"
                                                  f"{result.report()}")
            if not expected:
                cuts = sorted({o["complete"] for o in ops if o["outcome"] == "ok"})
                first = next(t for t in cuts if not brute_force_linearizable(known_at(ops, t), strict, initial))
                self.assertEqual(result.keys["k"].offending.complete, first, json.dumps(ops))
        self.assertGreater(min(verdicts.values()), 300, verdicts)

    def test_simulated_register_passes_and_stale_read_fails(self):
        ops = simulate(seed=20240611, n_ops=3000, clients=8)
        started = time.monotonic()
        result = check_history(ops)
        self.assertTrue(result.ok, result.report())
        self.assertEqual(result.lost_writes, [])
        # The simulated store deletes atomically: strict mode must accept it too.
        self.assertTrue(check_history(ops, strict_delete=True).ok)
        passed = time.monotonic() - started

        stale = inject_stale_read(ops, random.Random(7))
        result = check_history(ops)
        key = ops[stale]["key"]
        self.assertEqual(result.failed_keys, [key], result.report())
        kr = result.keys[key]
        self.assertEqual(kr.offending.index, stale, kr.report())
        self.assertTrue(kr.window_minimal)
        self.assertIn(f"{kr.offending.describe()}   <-- offending op", kr.report())
        print(f"\n  random history: {len(ops)} ops checked twice in {passed:.2f} s; "
              f"with a stale read, failure located in {time.monotonic() - started - passed:.2f} s",
              file=sys.stderr)

    def test_twelve_clients_one_key(self):
        ops = simulate(seed=5, n_ops=2500, clients=12, keys=("x",), p_get=0.4, p_del=0.05)
        started = time.monotonic()
        result = check_history(ops)
        elapsed = time.monotonic() - started
        self.assertTrue(result.ok, result.report())
        self.assertLess(elapsed, 5.0)


class RecorderTest(unittest.TestCase):
    def test_threads_record_a_checkable_history(self):
        rec = Recorder()
        lock, store = threading.Lock(), {}

        def client(process):
            for i in range(50):
                key = f"k{i % 3}"
                h = rec.invoke(process, key, "put", f"{process}-{i}")
                with lock:
                    store[key] = f"{process}-{i}"
                rec.complete(h, "ok", node="n1")
                h = rec.invoke(process, key, "get")
                with lock:
                    value = store.get(key)
                rec.complete(h, "ok", value)
                h = rec.invoke(process, key, "del")
                with lock:
                    found = store.pop(key, None) is not None
                rec.complete(h, "ok", "present" if found else "absent")

        threads = [threading.Thread(target=client, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec.invoke(9, "k0", "put", "never-answered")
        ops = rec.ops()
        self.assertEqual(len(ops), 4 * 150 + 1)
        self.assertEqual((ops[-1]["outcome"], ops[-1]["complete"]), ("info", None))
        self.assertEqual(ops[0]["node"], "n1")
        self.assertTrue(check_history(ops).ok)
        self.assertTrue(check_history(ops, strict_delete=True).ok)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "history.jsonl")
            rec.dump(path)
            self.assertEqual(len(histcheck.load_history(path)), len(ops))

    def test_complete_twice_is_an_error(self):
        rec = Recorder()
        h = rec.invoke(0, "k", "get")
        rec.complete(h, "fail")
        with self.assertRaises(ValueError):
            rec.complete(h, "ok")


class CommandLine(unittest.TestCase):
    def run_tool(self, lines, *args):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "history.jsonl")
            with open(path, "w") as f:
                f.write("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
            proc = subprocess.run([sys.executable, TOOL, path, *args], capture_output=True, text=True,
                                  timeout=60)
            return proc.returncode, proc.stdout, proc.stderr.replace(path, "HISTORY")

    def test_linearizable_history_exits_0(self):
        code, out, _ = self.run_tool([{**op(0, "put", "a", 0, 1), "node": "n1"}, op(1, "get", "a", 2, 3),
                                      "\n", op(1, "del", "present", 4, 5)])
        self.assertEqual(code, 0, out)
        self.assertIn('key "k": OK', out)
        self.assertTrue(out.endswith("checked 3 ops on 1 keys: 0 keys not linearizable, 0 lost writes\n"), out)

    def test_stale_read_exits_1(self):
        lines = [op(0, "put", "a", 0, 1), op(0, "put", "b", 2, 3), op(1, "get", "a", 4, 5),
                 op(0, "put", "c", 0, 1, key="j")]
        code, out, _ = self.run_tool(lines)
        self.assertEqual(code, 1, out)
        self.assertIn('key "k": FAIL', out)
        self.assertIn('1 get "a" 4..5 ok  [line 3]   <-- offending op', out)
        self.assertIn("checked 4 ops on 2 keys: 1 keys not linearizable, 1 lost writes", out)
        code, out, _ = self.run_tool(lines, "--json")
        summary = json.loads(out)
        self.assertEqual((code, summary["ops"], summary["keys"], summary["failed_keys"], summary["lost_writes"]),
                         (1, 4, 2, ["k"], 1))
        self.assertTrue(summary["anomalies"])

    def test_strict_delete_flag(self):
        lines = [op(0, "put", "a", 0, 1), op(1, "del", "present", 2, 5), op(2, "del", "present", 3, 6)]
        self.assertEqual(self.run_tool(lines)[0], 0)
        self.assertEqual(self.run_tool(lines, "--strict-delete")[0], 1)

    def test_bad_files_exit_2(self):
        cases = [
            ([op(0, "put", "a", 0, 1), "{not json\n"], "HISTORY:2: invalid JSON"),
            ([op(0, "put", "a", 0, 1), {"key": "k"}], 'HISTORY:2: missing field "process"'),
            ([op(0, "put", "a", 0, 1), op(1, "get", "a", 2, 3), op(1, "put", "a", 4, 5)],
             'HISTORY:3: put of "a" to key "k": the value was already written by the put at line 1'),
        ]
        for lines, message in cases:
            with self.subTest(message=message):
                code, out, err = self.run_tool(lines)
                self.assertEqual((code, out), (2, ""))
                self.assertIn(f"histcheck: {message}", err)
        proc = subprocess.run([sys.executable, TOOL, "/nonexistent/history.jsonl"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("No such file", proc.stderr)


if __name__ == "__main__":
    unittest.main()
