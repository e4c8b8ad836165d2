#!/usr/bin/python3
"""kvring benchmarks: kvproxy side by side with HAProxy and nginx, measured in one run on the same nodes.

Started by bench/run.sh (which builds first). Everything listens on 127.0.0.1 and is stopped at the end.
Writes RESULTS.md and plots/*.png into --out (bench/ for a full run, build/bench-quick/ with --quick).
"""
import argparse
import csv
import datetime
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, free_ports, write_ring  # noqa: E402  (the tests' process helpers)

LUA = os.path.join(ROOT, "bench", "lua")
VALUE = json.dumps({"value": "benchmark value of about fifty bytes, fixed size."})
TICKS = os.sysconf("SC_CLK_TCK")
# Command prefixes that pin processes to CPUs (--pin): the proxy under test, and everything else.
PIN = {"proxy": [], "load": []}


def log(*args):
    print("bench:", *args, flush=True)


def stat_fields(path):
    """The fields of a /proc/<pid>[/task/<tid>]/stat file after the command name (which may hold
    spaces or parentheses): index 0 is the state, 7 minflt, 11 utime, 12 stime."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pids):
    """(utime, stime) of these processes (all their threads), in seconds."""
    user = system = 0
    for pid in pids:
        try:
            fields = stat_fields(f"/proc/{pid}/stat")
            user += int(fields[11])
            system += int(fields[12])
        except FileNotFoundError:
            pass
    return user / TICKS, system / TICKS


def voluntary_switches(pids):
    """Voluntary context switches of these processes (all threads): how often they blocked for work."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt_switches"))
        except FileNotFoundError:
            pass
    return total


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_http(port, path="/health", timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def preload(port, keys, conns=4, prefix="bench:", timeout=10, error=RuntimeError):
    """Writes PREFIX1..PREFIXkeys through `port` (each proxy hashes differently: its own copy) on
    `conns` connections; raises `error` after all of them ended when any answer was not a 200 or a
    connection failed."""
    errors = []

    def worker(lo, hi):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            for i in range(lo, hi):
                c.request("POST", f"/put?key={prefix}{i}", body=VALUE, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    raise error(f"preload {prefix}{i} through {port}: HTTP {r.status} {body[:200]!r}")
            c.close()
        except Exception as e:  # noqa: BLE001 -- reported below, from the calling thread
            errors.append(e)
    step = (keys + conns - 1) // conns
    ts = [threading.Thread(target=worker, args=(1 + k * step, min(keys, (k + 1) * step) + 1)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise error(f"preload through {port} failed: {errors[0]}")


class System:
    """A server under test: started once, measured many times."""
    name = "?"

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class KvProxy(System):
    name = "kvproxy"

    def __init__(self, build, ring, threads, workdir, name=None, env=None, extra=()):
        self.name = name or self.name
        self.p = Process(PIN["proxy"] + [os.path.join(build, "proxy", "kvproxy"), "--ring", ring, "--listen", "127.0.0.1:0",
                          "--admin", "127.0.0.1:0", "--threads", str(threads), *extra], env=env)
        self.proc, self.port = self.p.proc, self.p.port


class HAProxy(System):
    name = "haproxy"

    def __init__(self, nodes, threads, workdir):
        self.port = free_ports(1)[0]
        cfg = os.path.join(workdir, "haproxy.cfg")
        servers = "\n".join(f"  server {i} 127.0.0.1:{p}" for i, p in nodes)
        with open(cfg, "w") as f:
            f.write(f"""global
  nbthread {threads}
  maxconn 8000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 10s
frontend fe
  bind 127.0.0.1:{self.port}
  default_backend nodes
backend nodes
  balance url_param key
  hash-type consistent
  http-reuse always
{servers}
""")
        self.proc = subprocess.Popen(PIN["proxy"] + ["haproxy", "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, "haproxy.log"), "w"))
        wait_http(self.port, "/get?key=warmup")


class Nginx(System):
    name = "nginx"

    def __init__(self, nodes, threads, workdir, floor=False):
        self.port = free_ports(1)[0]
        prefix = os.path.join(workdir, "nginx-floor" if floor else "nginx")
        os.makedirs(prefix, exist_ok=True)
        if floor:  # the HTTP floor of this machine: a fixed answer, no upstream
            server = ("default_type application/json; location / { return 200 "
                      "'{\"status\":\"success\",\"value\":\"benchmark value of about fifty bytes, fixed size.\"}'; }")
            upstream = ""
        else:
            servers = " ".join(f"server 127.0.0.1:{p};" for _, p in nodes)
            upstream = f"upstream nodes {{ hash $arg_key consistent; {servers} keepalive 256; }}"
            server = ("location / { proxy_pass http://nodes; proxy_http_version 1.1; "
                      "proxy_set_header Connection \"\"; }")
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(f"""user root;
worker_processes {threads};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 8000; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  keepalive_requests 1000000;
  {upstream}
  server {{ listen 127.0.0.1:{self.port}; {server} }}
}}
""")
        self.proc = subprocess.Popen(PIN["proxy"] + ["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.port, "/get?key=warmup")

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)


class Relay(System):
    """bench/relay.cpp: the least a key-routing proxy can do, for scale (see the head of that file)."""
    name = "relay"

    def __init__(self, build, nodes, spin_ns=0):
        if spin_ns:  # user time that touches no memory: about kvproxy's 2-3 us per request at 1000
            self.name = "relay-spin"
        self.port = free_ports(1)[0]
        self.proc = subprocess.Popen(PIN["proxy"] + [os.path.join(build, "bench", "relay"), "--spin-ns", str(spin_ns),
                                     str(self.port)] + [str(p) for _, p in nodes], stdout=subprocess.DEVNULL)
        wait_http(self.port, "/get?key=warmup")


class KvNodeDirect(System):
    name = "kvnode"

    def __init__(self, node):
        self.proc, self.port = node.proc, node.port

    def stop(self):
        pass


def stop_all(running):
    """Stops every System and kvtest Process in `running`, whatever fails: never leave servers behind."""
    for p in running:
        try:
            p.stop() if isinstance(p, System) else p.terminate()
        except Exception:  # noqa: BLE001 -- best effort
            pass


def start_nodes(kvnode, count, running, data_dir=None):
    """kvnodes n1..n`count`, each appended to `running` as it starts: on the memory engine (the nodes'
    work is the same for every proxy; the proxies differ), or with `data_dir` on RocksDB beneath it."""
    nodes = []
    if data_dir:
        os.makedirs(data_dir, exist_ok=True)
    for i in range(1, count + 1):
        engine = ["--data-dir", os.path.join(data_dir, f"n{i}")] if data_dir else ["--engine", "memory"]
        nodes.append(Process(PIN["load"] + [kvnode, "--port", "0", "--id", f"n{i}", *engine]))
        running.append(nodes[-1])
    return nodes


def wrk(port, script, conns, seconds, keys, done_file=None):
    """One wrk run. A script that ends by itself (fill.lua) writes `done_file` when it has sent its
    last request: wrk would otherwise sleep out its whole -d, so it is stopped then with SIGINT, on
    which it prints its results as at the end of -d."""
    env = dict(os.environ, KEYS=str(keys), REPORT_LUA=os.path.join(LUA, "report.lua"))
    if done_file:
        env["DONE_FILE"] = done_file
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    proc = subprocess.Popen(PIN["load"] + ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s",
                             os.path.join(LUA, script), f"http://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + seconds + 60
    while done_file and proc.poll() is None and time.time() < deadline:
        if os.path.exists(done_file):
            time.sleep(0.5)  # the answers in flight
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.2)
    try:
        stdout, stderr = proc.communicate(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    return r


def tcp_segments():
    """(segments sent, segments received) by this machine's TCP since boot (/proc/net/snmp)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    tcp = dict(zip(rows[0][1:], rows[1][1:]))
    return int(tcp["OutSegs"]), int(tcp["InSegs"])


def measure(system, script, conns, seconds, keys, peers=()):
    """One wrk run against `system`; `peers` are the pids of the nodes behind it (a system with nodes
    of its own, cluster_ab's, names them)."""
    if getattr(system, "nodes", None):
        peers = [n.proc.pid for n in system.nodes]
    u0, s0 = cpu_seconds(system.pids())
    v0 = voluntary_switches(system.pids())
    pu0, ps0 = cpu_seconds(peers)
    out0, _ = tcp_segments()
    r = wrk(system.port, script, conns, seconds, keys)
    out1, _ = tcp_segments()
    u1, s1 = cpu_seconds(system.pids())
    v1 = voluntary_switches(system.pids())
    pu1, ps1 = cpu_seconds(peers)
    n = max(1, r["requests"])
    # How often the proxy ran out of work and slept: each sleep is ended by a wakeup its sender pays.
    r["sleeps_per_req"] = (v1 - v0) / n
    r["nodes_us_per_req"] = ((pu1 - pu0) + (ps1 - ps0)) / n * 1e6
    r["wrk_us_per_req"] = r["wrk_cpu_s"] / n * 1e6
    # Every segment on loopback, both ways of both hops: 4 carry data per request; the rest are ACKs.
    r["segments_per_req"] = (out1 - out0) / n
    r["user_us_per_req"] = (u1 - u0) / n * 1e6
    r["sys_us_per_req"] = (s1 - s0) / n * 1e6
    r["cpu_us_per_req"] = r["user_us_per_req"] + r["sys_us_per_req"]
    return r


def median(values):
    return statistics.median(values) if values else float("nan")


def side_by_side(systems, workloads, conn_counts, rounds, seconds, keys, peers=()):
    """Alternates the systems round by round (rotating the order) so drift hits all alike."""
    results = []  # dicts: workload, conns, round, system, metrics
    for workload in workloads:
        for conns in conn_counts:
            for rnd in range(rounds):
                order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
                for s in order:
                    r = measure(s, workload, conns, seconds, keys, peers)
                    r.update(workload=workload, conns=conns, round=rnd, system=s.name)
                    results.append(r)
                    log(f"{workload} c={conns} round {rnd + 1}/{rounds} {s.name:8s} {r['rps']:9.0f} req/s  "
                        f"p50 {r['p50'] / 1000:.2f} ms  p99 {r['p99'] / 1000:.2f} ms  "
                        f"cpu {r['cpu_us_per_req']:.1f} us/req (user {r['user_us_per_req']:.1f}, "
                        f"sys {r['sys_us_per_req']:.1f})  segments {r['segments_per_req']:.2f}/req  "
                        f"sleeps {r['sleeps_per_req']:.3f}/req  nodes {r['nodes_us_per_req']:.1f} us/req  "
                        f"wrk {r['wrk_us_per_req']:.1f} us/req  errors {r['errors']}")
    return results


def summarize(results, reference="haproxy"):
    """Per (workload, conns, system): medians over rounds, and the median of per-round ratios to the reference."""
    rows = []
    keys = sorted({(r["workload"], r["conns"]) for r in results}, key=lambda k: (k[0], k[1]))
    for workload, conns in keys:
        group = [r for r in results if r["workload"] == workload and r["conns"] == conns]
        for system in dict.fromkeys(r["system"] for r in group):
            mine = [r for r in group if r["system"] == system]
            row = {"workload": workload, "conns": conns, "system": system, "rounds": len(mine),
                   "errors": sum(r["errors"] for r in mine)}
            for m in ("rps", "p50", "p99", "p999", "cpu_us_per_req", "user_us_per_req", "sys_us_per_req",
                      "segments_per_req", "sleeps_per_req", "nodes_us_per_req", "wrk_us_per_req"):
                row[m] = median([r[m] for r in mine])
                ratios = []
                for r in mine:
                    ref = next((x for x in group if x["system"] == reference and x["round"] == r["round"]), None)
                    if ref and ref[m]:
                        ratios.append(r[m] / ref[m])
                row[m + "_ratio"] = median(ratios)
            rows.append(row)
    return rows


def table(rows):
    out = ["| workload | conns | system | req/s | vs HAProxy | p50 ms | p99 ms | vs HAProxy | p99.9 ms | CPU us/req | vs HAProxy | user / sys us | TCP segments/req | sleeps/req | nodes / wrk CPU us/req | errors |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['workload'].removesuffix('.lua')} | {r['conns']} | {r['system']} | {r['rps']:.0f} | "
                   f"{r['rps_ratio']:.2f}x | {r['p50'] / 1000:.2f} | {r['p99'] / 1000:.2f} | {r['p99_ratio']:.2f}x | "
                   f"{r['p999'] / 1000:.2f} | {r['cpu_us_per_req']:.1f} | {r['cpu_us_per_req_ratio']:.2f}x | "
                   f"{r['user_us_per_req']:.1f} / {r['sys_us_per_req']:.1f} | {r['segments_per_req']:.2f} | "
                   f"{r['sleeps_per_req']:.3f} | {r['nodes_us_per_req']:.1f} / {r['wrk_us_per_req']:.1f} | {r['errors']} |")
    return "\n".join(out)


def locust_step(port, users, seconds, workdir, tag, keys):
    prefix = os.path.join(workdir, f"locust-{tag}-{users}")
    env = dict(os.environ, KV_KEYS=str(keys))
    subprocess.run(["/usr/bin/locust", "-f", os.path.join(ROOT, "bench", "locustfile.py"), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", f"http://127.0.0.1:{port}",
                    "--csv", prefix, "--only-summary", "--loglevel", "WARNING"],
                   capture_output=True, text=True, env=env, timeout=seconds + 120)
    with open(prefix + "_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    # FastHttpUser truncates each response time to whole milliseconds before Locust sees it.
    return {"users": users, "rps": float(row["Requests/s"]), "avg": float(row["Average Response Time"]),
            "p50": float(row["50%"]), "p95": float(row["95%"]), "p99": float(row["99%"]),
            "failures": int(row["Failure Count"]), "requests": int(row["Request Count"])}


def plot_locust(study, plots):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = []
    for n, curves in study.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for system, points in curves.items():
            xs = [p["rps"] for p in points]
            ax.plot(xs, [p["avg"] for p in points], marker="o", label=f"{system} average (of whole ms)")
            ax.plot(xs, [p["p99"] for p in points], marker="s", linestyle="--", label=f"{system} p99 (whole ms)")
            for p in points:
                ax.annotate(str(p["users"]), (p["rps"], p["avg"]), fontsize=7, textcoords="offset points", xytext=(3, 3))
        ax.set_xlabel("throughput (requests/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"Locust, {n} node{'s' if n > 1 else ''}: throughput against latency (labels: users)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(plots, f"locust_{n}node{'s' if n > 1 else ''}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def plot_ring_quality(rows, plots):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = {32768: "kvring default (32768 points/weight)", 160: "ketama-like (160 points)",
              16: "HAProxy-like (16 points/weight)"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for v in sorted({r["vnodes"] for r in rows}, reverse=True):
        mine = [r for r in rows if r["vnodes"] == v]
        a.plot([r["nodes"] for r in mine], [r["max_over_mean"] for r in mine], label=labels.get(v, f"{v} points"))
        b.plot([r["nodes"] for r in mine], [r["add_moved_over_ideal"] for r in mine], label=labels.get(v, f"{v} points"))
    a.set_title("balance: largest node's share / mean share")
    b.set_title("adding a node: share moved / ideal 1/(N+1)")
    for ax in (a, b):
        ax.set_xlabel("nodes (N)")
        ax.axhline(1.02, color="grey", linestyle=":", linewidth=1)
        ax.grid(True, alpha=0.3)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(plots, "ring_quality.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def versions():
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "haproxy": first_line(["haproxy", "-v"]), "nginx": first_line(["nginx", "-v"]),
            "wrk": first_line(["wrk", "--version"]), "locust": first_line(["/usr/bin/locust", "-V"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few seconds per system; for the test suite")
    ap.add_argument("--out", help="where RESULTS.md and plots/ go")
    ap.add_argument("--build", default=os.environ.get("KVRING_BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--threads", type=int, default=1, help="threads/workers for every proxy")
    ap.add_argument("--skip-locust", action="store_true")
    ap.add_argument("--proxies-only", action="store_true",
                    help="only the side-by-side wrk rounds; the table goes to stdout and OUT/PROXIES.md")
    ap.add_argument("--conns", help="connection counts, comma-separated (default 10,50,200)")
    ap.add_argument("--rounds", type=int, help="rounds per connection count (default 3)")
    ap.add_argument("--seconds", type=int, help="seconds per wrk run (default 10)")
    ap.add_argument("--workloads", help="comma-separated, of mixed, put (default both)")
    ap.add_argument("--systems", default="kvproxy,haproxy,nginx,relay",
                    help="comma-separated, of kvproxy, haproxy, nginx, relay (bench/relay.cpp: a floor, not a proxy), "
                         "relay-spin (the relay spinning 1 us before each of its two sends per request), kvproxy-alt "
                         "(kvproxy from --alt-build, with --alt-env or --alt-arg, for an A/B test in the same rounds)")
    ap.add_argument("--alt-build", help="kvproxy-alt: the build directory to take kvproxy from (default --build)")
    ap.add_argument("--alt-env", action="append", default=[], metavar="NAME=VALUE",
                    help="kvproxy-alt: an environment variable to start it with (repeatable)")
    ap.add_argument("--alt-arg", action="append", default=[], metavar="ARG",
                    help="kvproxy-alt: a command-line argument to add (repeatable), e.g. --alt-arg=--io --alt-arg=epoll")
    ap.add_argument("--nodes-ab", action="store_true",
                    help="only kvnode straight on, this build's against --alt-build's, in the same rounds (GET and "
                         "the mix, 50 connections unless --conns); the table goes to stdout and OUT/NODES.md")
    ap.add_argument("--ab-engine", choices=["memory", "rocksdb"], default="memory",
                    help="with --nodes-ab: the nodes' engine (default memory)")
    ap.add_argument("--cluster-ab", action="store_true",
                    help="only whole clusters (three RocksDB kvnodes and a kvproxy), this build's against --alt-build's, "
                         "in the same rounds (the mix and puts); the table goes to stdout and OUT/CLUSTERS.md")
    ap.add_argument("--pin", action="store_true",
                    help="with --proxies-only: the proxy under test on CPU 0, wrk and the nodes on CPU 1")
    args = ap.parse_args()
    if args.pin:
        if not args.proxies_only:
            ap.error("--pin: only with --proxies-only (the other parts measure the nodes themselves)")
        if (os.cpu_count() or 1) < 2:
            ap.error("--pin: needs two CPUs")
        PIN.update(proxy=["taskset", "-c", "0"], load=["taskset", "-c", "1"])
    quick = args.quick
    out = args.out or (os.path.join(args.build, "bench-quick") if quick or args.proxies_only else os.path.join(ROOT, "bench"))
    plots = os.path.join(out, "plots")
    os.makedirs(plots, exist_ok=True)
    keys = 1000 if quick else 10000
    seconds = args.seconds or (2 if quick else 10)
    rounds = args.rounds or (1 if quick else 3)
    conn_counts = [int(c) for c in args.conns.split(",")] if args.conns else [20] if quick else [10, 50, 200]
    workloads = ([w + ".lua" for w in args.workloads.split(",")] if args.workloads
                 else ["mixed.lua"] if quick else ["mixed.lua", "put.lua"])
    wanted = args.systems.split(",")
    if args.threads != 1 and any(w.startswith("relay") for w in wanted):
        wanted = [w for w in wanted if not w.startswith("relay")]  # one thread only: no fair scale
        log("the relay runs one thread: left out with --threads", args.threads)
    if "haproxy" not in wanted and not args.nodes_ab:
        ap.error("--systems: haproxy is the reference every ratio is taken against; keep it")
    if (args.nodes_ab or args.cluster_ab) and not args.alt_build:
        ap.error("--nodes-ab, --cluster-ab: give --alt-build, the build to compare this one with")
    work = tempfile.mkdtemp(prefix="kvring-bench-")
    started = time.time()
    command = " ".join(["bench/run.sh"] + sys.argv[1:])
    report = {"versions": versions(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    kvnode = os.path.join(args.build, "node", "kvnode")
    running = []
    if args.nodes_ab:
        return nodes_ab(args, out, kvnode, running, keys, rounds, seconds, report, work)
    if args.cluster_ab:
        return cluster_ab(args, out, running, keys, rounds, seconds, report, work)
    try:
        nodes = start_nodes(kvnode, 3, running)
        node_ports = [(f"n{i + 1}", n.port) for i, n in enumerate(nodes)]
        ring = write_ring(os.path.join(work, "ring.yaml"), node_ports)

        log("side by side:", ", ".join(wanted), "with", args.threads, "thread(s) each")
        makers = {"kvproxy": lambda: KvProxy(args.build, ring, args.threads, work),
                  "haproxy": lambda: HAProxy(node_ports, args.threads, work),
                  "nginx": lambda: Nginx(node_ports, args.threads, work),
                  "relay": lambda: Relay(args.build, node_ports),
                  "relay-spin": lambda: Relay(args.build, node_ports, spin_ns=1000),
                  # Another build, or the same one with other environment variables, measured in the
                  # same rounds: an A/B test of a change (--alt-build, --alt-env).
                  "kvproxy-alt": lambda: KvProxy(args.alt_build or args.build, ring, args.threads, work, "kvproxy-alt",
                                                 dict(os.environ, **dict(kv.split("=", 1) for kv in args.alt_env)),
                                                 args.alt_arg)}
        systems = []
        for name in wanted:
            if name not in makers:
                ap.error(f"--systems: unknown system {name!r} (kvproxy, haproxy, nginx, relay, relay-spin, kvproxy-alt)")
            systems.append(makers[name]())
            running.append(systems[-1])
        for s in systems:
            preload(s.port, keys)
        proxy_results = side_by_side(systems, workloads, conn_counts, rounds, seconds, keys,
                                     [n.proc.pid for n in nodes])
        for s in systems:
            s.stop()
        if args.proxies_only:
            text = table(summarize(proxy_results))
            with open(os.path.join(out, "PROXIES.md"), "w") as f:
                f.write(f"`{' '.join(['bench/run.sh'] + sys.argv[1:])}` on {report['date']}\n\n{text}\n")
            print(text)
            return

        log("kvnode straight on, against nginx's fixed answer (the HTTP floor)")
        floor = Nginx([], args.threads, work, floor=True)
        running.append(floor)
        preload(nodes[0].port, keys)
        floor_results = side_by_side([KvNodeDirect(nodes[0]), floor], ["get.lua"], [50], rounds, seconds, keys)
        floor.stop()

        log("ring quality")
        rq = subprocess.run([os.path.join(args.build, "bench", "ring_quality"), "--csv", "--vnodes", "32768",
                             "--vnodes", "160", "--vnodes", "16", "--from", "2", "--to", "16" if quick else "64"],
                            capture_output=True, text=True, check=True).stdout
        ring_rows = [{"vnodes": int(r["vnodes"]), "nodes": int(r["nodes"]), "max_over_mean": float(r["max_over_mean"]),
                      "add_moved_over_ideal": float(r["add_moved_over_ideal"])} for r in csv.DictReader(rq.splitlines())]
        ring_plot = plot_ring_quality(ring_rows, plots)
        bench_json = subprocess.run([os.path.join(args.build, "bench", "ring_bench"), "--benchmark_format=json",
                                     f"--benchmark_min_time={0.05 if quick else 1}"],
                                    capture_output=True, text=True, check=True).stdout
        micro = json.loads(bench_json)["benchmarks"]

        study = {}
        if not args.skip_locust:
            steps = [10] if quick else [5, 10, 20, 40, 80, 160]
            locust_seconds = 4 if quick else 15
            for n in ([1] if quick else [1, 2, 3]):
                log(f"Locust study: {n} node(s)")
                sub_ring = write_ring(os.path.join(work, f"ring{n}.yaml"), node_ports[:n])
                pair = [KvProxy(args.build, sub_ring, args.threads, work), HAProxy(node_ports[:n], args.threads, work)]
                running += pair
                for s in pair:
                    preload(s.port, keys)
                study[n] = {s.name: [] for s in pair}
                for users in steps:
                    for s in pair:
                        p = locust_step(s.port, users, locust_seconds, work, f"{s.name}-{n}", keys)
                        study[n][s.name].append(p)
                        log(f"  {s.name:8s} {users:3d} users: {p['rps']:7.0f} req/s  average {p['avg']:.2f} ms  "
                            f"p99 {p['p99']:.0f} ms  failures {p['failures']}")
                for s in pair:
                    s.stop()
            locust_plots = plot_locust(study, plots)
        else:
            locust_plots = []
    finally:
        stop_all(running)
        shutil.rmtree(work, ignore_errors=True)

    with open(os.path.join(out, "raw.json"), "w") as f:  # every run's figures, to summarize again
        json.dump({"proxies": proxy_results, "floor": floor_results}, f)
    write_results(out, command, report, quick, args.threads, summarize(proxy_results),
                  summarize(proxy_results, "nginx"), summarize(floor_results, "nginx"),
                  ring_rows, ring_plot, micro, study, locust_plots, time.time() - started, seconds, rounds, keys)
    log(f"wrote {os.path.join(out, 'RESULTS.md')} in {time.time() - started:.0f} s")


def nodes_ab(args, out, kvnode, running, keys, rounds, seconds, report, work):
    """kvnode straight on, this build against another (--alt-build), alternating round by round: an A/B
    of a change to kvnode, both on the engine --ab-engine names."""
    try:
        rocks = args.ab_engine == "rocksdb"
        new = start_nodes(kvnode, 1, running, os.path.join(work, "new") if rocks else None)[0]
        alt = start_nodes(os.path.join(args.alt_build, "node", "kvnode"), 1, running,
                          os.path.join(work, "alt") if rocks else None)[0]
        systems = [KvNodeDirect(new), KvNodeDirect(alt)]
        systems[1].name = "kvnode-alt"
        for s in systems:
            preload(s.port, keys)
        conns = [int(c) for c in args.conns.split(",")] if args.conns else [50]
        workloads = [w + ".lua" for w in args.workloads.split(",")] if args.workloads else ["get.lua", "mixed.lua"]
        results = side_by_side(systems, workloads, conns, rounds, seconds, keys)
        text = table(summarize(results, reference="kvnode-alt")).replace("vs HAProxy", "vs kvnode-alt")
        with open(os.path.join(out, "NODES.md"), "w") as f:
            f.write(f"`{' '.join(['bench/run.sh'] + sys.argv[1:])}` on {report['date']}\n\n{text}\n")
        print(text)
    finally:
        stop_all(running)


def cluster_ab(args, out, running, keys, rounds, seconds, report, work):
    """Two whole clusters, this build's and --alt-build's (three RocksDB kvnodes and a kvproxy each),
    alternating round by round: an A/B of a change that touches both programs. CPU is the proxy's; the
    nodes' is in the nodes column."""
    try:
        systems = []
        for name, build in (("cluster", args.build), ("cluster-alt", args.alt_build)):
            nodes = start_nodes(os.path.join(build, "node", "kvnode"), 3, running, os.path.join(work, name))
            ring = write_ring(os.path.join(work, f"{name}.yaml"), [(f"n{i + 1}", n.port) for i, n in enumerate(nodes)])
            proxy = KvProxy(build, ring, args.threads, work, name)
            running.append(proxy)
            proxy.nodes = nodes
            systems.append(proxy)
        for s in systems:
            preload(s.port, keys)
        conns = [int(c) for c in args.conns.split(",")] if args.conns else [50]
        workloads = [w + ".lua" for w in args.workloads.split(",")] if args.workloads else ["mixed.lua", "put.lua"]
        results = side_by_side(systems, workloads, conns, rounds, seconds, keys)
        text = table(summarize(results, reference="cluster-alt")).replace("vs HAProxy", "vs cluster-alt")
        with open(os.path.join(out, "CLUSTERS.md"), "w") as f:
            f.write(f"`{' '.join(['bench/run.sh'] + sys.argv[1:])}` on {report['date']}\n\n{text}\n")
        print(text)
    finally:
        stop_all(running)


def write_results(out, command, report, quick, threads, proxy_rows, nginx_rows, floor_rows, ring_rows, ring_plot, micro, study,
                  locust_plots, elapsed, seconds, rounds, keys):
    v = report["versions"]
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    lines = [f"# kvring benchmark results{' (quick mode: smoke numbers only)' if quick else ''}", "",
             f"Produced by `{command}` on {report['date']} in {elapsed / 60:.1f} minutes. Machine: {v['cpu']}, "
             f"{v['cores']} cores, Linux {v['kernel']}. References: {v['haproxy']}; {v['nginx']}; {v['wrk']}; "
             f"locust {v['locust']}.", "",
             "Everything runs on one 2-core machine: wrk (one thread), the proxy under test and three kvnodes share "
             "both cores, so absolute throughput is bounded by the machine, not only by the proxy. CPU time per request "
             "(utime + stime of the proxy's processes from /proc, divided by the requests wrk completed) is the fairest "
             "single figure. Ratios are the median of per-round ratios to the reference measured in the same round.", ""]
    kv = [r for r in proxy_rows if r["system"] == "kvproxy"]
    fl = {r["system"]: r for r in floor_rows}
    lines += ["## Targets", ""]
    if kv:
        worst = lambda m, f: f(r[m + "_ratio"] for r in kv)  # noqa: E731
        # Against nginx as against HAProxy: the median of per-round ratios, the worst row.
        vs_nginx = min(r["rps_ratio"] for r in nginx_rows if r["system"] == "kvproxy")
        kvn = fl.get("kvnode", {}).get("rps_ratio", float("nan"))
        targets = [("throughput >= 1.0x HAProxy (worst case over workloads and connection counts)", worst("rps", min), 1.0, ">="),
                   ("throughput >= nginx's (worst case)", vs_nginx, 1.0, ">="),
                   ("CPU per request <= 0.8x HAProxy's (worst case)", worst("cpu_us_per_req", max), 0.8, "<="),
                   ("p99 <= HAProxy's (worst case)", worst("p99", max), 1.0, "<="),
                   ("kvnode >= 0.7x the nginx floor", kvn, 0.7, ">=")]
        lines += ["| target | measured | met |", "|---|---|---|"]
        for name, val, bound, op in targets:
            met = val >= bound if op == ">=" else val <= bound
            lines.append(f"| {name} | {val:.2f}x | {'yes' if met else '**no**'} |")
        lines.append("")
        relay = [r for r in proxy_rows if r["system"] == "relay"]
        if relay:
            def span(rows, m, fmt):  # "lo-hi" over the rows, or one figure
                lo, hi = format(min(r[m] for r in rows), fmt), format(max(r[m] for r in rows), fmt)
                return lo if lo == hi else f"{lo}-{hi}"
            lines += [f"For scale, bench/relay in the same run (a key-routing relay that only finds the key and the "
                      f"lengths): CPU per request {span(relay, 'cpu_us_per_req_ratio', '.2f')}x HAProxy's, with "
                      f"{span(relay, 'user_us_per_req', '.1f')} us of user time per request against kvproxy's "
                      f"{span(kv, 'user_us_per_req', '.1f')}; p99 {span(relay, 'p99_ratio', '.2f')}x HAProxy's.", ""]
    lines += ["## kvproxy, HAProxy and nginx on the same nodes", "",
              f"{threads} thread/worker each; HAProxy with `balance url_param key`, `hash-type consistent`, "
              "`http-reuse always`; nginx with `hash $arg_key consistent` and `keepalive 256`. Configs are generated "
              f"from the same ring by bench/run.py. wrk, one thread, {seconds} s per run, {rounds} round(s), the "
              f"order rotated each round; {keys} keys preloaded through each proxy. mixed: 90% GET / 10% PUT; put: "
              "100% PUT. relay is not a proxy but a floor: bench/relay.cpp routes each request by hashing its key "
              "and relays the bytes as they are, with the same system calls and TCP segments as the proxies and "
              "none of their work (no header checks or rewriting, limits, deadlines, retries, metrics).", "",
              table(proxy_rows), ""]
    lines += ["## kvnode straight on, against the HTTP floor", "",
              "GET of preloaded keys straight to one kvnode (memory engine), against nginx answering a fixed "
              "`return 200` with a body of the same size: what this machine's HTTP costs without any storage.", "",
              table(floor_rows).replace("vs HAProxy", "vs nginx"), ""]
    lines += ["## Ring: lookup cost", "", "`build/release/bench/ring_bench` (Google Benchmark; random keys):", "",
              "| benchmark | time |", "|---|---|"]
    for b in micro:
        lines.append(f"| {b['name']} | {b['real_time']:.1f} {b['time_unit']} |")
    lines += ["", "## Ring: balance and movement", "",
              "Exact ownership from arc lengths (`build/release/bench/ring_quality`), for kvring's default, an "
              "HAProxy-like count of 16 points per unit of weight, and ketama's 160 points (all with kvring's "
              "hash, so only the point count differs).", "", f"![ring quality]({rel(ring_plot)})", "",
              "| points per node | worst max/mean (3..N) | worst moved on add / ideal |", "|---|---|---|"]
    for vn in sorted({r["vnodes"] for r in ring_rows}, reverse=True):
        mine = [r for r in ring_rows if r["vnodes"] == vn and r["nodes"] >= 3]
        lines.append(f"| {vn} | {max(r['max_over_mean'] for r in mine):.4f} | {max(r['add_moved_over_ideal'] for r in mine):.4f} |")
    lines.append("")
    if study:
        wrk_peak = min(max(r["rps"] for r in proxy_rows if r["system"] == name) for name in ("kvproxy", "haproxy"))
        lines += ["## The original study, reproduced with Locust", "",
                  "Locust (FastHttpUser, headless, one process), users ramped in steps, 90% GET / 10% PUT with a "
                  "5-15 ms think time, kvproxy and HAProxy in front of 1, 2 and 3 nodes. Locust itself saturates "
                  "long before either proxy does: one Python process tops out at several thousand requests/s here, "
                  f"where both proxies serve {wrk_peak:,.0f} or more under wrk. So these curves show the study's shape (throughput "
                  "grows with users until Locust saturates, then latency climbs); the wrk runs above carry the "
                  "high-load numbers.", ""]
        for path in locust_plots:
            lines.append(f"![{os.path.basename(path)}]({rel(path)})")
        lines += ["", "Caveat: Locust's FastHttpUser records each response time truncated to whole milliseconds "
                  "(`int(seconds * 1000)` in locust/contrib/fasthttp.py), so answers under a millisecond count as 0 ms "
                  "and the averages are of truncated values. Below saturation both proxies answer in well under a "
                  "millisecond here, so the curves are flat at 0 until Locust saturates; the wrk tables carry the "
                  "real latencies.", "",
                  "| nodes | users | kvproxy req/s | kvproxy average ms / p99 ms | HAProxy req/s | HAProxy average ms / p99 ms | failures |",
                  "|---|---|---|---|---|---|---|"]
        for n, curves in study.items():
            for a, b in zip(curves["kvproxy"], curves["haproxy"]):
                lines.append(f"| {n} | {a['users']} | {a['rps']:.0f} | {a['avg']:.2f} / {a['p99']:.0f} | "
                             f"{b['rps']:.0f} | {b['avg']:.2f} / {b['p99']:.0f} | {a['failures'] + b['failures']} |")
        lines.append("")
    # Written by bench/rebalance.sh, bench/slowloris.sh, bench/equal_load.sh, bench/linearizability.sh
    # (also with --replicas 3 and --hosts) and bench/replication.sh.
    for extra in ("REBALANCE.md", "SLOWLORIS.md", "EQUAL_LOAD.md", "LINEARIZABILITY.md", "LINEARIZABILITY_REPLICAS.md",
                  "LINEARIZABILITY_HOSTS.md", "REPLICATION.md", "LINEARIZABILITY_REPLICA_CHANGES.md",
                  "REPLICA_CHANGE.md"):
        path = os.path.join(ROOT, "bench", extra)
        if os.path.exists(path) and not quick:
            with open(path) as f:
                lines += [f.read().rstrip(), ""]
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes) and not quick:
        with open(notes) as f:
            lines += [f.read().rstrip(), ""]
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
