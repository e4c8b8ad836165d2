#!/usr/bin/python3
"""The original study's workflow, Locust users with think times, run distributed: one Locust master
and W worker processes, so that the load reaches as far as this machine lets Locust reach. Started by
bench/locust_study.sh, which builds first.

One Locust process saturates near 7,000 requests/s here (bench/RESULTS.md), far below what the proxies
serve, so every curve of bench/run.py's study bends at Locust's limit, not the system's. Workers spread
the Python work over processes; on a 2-core machine they also take cores from the proxy and the nodes,
and this script measures both: the requests/s Locust reports, and the CPU Locust itself used (master
and workers, in cores), so a reader sees whose limit a curve shows.

For each node count: the nodes start empty on RocksDB, kvproxy and HAProxy start in front of them and
each preloads its own copy of the keys (each hashes differently); then for each worker count, for
each number of users, the systems take turns running bench/locustfile.py (90% GET / 10% PUT, 5-15 ms
think time) for --seconds. Locust's FastHttpUser truncates response times to whole milliseconds.

Writes a markdown section to --out (bench/LOCUST.md; with --quick, into the build tree), the figures
beside it (.json), and with matplotlib one PNG per node count in --plots.
"""
import argparse
import csv
import datetime
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
from kvtest import free_ports, write_ring  # noqa: E402
from equal_load import git_revision  # noqa: E402
from knee import parse_ints  # noqa: E402
from run import HAProxy, KvProxy, log, preload, start_nodes, stop_all, versions  # noqa: E402

LOCUSTFILE = os.path.join(ROOT, "bench", "locustfile.py")
# Debian's python3-locust 2.12.1 carries an empty version string (locust/_version.py), and a master
# takes a worker announcing an empty version for a pre-2.0 one and refuses it ("An old (pre 2.0) worker
# tried to connect"), so distributed runs never start. Master and workers run Locust's own main with
# the version filled in; a Locust that has one keeps it.
LOCUST = ["/usr/bin/python3", "-c",
          "import sys; import locust.runners as r; r.__version__ = r.__version__ or '2.12.1'; "
          "from locust.main import main; sys.argv[0] = 'locust'; sys.exit(main())"]


def reap(proc, timeout):
    """Waits for `proc` and returns the CPU seconds it used (user + system, its threads included)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"{proc.args[0]} did not finish within {timeout} s")
        time.sleep(0.05)


def machine_ticks():
    """(busy, total) clock ticks of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def run_locust(port, users, workers, seconds, workdir, tag, keys):
    """One Locust run against 127.0.0.1:`port`: a headless master with `workers` worker processes (or
    one standalone process when `workers` is 0). Returns the master's aggregated figures and the CPU
    all Locust processes used, in cores."""
    prefix = os.path.join(workdir, f"locust-{tag}-w{workers}-u{users}")
    env = dict(os.environ, KV_KEYS=str(keys))
    common = ["-f", LOCUSTFILE, "--loglevel", "WARNING"]
    master_argv = [*LOCUST, *common, "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                   "--host", f"http://127.0.0.1:{port}", "--csv", prefix, "--only-summary"]
    worker_argv = []
    if workers:
        bus = free_ports(1)[0]
        master_argv += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(bus),
                        "--expect-workers", str(workers), "--expect-workers-max-wait", "30"]
        worker_argv = [*LOCUST, *common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(bus)]
    logs = open(prefix + ".log", "w")
    started = time.monotonic()
    busy0, total0 = machine_ticks()
    master = subprocess.Popen(master_argv, stdin=subprocess.DEVNULL, stdout=logs, stderr=logs, env=env)
    procs = [subprocess.Popen(worker_argv, stdin=subprocess.DEVNULL, stdout=logs, stderr=logs, env=env)
             for _ in range(workers)]
    try:
        cpu = reap(master, seconds + 90)
        wall = time.monotonic() - started
        busy1, total1 = machine_ticks()
        for p in procs:
            cpu += reap(p, 30)
    finally:
        for p in [master, *procs]:
            if p.returncode is None:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
        logs.close()
    if master.returncode != 0 or not os.path.exists(prefix + "_stats.csv"):
        with open(prefix + ".log") as f:
            raise RuntimeError(f"locust ({tag}, {workers} workers, {users} users) exited {master.returncode}:\n"
                               + f.read()[-3000:])
    with open(prefix + "_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"users": users, "workers": workers, "rps": float(row["Requests/s"]),
            "avg": float(row["Average Response Time"]), "p50": float(row["50%"]), "p99": float(row["99%"]),
            "failures": int(row["Failure Count"]), "requests": int(row["Request Count"]),
            # The whole run, start-up and ramp included: a lower bound of the share while loading.
            "locust_cores": cpu / wall,
            # Every process on the machine over the same time, in cores: Locust, the proxy, the nodes.
            "machine_cores": (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)}


def plot(results, node_counts, plots):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib: no plots")
        return []
    files = []
    for n in node_counts:
        fig, ax = plt.subplots(figsize=(7.0, 4.4))
        rows = [r for r in results if r["nodes"] == n]
        worker_counts = list(dict.fromkeys(r["workers"] for r in rows))
        for (system, workers) in dict.fromkeys((r["system"], r["workers"]) for r in rows):
            pts = [r for r in rows if r["system"] == system and r["workers"] == workers]
            label = f"{system}, {workers} worker{'s' if workers != 1 else ''}" if workers else f"{system}, one process"
            # A colour per worker count; kvproxy solid, HAProxy dashed.
            ax.plot([p["rps"] for p in pts], [p["avg"] for p in pts], marker="o" if system == "kvproxy" else "s",
                    linestyle="-" if system == "kvproxy" else "--", color=f"C{worker_counts.index(workers)}", label=label)
            for p in pts:
                ax.annotate(str(p["users"]), (p["rps"], p["avg"]), fontsize=7, textcoords="offset points",
                            xytext=(3, 3))
        ax.set_xlabel("throughput Locust reports (requests/s)")
        ax.set_ylabel("average latency (ms, of whole-ms samples)")
        ax.set_title(f"Locust distributed, {n} node{'s' if n > 1 else ''} (labels: users)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(plots, f"locust_workers_{n}node{'s' if n > 1 else ''}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def locust_version():
    """Debian's python3-locust reports an empty version (see LOCUST above): its package's instead."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-locust"], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def write_markdown(path, command, date, revision, args, results, elapsed, plot_files):
    v = versions()
    lines = [
        "## The study's workflow with Locust distributed over worker processes (issue 20)",
        "",
        f"Produced by `{command}` on {date} (revision {revision}) in {elapsed / 60:.1f} minutes: "
        f"{', '.join(args.systems)} (one thread each) in front of {', '.join(map(str, args.nodes))} kvnode(s) on "
        f"RocksDB; bench/locustfile.py (FastHttpUser, 90% GET / 10% PUT over {args.keys} preloaded keys, 5-15 ms "
        f"think time), all users spawned at once, {args.seconds} s per point; worker counts "
        f"{', '.join(str(w) if w else 'none (one standalone process)' for w in args.workers)}. "
        f"Locust {locust_version()} (Debian's python3-locust); {v.get('haproxy', '?')}. **Locust CPU** is what the master and its workers "
        "used over the whole run, start-up included, in cores; **machine CPU** what every process used over the same "
        f"time (Locust, the proxy, the nodes), in cores, of {os.cpu_count()}. Where the machine is near its cores, "
        "the curve shows what the machine can do for Locust and the system together; where Locust's own share "
        "is near one core per process, Locust's limit. Latencies are Locust's, truncated to whole milliseconds "
        "by FastHttpUser.",
        "",
        "| nodes | system | workers | users | req/s | average ms | p50 ms | p99 ms | failures | Locust CPU (cores) | machine CPU (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['nodes']} | {r['system']} | {r['workers'] or 'none'} | {r['users']} | {r['rps']:.0f} | "
                     f"{r['avg']:.2f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['failures']} | {r['locust_cores']:.2f} | "
                     f"{r.get('machine_cores', 0):.2f} |")
    best = {}
    for r in results:
        key = (r["nodes"], r["system"], r["workers"])
        if key not in best or r["rps"] > best[key]["rps"]:
            best[key] = r
    lines += ["", "Most requests/s each configuration reached:", "",
              "| nodes | system | workers | req/s | at users | Locust CPU (cores) | machine CPU (cores) |",
              "|---|---|---|---|---|---|---|"]
    for (nodes, system, workers), r in sorted(best.items()):
        lines.append(f"| {nodes} | {system} | {workers or 'none'} | {r['rps']:.0f} | {r['users']} | "
                     f"{r['locust_cores']:.2f} | {r.get('machine_cores', 0):.2f} |")
    lines.append("")
    rel = os.path.relpath(args.plots, os.path.dirname(path))
    for p in plot_files:
        lines.append(f"![{os.path.basename(p)}]({rel}/{os.path.basename(p)})")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 node, kvproxy, 2 workers, one step of 3 s; for the suite")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--nodes", type=lambda t: parse_ints(t, "--nodes"), help="node counts (default 1,2,3)")
    ap.add_argument("--workers", type=lambda t: [int(w) for w in t.split(",")],
                    help="Locust worker counts, 0 for one standalone process (default 0,2,4)")
    ap.add_argument("--users", type=lambda t: parse_ints(t, "--users"), help="user steps (default 40,160,320,640)")
    ap.add_argument("--seconds", type=int, help="seconds per point (default 8)")
    ap.add_argument("--systems", default="kvproxy,haproxy", help="comma-separated, of kvproxy, haproxy")
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--out", help="the markdown file (default bench/LOCUST.md; with --quick, in the build tree)")
    ap.add_argument("--plots", help="where the PNGs go (default bench/plots; with --quick, in the build tree)")
    args = ap.parse_args()
    q = args.quick
    args.nodes = args.nodes or ([1] if q else [1, 2, 3])
    args.workers = args.workers if args.workers is not None else ([2] if q else [0, 2, 4])
    if any(w < 0 for w in args.workers):
        ap.error(f"--workers: {args.workers}: each at least 0")
    args.users = args.users or ([20] if q else [40, 160, 320, 640])
    args.seconds = args.seconds or (3 if q else 8)
    args.systems = args.systems.split(",") if not q else ["kvproxy"]
    for s in args.systems:
        if s not in ("kvproxy", "haproxy"):
            ap.error(f"--systems: unknown system {s!r} (kvproxy, haproxy)")
    if q:
        args.keys = 1000
    quick_dir = os.path.join(args.build, "bench-quick")
    args.out = args.out or (os.path.join(quick_dir, "LOCUST.md") if q else os.path.join(ROOT, "bench", "LOCUST.md"))
    args.plots = args.plots or (os.path.join(quick_dir, "plots") if q else os.path.join(ROOT, "bench", "plots"))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    os.makedirs(args.plots, exist_ok=True)

    command = " ".join(["bench/locust_study.sh"] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    work = tempfile.mkdtemp(prefix="kvring-locust-")
    kvnode = os.path.join(args.build, "node", "kvnode")
    started, results, running = time.time(), [], []
    try:
        for n in args.nodes:
            nodes = start_nodes(kvnode, n, running, os.path.join(work, f"data{n}"))
            node_ports = [(f"n{i + 1}", node.port) for i, node in enumerate(nodes)]
            ring = write_ring(os.path.join(work, f"ring{n}.yaml"), node_ports)
            systems = [KvProxy(args.build, ring, 1, work) if s == "kvproxy" else HAProxy(node_ports, 1, work)
                       for s in args.systems]
            running += systems
            for s in systems:
                preload(s.port, args.keys)
            for workers in args.workers:
                for users in args.users:
                    for s in systems:
                        r = run_locust(s.port, users, workers, args.seconds, work, f"{s.name}-{n}", args.keys)
                        r.update(nodes=n, system=s.name)
                        results.append(r)
                        log(f"{n} node(s) {s.name:8s} workers {workers} users {users:4d}: {r['rps']:7.0f} req/s  "
                            f"average {r['avg']:.2f} ms  p99 {r['p99']:.0f} ms  failures {r['failures']}  "
                            f"Locust {r['locust_cores']:.2f} cores, machine {r['machine_cores']:.2f}")
            stop_all(running)
            running = []
    finally:
        stop_all(running)
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.time() - started
    plot_files = plot(results, args.nodes, args.plots)
    write_markdown(args.out, command, date, git_revision(), args, results, elapsed, plot_files)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"command": command, "date": date, "results": results}, f, indent=1)
    log(f"wrote {args.out} ({elapsed:.0f} s)")
    bad = [r for r in results if r["failures"] or not r["requests"]]
    if bad:
        raise SystemExit(f"locust_study: runs with failures or no requests: {bad}")


if __name__ == "__main__":
    main()
