#!/usr/bin/python3
"""The linearizability run at length (started by bench/linearizability.sh, which builds first): for each
nemesis, the suite's cluster (four kvnodes, two kvproxies), workload and nemesis from
tests/integration/lintest.py, for --seconds each, then the history checked by tools/histcheck.py.

Writes a markdown section (per nemesis: seconds, operations checked by outcome, keys, keys not
linearizable, lost acknowledged writes) to --out (bench/LINEARIZABILITY.md, which bench/run.sh puts in
bench/RESULTS.md), the figures beside it (.json), and each history to build/release/artifacts/.
Exits 1 when any nemesis found an anomaly or a lost write.

With --hosts: across hosts (tests/integration/multihost.py: root, network namespaces on a bridge), three
kvnodes and two kvproxies each on a host of its own, with the multi-host nemeses (with --replicas 3:
kill, pause, isolation, one-way cuts, a proxy in a minority, clock skew), written to
bench/LINEARIZABILITY_HOSTS.md; the same failed-request rule for the nemeses that keep a majority.
With --hosts --replicas 3 and ring-change nemeses (multihost.CHANGE_NEMESES: one kind of change per
nemesis, each change plain, with apply killed or with a node killed; multihost.RING_NEMESES): two more
hosts for n4 and n5, written to bench/LINEARIZABILITY_HOSTS_RING_CHANGES.md; no request may fail but
in the changes to and from replicas 1.

With --replicas 3: every key on three of the four kvnodes (ring A is n1..n4, B is n1..n3), the nemeses
that strike nodes and proxies and the ring changes between A and B, written to
bench/LINEARIZABILITY_REPLICAS.md; also exits 1 when a request failed under a nemesis that leaves every
key a majority of its replica set, or of both sets during a change (kill-node, stop-node, rebalance,
rebalance-kill-node).
"""
import argparse
import collections
import datetime
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release"))
os.environ.setdefault("KVNODE", os.path.join(BUILD, "node", "kvnode"))
os.environ.setdefault("KVPROXY", os.path.join(BUILD, "proxy", "kvproxy"))
os.environ.setdefault("RING_REBALANCE", os.path.join(BUILD, "tools", "ring-rebalance"))
os.environ.setdefault("KVRING_SOURCE", ROOT)
os.environ.setdefault("KVRING_ARTIFACTS", os.path.join(BUILD, "artifacts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import kvtest  # noqa: E402
import lintest  # noqa: E402
import multihost  # noqa: E402


def recheck(path):
    """A report row from a saved history (lin-long-NEMESIS[-replicasN][-hosts].jsonl): checked again; the
    seconds from its first operation to its final reads; rounds unknown."""
    ops = lintest.histcheck.load_history(path)
    dicts = [o.to_dict() for o in ops]
    result = lintest.histcheck.check_history(dicts)
    summary = lintest.result_summary(result)
    name = os.path.basename(path)[len("lin-long-"):-len(".jsonl")]
    for suffix in ("-hosts", "-replicas3", "-replicas5"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    finals = [o["invoke"] for o in dicts if o["process"] == "final"]
    summary.update(nemesis=name, seconds=min(finals or [0]) - min(o["invoke"] for o in dicts), rounds=None,
                   not_ok=dict(collections.Counter(o["outcome"] for o in dicts
                                                   if o["process"] != "final" and o["outcome"] != "ok")),
                   rechecked=path)
    by = collections.Counter((o["f"], o["outcome"]) for o in dicts)
    summary["by_outcome"] = {f"{f} {o}": n for (f, o), n in sorted(by.items())}
    summary["not_ok_one_away"] = len(lintest.with_one_replica_away(dicts))
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300, help="nemesis time per run (default 300)")
    ap.add_argument("--hosts", action="store_true", help="across network namespaces (tests/integration/multihost.py)")
    ap.add_argument("--nemesis", action="append",
                    choices=sorted(set(lintest.NEMESES + ["rebalance-partial"]) | set(lintest.REPLICATED_NEMESES)
                                   | set(multihost.REPLICATED_NEMESES) | set(multihost.RING_NEMESES)
                                   | set(multihost.CHANGE_NEMESES)),
                    help="run only these (default: every one; with --replicas, those of lintest.REPLICATED_NEMESES)")
    ap.add_argument("--replicas", type=int, default=1, help="replicas per key (default 1)")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--recheck", action="append", metavar="HISTORY.jsonl",
                    help="run nothing: check these saved histories (lin-long-NEMESIS*.jsonl, as a run writes them) "
                         "and write their table, for a run cut off before it wrote its own (rounds are not in a history)")
    ap.add_argument("--include", action="append", metavar="REPORT.json",
                    help="run nothing: the rows of an earlier report's .json in the table (with --recheck, beside its rows)")
    ap.add_argument("--out", help="default bench/LINEARIZABILITY.md (replicas 1), bench/LINEARIZABILITY_REPLICAS.md")
    args = ap.parse_args()
    replicated = args.replicas > 1
    ring_nemeses = set(multihost.RING_NEMESES) | set(multihost.CHANGE_NEMESES)
    ring_changes = args.hosts and any(n in ring_nemeses for n in args.nemesis or ())
    if ring_changes and not replicated:
        raise SystemExit("linearizability: the ring changes across hosts need --replicas 3")
    if not args.out:
        name = ("LINEARIZABILITY_HOSTS_RING_CHANGES.md" if ring_changes else "LINEARIZABILITY_HOSTS.md" if args.hosts else
                "LINEARIZABILITY_REPLICAS.md" if replicated else "LINEARIZABILITY.md")
        args.out = os.path.join(ROOT, "bench", name)
    if args.hosts:
        nemeses = args.nemesis or list(multihost.REPLICATED_NEMESES if replicated else multihost.NEMESES)
    else:
        nemeses = args.nemesis or (lintest.REPLICATED_NEMESES if replicated else lintest.NEMESES + ["rebalance-partial"])
    started = time.time()
    rows = []
    hosts_h = kvtest.Harness() if args.hosts and not (args.recheck or args.include) else None
    cluster = None
    if hosts_h:
        cluster = multihost.MultiHostCluster(multihost.Hosts(hosts_h, 7 if ring_changes else 5), nodes=3, proxies=2,
                                             proxy_extra=("--connect-timeout-ms", "500", "--response-timeout-ms", "1500"),
                                             replicas=args.replicas if replicated else None, spare=ring_changes)
        if not kvtest.wait_until(cluster.healthy, 10):
            raise SystemExit("linearizability: the proxies never saw every node up")
    keep_majority = (multihost.KEEP_A_MAJORITY + multihost.RING_KEEP_A_MAJORITY if args.hosts else
                     ("kill-node", "stop-node", "rebalance", "rebalance-kill-node"))

    def write_report():
        minutes = (time.time() - started) / 60
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        flags = ((" --hosts" if args.hosts else "") + (f" --replicas {args.replicas}" if replicated else "")
                 + "".join(f" --nemesis {n}" for n in args.nemesis or ()))
        if args.hosts:
            setup = ("three kvnodes and two kvproxies, each in a network namespace of its own on one bridge "
                     "(tests/integration/multihost.py), on keys of each nemesis's own, "
                     + ("every key on all three nodes (replicas: 3). " if replicated else "one owner per key. "))
            if ring_changes:
                setup += ("Two more kvnodes, n4 and n5, on hosts of their own; every node runs anti-entropy and adopts "
                          "each ring as apply goes (tests/integration/multihost.py's rings: A n1..n3, B A with n4, C B "
                          "with n2 at weight 2, D n1..n5 with replicas 5, E A with replicas 1, R n1, n4, n5). Each "
                          "change-KIND round makes a change and its reverse (add-remove A -> B -> A, reweigh -> C -> B, "
                          "replicas-3-5 A -> D -> A, replicas-3-1 A -> E -> A, replace A -> R -> A: two of every "
                          "key's three replicas replaced at once), each change at random plain, with apply killed "
                          "after one to five steps and run again, or with a node of either ring killed during it and "
                          "started again (never where one side has replicas 1); every run ends back on A. ")
        else:
            setup = (f"put/get/delete on {args.keys} keys, four kvnodes, "
                     + ("every key on three of them; ring changes go round lintest's cycle (n4 out of the replica sets "
                       "and back, n2 reweighed, 3 -> 5 -> 3 and 3 -> 1 -> 3 replicas). " if replicated
                        else "rings of three and four nodes. "))
        lines = [
            "## Linearizability under faults" + (" across hosts" if args.hosts else "")
            + (f", replicas: {args.replicas}" if replicated else ""),
            "",
            f"Produced by `bench/linearizability.sh --seconds {args.seconds:.0f}{flags}` on {stamp} in {minutes:.1f} "
            f"minutes: {args.clients} clients, each with a keep-alive connection to each of two kvproxies (picked "
            "per operation), unique values per write, " + setup
            + (f"A request that is not ok (fail or info) is a failed request, which {', '.join(keep_majority)} "
               "must not make (they leave every key a majority through every proxy; nodes adopt each ring in place, "
               "serving throughout); with one replica away counts those but kvproxy's 503s naming two or more "
               "replicas that did not answer. " if replicated else "")
            + "Every operation is recorded with its invoke and completion times and its outcome, the "
            "nemesis runs for the time given, the cluster heals, every key is read through both proxies, and "
            "each key's history is checked for linearizability as a register with delete (tools/histcheck.py). "
            "Nemeses as in tests/integration/" + ("multihost.py" if args.hosts else "lintest.py")
            + "; `rounds` counts the nemesis's actions (an apply, a kill, a restart of apply, a pause, a fault held and undone).",
            "",
            "| nemesis | seconds | rounds | ops checked | ok put / get / del | info (unknown) | keys not linearizable | lost writes |"
            + (" requests not ok | of which with one replica away |" if replicated else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|---|" if replicated else ""),
        ]
        for r in rows:
            b = r["by_outcome"]
            info = sum(n for k, n in b.items() if k.endswith(" info"))
            lines.append(f"| {r['nemesis']} | {r['seconds']:.0f} | {'n/a' if r['rounds'] is None else r['rounds']} | {r['ops']} | "
                         f"{b.get('put ok', 0)} / {b.get('get ok', 0)} / {b.get('del ok', 0)} | {info} | "
                         f"{len(r['failed_keys'])} | {r['lost_writes']} |"
                         + (f" {sum(r['not_ok'].values())} | {r.get('not_ok_one_away', 'n/a')} |" if replicated else ""))
        lines.append("")
        with open(args.out, "w") as f:
            f.write("\n".join(lines))
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(rows, f, indent=1, default=str)

    if args.recheck or args.include:
        for path in args.recheck or ():
            rows.append(recheck(path))
            print(f"linearizability: {path}: {rows[-1]['ops']} ops, {len(rows[-1]['failed_keys'])} keys not "
                  f"linearizable, {rows[-1]['lost_writes']} lost writes", file=sys.stderr, flush=True)
        for path in args.include or ():
            with open(path) as f:
                rows.extend(json.load(f))
        nemeses = []
        write_report()
    for i, nemesis in enumerate(nemeses):
        h = kvtest.Harness()
        try:
            print(f"linearizability: {nemesis} for {args.seconds:.0f} s", file=sys.stderr, flush=True)
            if args.hosts:
                summary, recorder, result = multihost.lin_run(cluster, nemesis, args.seconds, clients=args.clients,
                                                              seed=1 + i, max_ops=None, max_rounds=None)
            else:
                summary, recorder, result = lintest.run(h, nemesis, args.seconds, keys=args.keys,
                                                        clients=args.clients, replicas=args.replicas)
        finally:
            h.close()
        os.makedirs(os.environ["KVRING_ARTIFACTS"], exist_ok=True)
        suffix = (f"-replicas{args.replicas}" if replicated else "") + ("-hosts" if args.hosts else "")
        recorder.dump(os.path.join(os.environ["KVRING_ARTIFACTS"], f"lin-long-{nemesis}{suffix}.jsonl"))
        by = collections.Counter((o["f"], o["outcome"]) for o in recorder.ops())
        summary["by_outcome"] = {f"{f} {o}": n for (f, o), n in sorted(by.items())}
        summary["rounds"] = sum(1 for entry in summary["log"] if not entry.startswith("undone at "))
        summary["not_ok_one_away"] = len(lintest.with_one_replica_away(recorder.ops()))
        rows.append(summary)
        print(f"linearizability: {nemesis}: {summary['ops']} ops, {len(summary['failed_keys'])} keys not "
              f"linearizable, {summary['lost_writes']} lost writes", file=sys.stderr, flush=True)
        if summary["failed_keys"]:
            print(result.report(), file=sys.stderr)
        write_report()  # after each nemesis: a run that dies later keeps what it measured
    bad = [r for r in rows if r["failed_keys"] or r["lost_writes"]
           or (replicated and r["nemesis"] in keep_majority and r["not_ok"])]
    if hosts_h:
        for server in cluster.proxies + cluster.nodes:  # their logs, beside the histories
            with open(os.path.join(os.environ["KVRING_ARTIFACTS"], f"lin-long-hosts-{server.name}.log"), "w") as f:
                f.write(server.proc.output())
        hosts_h.close()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
