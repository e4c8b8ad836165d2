#!/usr/bin/python3
"""Replication side by side: kvproxy with `replicas: 1` against `replicas: 3`, in one run on the same three
kvnodes (RocksDB, fresh data directories), and one replica killed and restarted under load.

Started by bench/replication.sh, which builds first. Three parts:

1. Closed loop (wrk, one thread, as bench/run.py measures req/s): three kvproxies on the same nodes, one on
   a ring with `replicas: 1`, one on the same ring with `replicas: 3` (kvproxy's default: each query step
   asks a majority, the third replica is a spare), and one with `replicas: 3` and --spare-after-ms 0
   (every step asks all three: replicas3all), alternated round by round (the order rotated), GET only and
   the mix (90% GET / 10% PUT, bench/lua/mixed.lua's). Each configuration has its own copy of the same
   preload (keys r1:1..N, r3:1..N, ra:1..N), so a PUT through one never makes another's replicas
   disagree. Reported: req/s, p50/p99, CPU seconds per request of kvproxy and of the three kvnodes
   together (/proc utime + stime), medians over rounds with their spread, and replicas3/replicas1 (and
   replicas3all/replicas1) per round (target: replicas3's throughput >= 0.5x).
2. Reads answered in one round trip with `replicas: 3` and no fault, from the proxy's Prometheus text
   (admin listener, GET /metrics): 1 - kvproxy_quorum_write_backs_total / kvproxy_quorum_requests_total
   {op="get",result="ok"}, as deltas over the fault-free runs (target: >= 99%). "n/a (metric absent)"
   when the binary has no such metrics.
3. A replica killed under fixed-rate (open-loop) load: bench/loadgen at a fixed offered rate with
   `replicas: 3`, the window cut in buckets (one loadgen run each, no warm-up: every request is measured,
   its latency from its scheduled send time), once with no fault and once with SIGKILL of one kvnode in the
   middle of bucket K and its restart (same port, same data directory) in the middle of bucket R.
   Reported: per-bucket p50/p99/max and errors, per phase (before, down, after the restart), and the
   proxy's quorum counters (target: 0 errors).

Writes a markdown section to --out (bench/REPLICATION.md; with --quick, into the build tree) and every
figure beside it (the same name, .json). Exits nonzero only when the harness itself failed (a process
that did not start, a generator that failed); missed targets and failed requests are reported, loudly.
Everything listens on 127.0.0.1, on ports chosen at run time, and is stopped at the end, even on error.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, free_ports, start_retrying_busy, write_ring  # noqa: E402
from run import VALUE, KvProxy, log, measure, median, preload, stop_all, versions  # noqa: E402
from equal_load import git_revision, parse_points, point_label  # noqa: E402

WORKLOADS = {"get": 0, "mixed": 10}  # name: share of PUTs (percent), as bench/equal_load.py and bench/lua/mixed.lua
CONFIGS = ("replicas1", "replicas3", "replicas3all")
PREFIX = {"replicas1": "r1:", "replicas3": "r3:", "replicas3all": "ra:"}
EXTRA = {"replicas3all": ("--spare-after-ms", "0")}  # kvproxy's flags per configuration
RATIO_LABEL = {"replicas3": "r3/r1", "replicas3all": "r3all/r1"}
BINARIES = {"kvnode": ("node", "kvnode"), "kvproxy": ("proxy", "kvproxy"), "loadgen": ("bench", "loadgen")}
TARGET_RPS_RATIO = 0.5
TARGET_ONE_ROUND = 0.99
QUORUM = "kvproxy_quorum_requests_total"
WRITE_BACKS = "kvproxy_quorum_write_backs_total"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class HarnessError(RuntimeError):
    pass


# --- binaries ---

def take_binaries(build, bindir, wait_s=300.0):
    """Copies kvnode, kvproxy and loadgen out of the build tree into `bindir`, in the tree's layout (so
    that run.KvProxy finds BINDIR/proxy/kvproxy), and returns their paths: the whole run (the restart of a
    killed kvnode included) then uses one consistent set, whatever a rebuild does meanwhile. A binary
    missing or written in the last 2 s (a rebuild under way) is waited for."""
    if not os.path.isdir(build):
        raise HarnessError(f"no build tree at {build} (build first: bench/replication.sh does)")
    deadline = time.monotonic() + wait_s
    paths, said = {}, False
    for name, parts in BINARIES.items():
        src = os.path.join(build, *parts)
        while True:
            try:
                st = os.stat(src)
                if os.access(src, os.X_OK) and time.time() - st.st_mtime > 2.0:
                    dst = os.path.join(bindir, *parts)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(src, dst)
                    if os.stat(src).st_mtime == st.st_mtime and os.path.getsize(dst) == st.st_size:
                        paths[name] = dst
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"{src}: missing or still being written after {wait_s:.0f} s (build first: "
                                   "bench/replication.sh does)")
            if not said:
                log(f"waiting for {src} (missing or being rebuilt)")
                said = True
            time.sleep(1.0)
    return paths


def binary_info(paths):
    info = {}
    for name, path in paths.items():
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        version = "-"
        if name != "loadgen":
            try:
                r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
                version = (r.stdout or r.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                version = "?"
        info[name] = {"version": version, "sha256": digest,
                      "built": datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M:%S UTC")}
    return info


# --- nodes, proxies, keys ---

class Node:
    """A kvnode on a fixed port and data directory, so that it can be killed and started again as itself.
    Started at once unless `start` is false; `start(extra)` adds flags for that start only."""

    def __init__(self, kvnode, node_id, port, data_dir, start=True):
        self.kvnode, self.id, self.port, self.data_dir = kvnode, node_id, port, data_dir
        self.p = None
        if start:
            self.start()

    def start(self, extra=()):
        argv = [self.kvnode, "--port", str(self.port), "--id", self.id, "--data-dir", self.data_dir, *extra]
        self.p = start_retrying_busy(lambda: Process(argv, ready_timeout=120))
        return self

    @property
    def pid(self):
        return self.p.proc.pid

    def kill(self):
        self.p.kill()

    def terminate(self):
        if self.p:
            self.p.terminate()


def lua_script(work, config, workload):
    """A wrk script (in the work directory) over this configuration's keys: bench/lua/get.lua or mixed.lua
    with the key prefix and the share of PUTs written in."""
    path = os.path.join(work, f"{config}-{workload}.lua")
    with open(path, "w") as f:
        f.write(f"""-- Written by bench/replication.py: {100 - WORKLOADS[workload]}% GET / {WORKLOADS[workload]}% PUT over
-- {PREFIX[config]}1..KEYS, uniformly at random (bench/lua/mixed.lua with another key prefix).
local keys = tonumber(os.getenv("KEYS") or "10000")
local prefix = "{PREFIX[config]}"
local put_percent = {WORKLOADS[workload]}
local body = '{VALUE}'
local put_headers = {{["Content-Type"] = "application/json"}}
math.randomseed(os.time())

request = function()
  local k = prefix .. math.random(1, keys)
  if math.random(1, 100) <= put_percent then
    return wrk.format("POST", "/put?key=" .. k, put_headers, body)
  end
  return wrk.format("GET", "/get?key=" .. k)
end

dofile(os.getenv("REPORT_LUA"))
""")
    return path


# --- Prometheus ---

def scrape(admin_port):
    """{(name, ((label, value), ...)): value} from a kvproxy's GET /metrics on its admin listener."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        text = r.read().decode()
        if r.status != 200:
            raise HarnessError(f"GET /metrics on admin port {admin_port}: HTTP {r.status}")
    finally:
        c.close()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        labels = tuple(sorted(LABEL_RE.findall(m.group(2) or "")))
        try:
            samples[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return samples


def quorum_counts(before, after):
    """The quorum counters' growth between two scrapes: {"get_ok": n, ..., "write_backs": n}, or None when
    the binary has no quorum metrics."""
    if not any(name == QUORUM for name, _ in after) or not any(name == WRITE_BACKS for name, _ in after):
        return None
    out = {}
    for op in ("get", "put", "del"):
        for result in ("ok", "refused", "failed"):
            key = (QUORUM, tuple(sorted((("op", op), ("result", result)))))
            out[f"{op}_{result}"] = after.get(key, 0.0) - before.get(key, 0.0)
    out["write_backs"] = sum(v for (n, _), v in after.items() if n == WRITE_BACKS) - \
        sum(v for (n, _), v in before.items() if n == WRITE_BACKS)
    return out


def proxy_errors(before, after):
    """Growth of kvproxy_errors_total (answers the proxy made because of a node, by cause), summed by cause."""
    out = {}
    for (name, labels), v in after.items():
        if name == "kvproxy_errors_total":
            cause = dict(labels).get("cause", "?")
            out[cause] = out.get(cause, 0.0) + v - before.get((name, labels), 0.0)
    return out


def add_counts(a, b):
    if a is None or b is None:
        return None
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}


def one_round_share(counts):
    """1 - write-backs / successful reads, or None when unknown (no metrics, or no read)."""
    if counts is None or counts.get("get_ok", 0) <= 0:
        return None
    return 1 - counts["write_backs"] / counts["get_ok"]


def share_text(counts):
    if counts is None:
        return "n/a (metric absent)"
    s = one_round_share(counts)
    if s is None:
        return "n/a (no read answered)"
    return f"{s * 100:.3f}% ({counts['get_ok'] - counts['write_backs']:.0f} of {counts['get_ok']:.0f}; " \
           f"{counts['write_backs']:.0f} write-backs)"


# --- part 1: closed loop ---

def closed_loop(proxies, nodes, scripts, workloads, conns_list, rounds, seconds, keys):
    """Every workload and connection count, `rounds` rounds, the configurations' order rotated each round.
    Around every replicas3 run, the proxy's quorum counters are scraped."""
    results = []
    order0 = list(CONFIGS)
    for workload in workloads:
        for conns in conns_list:
            for rnd in range(rounds):
                order = order0[rnd % len(order0):] + order0[:rnd % len(order0)]
                for config in order:
                    proxy = proxies[config]
                    m0 = scrape(proxy.p.admin_port)
                    r = measure(proxy, scripts[(config, workload)], conns, seconds, keys, [n.pid for n in nodes])
                    m1 = scrape(proxy.p.admin_port)
                    r["quorum"] = quorum_counts(m0, m1)
                    r["proxy_errors"] = proxy_errors(m0, m1)
                    r.update(workload=workload, conns=conns, round=rnd, config=config)
                    results.append(r)
                    share = one_round_share(r["quorum"])
                    log(f"{workload} c={conns} round {rnd + 1}/{rounds} {config}  {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50']} us  p99 {r['p99']} us  kvproxy {r['cpu_us_per_req']:.1f} us/req  "
                        f"kvnodes {r['nodes_us_per_req']:.1f} us/req  errors {r['errors']}"
                        + ("" if config == "replicas1" else
                           "  one-round reads " + ("n/a (metric absent)" if r["quorum"] is None else
                                                   "n/a" if share is None else f"{share * 100:.2f}%")))
    return results


def spread(values, fmt):
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def summarize(results):
    """Per (workload, conns): per configuration the medians over rounds and their range, and the per-round
    ratios of each replicated configuration over replicas1 (median and range): "ratios" for replicas3,
    "ratios_by"[config] for each."""
    rows = []
    for workload, conns in dict.fromkeys((r["workload"], r["conns"]) for r in results):
        group = [r for r in results if r["workload"] == workload and r["conns"] == conns]
        row = {"workload": workload, "conns": conns, "configs": {}, "ratios_by": {}}
        for config in CONFIGS:
            mine = [r for r in group if r["config"] == config]
            c = {"rounds": len(mine), "errors": sum(r["errors"] for r in mine)}
            for m in ("rps", "p50", "p99", "cpu_us_per_req", "nodes_us_per_req"):
                vals = [r[m] for r in mine]
                c[m], c[m + "_min"], c[m + "_max"] = median(vals), min(vals), max(vals)
            c["total_us_per_req"] = median([r["cpu_us_per_req"] + r["nodes_us_per_req"] for r in mine])
            row["configs"][config] = c
        for config in CONFIGS[1:]:
            by = row["ratios_by"][config] = {}
            for m in ("rps", "p50", "p99", "cpu_us_per_req", "nodes_us_per_req"):
                ratios = []
                for r3 in (r for r in group if r["config"] == config):
                    r1 = next((r for r in group if r["config"] == "replicas1" and r["round"] == r3["round"]), None)
                    if r1 and r1[m]:
                        ratios.append(r3[m] / r1[m])
                by[m] = {"median": median(ratios), "min": min(ratios, default=float("nan")),
                         "max": max(ratios, default=float("nan"))}
        row["ratios"] = row["ratios_by"]["replicas3"]
        r3 = [r["quorum"] for r in group if r["config"] == "replicas3"]
        quorum = r3[0] if r3 else None
        for counts in r3[1:]:
            quorum = add_counts(quorum, counts)  # None (metric absent) stays None
        row["quorum"] = quorum
        rows.append(row)
    return rows


# --- part 3: a replica killed under fixed-rate load ---

def loadgen_bucket(loadgen, port, point, workload, seconds, keys, seed, prefix):
    conns, rate = point
    argv = [loadgen, "--port", str(port), "--conns", str(conns), "--rate", f"{rate:g}", "--seconds", f"{seconds:g}",
            "--warmup", "0", "--keys", str(keys), "--key-prefix", prefix, "--put-percent", str(WORKLOADS[workload]),
            "--seed", str(seed)]
    return argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_loadgen(proc):
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def loadgen_result(argv, proc, seconds):
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        stop_loadgen(proc)
        raise HarnessError(f"loadgen did not finish: {' '.join(argv)}")
    except BaseException:  # a signal, Ctrl-C: the generator goes too
        stop_loadgen(proc)
        raise
    line = next((l for l in out.splitlines() if l.startswith("LOADGEN ")), None)
    if proc.returncode != 0 or line is None:
        raise HarnessError(f"loadgen failed ({proc.returncode}): {' '.join(argv)}\n{out}\n{err}")
    return json.loads(line[len("LOADGEN "):])


class UpWatcher(threading.Thread):
    """Polls a kvproxy's /metrics every `interval` s and records when kvproxy_node_up{node=NODE} changes:
    when the proxy marked the node down and up again, in seconds from `t0`."""

    def __init__(self, admin_port, node_id, t0, interval=0.1):
        super().__init__(daemon=True)
        self.admin_port, self.node_id, self.t0, self.interval = admin_port, node_id, t0, interval
        self.changes, self.polls, self.failures = [], 0, 0
        self._halt = threading.Event()

    def run(self):
        key = ("kvproxy_node_up", (("node", self.node_id),))
        last = None
        while not self._halt.is_set():
            try:
                up = scrape(self.admin_port).get(key)
                self.polls += 1
                if up is not None and up != last:
                    if last is not None:
                        self.changes.append({"t": time.monotonic() - self.t0, "up": bool(up)})
                    last = up
            except Exception:  # noqa: BLE001 -- counted; the window goes on
                self.failures += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(10)


def fault_window(loadgen, proxy, nodes, victim, point, workload, buckets, bucket_s, keys, kill_at, restart_at):
    """`buckets` loadgen runs of `bucket_s` each, back to back, against the replicas3 proxy; with `kill_at`
    set, node `victim` is SIGKILLed in the middle of bucket kill_at and started again (same port, same data
    directory) in the middle of bucket restart_at. Bucket i uses seed i + 1, so the run without the fault
    sends the same requests. Between buckets the proxy's quorum counters are scraped (per-bucket
    write-backs and failures), and all along whether it holds the victim up or down. Returns a dict."""
    rows, events = [], []
    m_first = m_prev = scrape(proxy.p.admin_port)
    t0 = time.monotonic()
    watcher = UpWatcher(proxy.p.admin_port, victim, t0)
    watcher.start()
    try:
        for i in range(buckets):
            started = time.monotonic() - t0
            argv, proc = loadgen_bucket(loadgen, proxy.port, point, workload, bucket_s, keys, i + 1,
                                        PREFIX["replicas3"])
            event = None
            try:
                if kill_at is not None and i in (kill_at, restart_at):
                    time.sleep(bucket_s / 2)
                    node = nodes[victim]
                    if i == kill_at:
                        event = {"event": "kill", "t": time.monotonic() - t0, "bucket": i, "node": node.id,
                                 "pid": node.pid}
                        node.kill()  # SIGKILL, then reaped
                        log(f"  SIGKILL {node.id} (pid {event['pid']}) at {event['t']:.2f} s")
                    else:
                        event = {"event": "restart", "t": time.monotonic() - t0, "bucket": i, "node": node.id}
                        node.start()
                        event["ready_s"] = time.monotonic() - t0 - event["t"]
                        event["pid"] = node.pid
                        log(f"  {node.id} started again at {event['t']:.2f} s on port {node.port}, same data dir "
                            f"(ready after {event['ready_s'] * 1000:.0f} ms, pid {node.pid})")
                    events.append(event)
            except BaseException:
                stop_loadgen(proc)
                raise
            r = loadgen_result(argv, proc, bucket_s)
            m = scrape(proxy.p.admin_port)
            r.update(bucket=i, start_s=started, event=event["event"] if event else None,
                     quorum=quorum_counts(m_prev, m))
            m_prev = m
            rows.append(r)
            q = r["quorum"]
            log(f"  bucket {i + 1:2d}/{buckets} t={started:5.2f} s  {r['achieved_rps']:7.0f} req/s  p50 {r['p50']} us  "
                f"p99 {r['p99']} us  max {r['max']} us  late {r['late']}  errors {r['errors']}"
                + ("" if q is None else f"  write-backs {q['write_backs']:.0f}")
                + (f"  <- {event['event']} {event['node']}" if event else ""))
        wall = time.monotonic() - t0
        if kill_at is not None:  # the load is over: how long until kvproxy holds the victim up again
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and watcher.changes and not watcher.changes[-1]["up"]:
                time.sleep(0.1)
    finally:
        watcher.stop()
    for c in watcher.changes:
        log(f"  kvproxy marked {victim} {'up' if c['up'] else 'down'} at {c['t']:.2f} s")
    return {"buckets": rows, "events": events, "quorum": quorum_counts(m_first, m_prev),
            "proxy_errors": proxy_errors(m_first, m_prev), "wall_s": wall,
            "node_up_changes": watcher.changes, "node_up_polls": watcher.polls,
            "node_up_poll_failures": watcher.failures}


def phase_of(i, kill_at, restart_at):
    if i < kill_at:
        return "before the kill"
    if i < restart_at:
        return "replica down"
    return "after the restart"


def phase_summary(rows, kill_at, restart_at):
    out = {}
    for name in ("before the kill", "replica down", "after the restart"):
        mine = [r for r in rows if phase_of(r["bucket"], kill_at, restart_at) == name]
        if mine:
            out[name] = {"buckets": len(mine), "p50_median": median([r["p50"] for r in mine]),
                         "p99_median": median([r["p99"] for r in mine]), "p99_worst": max(r["p99"] for r in mine),
                         "max": max(r["max"] for r in mine), "errors": sum(r["errors"] for r in mine),
                         "late": sum(r["late"] for r in mine), "requests": sum(r["scheduled"] for r in mine)}
    return out


# --- report ---

def fmt_us(v):
    return "n/a" if v is None or v != v else f"{v:,.0f}"


def write_report(out, report):
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(report, f, indent=1, default=str)
    a, v = report["args"], report["versions"]
    quick = a["quick"]
    lines = [f"## Replication: `replicas: 3` against `replicas: 1`{' (quick mode: smoke numbers only)' if quick else ''}",
             "",
             f"Produced by `{report['command']}` on {report['date']} in {report['elapsed_s'] / 60:.1f} minutes, tree "
             f"{report['revision']}. Machine: {v['cpu']}, {v['cores']} cores, Linux {v['kernel']}; {v['wrk']}. "
             "Binaries (copied from the build tree at the start, so one set served the whole run): "
             + "; ".join(f"{n if b['version'] in ('-', '?') else b['version']} (built {b['built']}, sha256 {b['sha256']})"
                         for n, b in report["binaries"].items()) + ".", ""]
    if report.get("error"):
        lines += [f"**The run failed (harness error): {report['error']}** The figures below are what was measured "
                  "before it.", ""]
    lines += ["Three kvnodes (RocksDB, fresh data directories, one thread each) and three kvproxies (one "
              "data-path thread each) on them: *replicas1* on a ring with `replicas: 1`; *replicas3* on the same "
              "ring with `replicas: 3`, kvproxy's default (each step's queries, a read's or a write's tag query, "
              "go to a majority: the first two replicas up in placement order; the third, a spare, is asked when "
              "one of them fails or stays silent for --spare-after-ms, 20 ms; stores go to all three; answered "
              "at a majority); *replicas3all* the same with --spare-after-ms 0 (every step sent to all three "
              "replicas, as before the spares). Each proxy has "
              f"its own copy of the same preload: {a['keys']} keys of about 50 bytes (r1:1..N, r3:1..N and "
              "ra:1..N), so a PUT through one never makes another's replicas disagree. "
              "Everything on 127.0.0.1 of the same two cores. Health checks at kvproxy's defaults.", ""]

    # targets
    t = report["targets"]
    lines += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for row in t:
        met = {True: "yes", False: "**no**", None: "n/a", "info": "-"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    lines.append("")

    # part 1
    rows = report.get("closed_loop_summary") or []
    if rows:
        lines += ["### Throughput, latency and CPU (closed loop)", "",
                  f"wrk (one thread) over keep-alive connections, {a['rounds']} round(s) of {a['seconds']} s per "
                  "configuration, workload and connection count, after a 1 s warm-up of each; the order of the "
                  "configurations rotated each round. get: GETs of preloaded keys, uniformly at random; "
                  "mixed: 90% GET / 10% PUT. Figures are medians over rounds, the range over rounds after them. "
                  "*CPU us/req*: user + system time from /proc over the run, divided by the requests wrk "
                  "completed; kvnodes is the three nodes together. *r3/r1* (*r3all/r1*): replicas3's "
                  "(replicas3all's) figure over replicas1's in the same round, median (range). *errors*: non-2xx answers, socket errors and timeouts "
                  "(wrk), summed over rounds. Latencies are wrk's (closed loop: from the send of each request, "
                  "at saturation), in microseconds.", "",
                  "| workload | conns | config | req/s | p50 us | p99 us | kvproxy CPU us/req | kvnodes CPU us/req | "
                  "together | errors |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            for config in CONFIGS:
                c = r["configs"][config]

                def cell(m, fmt):  # the median, and the range over rounds
                    return f"{format(c[m], fmt)} ({spread([c[m + '_min'], c[m + '_max']], fmt)})"
                lines.append(f"| {r['workload']} | {r['conns']} | {config} | {cell('rps', ',.0f')} | "
                             f"{cell('p50', ',.0f')} | {cell('p99', ',.0f')} | {cell('cpu_us_per_req', '.1f')} | "
                             f"{cell('nodes_us_per_req', '.1f')} | {c['total_us_per_req']:.1f} | {c['errors']} |")
            for config, q in r["ratios_by"].items():
                label = f"**{RATIO_LABEL[config]}**" if config == "replicas3" else RATIO_LABEL[config]
                val = f"{q['rps']['median']:.2f}x"
                lines.append(f"| {r['workload']} | {r['conns']} | {label} | "
                             f"{f'**{val}**' if config == 'replicas3' else val} "
                             f"({spread([q['rps']['min'], q['rps']['max']], '.2f')}) | {q['p50']['median']:.2f}x | "
                             f"{q['p99']['median']:.2f}x | {q['cpu_us_per_req']['median']:.2f}x | "
                             f"{q['nodes_us_per_req']['median']:.2f}x | | |")
        lines += ["", "Everything here shares two cores, so the closed-loop throughput follows the CPU spent per "
                  "request by everyone on the machine. For scale, the ratio that CPU alone predicts, replicas1's "
                  "(kvproxy + kvnodes) CPU per request over replicas3's: "
                  + "; ".join(f"{r['workload']} c={r['conns']} {cpu_ratio(r):.2f}x" for r in rows)
                  + " (wrk's own CPU, the same per request for both, left out). With the nodes on machines of their "
                  "own and kvproxy the bottleneck, kvproxy's CPU ratio alone would set it: "
                  + "; ".join(f"{r['workload']} c={r['conns']} {1 / r['ratios']['cpu_us_per_req']['median']:.2f}x"
                              for r in rows) + ".", ""]

    # part 2
    lines += ["### Reads answered in one round trip (`replicas: 3`, no fault)", "",
              f"From kvproxy's Prometheus text (GET /metrics on its admin listener): 1 - `{WRITE_BACKS}` / "
              f"`{QUORUM}{{op=\"get\",result=\"ok\"}}`, both as growth over the runs named (a read that found the "
              "replicas it heard from disagree writes the newest back before it answers: a second round trip).", "",
              "| runs | one-round reads |", "|---|---|"]
    for name, counts in report["one_round"]["parts"]:
        lines.append(f"| {name} | {share_text(counts)} |")
    lines.append(f"| **every fault-free run above** | **{share_text(report['one_round']['total'])}** |")
    lines.append("")

    # part 3
    f = report.get("fault")
    if f:
        base, fault = f["baseline"], f["with_fault"]
        point = tuple(f["point"])
        wall = (fault or base)["wall_s"]
        lines += ["### One replica killed and restarted under fixed-rate load (`replicas: 3`)", "",
                  f"bench/loadgen (open loop) at {point_label(point)}, {f['workload']} "
                  f"({100 - WORKLOADS[f['workload']]}% GET / {WORKLOADS[f['workload']]}% PUT over r3:1..N), "
                  f"{f['buckets']} buckets of {f['bucket_s']:g} s back to back, each bucket its own loadgen run on "
                  "new connections with no warm-up, so every request counts, from its **scheduled** send time (no "
                  "coordinated omission); between buckets the load pauses for the generator's start and drain and "
                  f"a scrape of kvproxy's counters (the window took {wall:.1f} s for "
                  f"{f['buckets'] * f['bucket_s']:g} s of buckets). Bucket i sends the same requests in both runs "
                  f"(seed i + 1); the run without the fault comes first. The fault: SIGKILL of {f['victim']} in the "
                  f"middle of bucket {f['kill_at'] + 1}, and the same kvnode started again on the same port with the "
                  f"same data directory in the middle of bucket {f['restart_at'] + 1}. *errors*: non-2xx answers, "
                  "failed or closed connections, connect failures, timeouts (5000 ms) and requests never answered "
                  "(loadgen). *write-backs*: growth of kvproxy's counter over the bucket.", ""]
        if fault:
            for ev in fault["events"]:
                if ev["event"] == "kill":
                    lines.append(f"- t = {ev['t']:.2f} s: SIGKILL {ev['node']} (pid {ev['pid']})")
                else:
                    lines.append(f"- t = {ev['t']:.2f} s: {ev['node']} started again, serving "
                                 f"{ev['ready_s'] * 1000:.0f} ms later (pid {ev['pid']})")
            window_end = fault["buckets"][-1]["start_s"] + f["bucket_s"]
            for c in fault["node_up_changes"]:
                lines.append(f"- t = {c['t']:.2f} s: kvproxy marks {f['victim']} {'up' if c['up'] else 'down'} "
                             "(kvproxy_node_up, polled every 100 ms)"
                             + (" -- after the window, with no load" if c["t"] > window_end else ""))
            if fault["node_up_changes"] and not fault["node_up_changes"][-1]["up"]:
                lines.append(f"- kvproxy still held {f['victim']} down 15 s after the window")
            if not fault["node_up_changes"]:
                lines.append(f"- kvproxy never marked {f['victim']} down (kvproxy_node_up, polled every 100 ms)")
            lines += ["", "| phase | no fault: p50 / p99 (median bucket) / p99 (worst bucket) / max us | errors | "
                      "with the fault: p50 / p99 (median) / p99 (worst) / max us | errors |", "|---|---|---|---|---|"]
            for phase in ("before the kill", "replica down", "after the restart"):
                b, k = f["baseline_phases"].get(phase), f["fault_phases"].get(phase)
                if not b or not k:
                    continue
                lines.append(f"| {phase} ({b['buckets']} buckets) | {fmt_us(b['p50_median'])} / "
                             f"{fmt_us(b['p99_median'])} / {fmt_us(b['p99_worst'])} / {fmt_us(b['max'])} | "
                             f"{b['errors']} | {fmt_us(k['p50_median'])} / {fmt_us(k['p99_median'])} / "
                             f"{fmt_us(k['p99_worst'])} / {fmt_us(k['max'])} | {bold_if(k['errors'])} |")
        lines += ["", "Per bucket (t: seconds from the window's start to the bucket's first request):", "",
                  "| bucket | event | no fault: t s | req/s | p50 / p99 / max us | late | errors | write-backs | "
                  "fault: t s | req/s | p50 / p99 / max us | late | errors | write-backs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        fault_rows = fault["buckets"] if fault else [None] * len(base["buckets"])
        for b, k in zip(base["buckets"], fault_rows):
            cells = [str(b["bucket"] + 1), (k or {}).get("event") or ""]
            for r in (b, k):
                if r is None:
                    cells += ["n/a"] * 6
                    continue
                wb = "n/a" if r["quorum"] is None else f"{r['quorum']['write_backs']:.0f}"
                cells += [f"{r['start_s']:.2f}", f"{r['achieved_rps']:,.0f}", f"{r['p50']:,} / {r['p99']:,} / {r['max']:,}",
                          str(r["late"]), bold_if(r["errors"]), wb]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "kvproxy's own counters over each window (growth of the Prometheus counters). "
                  "`kvproxy_errors_total` counts, per node and cause, replica exchanges that failed or were not "
                  "sent; with `replicas: 3` they need not have failed any client request.", "",
                  "| window | get ok / refused / failed | put ok / refused / failed | write-backs | one-round reads | "
                  "kvproxy_errors_total by cause |", "|---|---|---|---|---|---|"]
        for name, w in (("no fault", base), ("with the fault", fault)):
            if w is None:
                continue
            counts = w["quorum"]
            errs = ", ".join(f"{k} {v:.0f}" for k, v in sorted(w["proxy_errors"].items()) if v) or "none"
            if counts is None:
                lines.append(f"| {name} | n/a (metric absent) | n/a | n/a | n/a | {errs} |")
            else:
                lines.append(f"| {name} | {counts['get_ok']:.0f} / {counts['get_refused']:.0f} / "
                             f"{counts['get_failed']:.0f} | {counts['put_ok']:.0f} / {counts['put_refused']:.0f} / "
                             f"{counts['put_failed']:.0f} | {counts['write_backs']:.0f} | {share_text(counts)} | {errs} |")
        lines.append("")
        for name, w in (("with the fault", fault), ("with no fault", base)):
            bad = [r for r in (w or {}).get("buckets", []) if r["errors"]]
            if bad:
                lines += [f"**{sum(r['errors'] for r in bad)} request(s) failed {name}** (buckets "
                          + ", ".join(str(r["bucket"] + 1) for r in bad) + "): "
                          + "; ".join(f"bucket {r['bucket'] + 1}: {r['status_errors']} non-2xx, {r['read_errors']} "
                                      f"connection errors, {r['connect_errors']} connect errors, {r['timeouts']} "
                                      f"timeouts, {r['unfinished']} unanswered" for r in bad) + ".", ""]
    with open(out, "w") as fh:
        fh.write("\n".join(lines))


def cpu_ratio(row):
    """replicas1's CPU per request (kvproxy + kvnodes) over replicas3's."""
    return row["configs"]["replicas1"]["total_us_per_req"] / row["configs"]["replicas3"]["total_us_per_req"]


def bold_if(n):
    return f"**{n}**" if n else "0"


def targets(report):
    rows = []
    summary = report.get("closed_loop_summary") or []
    if summary:
        worst = min(summary, key=lambda r: r["ratios"]["rps"]["median"])
        val = worst["ratios"]["rps"]["median"]
        rows.append({"target": f"throughput replicas3 / replicas1 >= {TARGET_RPS_RATIO}x (worst workload, median of "
                               "per-round ratios)",
                     "measured": f"{val:.2f}x ({worst['workload']}, {worst['conns']} conns); "
                                 + ", ".join(f"{r['workload']} c={r['conns']} {r['ratios']['rps']['median']:.2f}x "
                                             f"({spread([r['ratios']['rps']['min'], r['ratios']['rps']['max']], '.2f')})"
                                             for r in summary),
                     "met": val >= TARGET_RPS_RATIO})
        errs = sum(c["errors"] for r in summary for c in r["configs"].values())
        rows.append({"target": "no errors in the closed-loop runs", "measured": str(errs), "met": errs == 0})
    total = report["one_round"]["total"]
    share = one_round_share(total)
    rows.append({"target": f"reads answered in one round trip, replicas: 3, no fault >= {TARGET_ONE_ROUND * 100:.0f}%",
                 "measured": share_text(total) if report["one_round"]["parts"] else "n/a (not measured)",
                 "met": None if share is None else share >= TARGET_ONE_ROUND})
    f = report.get("fault")
    if f:
        base, fault = f["baseline"], f["with_fault"]
        b_errs = sum(r["errors"] for r in base["buckets"])
        rows.append({"target": "0 failed requests at the fixed rate with no fault", "measured": str(b_errs),
                     "met": b_errs == 0})
        if fault:
            errs = sum(r["errors"] for r in fault["buckets"])
            q = fault["quorum"]
            qfail = None if q is None else sum(q[k] for k in q if k.endswith(("_failed", "_refused")))
            rows.append({"target": "0 failed requests while a replica is killed and restarted (loadgen; kvproxy's "
                                   "quorum refused + failed)",
                         "measured": f"{errs} (kvproxy: {'n/a' if qfail is None else f'{qfail:.0f}'})",
                         "met": errs == 0 and not qfail})
            down_b, down_k = f["baseline_phases"].get("replica down"), f["fault_phases"].get("replica down")
            whole_b = max(r["p99"] for r in base["buckets"])
            whole_k = max(r["p99"] for r in fault["buckets"])
            if down_b and down_k:
                rows.append({"target": "p99 with a replica down against no fault: median bucket of the down phase; "
                                       "worst bucket of the window (reported, no bound)",
                             "measured": f"{fmt_us(down_k['p99_median'])} us vs {fmt_us(down_b['p99_median'])} us; "
                                         f"worst {fmt_us(whole_k)} us vs {fmt_us(whole_b)} us",
                             "met": "info"})
    return rows


# --- main ---

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 1 s, 1000 keys, a short fault window: a smoke "
                                                         "run into the build tree (under a minute)")
    ap.add_argument("--out", help="the markdown file to write (default bench/REPLICATION.md; with --quick, "
                                  "BUILD/bench-quick/REPLICATION.md); the .json goes beside it")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--workloads", default="get,mixed", help="comma-separated, of get, mixed (default both)")
    ap.add_argument("--conns", help="closed loop: wrk connection counts, comma-separated (default 50; --quick 20)")
    ap.add_argument("--rounds", type=int, help="closed loop: rounds per configuration (default 5; --quick 2)")
    ap.add_argument("--seconds", type=int, help="closed loop: seconds per wrk run (default 10; --quick 1)")
    ap.add_argument("--keys", type=int, help="keys preloaded per configuration (default 10000; --quick 1000)")
    ap.add_argument("--fault-point", type=parse_points, default=None,
                    help="fault phase: the fixed offered load, CONNSxRATE with RATE per connection (default 10x200)")
    ap.add_argument("--fault-workload", default="mixed", help="fault phase: get or mixed (default mixed)")
    ap.add_argument("--bucket-seconds", type=float, help="fault phase: length of a bucket (default 1; --quick 0.5)")
    ap.add_argument("--buckets", type=int, help="fault phase: buckets in the window (default 20; --quick 12)")
    ap.add_argument("--kill-bucket", type=int, help="fault phase: the 0-based bucket in whose middle the replica "
                                                    "is killed (default 5; --quick 3)")
    ap.add_argument("--restart-bucket", type=int, help="fault phase: the bucket in whose middle it is started again "
                                                       "(default 10; --quick 6)")
    ap.add_argument("--victim", default="n1", help="fault phase: the node killed (n1, n2 or n3; default n1)")
    ap.add_argument("--skip-closed-loop", action="store_true", help="only the fault phase")
    ap.add_argument("--skip-fault", action="store_true", help="only the closed-loop rounds")
    args = ap.parse_args()
    quick = args.quick
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads + [args.fault_workload]:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r} ({', '.join(WORKLOADS)})")
    try:
        conns_list = [int(c) for c in args.conns.split(",")] if args.conns else [20 if quick else 50]
    except ValueError:
        ap.error("--conns: comma-separated integers")
    rounds = args.rounds or (2 if quick else 5)
    seconds = args.seconds or (1 if quick else 10)
    keys = args.keys or (1000 if quick else 10000)
    point = (args.fault_point or [(10, 200.0)])[0]
    bucket_s = args.bucket_seconds or (0.5 if quick else 1.0)
    buckets = args.buckets or (12 if quick else 20)
    kill_at = args.kill_bucket if args.kill_bucket is not None else (3 if quick else 5)
    restart_at = args.restart_bucket if args.restart_bucket is not None else (6 if quick else 10)
    if rounds < 1 or seconds < 1 or keys < 1 or any(c < 1 for c in conns_list) or bucket_s <= 0:
        ap.error("--rounds, --seconds, --keys, --conns >= 1; --bucket-seconds > 0")
    if not 0 <= kill_at < restart_at < buckets:
        ap.error("need 0 <= --kill-bucket < --restart-bucket < --buckets")
    if args.victim not in ("n1", "n2", "n3"):
        ap.error("--victim: n1, n2 or n3")
    out = args.out or (os.path.join(args.build, "bench-quick", "REPLICATION.md") if quick
                       else os.path.join(ROOT, "bench", "REPLICATION.md"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    command = " ".join(["bench/replication.sh"] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.time()
    # SIGTERM (and SIGHUP) end the run as Ctrl-C does: through the finally below, which stops every process.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(f"replication: stopped by signal {signum}"))
    report = {"command": command, "date": date, "revision": git_revision(), "versions": versions(),
              "binaries": {}, "error": None,
              "args": {"quick": quick, "workloads": workloads, "conns": conns_list, "rounds": rounds,
                       "seconds": seconds, "keys": keys, "build": args.build},
              "closed_loop": [], "closed_loop_summary": [], "one_round": {"parts": [], "total": None}, "fault": None}
    work = tempfile.mkdtemp(prefix="kvring-replication-")
    running = []
    failed = None
    try:
        bins = take_binaries(args.build, os.path.join(work, "bin"))
        report["binaries"] = binary_info(bins)
        ports = free_ports(3)  # below the ephemeral range: a node killed finds its port free again
        nodes = []
        for i, port in enumerate(ports):
            nodes.append(Node(bins["kvnode"], f"n{i + 1}", port, os.path.join(work, f"n{i + 1}")))
            running.append(nodes[-1])
        members = [(n.id, n.port) for n in nodes]
        rings = {"replicas1": write_ring(os.path.join(work, "ring-replicas1.yaml"), members, replicas=1),
                 "replicas3": write_ring(os.path.join(work, "ring-replicas3.yaml"), members, replicas=3)}
        rings["replicas3all"] = rings["replicas3"]
        proxies = {}
        for config in CONFIGS:
            proxies[config] = KvProxy(os.path.join(work, "bin"), rings[config], 1, work, config,
                                      extra=EXTRA.get(config, ()))
            running.append(proxies[config])
        for config in CONFIGS:
            t = time.monotonic()
            preload(proxies[config].port, keys, conns=8, prefix=PREFIX[config], timeout=30, error=HarnessError)
            log(f"preloaded {keys} keys {PREFIX[config]}* through {config} in {time.monotonic() - t:.1f} s")
        by_id = {n.id: n for n in nodes}
        parts = report["one_round"]["parts"]  # (runs, quorum counts), filled as they are measured

        if not args.skip_closed_loop:
            scripts = {(c, w): lua_script(work, c, w) for c in CONFIGS for w in workloads}
            for config in CONFIGS:  # warm-up, not recorded
                measure(proxies[config], scripts[(config, workloads[0])], conns_list[0], 1, keys)
            log(f"closed loop: {', '.join(workloads)} at {conns_list} connections, {rounds} round(s) of {seconds} s")
            results = closed_loop(proxies, nodes, scripts, workloads, conns_list, rounds, seconds, keys)
            report["closed_loop"] = results
            report["closed_loop_summary"] = summarize(results)
            for r in report["closed_loop_summary"]:
                parts.append((f"closed loop, {r['workload']}, {r['conns']} conns (all rounds)", r["quorum"]))

        if not args.skip_fault:
            proxy = proxies["replicas3"]
            log(f"fault phase: {point_label(point)} {args.fault_workload}, {buckets} x {bucket_s:g} s, no fault")
            base = fault_window(bins["loadgen"], proxy, by_id, args.victim, point, args.fault_workload, buckets,
                                bucket_s, keys, None, None)
            parts.append((f"fixed rate, {args.fault_workload}, no fault", base["quorum"]))
            report["fault"] = {"point": list(point), "workload": args.fault_workload, "buckets": buckets,
                               "bucket_s": bucket_s, "kill_at": kill_at, "restart_at": restart_at,
                               "victim": args.victim, "baseline": base,
                               "baseline_phases": phase_summary(base["buckets"], kill_at, restart_at),
                               "with_fault": None, "fault_phases": {}}
            log(f"fault phase: the same, {args.victim} killed in bucket {kill_at + 1} and restarted in bucket "
                f"{restart_at + 1}")
            fault = fault_window(bins["loadgen"], proxy, by_id, args.victim, point, args.fault_workload, buckets,
                                 bucket_s, keys, kill_at, restart_at)
            report["fault"].update(with_fault=fault, fault_phases=phase_summary(fault["buckets"], kill_at, restart_at))
            if not by_id[args.victim].p.alive():
                raise HarnessError(f"{args.victim} is not running after its restart:\n{by_id[args.victim].p.output()}")
    except BaseException as e:  # noqa: BLE001 -- reported, processes stopped, then a nonzero exit
        failed = e
        report["error"] = f"{type(e).__name__}: {e}"
        if not isinstance(e, (KeyboardInterrupt, SystemExit)):
            traceback.print_exc()
    finally:
        stop_all(running)
        shutil.rmtree(work, ignore_errors=True)

    parts = report["one_round"]["parts"]
    if parts:
        total = parts[0][1]
        for _, counts in parts[1:]:
            total = add_counts(total, counts)  # None (metric absent) stays None
        report["one_round"]["total"] = total
    report["elapsed_s"] = time.time() - started
    report["targets"] = targets(report)
    write_report(out, report)
    log(f"wrote {out} (and {os.path.splitext(out)[0]}.json) in {report['elapsed_s']:.0f} s")
    for t in report["targets"]:
        met = {True: "met", False: "NOT MET", None: "n/a", "info": "info"}[t["met"]]
        log(f"  [{met}] {t['target']}: {t['measured']}")
    if failed is not None:
        sys.exit(f"replication: harness error: {report['error']}")


if __name__ == "__main__":
    main()
