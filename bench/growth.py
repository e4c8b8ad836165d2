#!/usr/bin/python3
"""Speed as the data grows: kvproxy (one thread) in front of three kvnodes on RocksDB, filled with N keys
(bench:1 .. bench:N, about 60 bytes each) and then wrk's study mix (90% GET / 10% PUT, uniform over all
N keys): one run of --seconds right after the fill, while the nodes still compact it, then --rounds runs
once they have settled (no flush or compaction running or pending). `--workload get` sends GETs only,
to tell the read path's cost from the PUTs' flushes and compactions. Started by bench/growth.sh, which
builds first.

For each key count: the requests/s and p99 right after the fill, how long the nodes took to settle,
the requests/s and p99 settled (medians over the rounds) with the ratio to the smallest key count,
each node's resident memory (VmRSS) after the runs, and the bytes on disk per node and per key
(the data directories, WAL included). With --reference BUILD the same is measured for that build (the
build before a change) at each key count, the two taking turns, each on a fresh fill.

With --direct, one kvnode straight on instead of the cluster (no proxy): what one node costs per
request at the share of the keys it would hold (bench/node_reads.sh; --perf FILE records a profile of
the node during the second settled run).

Writes a markdown section to --out (bench/GROWTH.md; with --quick, into the build tree) and the figures
beside it (.json).
"""
import argparse
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, write_ring  # noqa: E402
from equal_load import git_revision  # noqa: E402
from rebalance import fill  # noqa: E402
from run import KvProxy, cpu_seconds, log, median, stat_fields, versions, wrk  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def background_cpu(pids):
    """CPU seconds (user + system) of these processes' RocksDB background threads, the flushes and
    compactions (RocksDB names its pool threads rocksdb:low, rocksdb:high, ...)."""
    ticks = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    if not f.read().startswith("rocksdb:"):
                        continue
                fields = stat_fields(f"/proc/{pid}/task/{tid}/stat")
                ticks += int(fields[11]) + int(fields[12])
            except (FileNotFoundError, ProcessLookupError):
                pass
    return ticks / os.sysconf("SC_CLK_TCK")


def disk_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def engine_gauges(port):
    """kvnode's kvnode_rocksdb_* gauges (GET /metrics), without the prefix; {} from a build before them."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("kvnode_rocksdb_"):
            name, _, value = line.rpartition(" ")
            out[name[len("kvnode_rocksdb_"):]] = float(value)
    return out


def sst_files(dirs):
    files = set()
    for d in dirs:
        for root, _, names in os.walk(d):
            for name in names:
                if name.endswith(".sst"):
                    try:
                        files.add((name, os.path.getsize(os.path.join(root, name))))
                    except OSError:
                        pass
    return files


def settle(ports, dirs, limit=900):
    """Waits until no node has a flush or compaction running or pending, at most `limit` seconds;
    returns the seconds waited. By kvnode's /metrics gauges (three quiet looks in a row, a second
    apart); for a build before them, until no table file has appeared, gone or grown for 10 s."""
    t0 = time.time()
    quiet, files = 0, None
    while time.time() - t0 < limit:
        gauges = [engine_gauges(p) for p in ports]
        if all(gauges):
            busy = any(g["pending_compaction_bytes"] or g["running_compactions"] or g["running_flushes"] for g in gauges)
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return time.time() - t0
        else:
            now = sst_files(dirs)
            quiet = quiet + 1 if now == files else 0
            files = now
            if quiet >= 10:
                return time.time() - t0
        time.sleep(1)
    raise RuntimeError(f"compaction still running {limit} s after the fill")


def data_dirs(work, count=3):
    return [os.path.join(work, f"n{i}") for i in range(1, count + 1)]


def start_nodes(build, work, flags=(), ports=None, count=3, env=None):
    """`count` kvnodes on data directories work/n1..; on `ports`, to start them again on the same data."""
    return [Process([os.path.join(build, "node", "kvnode"), "--port", str(ports[i]) if ports else "0",
                     "--id", f"n{i + 1}", "--data-dir", d, *flags], env=env)
            for i, d in enumerate(data_dirs(work, count))]


def start_proxy(build, work, nodes):
    ring = write_ring(os.path.join(work, "ring.yaml"), [(f"n{i + 1}", n.port) for i, n in enumerate(nodes)])
    return KvProxy(build, ring, 1, work)


def stop_cluster(proxy, nodes, work):
    if proxy:
        proxy.stop()
    for n in nodes:
        n.terminate()
    shutil.rmtree(work, ignore_errors=True)


def node_cpu(nodes):
    """CPU seconds (user + system) the nodes have used so far, and of those their background threads'."""
    pids = [n.proc.pid for n in nodes]
    user, system = cpu_seconds(pids)
    return user + system, background_cpu(pids)


WORKLOADS = {"mixed": ("mixed.lua", "90% GET / 10% PUT, uniform over all N keys"),
             "get": ("get.lua", "100% GET, uniform over all N keys: the read path alone")}


def profiled(pid, seconds, path, run):
    """`run()`, with `perf record` sampling the CPU clock of process `pid` meanwhile into `path` (a
    software clock: this machine has no hardware counters)."""
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", path, "-p", str(pid), "--",
                             "sleep", str(max(1, seconds - 2))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return run()
    finally:
        perf.wait()
        log(f"perf profile of pid {pid} in {path}: perf report -i {path} --no-children")


def measure(build, keys, rounds, seconds, conns, label, node_flags=(), workload="mixed", direct=False, perf=None):
    """A fresh cluster of `build` (its kvnodes given `node_flags`), or with `direct` one kvnode alone,
    filled with `keys` keys, then `rounds` wrk runs of the workload."""
    work = tempfile.mkdtemp(prefix=f"kvring-growth-{label}-")
    nodes, proxy = [], None
    count = 1 if direct else 3
    try:
        nodes = start_nodes(build, work, node_flags, count=count)
        ports = [n.port for n in nodes]
        if direct:
            target = ports[0]
        else:
            proxy = start_proxy(build, work, nodes)
            target = proxy.port
        t0 = time.time()
        fill(target, keys, ports)
        fill_s = time.time() - t0
        # Right after the fill, while the nodes still compact it; then once they have settled.
        script = WORKLOADS[workload][0]
        after_fill = wrk(target, script, conns, seconds, keys)
        settle_s = settle(ports, data_dirs(work, count))
        cpu0, background0 = node_cpu(nodes)
        runs = []
        for i in range(rounds):
            run = lambda: wrk(target, script, conns, seconds, keys)  # noqa: E731
            runs.append(profiled(nodes[0].proc.pid, seconds, perf, run) if perf and i == min(1, rounds - 1) else run())
        cpu1, background1 = node_cpu(nodes)
        gauges = [engine_gauges(p) for p in ports]
        rss = [rss_bytes(n.proc.pid) for n in nodes]
        disk = [disk_bytes(d) for d in data_dirs(work, count)]
    finally:
        stop_cluster(proxy, nodes, work)
    requests = max(1, sum(x["requests"] for x in runs))
    r = {"label": label, "keys": keys, "nodes": count, "fill_s": fill_s, "settle_s": settle_s,
         "after_fill": {k: after_fill[k] for k in ("rps", "p50", "p99", "p999", "errors")},
         "rps": median([x["rps"] for x in runs]),
         "p99_us": median([x["p99"] for x in runs]), "errors": after_fill["errors"] + sum(x["errors"] for x in runs),
         "engine": gauges,
         # The nodes' CPU time per request over the settled runs: on a machine whose two cores wrk, the
         # proxy and three nodes share, steadier than their throughput.
         "node_cpu_us": (cpu1 - cpu0) * 1e6 / requests,
         # Of which RocksDB's flushes and compactions: the PUTs' deferred cost, which grows with the data
         # the PUTs land among, where the rest is the requests' own path.
         "node_background_cpu_us": (background1 - background0) * 1e6 / requests,
         "runs": [{k: x[k] for k in ("rps", "p50", "p99", "p999", "errors")} for x in runs],
         "rss_per_node": rss, "disk_per_node": disk, "disk_per_key": sum(disk) / keys}
    settled = f"{settle_s:.0f}"
    log(f"{label} {keys:>9} keys: fill {fill_s:.0f} s, right after {after_fill['rps']:.0f} req/s "
        f"(p99 {after_fill['p99'] / 1000:.2f} ms), settled in {settled} s, {r['rps']:.0f} req/s, p99 {r['p99_us'] / 1000:.2f} ms, "
        f"nodes {r['node_cpu_us']:.1f} us CPU/request ({r['node_background_cpu_us']:.1f} in flushes and compactions), "
        f"RSS {max(rss) / 2**20:.0f} MiB/node, block cache {max(g.get('block_cache_bytes', 0) for g in gauges) / 2**20:.0f} MiB/node, "
        f"disk {sum(disk) / 2**20:.0f} MiB ({r['disk_per_key']:.0f} B/key), "
        f"{r['errors']} errors")
    return r


def write_markdown(path, command, date, args, rows, elapsed):
    v = versions()
    labels = list(dict.fromkeys(r["label"] for r in rows))
    lines = [
        "## Speed as the data grows (issue 20)",
        "",
        f"Produced by `{command}` on {date} (revision {git_revision()}) in {elapsed / 60:.1f} minutes, on "
        f"{v['cpu']} ({v['cores']} cores): "
        + ("one kvnode on RocksDB straight on (no proxy), fresh for each N, filled with N keys (wrk, "
           "bench/lua/fill.lua), then one run of " if args.direct else
           "kvproxy (one thread) in front of three kvnodes on RocksDB, each cluster fresh, filled with N keys "
           "through the proxy (wrk, bench/lua/fill.lua), then one run of ")
        + f"{args.seconds:g} s of wrk right after the fill (one thread, {args.conns} connections, "
        f"bench/lua/{WORKLOADS[args.workload][0]}: {WORKLOADS[args.workload][1]}), while the nodes still flush and compact what the fill "
        "wrote; then, once no node has a flush or compaction running or pending (kvnode's "
        f"kvnode_rocksdb_* gauges; for a build before them, no table file changed for 10 s; \"settled\" is how "
        f"long that took after the first run), {args.rounds} more "
        "runs: \"settled\" requests/s and p99 are their medians, and the kvnodes' CPU time (user + system, "
        "from /proc) over those runs divided by their requests, and the part of it spent in RocksDB's "
        "background threads (rocksdb:low/high: flushes and compactions). "
        "Memory: each node's resident set after the runs (the largest); disk: the data directories (WAL "
        "included) right after the runs, per node and per key."
        + (f" `{labels[0]}` is the build before the change (--reference), `{labels[-1]}` this one; they take turns "
           "at each key count." if len(labels) > 1 else ""),
        "",
        "| build | keys | fill (s) | right after: req/s | p99 (ms) | settled (s) | settled: req/s | vs the fewest keys "
        "| p99 (ms) | kvnodes' CPU per request (us) | of which flushes and compactions | RSS per node (MiB) | disk per node (MiB) | bytes on disk per key | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        base = min(mine, key=lambda r: r["keys"])
        for r in sorted(mine, key=lambda r: r["keys"]):
            settled = f"{r['settle_s']:.0f}"
            lines.append(f"| {label} | {r['keys']:,} | {r['fill_s']:.0f} | {r['after_fill']['rps']:,.0f} | "
                         f"{r['after_fill']['p99'] / 1000:.2f} | {settled} | {r['rps']:,.0f} | {r['rps'] / base['rps']:.2f}x | "
                         f"{r['p99_us'] / 1000:.2f} | {r['node_cpu_us']:.1f} | {r.get('node_background_cpu_us', 0):.1f} | {max(r['rss_per_node']) / 2**20:.0f} | "
                         f"{sum(r['disk_per_node']) / len(r['disk_per_node']) / 2**20:.0f} | {r['disk_per_key']:.0f} | {r['errors']} |")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 and 50,000 keys, one round of 2 s, into the build tree")
    ap.add_argument("--keys", default="10000,1000000,4000000", help="key counts (default 10000,1000000,4000000)")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--reference", help="a build tree to measure the same way, taking turns (the build before a change)")
    ap.add_argument("--rounds", type=int, help="wrk runs per key count (default 3; --quick 1)")
    ap.add_argument("--seconds", type=int, help="seconds per wrk run, whole (default 10; --quick 2)")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="mixed",
                    help="mixed: the study's 90/10 (default); get: GETs only, the read path alone")
    ap.add_argument("--node-flags", default="", help="extra kvnode flags for this build's nodes (not the reference's)")
    ap.add_argument("--direct", action="store_true", help="one kvnode straight on, no proxy (bench/node_reads.sh)")
    ap.add_argument("--perf", metavar="FILE", help="a perf profile of the (first) node during the second settled run")
    ap.add_argument("--out", help="default bench/GROWTH.md (--quick: BUILD/bench-quick/GROWTH.md; --direct: "
                                  "BUILD/bench-quick/NODE_READS.md)")
    args = ap.parse_args()
    try:
        counts = [int(k) for k in ("10000,50000" if args.quick else args.keys).split(",") if k]
    except ValueError:
        ap.error(f"--keys: {args.keys!r} is not a comma-separated list of integers")
    if not counts or any(k < 100 for k in counts):
        ap.error("--keys: at least 100 keys each")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (2 if args.quick else 10)
    if args.rounds < 1 or args.seconds < 1 or args.conns < 1:
        ap.error("--rounds >= 1, --seconds >= 1, --conns >= 1")
    builds = [("reference", args.reference)] if args.reference else []
    builds.append(("this build" + (f" {args.node_flags}" if args.node_flags else "") if args.reference else "kvring",
                   args.build))
    for _, b in builds:
        if not os.access(os.path.join(b, "node", "kvnode"), os.X_OK):
            sys.exit(f"growth: no {b}/node/kvnode: build first (bench/growth.sh does)")
    out = args.out or (os.path.join(args.build, "bench-quick", "NODE_READS.md" if args.direct else "GROWTH.md")
                       if args.quick or args.direct else os.path.join(ROOT, "bench", "GROWTH.md"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    command = " ".join(["bench/growth.sh"] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.time()
    rows = []
    for keys in counts:
        for label, build in builds:
            flags = args.node_flags.split() if build == args.build else []
            rows.append(measure(build, keys, args.rounds, args.seconds, args.conns, label, flags, args.workload,
                                args.direct, args.perf if build == args.build else None))
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"command": command, "date": date, "rows": rows}, f, indent=1)
    write_markdown(out, command, date, args, rows, time.time() - started)
    log(f"wrote {out} in {time.time() - started:.0f} s")
    if any(r["errors"] for r in rows):
        sys.exit("growth: some requests failed (see the errors column)")


if __name__ == "__main__":
    main()
