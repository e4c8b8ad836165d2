#!/usr/bin/python3
"""Two kvnode configurations on the same data, taking turns: kvproxy (one thread) in front of three
kvnodes on RocksDB, filled once with N keys (as bench/growth.py fills them); then for each of --rounds
rounds, the nodes are started again on the same data directories and ports with flags A, then B
(B, then A in odd rounds), and each time one warm-up run of wrk's study mix (90% GET / 10% PUT,
uniform over all N keys) and one measured run. A fill happens once, so both configurations read the
same data; a restart flushes the nodes' memtables and may start compactions, whose CPU the next
measured run pays, whichever configuration it is.

  bench/flags_ab.py --keys 4000000 --a "--block-cache-mb 8" --b "--block-cache-mb 256"

Prints one line per run and the medians; nothing is written.
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from growth import (data_dirs, engine_gauges, node_cpu, profiled, rss_bytes, settle, start_nodes, start_proxy,  # noqa: E402
                    stop_cluster)
from rebalance import fill  # noqa: E402
from run import log, median, stat_fields, wrk  # noqa: E402


def minor_faults(pid):
    return int(stat_fields(f"/proc/{pid}/stat")[7])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--keys", type=int, default=4000000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10, help="measured seconds per run")
    ap.add_argument("--warmup", type=int, help="seconds of the mix before each measured run (default half of --seconds): "
                                               "long enough for a large block cache to fill")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--a", default="", help="kvnode flags of configuration A")
    ap.add_argument("--b", default="", help="kvnode flags of configuration B")
    ap.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable of configuration A's kvnodes (repeatable), e.g. LD_PRELOAD=...")
    ap.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE", help="the same for B")
    ap.add_argument("--perf", metavar="DIR", help="a perf profile (software CPU clock) of n1 during each measured run, "
                                                 "into DIR/round<R>-<A|B>.data")
    args = ap.parse_args()
    if args.keys < 100 or args.rounds < 1 or args.seconds < 2:
        ap.error("--keys >= 100, --rounds >= 1, --seconds >= 2")
    if not os.access(os.path.join(args.build, "node", "kvnode"), os.X_OK):
        sys.exit(f"flags_ab: no {args.build}/node/kvnode: build first")
    configs = {"A": args.a.split(), "B": args.b.split()}
    envs = {name: dict(os.environ, **dict(kv.split("=", 1) for kv in pairs))
            for name, pairs in (("A", args.a_env), ("B", args.b_env))}
    work = tempfile.mkdtemp(prefix="kvring-flags-ab-")
    nodes, proxy = [], None
    results = {"A": [], "B": []}
    try:
        nodes = start_nodes(args.build, work, configs["A"], env=envs["A"])
        ports = [n.port for n in nodes]
        proxy = start_proxy(args.build, work, nodes)
        fill(proxy.port, args.keys, ports)
        log(f"filled {args.keys} keys; settled after {settle(ports, data_dirs(work)):.0f} s")
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                for n in nodes:
                    n.terminate()
                nodes = start_nodes(args.build, work, configs[name], ports, env=envs[name])
                wrk(proxy.port, "mixed.lua", args.conns, args.warmup or max(1, args.seconds // 2), args.keys)
                cpu0, _ = node_cpu(nodes)
                faults0 = sum(minor_faults(n.proc.pid) for n in nodes)
                run = lambda: wrk(proxy.port, "mixed.lua", args.conns, args.seconds, args.keys)  # noqa: E731
                if args.perf:
                    os.makedirs(args.perf, exist_ok=True)
                    x = profiled(nodes[0].proc.pid, args.seconds, os.path.join(args.perf, f"round{r}-{name}.data"), run)
                else:
                    x = run()
                cpu1, _ = node_cpu(nodes)
                faults = (sum(minor_faults(n.proc.pid) for n in nodes) - faults0) / max(1, x["requests"])
                cpu = (cpu1 - cpu0) * 1e6 / max(1, x["requests"])
                g = engine_gauges(ports[0])
                rss = max(rss_bytes(n.proc.pid) for n in nodes)
                results[name].append((x["rps"], x["p99"], cpu, rss))
                log(f"round {r} {name}: {x['rps']:.0f} req/s, p99 {x['p99'] / 1000:.2f} ms, kvnodes {cpu:.1f} us CPU/request, "
                    f"RSS {rss / 2**20:.0f} MiB/node (largest), {faults:.2f} minor page faults/request; "
                    f"n1: {g.get('l0_files', 0):.0f} L0 files, block cache {g.get('block_cache_bytes', 0) / 2**20:.0f} MiB; "
                    f"{x['errors']} errors")
    finally:
        stop_cluster(proxy, nodes, work)
    for name, runs in results.items():
        log(f"{name} ({' '.join(configs[name] + (args.a_env if name == 'A' else args.b_env)) or 'no flags'}): median {median([x[0] for x in runs]):.0f} req/s, "
            f"p99 {median([x[1] for x in runs]) / 1000:.2f} ms, kvnodes {median([x[2] for x in runs]):.1f} us CPU/request, "
            f"RSS {median([x[3] for x in runs]) / 2**20:.0f} MiB/node")


if __name__ == "__main__":
    main()
