"""Jepsen-style linearizability runs against a real kvring cluster: the workload, the nemeses and the
check, shared by the suite (test_linearizable.py: a few seconds per nemesis) and the long run
(bench/linearizability.py: minutes per nemesis, figures to bench/LINEARIZABILITY.md).

The cluster: kvnodes n1..n4 and two kvproxies, each on its own copy of ring A (n1..n3); ring B adds n4.
With replicas (replicas: 3), ring A is n1..n4 with every key on three of them, and the nemeses are the
ones that strike nodes and proxies (ring changes with replicas are not there yet); kvproxy
--unsafe-read-one is the broken mode there (a read from one replica, no write-back).
Clients: threads, each with a keep-alive connection to each proxy, picking a proxy per operation, on
a few keys so that the two proxies write the same keys at once. Every operation is recorded with its
invoke and completion times and its outcome (tools/histcheck.py):
  get  200 -> ok with the value, 404 -> ok absent; anything else -> fail (a read that returned nothing)
  put  200 -> ok; 4xx -> fail; a 503 "is down" (the proxy sent nothing) or one that says
       X-KV-Outcome: none (no replica stored it) -> fail; any other 5xx, a timeout or a broken
       connection -> info (it may have happened, now or later)
  del  200 -> ok "present", 404 -> ok "absent"; otherwise as put
Values are unique per write. After the nemesis, everything is healed, any ring change is finished,
and every key is read through each proxy: those reads are in the history too, so a write lost at the
end shows as a final read older than it.

Nemeses (one per run, repeated until its time is up):
  rebalance         ring-rebalance apply A -> B, then B -> A, ...
  rebalance-killed  apply killed with SIGKILL after its k-th step line (k cycling through every step),
                    then run again to the end; every third round is a rebalance-partial instead
  rebalance-partial apply stopped after the first proxy took dual_write and before the second did;
                    the load runs through both, one in each phase, then apply runs again to the end
  kill-node         kill -9 of a node, restarted on its port with its data
  kill-proxy        kill -9 of a proxy, restarted on its ports (it comes back in its saved phase)
  stop-node         SIGSTOP of a node, then SIGCONT
"""
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

from kvtest import (Cluster, RING_REBALANCE, SANITIZER, SOURCE, _owner_lines, admin, free_ports, migration,
                    proxy_stats, q, start_retrying_busy, wait_until)

sys.path.insert(0, os.path.join(SOURCE, "tools"))
import histcheck  # noqa: E402

WINDOW_CANDIDATES = [f"window-{i}" for i in range(60)]
# How long one apply may take. Much of its cost is per range: the 3 -> 5 replicas change moves all of
# the key space, 186,751 ranges of the default 32768 vnodes. With an iterator per range that took 85 s
# under AddressSanitizer on an idle 2-core machine (over 120 s once in CI); with one per request
# (node/rocksdb_scan.hpp) about 10 s, and about 1 s in the release build.
APPLY_TIMEOUT = 600 if SANITIZER else 120
NEMESES = ["rebalance", "rebalance-killed", "kill-node", "kill-proxy", "stop-node"]


class LinCluster:
    """Nodes n1..n4, rings A (n1..n3) and B (n1..n4), two proxies on A on fixed ports (a restart keeps
    them, so clients and ring-rebalance find it again)."""

    def __init__(self, h, proxies=2, unversioned=False, replicas=1, read_one=False, cycle_start=0, cycle="all",
                 new_set_only=False):
        self.h = h
        kind = cycle
        self.cluster = Cluster(h, ["n1", "n2", "n3", "n4"] + (["n5"] if replicas > 1 else []))
        if replicas > 1:
            # Ring changes go round a cycle that makes every kind of change a replicated ring has: n4
            # taken out of the replica sets and put back, n2 reweighed, 3 -> 5 -> 3 replicas (n5
            # joining and leaving), 3 -> 1 -> 3.
            a = self.cluster.write_ring(["n1", "n2", "n3", "n4"], name="ring-a.yaml", replicas=replicas)
            cycle = [("A", a),
                     ("B", self.cluster.write_ring(["n1", "n2", "n3"], name="ring-b.yaml", replicas=replicas)),
                     ("A", a),
                     ("C", self.cluster.write_ring(["n1", ("n2", 2), "n3", "n4"], name="ring-c.yaml", replicas=replicas)),
                     ("D", self.cluster.write_ring(["n1", "n2", "n3", "n4", "n5"], name="ring-d.yaml", replicas=5)),
                     ("A", a),
                     ("E", self.cluster.write_ring(["n1", "n2", "n3", "n4"], name="ring-e.yaml", replicas=1))]
            if kind == "replace":
                # Most of each replica set replaced at once: A's sets of n1..n4 against R's of n1, n2, n5,
                # so half the keys keep one member alone, which a majority of their new set can do
                # without: what joint quorums are for.
                cycle = [("A", a), ("R", self.cluster.write_ring(["n1", "n2", "n5"], name="ring-r.yaml",
                                                                 replicas=replicas))]
        else:
            cycle = [("A", self.cluster.write_ring(["n1", "n2", "n3"], name="ring-a.yaml")),
                     ("B", self.cluster.write_ring(["n1", "n2", "n3", "n4"], name="ring-b.yaml"))]
        self.cycle = cycle
        self.replicas_of = {name: (1 if name == "E" or replicas == 1 else 5 if name == "D" else replicas)
                            for name, _ in cycle}
        # The ring of the cycle the proxies route by, once no change is in progress; they start on it.
        self.at = cycle_start % len(cycle)
        self.ring_a = cycle[self.at][1]
        self.unversioned = unversioned  # the broken mode: the protocol as it was before versions
        self.read_one = read_one  # the broken mode with replicas: a read from one replica
        self.new_set_only = new_set_only  # the broken mode of ring changes with replicas: no joint quorums
        ports = free_ports(2 * proxies)
        self.proxy_ports = ports[:proxies]
        self.admin_ports = ports[proxies:]
        self.proxy_rings = []
        self.proxies = []
        for i in range(proxies):
            path = os.path.join(self.cluster.dir, f"proxy{i}.yaml")
            with open(self.ring_a) as src, open(path, "w") as dst:
                dst.write(src.read())
            self.proxy_rings.append(path)
            self.proxies.append(self._start_proxy(i))
        self.apply_log = []
        # Keys that move from A to B, for the nemesis's own writes (rebalance-partial), and what it
        # needs to record them: set by run().
        a, b = replica_sets(self.ring_a, WINDOW_CANDIDATES), replica_sets(self.next_ring(), WINDOW_CANDIDATES)
        self.window_keys = [k for k in WINDOW_CANDIDATES if set(a[k]) != set(b[k])][:10]
        self.recorder, self.conns, self.round = None, {}, 0

    def _start_proxy(self, i):
        extra = ["--response-timeout-ms", "1500"]
        if self.unversioned:
            extra.append("--unsafe-unversioned")
        if self.read_one:
            extra.append("--unsafe-read-one")
        if self.new_set_only:
            extra.append("--unsafe-new-set-only")
        return self.h.proxy(self.proxy_rings[i], listen=f"127.0.0.1:{self.proxy_ports[i]}",
                            admin=f"127.0.0.1:{self.admin_ports[i]}", checks=Cluster.CHECKS, extra=tuple(extra))

    def restart_proxy(self, i):
        self.proxies[i] = start_retrying_busy(lambda: self._start_proxy(i))

    def restart_node(self, node_id):
        port = self.cluster.nodes[node_id].port
        self.cluster.start_node(node_id, port)

    def next_ring(self):
        return self.cycle[(self.at + 1) % len(self.cycle)][1]

    def step_name(self):
        """The change apply makes next, as "A->B"."""
        return f"{self.cycle[self.at][0]}->{self.cycle[(self.at + 1) % len(self.cycle)][0]}"

    def advance(self):
        self.at = (self.at + 1) % len(self.cycle)

    def apply_argv(self, timeout_ms=5000):
        old, new = self.cycle[self.at][1], self.next_ring()
        argv = [RING_REBALANCE, "apply", "--from", old, "--to", new, "--progress", "lines",
                "--timeout-ms", str(timeout_ms)]
        for a in self.admin_ports:
            argv += ["--proxy-admin", f"127.0.0.1:{a}"]
        if self.unversioned:
            argv.append("--unsafe-unversioned-copy")
        return argv

    def apply(self, timeout=APPLY_TIMEOUT):
        """apply to the next ring of the cycle, to its end. Raises with its output when it fails."""
        try:
            res = subprocess.run(self.apply_argv(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            # What apply had written, and what each node wrote last: where it waited.
            said = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            nodes = "".join(f"--- {i}, its last lines:\n" + "".join(n.lines[-25:])
                            for i, n in sorted(self.cluster.nodes.items()))
            raise RuntimeError(f"apply {self.step_name()} did not end within {timeout} s; it wrote:\n{said}\n{nodes}")
        self.apply_log.append(res.stderr)
        if res.returncode != 0:
            raise RuntimeError(f"apply exited {res.returncode}:\n{res.stderr}")
        self.advance()
        return res.stderr

    def apply_killed_after(self, step_lines):
        """apply, killed with SIGKILL once it has written `step_lines` step lines (or let finish when it
        has fewer). Returns True when it was killed."""
        p = subprocess.Popen(self.apply_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen, out = 0, []
        for line in p.stderr:
            out.append(line)
            if "step:" in line:
                seen += 1
                if seen >= step_lines:
                    p.kill()
                    break
        p.wait(60)
        p.stderr.close()
        self.apply_log.append("".join(out))
        if p.returncode == 0:
            self.advance()
            return False
        return True

    def healthy(self):
        """Every node up through every proxy (their health checks have seen them)."""
        return all_up(self.admin_ports)


def replica_sets(ring, keys):
    """{key: [node ids]}: each key's replica set (its owner alone with replicas 1), as ring-rebalance
    computes it."""
    return {f[0]: f[4].split(",") if len(f) > 4 else [f[1]] for f in _owner_lines(ring, keys)}


def all_up(admin_ports):
    """Every node UP in the stats of every proxy whose admin listener is in `admin_ports` (loopback
    ports, or (host, port)); False when one cannot be asked."""
    for a in admin_ports:
        try:
            stats = proxy_stats(a)
        except (OSError, ValueError, http.client.HTTPException):
            return False
        if any(n.get("state") != "UP" for n in stats.get("nodes", [])):
            return False
    return True


class Workload:
    """Client threads on `keys` through `ports` (loopback ports, or (host, port)), recording into
    `recorder` until stop(), or until each has made `max_ops` operations."""

    def __init__(self, ports, keys, clients, recorder, seed=1, timeout=3.0, think=0.0, max_ops=None):
        self.ports, self.keys, self.recorder = ports, keys, recorder
        self.timeout, self.think, self.max_ops = timeout, think, max_ops
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c, random.Random(seed * 1000 + c)), daemon=True)
                         for c in range(clients)]
        self.errors = []

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, client, rnd):
        conns = {}
        n = 0
        made = 0
        try:
            while not self._stop.is_set() and (self.max_ops is None or made < self.max_ops):
                made += 1
                port = rnd.choice(self.ports)
                key = rnd.choice(self.keys)
                r = rnd.random()
                if r < 0.5:
                    execute(conns, port, self.recorder, client, key, "get", None, self.timeout)
                elif r < 0.85:
                    n += 1
                    execute(conns, port, self.recorder, client, key, "put", f"c{client}-{n}", self.timeout)
                else:
                    execute(conns, port, self.recorder, client, key, "del", None, self.timeout)
                if self.think:
                    time.sleep(rnd.random() * self.think)
        except Exception as e:  # a bug in the workload itself: the run must fail, not hang
            self.errors.append(repr(e))
        finally:
            for c in conns.values():
                c.close()


def execute(conns, port, recorder, process, key, f, value, timeout):
    """One operation through the proxy on `port` (a loopback port, or (host, port)), recorded with its
    outcome; `conns` holds the keep-alive connections, by `port`."""
    handle = recorder.invoke(process, key, f, value)
    method, target, body = {
        "get": ("GET", f"/get?key={q(key)}", None),
        "put": ("POST", f"/put?key={q(key)}", json.dumps({"value": value})),
        "del": ("DELETE", f"/del?key={q(key)}", None),
    }[f]
    try:
        conn = conns.get(port)
        if conn is None:
            host, p = port if isinstance(port, tuple) else ("127.0.0.1", port)
            conn = conns[port] = http.client.HTTPConnection(host, p, timeout=timeout)
        conn.request(method, target, body=body, headers={"Content-Type": "application/json"} if body else {})
        res = conn.getresponse()
        status, text = res.status, res.read()
        outcome = res.getheader("X-KV-Outcome")
        if res.getheader("Connection", "").lower() == "close":
            conn.close()
            conns.pop(port, None)
    except (OSError, http.client.HTTPException):
        c = conns.pop(port, None)
        if c:
            c.close()
        recorder.complete(handle, "fail" if f == "get" else "info")
        return
    detail = ""
    try:
        doc = json.loads(text)
        detail = doc.get("detail", "") if isinstance(doc, dict) else ""
    except ValueError:
        doc = None
    why = {"status": status, "detail": detail}  # kept on the operations that did not succeed
    if f == "get":
        if status == 200 and isinstance(doc, dict) and "value" in doc:
            recorder.complete(handle, "ok", doc["value"])
        elif status == 404:
            recorder.complete(handle, "ok", None)
        else:
            recorder.complete(handle, "fail", **why)
        return
    if status == 200:
        recorder.complete(handle, "ok", "present" if f == "del" else None)
    elif status == 404 and f == "del":
        recorder.complete(handle, "ok", "absent")
    elif 400 <= status < 500 or (status == 503 and (detail.endswith(" is down") or outcome == "none")):
        recorder.complete(handle, "fail", **why)
    else:
        recorder.complete(handle, "info", **why)


# --- nemeses ---

def _rebalance(lc, rnd, deadline, log):
    while time.monotonic() < deadline:
        step = lc.step_name()
        lc.apply()
        log.append("apply " + step)
        time.sleep(rnd.uniform(0.1, 0.5))


def _apply_stopped_after_one_proxy(lc, rnd, log):
    """apply stopped after the first proxy took dual_write and before the second did (as when the second
    cannot be reached, or apply dies between the two): the first proxy's begin step is taken here as
    apply takes it. The load goes on through both, one in each phase, then apply runs again to the end
    (it resumes at begin: the copy is not started before every proxy holds both rings)."""
    new = lc.next_ring()
    fp = migration(lc.admin_ports[0])["fingerprint"]
    with open(new) as f:
        status, body = admin(lc.admin_ports[0], "POST", f"/admin/migration/begin?from={fp}", f.read())
    if status != 200:
        raise RuntimeError(f"begin on proxy 0: {status} {body}")
    log.append(f"{lc.step_name()}: proxy 0 in dual_write, proxy 1 not")
    # On keys of their own (the load does not touch them, so nothing heals what this does): a moving
    # key written through the proxy in dual_write, then through the one still on OLD, then read.
    # Only the old owner gets the second write; the copy must carry it over the first.
    for n, key in enumerate(lc.window_keys):
        lc.round += 1
        for port, f, value in ((lc.proxy_ports[0], "put", f"w{lc.round}-0"), (lc.proxy_ports[1], "put", f"w{lc.round}-1"),
                               (lc.proxy_ports[1], "get", None)):
            execute(lc.conns, port, lc.recorder, "window", key, f, value, 5.0)
    time.sleep(rnd.uniform(0.5, 1.5))


def _rebalance_killed(lc, rnd, deadline, log):
    k = 0
    while time.monotonic() < deadline:
        k += 1
        if k % 3 == 0:
            _apply_stopped_after_one_proxy(lc, rnd, log)
        else:
            step = lc.step_name()
            killed = lc.apply_killed_after(1 + (k // 3 + k) % 6)
            log.append(f"apply {step} killed={killed}")
            time.sleep(rnd.uniform(0.1, 0.8))
        lc.apply()
        log.append("apply rerun to the end")


def _rebalance_partial(lc, rnd, deadline, log):
    while time.monotonic() < deadline:
        _apply_stopped_after_one_proxy(lc, rnd, log)
        lc.apply()
        log.append("apply rerun to the end")


def _kill_node(lc, rnd, deadline, log):
    while time.monotonic() < deadline:
        node_id = rnd.choice(sorted(lc.cluster.nodes))
        lc.cluster.nodes[node_id].kill()
        log.append(f"kill -9 {node_id}")
        time.sleep(rnd.uniform(0.3, 1.0))
        lc.restart_node(node_id)
        time.sleep(rnd.uniform(0.5, 1.5))


def _kill_proxy(lc, rnd, deadline, log):
    while time.monotonic() < deadline:
        i = rnd.randrange(len(lc.proxies))
        lc.proxies[i].kill()
        log.append(f"kill -9 proxy {i}")
        time.sleep(rnd.uniform(0.2, 0.8))
        lc.restart_proxy(i)
        time.sleep(rnd.uniform(0.5, 1.5))


def _stop_node(lc, rnd, deadline, log):
    while time.monotonic() < deadline:
        node_id = rnd.choice(sorted(lc.cluster.nodes))
        node = lc.cluster.nodes[node_id]
        os.kill(node.pid, signal.SIGSTOP)
        log.append(f"SIGSTOP {node_id}")
        try:
            time.sleep(rnd.uniform(0.5, 2.0))
        finally:
            os.kill(node.pid, signal.SIGCONT)
        time.sleep(rnd.uniform(0.5, 1.5))


def _rebalance_kill_node(lc, rnd, deadline, log):
    """A ring change with a node killed in the middle of it (at a random moment of apply: a proxy step,
    the copy or the clean-up) and started again; apply, when the node it needed was gone, runs again
    to the end. With 3 or 5 replicas on both sides every key keeps a majority of its old and of its new
    set: no request may fail (the changes to and from replicas 1 run without a kill)."""
    while time.monotonic() < deadline:
        step = lc.step_name()
        if any(lc.replicas_of[name] == 1 for name in step.split("->")):
            lc.apply()  # a key with one replica fails while it is down, rightly: no kill
            log.append(f"apply {step} (replicas 1 on one side: no kill)")
            continue
        p = subprocess.Popen(lc.apply_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rnd.uniform(0.05, 0.6))
        node_id = rnd.choice(sorted(lc.cluster.nodes))
        lc.cluster.nodes[node_id].kill()
        log.append(f"apply {step} running; kill -9 {node_id}")
        time.sleep(rnd.uniform(0.3, 0.8))
        lc.restart_node(node_id)
        _, err = p.communicate(timeout=120)
        lc.apply_log.append(err)
        if p.returncode == 0:
            lc.advance()
            log.append("apply done through the kill")
        else:
            lc.apply()
            log.append("apply rerun to the end")
        time.sleep(rnd.uniform(0.2, 0.8))


NEMESIS_RUNS = {"rebalance": _rebalance, "rebalance-killed": _rebalance_killed,
                "rebalance-partial": _rebalance_partial, "kill-node": _kill_node,
                "kill-proxy": _kill_proxy, "stop-node": _stop_node, "rebalance-kill-node": _rebalance_kill_node}


CYCLE_START = {"rebalance-killed": 3, "rebalance-partial": 5}  # C -> D -> A ...; A -> E -> A ...

# With replicas: ring changes move replica sets (joint quorums, ../shared/REPLICATION.md guarantee 8).
REPLICATED_NEMESES = ["kill-node", "stop-node", "kill-proxy", "rebalance", "rebalance-killed", "rebalance-partial",
                      "rebalance-kill-node"]


def run(h, nemesis, seconds, keys=20, clients=6, seed=1, unversioned=False, replicas=1, read_one=False,
        cycle="all", new_set_only=False):
    """One run: cluster, load, `nemesis` for `seconds`, heal, final reads, check. Returns a summary
    dict (histcheck's result, plus the nemesis log and the operations of the load that did not
    succeed, by outcome) and the history. With replicas, `cycle` "replace" makes the ring changes go
    between A and R (most of each replica set replaced) instead of round every kind of change."""
    if replicas > 1 and nemesis not in REPLICATED_NEMESES:
        raise ValueError(f"{nemesis}: not a nemesis for replicas: {replicas}")
    # With replicas the nemeses that change the ring start at different points of the cycle, so that the
    # suite's short runs make every kind of change between them.
    start = CYCLE_START.get(nemesis, 0) if replicas > 1 and cycle == "all" else 0
    lc = LinCluster(h, unversioned=unversioned, replicas=replicas, read_one=read_one, cycle_start=start, cycle=cycle,
                    new_set_only=new_set_only)
    rnd = random.Random(seed)
    recorder = histcheck.Recorder()
    lc.recorder = recorder
    key_names = [f"lin-{i}" for i in range(keys)]
    load = Workload(lc.proxy_ports, key_names, clients, recorder, seed=seed).start()
    log = []
    started = time.monotonic()
    try:
        time.sleep(0.3)
        NEMESIS_RUNS[nemesis](lc, rnd, started + seconds, log)
    finally:
        load.stop()
    # Heal: every process running, every node up through every proxy, no ring change half done.
    if not wait_until(lc.healthy, timeout=30):
        raise RuntimeError("the cluster did not heal within 30 s")
    final_started = time.monotonic()
    final_reads(recorder, lc.proxy_ports, key_names + (lc.window_keys if lc.round else []))
    for c in lc.conns.values():
        c.close()
    result = histcheck.check_history(recorder.ops())
    summary = result_summary(result)
    summary.update(nemesis=nemesis, seconds=round(final_started - started, 1), log=log,
                   workload_errors=load.errors, unversioned=unversioned, replicas=replicas, read_one=read_one,
                   cycle=cycle, new_set_only=new_set_only,
                   not_ok=not_ok(recorder))
    return summary, recorder, result


def final_reads(recorder, ports, keys):
    """Every key read through each proxy in `ports` (as in execute), into the history as process
    "final": a write lost at the end shows as a final read older than it. A read that fails (a node
    still coming up) is tried again, up to 20 times."""
    conns = {}
    try:
        for port in ports:
            for key in keys:
                for _ in range(20):
                    before = len(recorder.ops())
                    execute(conns, port, recorder, "final", key, "get", None, 5.0)
                    if recorder.ops()[before]["outcome"] == "ok":
                        break
                    time.sleep(0.1)
    finally:
        for c in conns.values():
            c.close()


def not_ok(recorder):
    """{outcome: count} of the load's operations that did not succeed (final reads left out)."""
    counts = {}
    for o in recorder.ops():
        if o["process"] != "final" and o["outcome"] != "ok":
            counts[o["outcome"]] = counts.get(o["outcome"], 0) + 1
    return counts


NO_MAJORITY = "No majority of the replicas of this key answered: "


def with_one_replica_away(ops):
    """The load's operations that did not succeed though at most one replica of their key was away: all
    but kvproxy's 503s that name two or more replicas that did not answer (two of three away at once, a
    node killed and another starting again, say, is a failure the store owes no one)."""
    def two_away(o):
        detail = o.get("detail") or ""
        return detail.startswith(NO_MAJORITY) and len(set(re.findall(r"\b(n\d+) \(", detail))) >= 2
    return [o for o in ops if o["process"] != "final" and o["outcome"] != "ok" and not two_away(o)]


def result_summary(result):
    """The figures of a histcheck result: operations, keys, failing and unknown keys, lost writes,
    anomalies (without the per-key details)."""
    summary = result.to_json()
    summary.pop("details", None)
    return summary
