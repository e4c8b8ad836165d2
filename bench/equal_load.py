#!/usr/bin/python3
"""Tail latency at equal offered load: kvproxy (its io_uring and its epoll loop), HAProxy and nginx in
front of the same three kvnodes, each driven at the same fixed request rates by bench/loadgen.

Closed-loop tools (wrk) compare p99 at whatever throughput each system reaches; here every system gets
the same schedule of requests (C connections x R requests a second each, the same keys in the same
order within a round), and every latency counts from the request's scheduled send time, so queueing
shows as latency (see the head of bench/loadgen.cpp). Started by bench/equal_load.sh, which builds first.

Before the sweep, the instrument is checked against a kvnode straight on: at every point where the
kvnode keeps up its achieved rate must be within 1% of the offered one, with no errors, and a 200 ms
stall of the server must show in its p99 (h2load, when installed, is run the same way for comparison).
The run fails (after writing its report) when a check fails.

Writes a markdown section to --out (bench/EQUAL_LOAD.md; with --quick, into the build tree) and every
run's figures beside it (the same name, .json).
"""
import argparse
import collections
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, write_ring  # noqa: E402
from run import (PIN, HAProxy, KvProxy, Nginx, cpu_seconds, log, median, preload, start_nodes,  # noqa: E402
                 stop_all, versions)

WORKLOADS = {"get": 0, "mixed": 10}  # name: share of PUTs (percent); the rest are GETs
SYSTEMS = ("kvproxy-uring", "kvproxy-epoll", "haproxy", "nginx")
PEERS = ("haproxy", "nginx")
STALL_S = 0.2  # the coordinated-omission check stops the server this long


def parse_points(text):
    """'10x1000,64x250' -> [(10, 1000.0), (64, 250.0)]: connections x requests a second per connection."""
    points = []
    for item in text.split(","):
        conns, _, rate = item.strip().partition("x")
        try:
            points.append((int(conns), float(rate)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--points: {item!r} is not CONNSxRATE (e.g. 10x1000)")
        if points[-1][0] < 1 or points[-1][1] <= 0:
            raise argparse.ArgumentTypeError(f"--points: {item!r}: at least one connection and a rate above 0")
    return points


def point_label(point):
    conns, rate = point
    return f"{conns} x {rate:g}/s = {conns * rate:,.0f}/s"


def loadgen(build, port, point, workload, seconds, warmup, keys, seed, pid_to_stop=None):
    """One bench/loadgen run; returns its LOADGEN figures. With `pid_to_stop`, that process is stopped
    for STALL_S seconds in the middle of the measured window (the coordinated-omission check)."""
    conns, rate = point
    argv = PIN["load"] + [os.path.join(build, "bench", "loadgen"), "--port", str(port), "--conns", str(conns),
                          "--rate", f"{rate:g}", "--seconds", f"{seconds:g}", "--warmup", f"{warmup:g}",
                          "--keys", str(keys), "--put-percent", str(WORKLOADS[workload]), "--seed", str(seed)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stall = None
    if pid_to_stop:
        stall = threading.Thread(target=stop_for, args=(pid_to_stop, warmup + seconds / 2 - STALL_S / 2, STALL_S))
        stall.start()
    try:
        out, err = proc.communicate(timeout=seconds + warmup + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        if stall:
            stall.join()
    line = next((l for l in out.splitlines() if l.startswith("LOADGEN ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {' '.join(argv)}\n{out}\n{err}")
    return json.loads(line[len("LOADGEN "):])


def stop_for(pid, after, seconds):
    time.sleep(max(0.0, after))
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def nearest_rank(sorted_values, p):
    """The p-th percentile by nearest rank, as bench/loadgen computes it."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values), max(1, math.ceil(p / 100 * len(sorted_values)))) - 1]


def h2load(port, point, seconds, keys, work, pid_to_stop=None):
    """h2load --rps with HTTP/1.1 at `point`, GET only, with the same stall as loadgen(); percentiles
    from its per-request log (send to answer: h2load times from the send, not from the schedule)."""
    conns, rate = point
    uris = os.path.join(work, "uris.txt")
    with open(uris, "w") as f:  # h2load walks the list in order, every connection from the top
        for i in range(keys):
            f.write(f"http://127.0.0.1:{port}/get?key=bench:{(i * 7919) % keys + 1}\n")
    log_file = os.path.join(work, "h2load.log")
    if os.path.exists(log_file):  # h2load appends to its log
        os.remove(log_file)
    argv = PIN["load"] + ["h2load", "--h1", "-c", str(conns), "--rps", f"{rate:g}", "-i", uris, "--log-file", log_file,
                          "-D", f"{seconds:g}"]
    stall = None
    if pid_to_stop:
        stall = threading.Thread(target=stop_for, args=(pid_to_stop, seconds / 2 - STALL_S / 2, STALL_S))
        stall.start()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        if stall:
            stall.join()
    if r.returncode != 0:
        raise RuntimeError(f"h2load failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}\n{r.stderr}")
    sends, times, failed = [], [], 0
    with open(log_file) as f:
        for line in f:
            start, status, took = line.split("\t")
            sends.append(int(start))
            times.append(int(took))
            failed += not status.startswith("2")
    times.sort()
    sends.sort()
    # How evenly it sends: the share of the run's 1 ms intervals in which it sent nothing, and the most
    # requests it sent in one.
    per_ms = collections.Counter((s - sends[0]) // 1000 for s in sends)
    span_ms = (sends[-1] - sends[0]) // 1000 + 1
    return {"point": point, "requests": len(times), "rps": len(times) / seconds, "failed": failed,
            "p50": nearest_rank(times, 50), "p99": nearest_rank(times, 99), "p999": nearest_rank(times, 99.9),
            "max": times[-1], "idle_ms_share": 1 - len(per_ms) / span_ms, "max_per_ms": max(per_ms.values())}


def check_instrument(build, kvnode, points, seconds, warmup, keys, work, running):
    """Rate accuracy at every point and the stall test, against a kvnode of its own, straight on."""
    node = Process(PIN["load"] + [kvnode, "--port", "0", "--id", "check", "--engine", "memory"])
    running.append(node)
    preload(node.port, keys)
    rate_rows = []
    # Answers that slip past the end of the window count against the rate: with 5 s, 1% is 50 ms, so a
    # shared machine's hiccups do not fail the check, whatever --seconds says.
    rate_s = max(seconds, 5.0)
    for point in points:
        r = loadgen(build, node.port, point, "get", rate_s, warmup, keys, seed=1)
        r["point"] = point
        r["deviation"] = r["achieved_rps"] / r["offered_rps"] - 1
        r["late_share"] = r["late"] / max(1, r["scheduled"])
        # The bound holds for a server that keeps up. With most requests waiting for their connection,
        # the kvnode (or the machine around it) did not, and the rate says nothing about the generator.
        if r["errors"]:
            r["verdict"] = "errors"
        elif r["late_share"] > 0.5:
            r["verdict"] = f"inconclusive: the server fell behind ({r['late_share'] * 100:.0f}% sent late)"
        else:
            r["verdict"] = "within 1%" if abs(r["deviation"]) <= 0.01 else "**more than 1% off**"
        rate_rows.append(r)
        log(f"check {point_label(point)}: achieved {r['achieved_rps']:.1f} req/s ({r['deviation'] * 100:+.2f}%), "
            f"late {r['late']}, errors {r['errors']}, generator CPU {r['cpu_util'] * 100:.1f}% of a core, "
            f"{r['cpu_s'] * 1e6 / max(1, r['sent_total']):.1f} us/request, send lag p99 {r['lag_p99']} us: "
            f"{r['verdict'].replace('*', '')}")
    stall_s = max(seconds, 2.0)
    stalled = loadgen(build, node.port, points[0], "get", stall_s, warmup, keys, seed=1, pid_to_stop=node.proc.pid)
    expected_p99 = (STALL_S - 0.01 * stall_s) * 1e6
    log(f"check stall {STALL_S * 1000:.0f} ms in {stall_s:g} s: loadgen p99 {stalled['p99']} us "
        f"(expected about {expected_p99:.0f}), late {stalled['late']}")
    h2, h2_pacing, h2_version = None, [], None
    if shutil.which("h2load"):
        h2_version = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
        h2 = h2load(node.port, points[0], stall_s, keys, work, pid_to_stop=node.proc.pid)
        log(f"check stall, h2load --rps: p99 {h2['p99']} us, max {h2['max']} us, {h2['rps']:.0f} req/s, "
            f"{h2['idle_ms_share'] * 100:.0f}% of milliseconds without a send")
        for point in points:  # how h2load paces the same offered loads, unstalled
            h2_pacing.append(h2load(node.port, point, 1.0, keys, work))
            log(f"check h2load --rps pacing at {point_label(point)}: {h2_pacing[-1]['rps']:.0f} req/s, "
                f"{h2_pacing[-1]['idle_ms_share'] * 100:.0f}% of milliseconds without a send, up to "
                f"{h2_pacing[-1]['max_per_ms']} sends in one")
    node.terminate()
    running.remove(node)
    failures = [f"{point_label(r['point'])}: achieved {r['achieved_rps']:.1f} req/s, {r['deviation'] * 100:+.2f}% "
                f"of offered, {r['errors']} errors, {r['late']} sent late, its own send lag up to {r['lag_max']} us"
                for r in rate_rows if r["verdict"] in ("errors", "**more than 1% off**")]
    if stalled["p99"] < expected_p99 / 2:
        failures.append(f"stall: p99 {stalled['p99']} us, expected about {expected_p99:.0f}")
    return {"rate": rate_rows, "rate_seconds": rate_s, "stall": stalled, "stall_seconds": stall_s, "expected_p99": expected_p99,
            "h2load": h2, "h2load_pacing": h2_pacing, "h2load_version": h2_version, "failures": failures}


def measure(build, system, point, workload, seconds, warmup, keys, seed):
    u0, s0 = cpu_seconds(system.pids())
    r = loadgen(build, system.port, point, workload, seconds, warmup, keys, seed)
    u1, s1 = cpu_seconds(system.pids())
    # The proxy's CPU over the whole loadgen run (warm-up and drain too), so divided by every answer.
    r["proxy_cpu_us_per_req"] = ((u1 - u0) + (s1 - s0)) / max(1, r["answered_total"]) * 1e6
    r["late_share"] = r["late"] / max(1, r["scheduled"])
    return r


def sweep(build, systems, points, workloads, rounds, seconds, warmup, keys):
    """Every workload, point and round; the systems' order rotated each round, as bench/run.py does.
    Round r uses seed r + 1 for every system: within a round all get the same requests."""
    results = []
    for workload in workloads:
        for point in points:
            for rnd in range(rounds):
                order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
                for s in order:
                    r = measure(build, s, point, workload, seconds, warmup, keys, seed=rnd + 1)
                    r.update(workload=workload, point=list(point), round=rnd, system=s.name)
                    results.append(r)
                    lag = f"{r['lag_p99']} us" if r["on_time"] else "n/a (all late)"
                    log(f"{workload} {point_label(point)} round {rnd + 1}/{rounds} {s.name:13s} "
                        f"{r['achieved_rps']:8.0f} req/s  p50 {r['p50']} us  p99 {r['p99']} us  p99.9 {r['p999']} us  "
                        f"late {r['late_share'] * 100:.2f}%  errors {r['errors']}  proxy {r['proxy_cpu_us_per_req']:.1f} "
                        f"us/req  generator {r['cpu_util'] * 100:.0f}% CPU, lag p99 {lag}")
    return results


def summarize(results):
    """Per (workload, point, system): medians over rounds, the worst round, and ratios to the best peer.
    A ratio is taken per round, against the better of HAProxy and nginx in that round, and its median
    over rounds is reported."""
    rows = []
    groups = dict.fromkeys((r["workload"], tuple(r["point"])) for r in results)
    for workload, point in groups:
        group = [r for r in results if r["workload"] == workload and tuple(r["point"]) == point]
        for system in dict.fromkeys(r["system"] for r in group):
            mine = [r for r in group if r["system"] == system]
            row = {"workload": workload, "point": point, "system": system, "rounds": len(mine),
                   "errors": sum(r["errors"] for r in mine)}
            for m in ("achieved_rps", "p50", "p99", "p999", "max", "late_share", "proxy_cpu_us_per_req"):
                row[m] = median([r[m] for r in mine])
            for m in ("p50", "p99", "p999", "max", "late_share"):
                row[m + "_worst"] = max(r[m] for r in mine)
            row["gen_cpu_worst"] = max(r["cpu_util"] for r in mine)
            lags = [r["lag_p99"] for r in mine if r["on_time"]]  # none when every request was late
            row["gen_lag_worst"] = max(lags) if lags else None
            row["kept_up"] = all(kept_up(r) for r in mine)
            for m in ("p99", "p999"):
                ratios, flagged = [], False
                for r in mine:
                    peers = [x for x in group if x["system"] in PEERS and x["round"] == r["round"]]
                    best = min(peers, key=lambda x: x[m], default=None)
                    if best and best[m] > 0:
                        ratios.append(r[m] / best[m])
                        flagged |= not kept_up(r) or not kept_up(best)
                row[m + "_vs_peer"] = median(ratios)
                row[m + "_flag"] = flagged
            rows.append(row)
    return rows


def kept_up(r):
    """Whether a run's system kept up with the schedule: it answered at the offered rate (within 1%: below,
    its queue grew; above, it was draining a backlog left from the warm-up) and most requests found their
    connection free when they fell due. Otherwise its latencies say how long the run was as much as how
    slow the system is."""
    return abs(r["achieved_rps"] / r["offered_rps"] - 1) <= 0.01 and r["late_share"] <= 0.5


def ratio(v, flagged=False):
    return "n/a" if math.isnan(v) else f"{v:.2f}x{' †' if flagged else ''}"


def workload_table(rows):
    out = ["| offered load | system | achieved req/s | p50 us | p99 us | p99.9 us | worst round p50 / p99 / p99.9 us | "
           "max us | sent late | errors | proxy CPU us/req | p99 vs best peer | p99.9 vs best peer | "
           "generator CPU / send lag p99 |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lag = "n/a (all late)" if r["gen_lag_worst"] is None else f"{r['gen_lag_worst']} us"
        out.append(f"| {point_label(r['point'])} | {r['system']} | {r['achieved_rps']:.0f}{'' if r['kept_up'] else ' †'} | "
                   f"{r['p50']:.0f} | "
                   f"{r['p99']:.0f} | {r['p999']:.0f} | {r['p50_worst']:.0f} / {r['p99_worst']:.0f} / {r['p999_worst']:.0f} | "
                   f"{r['max']:.0f} | "
                   f"{r['late_share'] * 100:.2f}% | {r['errors']} | {r['proxy_cpu_us_per_req']:.1f} | "
                   f"{ratio(r['p99_vs_peer'], r['p99_flag'])} | {ratio(r['p999_vs_peer'], r['p999_flag'])} | "
                   f"{r['gen_cpu_worst'] * 100:.0f}% / {lag} |")
    return "\n".join(out)


def ratio_table(rows, workloads, points):
    loops = [s for s in ("kvproxy-uring", "kvproxy-epoll") if any(r["system"] == s for r in rows)]
    if not loops or not any(r["system"] in PEERS for r in rows):
        return ""
    head = "| workload | offered load | " + " | ".join(f"{s} p99 | {s} p99.9" for s in loops) + " |"
    out = [head, "|---|---|" + "---|" * (2 * len(loops))]
    for w in workloads:
        for p in points:
            cells = []
            for s in loops:
                r = next((x for x in rows if x["workload"] == w and x["point"] == p and x["system"] == s), None)
                cells += ([ratio(r["p99_vs_peer"], r["p99_flag"]), ratio(r["p999_vs_peer"], r["p999_flag"])] if r
                          else ["n/a", "n/a"])
            out.append(f"| {w} | {point_label(p)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_markdown(path, command, date, v, revision, args, quick, checks, rows, elapsed, keys):
    lines = [f"## Tail latency at equal offered load{' (quick mode: smoke numbers only)' if quick else ''}", "",
             f"Produced by `{command}` on {date} in {elapsed / 60:.1f} minutes, tree {revision}. Machine: {v['cpu']}, "
             f"{v['cores']} cores, Linux {v['kernel']}. References: {v['haproxy']}; {v['nginx']}. "
             f"CPUs: {'proxy on CPU 0, generator and nodes on CPU 1 (--pin)' if args.pin else 'not pinned'}.", "",
             "Every system gets the same offered load: bench/loadgen opens C keep-alive connections and sends R "
             "requests a second on each, on a fixed schedule (the connections staggered evenly), whatever the "
             "answers do; within a round every system gets the same keys in the same order. A request falls due at "
             "its scheduled time; when its connection is still waiting for the previous answer (HTTP/1.1, no "
             "pipelining) it is sent as soon as the connection is free, and counted as *sent late*. Every latency "
             "counts from the request's **scheduled** time to the last byte of its answer, so time spent queued "
             "behind a slow answer is counted (no coordinated omission). Percentiles are exact (nearest rank over "
             "every request of the run), in microseconds.", "",
             f"Three kvnodes (memory engine), {keys} keys preloaded through each proxy; one thread/worker per proxy: "
             "kvproxy with `--io uring` and with `--io epoll`, HAProxy with `balance url_param key`, `hash-type "
             "consistent`, `http-reuse always`, nginx with `hash $arg_key consistent` and upstream `keepalive` "
             f"(configs as bench/run.py writes them). {args.rounds_used} round(s) of {args.seconds_used:g} s "
             f"measured after {args.warmup_used:g} s of warm-up on the same connections, the order of the systems "
             "rotated each round. get: GETs of preloaded keys, uniformly at random; mixed: 90% GET / 10% PUT "
             "(bench/lua/mixed.lua's body).", "",
             "Columns: figures are medians over rounds; *worst round* is the highest p50, p99 and p99.9 of any round. "
             "*achieved*: answers received during the measured window over its length. *errors*: non-2xx answers, "
             "failed or closed connections, connect failures, timeouts (5 s) and requests never answered, summed "
             "over rounds. *proxy CPU*: user + system time of the proxy's processes (/proc) over the whole run "
             "divided by every answer of the run. *vs best peer*: per round, the system's figure over the lower of "
             "HAProxy's and nginx's in that round; the median of those ratios (below 1.00x: better than both). "
             "*generator*: bench/loadgen's own CPU time (getrusage) as a share of one core, and the 99th percentile "
             "of how late it sent the requests that were not waiting for their connection (its own timer accuracy; "
             "it is part of every latency), both the worst round. **†**: in some round the system, or the peer it "
             "is compared with, did not keep up: its answers came more than 1% below the offered rate (a growing "
             "queue) or above it (a backlog from the warm-up draining), or more than half of the requests were "
             "sent late. Its queue grew or drained through the run, so its "
             "latencies grow with the length of the run rather than measure its service.", ""]
    if rows:
        lines += ["### kvproxy against the best peer", "", ratio_table(rows, args.workload_list, args.point_list), ""]
    for w in args.workload_list:
        mine = [r for r in rows if r["workload"] == w]
        if mine:
            lines += [f"### {w}: {'100% GET' if WORKLOADS[w] == 0 else f'{100 - WORKLOADS[w]}% GET / {WORKLOADS[w]}% PUT'}",
                      "", workload_table(mine), ""]
    if checks["failures"]:
        lines += ["**The instrument check failed** (see below): " + "; ".join(checks["failures"]), ""]
    lines += ["### The instrument", "",
              "Checked before the sweep against a kvnode of its own, straight on (no proxy), GET only.", "",
              f"Rate accuracy, {checks['rate_seconds']:g} s per point. The run fails on any error, and when the "
              "achieved rate is more than 1% off the offered one while the server kept up (at most half of the "
              "requests sent late); with more sent late, the server or the machine fell behind and the point "
              "says nothing about the generator (inconclusive). The latencies are the floor of this machine at "
              "each point: what the same generator measures of one kvnode with no proxy in front, on the same "
              "two cores; a proxy's tail below it cannot be told apart from the machine's.", "",
              "| offered load | achieved req/s | off by | verdict | sent late | errors | no-proxy p50 / p99 / p99.9 us | "
              "generator CPU | generator CPU us/req | send lag p99 / max us |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in checks["rate"]:
        lines.append(f"| {point_label(r['point'])} | {r['achieved_rps']:.1f} | {r['deviation'] * 100:+.2f}% | "
                     f"{r['verdict']} | "
                     f"{r['late']} | {r['errors']} | {r['p50']} / {r['p99']} / {r['p999']} | "
                     f"{r['cpu_util'] * 100:.1f}% of a core | "
                     f"{r['cpu_s'] * 1e6 / max(1, r['sent_total']):.1f} | {r['lag_p99']} / {r['lag_max']} |")
    s, h2, stall_s = checks["stall"], checks["h2load"], checks["stall_seconds"]
    lines += ["", f"Coordinated omission: the kvnode is stopped (SIGSTOP) for {STALL_S * 1000:.0f} ms in the middle "
              f"of a {stall_s:g} s run at {point_label(checks['rate'][0]['point'])}. Requests due during the stall "
              f"wait from {STALL_S * 1000:.0f} ms down to 0, so a share (D - x)/S of them waits more than x: p99 "
              f"should come out near {checks['expected_p99'] / 1000:.0f} ms.", "",
              "| instrument | p50 us | p99 us | p99.9 us | max us | requests/s |", "|---|---|---|---|---|---|",
              f"| bench/loadgen (from the scheduled time) | {s['p50']} | {s['p99']} | {s['p999']} | {s['max']} | "
              f"{s['achieved_rps']:.0f} |"]
    if h2:
        lines.append(f"| h2load --h1 --rps (from the send; its per-request log) | {h2['p50']} | {h2['p99']} | "
                     f"{h2['p999']} | {h2['max']} | {h2['rps']:.0f} |")
        lines += ["", f"h2load ({checks['h2load_version']}) is not an open-loop generator over HTTP/1.1. Its `--rps` "
                  "timer ticks every `max(0.01, 1/rps)` seconds and adds the requests due since the last tick to a "
                  "pending count; with HTTP/1.1 a connection carries one request at a time, so a tick sends at most "
                  "one and the rest go out back to back, each as soon as the previous answer is in. Each request is "
                  "timed from when it is actually sent. So a late answer delays the next requests and their wait is "
                  f"never counted: coordinated omission (in the stall above its p99 is {h2['p99']} us against "
                  f"bench/loadgen's {s['p99']} us; the stall shows in its max, on one request per connection). And the load comes in bursts: above 100 requests a second per "
                  "connection a 10 ms tick's worth goes out at once, and the connections' timers start together "
                  "when they connect, so at lower rates every connection sends in the same millisecond. It also "
                  "walks its URI list in order, every connection from the top. Hence bench/loadgen for both "
                  "workloads. How h2load paced the same offered loads against the same kvnode, 1 s each "
                  "(bench/loadgen's schedule sends C x R / 1000 requests in every millisecond):", "",
                  "| offered load | h2load req/s | milliseconds without a send | most sends in one millisecond | "
                  "bench/loadgen's schedule per millisecond |", "|---|---|---|---|---|"]
        for p in checks["h2load_pacing"]:
            conns, rate = p["point"]
            lines.append(f"| {point_label(p['point'])} | {p['rps']:.0f} | {p['idle_ms_share'] * 100:.0f}% | "
                         f"{p['max_per_ms']} | {conns * rate / 1000:g} |")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one round of a second per system, into the build tree")
    ap.add_argument("--out", help="the markdown file to write (default bench/EQUAL_LOAD.md; with --quick, "
                                  "BUILD/bench-quick/EQUAL_LOAD.md)")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    ap.add_argument("--points", type=parse_points, default=parse_points("10x1000,64x250,200x75"),
                    help="offered loads, CONNSxRATE with RATE per connection (default 10x1000,64x250,200x75)")
    ap.add_argument("--workloads", default="get,mixed", help="comma-separated, of get, mixed (default both)")
    ap.add_argument("--rounds", type=int, help="rounds per point (default 3; --quick 1)")
    ap.add_argument("--seconds", type=float, help="measured seconds per run (default 10; --quick 1)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds before each measured window (default 2; --quick 0.5)")
    ap.add_argument("--keys", type=int, help="keys preloaded and requested (default 10000; --quick 1000)")
    ap.add_argument("--pin", action="store_true", help="the proxy under test on CPU 0, loadgen and the nodes on CPU 1")
    args = ap.parse_args()
    quick = args.quick
    wanted = [s for s in args.systems.split(",") if s]
    for s in wanted:
        if s not in SYSTEMS:
            ap.error(f"--systems: unknown system {s!r} ({', '.join(SYSTEMS)})")
    args.workload_list = [w for w in args.workloads.split(",") if w]
    for w in args.workload_list:
        if w not in WORKLOADS:
            ap.error(f"--workloads: unknown workload {w!r} ({', '.join(WORKLOADS)})")
    args.point_list = args.points
    args.rounds_used = args.rounds or (1 if quick else 3)
    args.seconds_used = args.seconds or (1 if quick else 10)
    args.warmup_used = args.warmup if args.warmup is not None else (0.5 if quick else 2)
    keys = args.keys or (1000 if quick else 10000)
    if args.rounds_used < 1 or args.seconds_used <= 0 or args.warmup_used < 0 or keys < 1:
        ap.error("--rounds >= 1, --seconds > 0, --warmup >= 0, --keys >= 1")
    if args.pin:
        if (os.cpu_count() or 1) < 2:
            ap.error("--pin: needs two CPUs")
        PIN.update(proxy=["taskset", "-c", "0"], load=["taskset", "-c", "1"])
    out = args.out or (os.path.join(args.build, "bench-quick", "EQUAL_LOAD.md") if quick
                       else os.path.join(ROOT, "bench", "EQUAL_LOAD.md"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if not os.access(os.path.join(args.build, "bench", "loadgen"), os.X_OK):
        sys.exit(f"equal_load: no {args.build}/bench/loadgen: build first (bench/equal_load.sh does)")

    command = " ".join(["bench/equal_load.sh"] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.time()
    work = tempfile.mkdtemp(prefix="kvring-equal-load-")
    kvnode = os.path.join(args.build, "node", "kvnode")
    running = []
    try:
        log("checking the instrument against a kvnode straight on")
        checks = check_instrument(args.build, kvnode, args.point_list, args.seconds_used, args.warmup_used, keys,
                                  work, running)
        nodes = start_nodes(kvnode, 3, running)
        node_ports = [(f"n{i + 1}", n.port) for i, n in enumerate(nodes)]
        ring = write_ring(os.path.join(work, "ring.yaml"), node_ports)
        makers = {"kvproxy-uring": lambda: KvProxy(args.build, ring, 1, work, "kvproxy-uring", None, ["--io", "uring"]),
                  "kvproxy-epoll": lambda: KvProxy(args.build, ring, 1, work, "kvproxy-epoll", None, ["--io", "epoll"]),
                  "haproxy": lambda: HAProxy(node_ports, 1, work),
                  "nginx": lambda: Nginx(node_ports, 1, work)}
        systems = []
        for name in wanted:
            systems.append(makers[name]())
            running.append(systems[-1])
        for s in systems:
            preload(s.port, keys)
        log("side by side at equal offered load:", ", ".join(wanted))
        results = sweep(args.build, systems, args.point_list, args.workload_list, args.rounds_used,
                        args.seconds_used, args.warmup_used, keys)
    finally:
        stop_all(running)
        shutil.rmtree(work, ignore_errors=True)

    rows = summarize(results)
    v = versions()
    with open(os.path.splitext(out)[0] + ".json", "w") as f:  # every run's figures, to summarize again
        json.dump({"command": command, "date": date, "checks": checks, "runs": results}, f)
    write_markdown(out, command, date, v, git_revision(), args, quick, checks, rows, time.time() - started, keys)
    log(f"wrote {out} in {time.time() - started:.0f} s")
    if checks["failures"]:
        sys.exit("equal_load: the instrument check failed: " + "; ".join(checks["failures"]))


if __name__ == "__main__":
    main()
