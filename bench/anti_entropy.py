#!/usr/bin/python3
"""Anti-entropy (guarantee 6 of ../shared/REPLICATION.md): how fast a replica that missed writes comes
back equal to the others, how many bytes that moves against the minimum, and what it costs the
foreground. Started by bench/anti_entropy.sh, which builds first. Three kvnodes (RocksDB, fresh data
directories) with --ring on a ring of replicas 3, one kvproxy in front, everything on 127.0.0.1.

1. Convergence after an outage under load, for each outage length D: bench/loadgen offers a fixed rate
   (the study's mix: 90% GET / 10% PUT over the preloaded keys) through kvproxy; n3 is killed (SIGKILL),
   the load goes on for D seconds, then n3 is started again on its data directory. "Caught up" is the
   first moment a scan of n3's own store (/admin/scan, never through a proxy) finds every key at a
   version at least as new as n1 held when n3 came back: everything acknowledged before the fault
   healed. It is measured from n3's readiness, under the same load. Then the load stops and the run
   waits until all three stores are equal key for key ("equal, load stopped").
   Bytes: the request and response bodies of every anti-entropy exchange that involves n3 in that
   window (n3's kvnode_anti_entropy_bytes_total, n1's and n2's with peer n3), against the minimum: the stored key and value bytes of the
   keys n3 missed (those whose version on n1 at the restart was newer than n3's at the kill).
2. Foreground cost, closed loop (wrk, the mix): the same three nodes started with --ring (trees kept
   on every write, an exchange every second) and without (no trees, no exchanges), alternated round by
   round; then, --rebuilds times, a run with n3 simply down, one with n3 recovering on an empty
   directory with its pull all but stopped (--repair-busy-percent 1: the replica state of a rebuild
   without its work), one while it rebuilds a wiped directory, and one right after it. The rebuild
   and its reference are also read from kvproxy's request counter every 0.2 s, so that the rate while
   the rebuild ran can be told from the rest of a window it ends before. Then, as many times again, a
   wiped n3 rebuilds while its pull is switched on and off every --alternate-seconds (POST
   /admin/repair): each on slice against the off slices beside it, seconds apart, so that the
   machine's drift between windows a minute apart does not count as the pull's cost.

Writes a markdown section to --out (bench/ANTI_ENTROPY.md; with --quick into the build tree) and the
figures beside it (.json). Exits nonzero only when the harness failed; missed targets are reported.
"""
import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, free_ports, holdings, node_state, write_ring  # noqa: E402
from run import log, measure, median, preload  # noqa: E402
import replication  # noqa: E402
from replication import HarnessError, binary_info, loadgen_bucket, take_binaries  # noqa: E402

PREFIX = "bench:"  # bench/lua/mixed.lua's keys
TARGET_CONVERGE_S = 10.0   # for a 60 s outage
TARGET_BYTES_RATIO = 2.0
TARGET_THROUGHPUT = 0.9


class Node(replication.Node):
    """replication.Node, started with --ring (and its flags) or without."""

    def __init__(self, kvnode, node_id, port, data_dir, ring, extra=()):
        super().__init__(kvnode, node_id, port, data_dir, start=False)
        self.ring, self.extra = ring, list(extra)

    def start(self, ring=True, extra=()):
        return super().start(["--ring", self.ring, *self.extra, *extra] if ring else [])

    def stop(self):
        self.terminate()


def node_metrics(port):
    """{sample name with labels: value} of a kvnode's anti-entropy figures."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("kvnode_anti_entropy_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def wait_serving(nodes, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        states = [node_state(n.port) for n in nodes]
        if all(s == "serving" for s in states):
            return
        if time.monotonic() > deadline:
            raise HarnessError(f"the nodes never all served quorums: {states}")
        time.sleep(0.05)


def total(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def tag_of(entry):
    return (entry[1], entry[2])


class Proxy:
    """kvproxy for run.measure (port, pids)."""

    def __init__(self, kvproxy, ring):
        self.p = Process([kvproxy, "--ring", ring, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        self.port, self.proc, self.name = self.p.port, self.p.proc, "kvproxy"

    def pids(self):
        return [self.proc.pid]


def outage(paths, proxy, nodes, keys, outage_s, rate, conns, put_percent):
    """Part 1 for one outage length."""
    n1, n3 = nodes[0], nodes[2]
    before_kill = holdings(n3.port)
    window = outage_s + 120  # the generator runs until stopped
    argv, gen = loadgen_bucket(paths["loadgen"], proxy.port, (conns, rate / conns), "mixed", window, keys, 7, PREFIX)
    gen_put = put_percent
    try:
        time.sleep(1.0)  # the load is on before the fault
        n3.kill()
        log(f"outage {outage_s} s: n3 killed under {rate} req/s ({gen_put}% PUT)")
        time.sleep(outage_s)
        reference = holdings(n1.port)  # what n1 held when n3 came back
        m_before = {n.id: node_metrics(n.port) for n in nodes if n is not n3}
        t0 = time.monotonic()
        n3.start()
        ready = time.monotonic()
        missed = [k for k, e in reference.items() if k not in before_kill or tag_of(before_kill[k]) < tag_of(e)]
        minimum = sum(8 + len(k.encode()) + len(reference[k][3]) for k in missed)
        caught_up = None
        polls = 0
        while time.monotonic() - ready < 600:
            started = time.monotonic()
            mine = holdings(n3.port)
            polls += 1
            if all(k in mine and tag_of(mine[k]) >= tag_of(e) for k, e in reference.items()):
                caught_up = started - ready
                break
            time.sleep(0.1)
        m_caught = {n.id: node_metrics(n.port) for n in nodes}
    finally:
        gen.kill()
        gen.communicate()
    stop = time.monotonic()
    equal_s = None
    while time.monotonic() - stop < 300:
        held = [holdings(n.port) for n in nodes]
        if held[0] == held[1] == held[2]:
            equal_s = time.monotonic() - stop
            break
        time.sleep(0.2)
    # The exchanges that involve n3: its own (its counters start at 0 with the restart) and its peers'
    # with it; n1 and n2's exchanges with each other go on as they would without the outage.
    with_n3 = 'kvnode_anti_entropy_bytes_total{peer="n3"}'
    moved = total(m_caught["n3"], "kvnode_anti_entropy_bytes_total") + sum(
        m_caught[i].get(with_n3, 0) - m_before[i].get(with_n3, 0) for i in m_before)
    # The same bytes by step of the exchange (kvnode_anti_entropy_step_bytes_total): where they go.
    steps = ("tree", "leaves", "digests", "records", "floors", "purge")
    by_step = {}
    for step in steps:
        of_n3 = f'kvnode_anti_entropy_step_bytes_total{{peer="n3",step="{step}"}}'
        by_step[step] = sum(v for k, v in m_caught["n3"].items() if k.startswith("kvnode_anti_entropy_step_bytes_total")
                            and k.endswith(f'step="{step}"}}')) + sum(
            m_caught[i].get(of_n3, 0) - m_before[i].get(of_n3, 0) for i in m_before)
    row = {"outage_s": outage_s, "offered_rps": rate, "put_percent": put_percent, "keys": keys,
           "missed_keys": len(missed), "minimum_bytes": minimum, "moved_bytes": moved, "moved_by_step": by_step,
           "bytes_ratio": moved / minimum if minimum else None,
           "repaired_keys": total(m_caught["n3"], "kvnode_anti_entropy_keys_repaired_total"),
           "start_s": ready - t0, "caught_up_s": caught_up, "equal_after_stop_s": equal_s, "polls": polls}
    log(f"outage {outage_s} s: {len(missed)} keys missed, caught up "
        f"{'never' if caught_up is None else f'{caught_up:.2f} s'} after restart, {moved / 1e3:.0f} kB moved "
        f"({row['bytes_ratio'] or 0:.2f}x the minimum {minimum / 1e3:.0f} kB; by step "
        f"{', '.join(f'{k} {v / 1e3:.0f} kB' for k, v in by_step.items())}), equal {equal_s} s after the load stopped")
    return row


def restart_all(nodes, ring):
    for n in nodes:
        n.stop()
    for n in nodes:
        n.start(ring=ring)


def rebuilt_text(seconds):
    return "not within 600 s" if seconds is None else f"{seconds:.1f} s"


class RequestRate:
    """kvproxy's count of client requests (kvproxy_quorum_requests_total), sampled every 0.2 s from
    start() to stop(), so that a window's rate can be read over part of it: the rebuild proper, when
    it ends before the window does."""

    def __init__(self, proxy, every=0.2):
        self.proxy, self.every, self.samples, self.stopping = proxy, every, [], threading.Event()
        self.thread = threading.Thread(target=self.run)

    def count(self):
        return sum(v for (name, _), v in replication.scrape(self.proxy.p.admin_port).items()
                   if name == "kvproxy_quorum_requests_total")

    def run(self):
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), self.count()))
            self.stopping.wait(self.every)

    def start(self):
        self.began = time.monotonic()
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join()

    def rate(self, t_from, t_to):
        """Requests per second between t_from and t_to seconds after start(), by the nearest samples."""
        inside = [(t, c) for t, c in self.samples if t_from <= t - self.began <= t_to]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def set_repair(port, busy_percent):
    """POST /admin/repair on a kvnode: its pull's busy percent from now on."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/repair?busy_percent={busy_percent}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        if r.status != 200:
            raise HarnessError(f"POST /admin/repair: HTTP {r.status}")


def alternated(proxy, nodes, keys, seconds, conns, rate, busy_percent, slice_s):
    """A wiped n3 rebuilds under wrk while its pull is switched between busy_percent (on) and 1 %
    (off) every slice_s seconds (POST /admin/repair), until it serves: the rate of each on slice
    against the off slices on either side of it, counted at the proxy. The machine's speed drifts by
    10-20 % over minutes; slices seconds apart in one window cancel that, which windows a minute apart
    cannot. The first 0.4 s of each slice (a third of a shorter one) are left out: a batch under way
    finishes at the old rate."""
    n3 = nodes[2]
    n3.stop()
    shutil.rmtree(n3.data_dir)
    n3.start(extra=["--repair-keys-per-second", str(rate), "--repair-busy-percent", "1"])
    counted = RequestRate(proxy, min(0.2, slice_s / 6)).start()
    slices, stop = [], threading.Event()

    def toggle():
        on, t = True, min(1.0, slice_s)
        while not stop.is_set():
            stop.wait(max(0.0, counted.began + t - time.monotonic()))
            if stop.is_set() or node_state(n3.port) == "serving":
                break
            set_repair(n3.port, busy_percent if on else 1)
            slices.append({"on": on, "from": t})
            on, t = not on, t + slice_s
        # The slice under way when it ended (n3 served, or the window ended) is not counted.
        if slices:
            slices.pop()

    toggler = threading.Thread(target=toggle)
    toggler.start()
    window = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes])
    stop.set()
    toggler.join()
    counted.stop()
    skip = min(0.4, slice_s / 3)
    for s in slices:
        s["rps"] = counted.rate(s["from"] + skip, s["from"] + slice_s)
    ratios = []
    for i, s in enumerate(slices):
        off = [slices[j]["rps"] for j in (i - 1, i + 1) if 0 <= j < len(slices) and slices[j]["rps"]]
        if s["on"] and s["rps"] and off:
            ratios.append(s["rps"] / (sum(off) / len(off)))
    row = {"slice_s": slice_s, "slices": slices, "ratios": ratios, "ratio": median(ratios) if ratios else None,
           "window_rps": window["rps"], "state_after": node_state(n3.port)}
    log(f"alternated every {slice_s} s, busy {busy_percent} % / 1 %: on / off per pair "
        + ", ".join(f"{x:.3f}" for x in ratios) + (f"; median {row['ratio']:.3f}" if ratios else "; no pair"))
    n3.stop()
    n3.start()
    return row


def rebuild(proxy, nodes, keys, seconds, conns, rate, busy_percent, batch_keys=0):
    """n3 down, then wiped and started again: the foreground with n3 simply down (every read then
    needs both others, as while n3 rebuilds, but writes too), with n3 recovering and barely pulling
    (--repair-busy-percent 1: it takes writes and refuses reads, as while it rebuilds, and the pull
    costs next to nothing), while it rebuilds, and right after."""
    n3 = nodes[2]
    n3.stop()
    down = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes[:2]])
    shutil.rmtree(n3.data_dir)
    n3.start(extra=["--repair-keys-per-second", str(rate), "--repair-busy-percent", "1"])
    counted = RequestRate(proxy).start()
    idle = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes])
    counted.stop()
    # The same span as the rebuild's below: from 2 s in (wrk's start) to its end.
    idle["counted_rps"] = counted.rate(2, seconds + 5)
    idle["state_after"] = node_state(n3.port)  # still recovering, or the window says less
    n3.stop()
    shutil.rmtree(n3.data_dir)
    busy = ["--repair-busy-percent", str(busy_percent)] if busy_percent else []
    batch = ["--repair-batch-keys", str(batch_keys)] if batch_keys else []
    n3.start(extra=["--repair-keys-per-second", str(rate), *busy, *batch])
    began = time.monotonic()
    # Rebuilt: n3 serves (it has pulled everything from each peer once: node/incarnation.hpp). Under
    # the load's writes the trees differ a little at any moment, so "in sync" says less. Watched from
    # the start, so that a rebuild shorter than the window shows as such.
    rebuilt = {}

    def watch():
        deadline = began + 600
        while time.monotonic() < deadline:
            try:
                if node_state(n3.port) == "serving":
                    rebuilt["s"] = time.monotonic() - began
                    return
            except OSError:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    counted = RequestRate(proxy).start()
    during = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes])
    counted.stop()
    repaired = total(node_metrics(n3.port), "kvnode_anti_entropy_keys_repaired_total")
    watcher.join()
    # The window's rate while the rebuild ran: a rebuild shorter than the window ends it in the
    # state of "right after" (three replicas serving reads), slower than "recovering" on two cores.
    during["counted_rps"] = counted.rate(2, min(rebuilt.get("s", seconds + 5), seconds + 5))
    after = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes])
    row = {"down": down, "recovering_idle": idle, "during": during, "after": after, "rebuilt_s": rebuilt.get("s"),
           "repaired_in_window": repaired, "ratio": during["rps"] / after["rps"],
           "ratio_down": during["rps"] / down["rps"], "ratio_idle": during["rps"] / idle["rps"],
           "ratio_idle_rebuilding": (during["counted_rps"] / idle["counted_rps"]
                                     if during["counted_rps"] and idle["counted_rps"] else None)}
    log(f"during a rebuild at {rate} keys/s, busy {busy_percent or 'default'} %, batches of {batch_keys or 'default'} "
        f"keys: {during['rps']:.0f} req/s "
        f"p99 {during['p99']} us ({repaired:.0f} keys pulled in the window, rebuilt {rebuilt_text(row['rebuilt_s'])} "
        f"after its start, the window {seconds} s); right after: {after['rps']:.0f} req/s p99 {after['p99']} us "
        f"({row['ratio']:.3f}x); n3 down just before: {down['rps']:.0f} req/s ({row['ratio_down']:.3f}x); n3 "
        f"recovering at 1 % busy: {idle['rps']:.0f} req/s p99 {idle['p99']} us, {idle['state_after']} at its end "
        f"({row['ratio_idle']:.3f}x); counted at the proxy, while the rebuild ran: {during['counted_rps'] or 0:.0f} "
        f"req/s against {idle['counted_rps'] or 0:.0f} ({row['ratio_idle_rebuilding'] or 0:.3f}x)")
    n3.stop()
    n3.start()
    return row


def foreground(proxy, nodes, keys, rounds, seconds, conns, rebuild_rate, rebuild_busy, rebuilds, rebuild_batch=0,
               slice_s=0):
    """Part 2: with and without --ring, alternated; then `rebuilds` times during a rebuild against
    right after it, and (slice_s) against itself with the pull switched off and on."""
    rows = []
    for rnd in range(rounds):
        for config in (("ring", "no-ring") if rnd % 2 == 0 else ("no-ring", "ring")):
            restart_all(nodes, config == "ring")
            r = measure(proxy, "mixed.lua", conns, seconds, keys, [n.pid for n in nodes])
            r.update(config=config, round=rnd)
            rows.append(r)
            log(f"foreground {config} round {rnd + 1}/{rounds}: {r['rps']:.0f} req/s p99 {r['p99']} us, "
                f"nodes {r['nodes_us_per_req']:.1f} us/req, errors {r['errors']}")
    restart_all(nodes, True)
    runs = [rebuild(proxy, nodes, keys, seconds, conns, rebuild_rate, rebuild_busy, rebuild_batch) for _ in range(rebuilds)]
    alternations = [alternated(proxy, nodes, keys, seconds, conns, rebuild_rate, rebuild_busy or 20, slice_s)
                    for _ in range(rebuilds if slice_s else 0)]
    return {"rounds": rows, "seconds": seconds, "alternated": alternations,
            "rebuild": {"rate": rebuild_rate, "busy_percent": rebuild_busy, "batch_keys": rebuild_batch, "runs": runs}}


def write_report(out, report):
    lines = [f"## Anti-entropy ({report['date']})", "",
             f"Command: `{report['command']}`. Three kvnodes (RocksDB) with `--ring` on a ring of `replicas: 3`, one "
             f"kvproxy, {report['keys']} keys of about 60 bytes preloaded, everything on 127.0.0.1 of this 2-core "
             "machine. Binaries: " + ", ".join(f"{k} {v['version']} ({v['sha256']})" for k, v in report["binaries"].items())
             + ".", "",
             "### Convergence after an outage under load", "",
             "| outage | offered load | keys missed | caught up after restart | equal after the load stopped | "
             "bytes moved | minimum (missed keys' key + value) | ratio | by step: tree, leaves, digests, records |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["outages"]:
        caught = "never (600 s)" if r["caught_up_s"] is None else f"{r['caught_up_s']:.2f} s"
        equal = "no (300 s)" if r["equal_after_stop_s"] is None else f"{r['equal_after_stop_s']:.2f} s"
        ratio = "-" if r["bytes_ratio"] is None else f"{r['bytes_ratio']:.2f}x"
        steps = r.get("moved_by_step", {})
        by_step = ", ".join(f"{steps.get(s, 0) / 1e3:.0f}" for s in ("tree", "leaves", "digests", "records")) + " kB"
        lines.append(f"| {r['outage_s']} s | {r['offered_rps']} req/s, {r['put_percent']}% PUT | {r['missed_keys']} | "
                     f"{caught} | {equal} | {r['moved_bytes'] / 1e3:.0f} kB | {r['minimum_bytes'] / 1e3:.0f} kB | {ratio} | {by_step} |")
    lines += ["", "Caught up: n3's own store holds every key at least as new as n1 held at the restart "
              "(n3 started in the \"start\" time before it, not counted: "
              + ", ".join(f"{r['start_s']:.2f} s" for r in report["outages"]) + "). Bytes: request and response "
              "bodies of every exchange that involves n3 (its own, and n1's and n2's with it) from the restart to the "
              "poll that found it caught up, tree comparisons included.",
              ""]
    fg = report.get("foreground")
    if fg:
        lines += ["### Foreground cost (wrk, the mix, closed loop)", "",
                  "| config | req/s (median) | p99 (median) | kvnodes CPU per request |", "|---|---|---|---|"]
        by = {}
        for r in fg["rounds"]:
            by.setdefault(r["config"], []).append(r)
        for config, rs in by.items():
            lines.append(f"| {config} | {median([r['rps'] for r in rs]):.0f} | {median([r['p99'] for r in rs]):.0f} us | "
                         f"{median([r['nodes_us_per_req'] for r in rs]):.1f} us |")
        ratios = [a["rps"] / b["rps"] for a in fg["rounds"] if a["config"] == "ring"
                  for b in fg["rounds"] if b["config"] == "no-ring" and b["round"] == a["round"]]
        rb = fg["rebuild"]
        lines += ["", f"with --ring / without, per round: {', '.join(f'{x:.3f}' for x in ratios)} "
                  f"(median {median(ratios):.3f}; target >= {TARGET_THROUGHPUT}).", "",
                  f"A wiped n3's rebuild, {len(rb['runs'])} times (--repair-keys-per-second {rb['rate']}, "
                  f"--repair-busy-percent {rb['busy_percent'] or 'default'}, --repair-batch-keys "
                  f"{rb['batch_keys'] or 'default'}), wrk for {fg['seconds']} s each: n3 "
                  "simply down (nothing to rebuild); from n3's start on an empty directory with its pull at "
                  "--repair-busy-percent 1 (recovering: it takes writes and refuses reads, and barely pulls); "
                  "again from an empty directory at the settings above (during); then once it serves.",
                  "", "| run | rebuilt after | keys pulled in the window | n3 down | recovering, pull at 1 % | during | "
                  "right after | during / after | during / down | during / recovering at 1 % |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(rb["runs"]):
            idle = r["recovering_idle"]
            lines.append(f"| {i + 1} | {rebuilt_text(r['rebuilt_s'])} | {r['repaired_in_window']:.0f} | "
                         f"{r['down']['rps']:.0f} req/s, p99 {r['down']['p99']} us | "
                         f"{idle['rps']:.0f} req/s, p99 {idle['p99']} us ({idle['state_after']} at its end) | "
                         f"{r['during']['rps']:.0f} req/s, p99 {r['during']['p99']} us | "
                         f"{r['after']['rps']:.0f} req/s, p99 {r['after']['p99']} us | {r['ratio']:.3f}x | "
                         f"{r['ratio_down']:.3f}x | {r['ratio_idle']:.3f}x |")
        if rb["runs"]:
            lines += ["", f"Medians: during / after {median([r['ratio'] for r in rb['runs']]):.3f}x, during / down "
                      f"{median([r['ratio_down'] for r in rb['runs']]):.3f}x, during / recovering at 1 % "
                      f"{median([r['ratio_idle'] for r in rb['runs']]):.3f}x"
                      f" (target >= {TARGET_THROUGHPUT}). A recovering replica answers no quorum read, so each "
                      "read waits for both of the others, as with a replica down; but it takes writes, and a "
                      "replica down leaves the two cores to one node fewer, so \"down\" is faster than \"right "
                      "after\". \"Recovering at 1 %\" is the same state as during the rebuild with the pull all "
                      "but stopped: during / recovering at 1 % is the pull's own cost.", ""]
            counted = [r.get("ratio_idle_rebuilding") for r in rb["runs"]]  # not in reports before 2026-12-05 23:15
            if all(counted):
                lines += [f"Counted at the proxy (its request counter, sampled every 0.2 s), from 2 s into each window "
                          "to its end, or to the rebuild's end when that comes first (the rest of the window is "
                          "the state of \"right after\", three replicas serving reads): while the rebuild ran / "
                          "recovering at 1 %, per run: " + ", ".join(
                              f"{r['during']['counted_rps']:.0f} / {r['recovering_idle']['counted_rps']:.0f} req/s = "
                              f"{r['ratio_idle_rebuilding']:.3f}x" for r in rb["runs"]) +
                          f"; median {median(counted):.3f}x (target >= {TARGET_THROUGHPUT}).", ""]
        alt = fg.get("alternated")
        if alt:
            ratios = [x for a in alt for x in a["ratios"]]
            lines += [f"Alternated ({len(alt)} more rebuilds of a wiped n3, wrk for {fg['seconds']} s each): n3's pull "
                      f"switched every {alt[0]['slice_s']} s between --repair-busy-percent "
                      f"{rb['busy_percent'] or 20} (on) and 1 (off) through POST /admin/repair while it rebuilt; each on "
                      "slice's rate (counted at the proxy, its first 0.4 s left out) against the mean of the off "
                      "slices beside it. Slices seconds apart cancel the machine's drift, which windows a minute "
                      "apart do not.", "", "| run | on / off, per on slice | median |", "|---|---|---|"]
            for i, a in enumerate(alt):
                pairs = ", ".join(f"{x:.3f}" for x in a["ratios"]) or "-"
                mid = "-" if a["ratio"] is None else f"{a['ratio']:.3f}x"
                lines.append(f"| {i + 1} | {pairs} | {mid} |")
            if ratios:
                lines += ["", f"All {len(ratios)} on slices: median {median(ratios):.3f}x, mean "
                          f"{sum(ratios) / len(ratios):.3f}x (target >= {TARGET_THROUGHPUT}).", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(report, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--outages", default="10,60,300", help="outage lengths in seconds, comma-separated")
    ap.add_argument("--rate", type=int, default=2000, help="offered req/s during the outages (loadgen)")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="foreground rounds (0: none)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rebuild-rate", type=int, default=50000, help="--repair-keys-per-second of the rebuild runs")
    ap.add_argument("--rebuild-busy-percent", type=int, default=0,
                    help="--repair-busy-percent of the rebuild runs (0: kvnode's default)")
    ap.add_argument("--rebuild-batch-keys", type=int, default=0,
                    help="--repair-batch-keys of the rebuild runs (0: kvnode's default)")
    ap.add_argument("--rebuilds", type=int, default=3, help="rebuild runs, each during against right after")
    ap.add_argument("--alternate-seconds", type=float, default=2.0,
                    help="after the rebuild runs, as many more with n3's pull switched on and off every this many "
                         "seconds (0: none)")
    ap.add_argument("--node-flags", default="",
                    help="more kvnode flags for every node and every start, as one string (e.g. '--repair-nice 0')")
    ap.add_argument("--quick", action="store_true", help="small and short: the CI's smoke run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.keys, args.outages, args.rounds, args.seconds, args.rebuild_rate, args.rebuilds = 3000, "3", 2, 1, 1000, 1
        args.alternate_seconds = 0.3
    out = args.out or (os.path.join(args.build, "bench-quick", "ANTI_ENTROPY.md") if args.quick
                       else os.path.join(ROOT, "bench", "ANTI_ENTROPY.md"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    work = tempfile.mkdtemp(prefix="kvring-ae-bench-")
    running = []
    try:
        paths = take_binaries(args.build, os.path.join(work, "bin"))
        ports = free_ports(3)
        ring = write_ring(os.path.join(work, "ring.yaml"), [(f"n{i + 1}", p) for i, p in enumerate(ports)], replicas=3)
        nodes = [Node(paths["kvnode"], f"n{i + 1}", p, os.path.join(work, f"n{i + 1}"), ring, shlex.split(args.node_flags))
                 for i, p in enumerate(ports)]
        running += nodes
        for n in nodes:
            n.start()
        wait_serving(nodes)  # new directories first check with their peers (node/incarnation.hpp)
        proxy = Proxy(paths["kvproxy"], ring)
        running.append(proxy.p)
        log(f"preloading {args.keys} keys")
        preload(proxy.port, args.keys, conns=8, prefix=PREFIX, error=HarnessError)
        report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "keys": args.keys,
                  "command": "bench/anti_entropy.sh " + " ".join(sys.argv[1:]), "binaries": binary_info(paths),
                  "outages": []}
        for d in (int(x) for x in args.outages.split(",") if x):
            report["outages"].append(outage(paths, proxy, nodes, args.keys, d, args.rate, args.conns, 10))
        if args.rounds:
            report["foreground"] = foreground(proxy, nodes, args.keys, args.rounds, args.seconds, 16, args.rebuild_rate,
                                              args.rebuild_busy_percent, args.rebuilds, args.rebuild_batch_keys,
                                              args.alternate_seconds)
        write_report(out, report)
        log(f"wrote {out}")
    finally:
        for p in reversed(running):
            try:
                p.stop() if isinstance(p, Node) else p.terminate()
            except Exception as e:  # noqa: BLE001
                log(f"stopping: {e}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
