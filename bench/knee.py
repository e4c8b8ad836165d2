#!/usr/bin/python3
"""The study's figure at the systems' own limits: latency against throughput for kvproxy, HAProxy and
nginx in front of 1, 2 and 3 kvnodes (RocksDB), each driven open-loop by bench/loadgen at fixed offered
rates from light load to past saturation. Started by bench/knee.sh, which builds first.

Locust (bench/run.py's study) saturates near 7,000 requests/s on this machine, so its curves' knees are
Locust's. Here every request is due at its scheduled time whatever the answers do and its latency
counts from then (see the head of bench/loadgen.cpp), so a system that cannot keep up shows it as
latency growing without bound and an achieved rate below the offered one, not as a lower rate at the
same latency.

For each node count: the nodes start empty on RocksDB, every system is started in front of them and
preloads its own copy of the keys (each hashes differently), then for each workload the offered rate
goes up the --rates list, the systems taking turns at each rate. A system that did not keep up (its
achieved rate more than 1% below the offered one, or most requests due while their connection was
still busy) at --past consecutive rates is done for that workload. Its knee is the highest offered rate
it kept up with. Each point records p50, p99 and p99.9 (from the scheduled time, microseconds), the
achieved rate, and the generator's own CPU use (it must stay far from saturating its core: when it
does not, the point says so).

Writes a markdown section to --out (bench/KNEE.md; with --quick, into the build tree), every run's
figures beside it (.json), and with matplotlib one PNG per node count plus one with all of them in
--plots (bench/plots).
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import write_ring  # noqa: E402
from equal_load import WORKLOADS, git_revision, kept_up, measure  # noqa: E402
from run import HAProxy, KvProxy, Nginx, log, preload, start_nodes, stop_all, versions  # noqa: E402

SYSTEMS = ("kvproxy", "haproxy", "nginx")
DEFAULT_RATES = "2000,5000,10000,15000,20000,25000,30000,35000,40000,45000,50000,60000"
GENERATOR_BUSY = 0.8  # the generator above this share of its core: the point may be the generator's


def parse_ints(text, what):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a comma-separated list of integers")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{what}: {text!r}: every value at least 1")
    return values


def make_system(name, build, ring, node_ports, work):
    if name == "kvproxy":
        return KvProxy(build, ring, 1, work, "kvproxy")
    if name == "haproxy":
        return HAProxy(node_ports, 1, work)
    return Nginx(node_ports, 1, work)


def sweep(build, systems, workload, rates, conns, seconds, warmup, keys, past, nodes):
    """Every rate of `rates` for every system still keeping up, in turns; a system is done after `past`
    consecutive rates it did not keep up with."""
    results, misses = [], {s.name: 0 for s in systems}
    for rate in rates:
        active = [s for s in systems if misses[s.name] < past]
        if not active:
            break
        for s in active:
            r = measure(build, s, (conns, rate / conns), workload, seconds, warmup, keys, seed=1)
            r.update(nodes=nodes, workload=workload, system=s.name, offered=rate, kept_up=kept_up(r))
            misses[s.name] = 0 if r["kept_up"] else misses[s.name] + 1
            results.append(r)
            log(f"{nodes} node(s) {workload:5s} {s.name:8s} offered {rate:6d}/s achieved {r['achieved_rps']:8.0f}/s  "
                f"p50 {r['p50']} us  p99 {r['p99']} us  p99.9 {r['p999']} us  late {r['late_share'] * 100:.1f}%  "
                f"errors {r['errors']}  {'kept up' if r['kept_up'] else 'FELL BEHIND'}  "
                f"generator {r['cpu_util'] * 100:.0f}% CPU")
    return results


def knees(results):
    """{(nodes, workload, system): the run at the highest offered rate kept up with, or None}."""
    out = {}
    for r in results:
        key = (r["nodes"], r["workload"], r["system"])
        out.setdefault(key, None)
        if r["kept_up"] and (out[key] is None or r["offered"] > out[key]["offered"]):
            out[key] = r
    return out


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def write_markdown(path, command, date, revision, args, results, elapsed, plots):
    v = versions()
    k = knees(results)
    lines = [
        "## The study's figure at the systems' limits: open-loop latency against throughput (issue 20)",
        "",
        f"Produced by `{command}` on {date} (revision {revision}) in {elapsed / 60:.1f} minutes: {', '.join(args.systems)} "
        f"(one thread or worker each) in front of {', '.join(map(str, args.nodes))} kvnode(s) on RocksDB, driven by "
        f"bench/loadgen: {args.conns} keep-alive connections, requests due on a fixed schedule whatever the answers "
        f"do, latency from the scheduled time; {args.seconds:g} s measured after {args.warmup:g} s of warm-up per point; "
        f"{args.keys} keys preloaded through each system, requested uniformly; workloads: "
        + ", ".join(f"{w} ({WORKLOADS[w]}% PUT)" for w in args.workloads)
        + f". A system is done for a workload after {args.past} consecutive rates it did not keep up with "
        "(achieved more than 1% below offered, or most requests sent late). **Knee**: the highest offered rate "
        f"it kept up with. Versions: {v.get('haproxy', '?')}; {v.get('nginx', '?')}. Everything on one 2-core "
        "machine: the generator, the proxy and the nodes share two cores, so adding nodes adds work for the "
        "same cores, not capacity; the node counts differ in how the work spreads, not in what the machine "
        "can do.",
        "",
        "| nodes | workload | system | knee (offered/s) | p50 / p99 / p99.9 at the knee (ms) | first rate not kept up: achieved/s, p99 (ms) | generator CPU at the knee |",
        "|---|---|---|---|---|---|---|",
    ]
    for (nodes, workload, system), r in sorted(k.items()):
        after = [x for x in results if (x["nodes"], x["workload"], x["system"]) == (nodes, workload, system)
                 and not x["kept_up"] and (r is None or x["offered"] > r["offered"])]
        first = min(after, key=lambda x: x["offered"], default=None)
        beyond = (f"{first['offered']}: {first['achieved_rps']:.0f}, {fmt_ms(first['p99'])}" if first
                  else "none (kept up at every rate)")
        if r is None:
            lines.append(f"| {nodes} | {workload} | {system} | none | - | {beyond} | - |")
            continue
        busy = " (**busy**)" if r["cpu_util"] > GENERATOR_BUSY else ""
        lines.append(f"| {nodes} | {workload} | {system} | {r['offered']} | {fmt_ms(r['p50'])} / {fmt_ms(r['p99'])} / "
                     f"{fmt_ms(r['p999'])} | {beyond} | {r['cpu_util'] * 100:.0f}%{busy} |")
    lines += ["", "Every point (achieved/s; p50 / p99 / p99.9 in ms; `*` did not keep up):", ""]
    for nodes in args.nodes:
        for workload in args.workloads:
            rows = [r for r in results if r["nodes"] == nodes and r["workload"] == workload]
            if not rows:
                continue
            systems = list(dict.fromkeys(r["system"] for r in rows))
            lines += [f"{nodes} node(s), {workload}:", "",
                      "| offered/s | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
            for rate in sorted(set(r["offered"] for r in rows)):
                cells = []
                for s in systems:
                    r = next((x for x in rows if x["system"] == s and x["offered"] == rate), None)
                    cells.append("-" if r is None else
                                 f"{r['achieved_rps']:.0f}{'' if r['kept_up'] else '*'}; {fmt_ms(r['p50'])} / "
                                 f"{fmt_ms(r['p99'])} / {fmt_ms(r['p999'])}")
                lines.append(f"| {rate} | " + " | ".join(cells) + " |")
            lines.append("")
    gen = [r["cpu_util"] for r in results if r["kept_up"]]
    if gen:
        lines.append(f"The generator's own CPU use over the points kept up with: at most {max(gen) * 100:.0f}% of "
                     "one core (bench/loadgen is one thread; its rate accuracy and its freedom from coordinated "
                     "omission are checked by bench/equal_load.py and by ctest's bench.loadgen).")
        lines.append("")
    if plots:
        lines.append("Plots: " + ", ".join(f"`{os.path.relpath(p, ROOT)}`" for p in plots) + ".")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(results, plots_dir, node_counts, workloads):
    """knee_Nnode(s).png per node count (a panel per workload: p50, p99, p99.9 against the achieved rate,
    the knee marked) and knee_all.png (p99 of every system and node count). Returns the files written, or
    [] without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib (apt-get install python3-matplotlib): no plots")
        return []
    os.makedirs(plots_dir, exist_ok=True)
    colors = {"kvproxy": "tab:blue", "haproxy": "tab:orange", "nginx": "tab:green"}
    k = knees(results)
    files = []

    def curve(ax, rows, system, label_suffix="", styles=(("p50", ":"), ("p99", "-"), ("p999", "--")), color=None):
        rows = sorted(rows, key=lambda r: r["offered"])
        xs = [r["achieved_rps"] for r in rows]
        for metric, style in styles:
            ax.plot(xs, [r[metric] / 1000 for r in rows], linestyle=style, marker="o", markersize=3,
                    color=color or colors.get(system), label=f"{system}{label_suffix} {metric.replace('p999', 'p99.9')}")

    def finish(ax, ylabel, title):
        ax.set_yscale("log")
        ax.set_xlabel("achieved throughput (requests/s)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)

    def save(fig, name):
        fig.tight_layout()
        files.append(os.path.join(plots_dir, name))
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)

    for nodes in node_counts:
        fig, axes = plt.subplots(1, len(workloads), figsize=(6.4 * len(workloads), 4.6), squeeze=False)
        for ax, workload in zip(axes[0], workloads):
            for system in dict.fromkeys(r["system"] for r in results):
                rows = [r for r in results if (r["nodes"], r["workload"], r["system"]) == (nodes, workload, system)]
                if not rows:
                    continue
                curve(ax, rows, system)
                knee = k.get((nodes, workload, system))
                if knee:
                    ax.axvline(knee["achieved_rps"], color=colors.get(system), alpha=0.35, linewidth=1)
                    ax.annotate(f"knee {knee['offered'] / 1000:g}k", (knee["achieved_rps"], knee["p99"] / 1000),
                                fontsize=7, color=colors.get(system), textcoords="offset points", xytext=(-40, 8))
            finish(ax, "latency from the scheduled time (ms, log)",
                   f"{nodes} kvnode{'s' if nodes > 1 else ''}, {workload} ({WORKLOADS[workload]}% PUT), open loop")
        save(fig, f"knee_{nodes}node{'s' if nodes > 1 else ''}.png")
    fig, axes = plt.subplots(1, len(workloads), figsize=(6.4 * len(workloads), 4.6), squeeze=False)
    styles = {1: ":", 2: "--", 3: "-"}
    for ax, workload in zip(axes[0], workloads):
        for system in dict.fromkeys(r["system"] for r in results):
            for nodes in node_counts:
                rows = [r for r in results if (r["nodes"], r["workload"], r["system"]) == (nodes, workload, system)]
                if rows:
                    curve(ax, rows, system, f" {nodes}n", styles=(("p99", styles.get(nodes, "-")),))
        finish(ax, "p99 from the scheduled time (ms, log)", f"p99, every system and node count, {workload}")
    save(fig, "knee_all.png")
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2 nodes, three rates, 1 s per point, into the build tree (what ctest runs)")
    ap.add_argument("--out", help="markdown file (default bench/KNEE.md; with --quick, BUILD/bench-quick/KNEE.md)")
    ap.add_argument("--plots", help="where the PNGs go (default bench/plots; with --quick, BUILD/bench-quick/plots)")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--nodes", type=lambda t: parse_ints(t, "--nodes"), help="node counts (default 1,2,3)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    ap.add_argument("--workloads", default="get,mixed", help="comma-separated, of get, mixed (default both)")
    ap.add_argument("--rates", type=lambda t: parse_ints(t, "--rates"),
                    help=f"offered rates, requests/s, ascending (default {DEFAULT_RATES})")
    ap.add_argument("--conns", type=int, default=64, help="connections (default 64)")
    ap.add_argument("--seconds", type=float, help="measured seconds per point (default 5; --quick 1)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per point (default 1; --quick 0.5)")
    ap.add_argument("--keys", type=int, help="keys preloaded and requested (default 10000; --quick 1000)")
    ap.add_argument("--past", type=int, default=2, help="rates not kept up with before a system is done (default 2)")
    args = ap.parse_args()
    quick = args.quick
    args.systems = [s for s in args.systems.split(",") if s]
    args.workloads = [w for w in args.workloads.split(",") if w]
    for s in args.systems:
        if s not in SYSTEMS:
            ap.error(f"--systems: unknown system {s!r} ({', '.join(SYSTEMS)})")
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"--workloads: unknown workload {w!r} ({', '.join(WORKLOADS)})")
    args.nodes = args.nodes or ([2] if quick else [1, 2, 3])
    args.rates = args.rates or ([1000, 4000, 100000] if quick else parse_ints(DEFAULT_RATES, "--rates"))
    if args.rates != sorted(args.rates):
        ap.error("--rates: ascending")
    args.seconds = args.seconds or (1.0 if quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 1.0)
    args.keys = args.keys or (1000 if quick else 10000)
    if args.conns < 1 or args.past < 1 or args.seconds <= 0 or args.warmup < 0 or args.keys < 1:
        ap.error("--conns >= 1, --past >= 1, --seconds > 0, --warmup >= 0, --keys >= 1")
    quick_dir = os.path.join(args.build, "bench-quick")
    out = args.out or (os.path.join(quick_dir, "KNEE.md") if quick else os.path.join(ROOT, "bench", "KNEE.md"))
    plots_dir = args.plots or (os.path.join(quick_dir, "plots") if quick else os.path.join(ROOT, "bench", "plots"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if not os.access(os.path.join(args.build, "bench", "loadgen"), os.X_OK):
        sys.exit(f"knee: no {args.build}/bench/loadgen: build first (bench/knee.sh does)")
    command = " ".join(["bench/knee.sh"] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    started = time.time()
    kvnode = os.path.join(args.build, "node", "kvnode")
    results = []
    for nodes in args.nodes:
        work = tempfile.mkdtemp(prefix=f"kvring-knee-{nodes}-")
        running = []
        try:
            started_nodes = start_nodes(kvnode, nodes, running, data_dir=os.path.join(work, "data"))
            node_ports = [(f"n{i + 1}", n.port) for i, n in enumerate(started_nodes)]
            ring = write_ring(os.path.join(work, "ring.yaml"), node_ports)
            systems = []
            for name in args.systems:
                systems.append(make_system(name, args.build, ring, node_ports, work))
                running.append(systems[-1])
            for s in systems:
                preload(s.port, args.keys)
            for workload in args.workloads:
                results += sweep(args.build, systems, workload, args.rates, args.conns, args.seconds, args.warmup,
                                 args.keys, args.past, nodes)
        finally:
            stop_all(running)
            shutil.rmtree(work, ignore_errors=True)
    files = plot(results, plots_dir, args.nodes, args.workloads)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"command": command, "date": date, "runs": results}, f)
    write_markdown(out, command, date, git_revision(), args, results, time.time() - started, files)
    log(f"wrote {out} in {time.time() - started:.0f} s")
    # The instrument must have been able to see saturation: with --quick the last rate is far past
    # every system's, so each must have fallen behind there; a sweep that never did proves nothing.
    if quick:
        last = [r for r in results if r["offered"] == args.rates[-1]]
        if not last or any(r["kept_up"] for r in last):
            sys.exit("knee: no system fell behind at the last rate: the sweep cannot see saturation")


if __name__ == "__main__":
    main()
