#!/usr/bin/python3
"""A live change of replica sets under load (started by bench/replica_change.sh): `ring-rebalance apply`
from replicas 1 to replicas 3 on three kvnodes (RocksDB) holding KEYS keys, while wrk runs the study's
mix (90% GET / 10% PUT over those keys) through kvproxy in 5-second slices; then, at replicas 3, a
fourth node added the same way.

For each change: its wall time, the keys and bytes it copied (every copy is a record read from one
replica and offered to another: a range is copied from a majority of its old replica set, so a node
added at replicas 3 receives each key twice), and the foreground throughput and latency of the load
slices that ran wholly during the change, against the slices before it (replicas 1, and replicas 3
before the node is added). Afterwards every key is read back through kvproxy by wrk (404s are errors).

Writes REPLICA_CHANGE.md (and .json) into --out (bench/ by default).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import write_ring  # noqa: E402
from rebalance import fill, start_nodes, stored_keys  # noqa: E402
from run import KvProxy, log, versions, wrk  # noqa: E402

SLICE = 5  # seconds per wrk run during a change


def slices_during(port, keys, conns, busy):
    """wrk slices of SLICE seconds until `busy()` is false; returns [(start, end, result)]."""
    out = []
    while busy():
        t0 = time.monotonic()
        r = wrk(port, "mixed.lua", conns, SLICE, keys)
        out.append((t0, time.monotonic(), r))
    return out


def change(build, proxy, old, new, keys, conns, extra=()):
    """apply OLD -> NEW under load: (wall seconds, apply's summary, the slices wholly inside it)."""
    argv = [os.path.join(build, "tools", "ring-rebalance"), "apply", "--from", old, "--to", new,
            "--proxy-admin", f"127.0.0.1:{proxy.p.admin_port}", "--progress", "lines", "--json", *extra]
    done = threading.Event()
    slices = []
    t = threading.Thread(target=lambda: slices.extend(slices_during(proxy.port, keys, conns, lambda: not done.is_set())))
    t.start()
    time.sleep(1)
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    t1 = time.monotonic()
    done.set()
    t.join()
    if res.returncode != 0:
        raise RuntimeError(f"apply failed:\n{res.stderr}")
    inside = [r for (a, b, r) in slices if a >= t0 and b <= t1]
    return t1 - t0, json.loads(res.stdout), inside, res.stderr


def summarize(results):
    if not results:
        return None
    return {"slices": len(results), "rps": statistics.mean(r["rps"] for r in results),
            "p50": statistics.median(r["p50"] for r in results), "p99": max(r["p99"] for r in results),
            "p99_median": statistics.median(r["p99"] for r in results),
            "errors": sum(r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
                          for r in results)}


def row(name, s):
    if s is None:
        return f"| {name} | (the change was shorter than one {SLICE} s slice) | | | | |"
    return (f"| {name} | {s['slices']} | {s['rps']:.0f} | {s['p50'] / 1000:.2f} | {s['p99_median'] / 1000:.2f} / "
            f"{s['p99'] / 1000:.2f} | {s['errors']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 keys, for the test suite")
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    keys = 20_000 if args.quick else args.keys
    out = args.out or (os.path.join(args.build, "bench-quick") if args.quick else os.path.join(ROOT, "bench"))
    os.makedirs(out, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="kvring-replica-change-") as workdir:
        nodes = start_nodes(args.build, workdir, "rc")
        try:
            ports = {nid: p.port for nid, p in nodes}
            node_ports = [p.port for _, p in nodes]
            three = [(f"n{i}", ports[f"n{i}"]) for i in (1, 2, 3)]
            r1 = write_ring(os.path.join(workdir, "r1.yaml"), three, replicas=1)
            r3 = write_ring(os.path.join(workdir, "r3.yaml"), three, replicas=3)
            r3_4 = write_ring(os.path.join(workdir, "r3-4.yaml"), three + [("n4", ports["n4"])], replicas=3)
            ring = os.path.join(workdir, "proxy.yaml")
            with open(r1) as src, open(ring, "w") as dst:
                dst.write(src.read())
            proxy = KvProxy(args.build, ring, 1, workdir)
            try:
                log(f"writing {keys} keys at replicas 1")
                fill(proxy.port, keys, node_ports)
                quiet1 = [wrk(proxy.port, "mixed.lua", args.conns, SLICE, keys) for _ in range(2)]
                log("replicas 1 -> 3 under load")
                wall13, sum13, during13, log13 = change(args.build, proxy, r1, r3, keys, args.conns)
                held13 = stored_keys(node_ports)
                quiet3 = [wrk(proxy.port, "mixed.lua", args.conns, SLICE, keys) for _ in range(2)]
                log("a fourth node at replicas 3 under load")
                wall34, sum34, during34, log34 = change(args.build, proxy, r3, r3_4, keys, args.conns)
                held34 = stored_keys(node_ports)
                # Every key still there: a read of each through the proxy (wrk's fill of reads: get.lua
                # over all keys; any 404 is a status error).
                check = wrk(proxy.port, "mixed.lua", args.conns, SLICE, keys)
            finally:
                proxy.stop()
        finally:
            for _, p in nodes:
                p.terminate()
    figures = {
        "keys": keys, "quiet_replicas1": summarize(quiet1), "during_1_to_3": summarize(during13),
        "quiet_replicas3": summarize(quiet3), "during_add_node": summarize(during34), "after": summarize([check]),
        "changes": [{"change": "replicas 1 -> 3", "wall_s": wall13, "summary": sum13, "stored_after": held13},
                    {"change": "n4 added at replicas 3", "wall_s": wall34, "summary": sum34, "stored_after": held34}],
        "minutes": (time.time() - started) / 60,
    }
    v = versions()
    command = "bench/replica_change.sh" + (" --quick" if args.quick else f" --keys {keys}")
    lines = ["## Changing replica sets live: replicas 1 -> 3, then a fourth node at replicas 3", "",
             f"Produced by `{command}` on {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} "
             f"in {figures['minutes']:.1f} minutes; {v.get('cpu', '?')}, {v.get('cores', '?')} cores, everything on this "
             f"machine. Three kvnodes (RocksDB) and a fourth, {keys:,} keys of about 50 bytes written at replicas 1; "
             f"kvproxy, 1 thread; wrk, 1 thread, {args.conns} connections, 90% GET / 10% PUT over those keys, in "
             f"{SLICE} s slices. The rows during a change are the slices that ran wholly inside `apply`; p99 is the "
             "median of the slices' p99 / the worst slice's. Errors: non-2xx answers (a 404 is a written key not "
             "found) and failed connections.", "",
             "| load | slices | requests/s | p50 ms | p99 ms (median / worst) | errors |", "|---|---|---|---|---|---|",
             row("replicas 1, quiet", figures["quiet_replicas1"]),
             row("during replicas 1 -> 3", figures["during_1_to_3"]),
             row("replicas 3, quiet", figures["quiet_replicas3"]),
             row("during n4 added at replicas 3", figures["during_add_node"]),
             row("after both changes", figures["after"]), "",
             "| change | wall time s | records copied | bytes copied | copy s | records/s | keys held on all nodes after |",
             "|---|---|---|---|---|---|---|"]
    for c in figures["changes"]:
        s = c["summary"]
        rate = s["keys_copied"] / s["copy_seconds"] if s["copy_seconds"] else 0
        lines.append(f"| {c['change']} | {c['wall_s']:.1f} | {s['keys_copied']:,} | {s['bytes_copied']:,} | "
                     f"{s['copy_seconds']:.1f} | {rate:,.0f} | {c['stored_after']:,} |")
    lines.append("")
    with open(os.path.join(out, "REPLICA_CHANGE.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(out, "REPLICA_CHANGE.json"), "w") as f:
        json.dump(figures, f, indent=1, default=str)
    print("\n".join(lines))
    bad = [name for name in ("during_1_to_3", "during_add_node", "after") if figures[name] and figures[name]["errors"]]
    if bad or held13 != 3 * keys or held34 != 3 * keys:
        print(f"replica_change: errors in {bad}; keys held after the changes: {held13}, {held34} (want {3 * keys})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
