#!/usr/bin/python3
"""Adding a node under load: kvring's ring-rebalance against HAProxy's remapping, on the same kind of nodes.

Started by bench/rebalance.sh. kvring: 3 kvnodes (RocksDB) behind kvproxy, KEYS keys written, then a
wrk mixed load (90% GET / 10% PUT over those keys) for SECONDS twice: once quiet, once with
`ring-rebalance apply` adding a 4th node one second in (unthrottled, then with --max-rate). HAProxy:
the same nodes and keys, then its backend changed to 4 servers (what `balance url_param key` +
`hash-type consistent` does on a membership change) and the same load. wrk counts every non-2xx answer
as a status error: for this workload, a 404 means a key that was written and is not found.

Writes REBALANCE.md into --out (bench/ by default; run.py includes bench/REBALANCE.md in RESULTS.md).
"""
import argparse
import datetime
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, write_ring  # noqa: E402
from run import VALUE, HAProxy, KvProxy, log, versions, wrk  # noqa: E402


def start_nodes(build, workdir, tag, n=4):
    nodes = []
    for i in range(1, n + 1):
        nodes.append((f"n{i}", Process([os.path.join(build, "node", "kvnode"), "--port", "0", "--id", f"n{i}",
                                        "--data-dir", os.path.join(workdir, f"{tag}-n{i}")])))
    return nodes


def stored_keys(node_ports):
    """Keys stored on these nodes, counted exactly by each node."""
    total = 0
    for port in node_ports:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/admin/count", body="0000000000000000 ffffffffffffffff\n")
        total += json.loads(c.getresponse().read())["keys"]
        c.close()
    return total


def fill(port, keys, node_ports):
    # A generous duration, cut short once the script has sent every key; then count what the nodes hold.
    conns = 32
    with tempfile.TemporaryDirectory(prefix="kvring-fill-") as tmp:
        r = wrk(port, "fill.lua", conns, int(keys / 5000) + 30, keys, done_file=os.path.join(tmp, "done"))
    # wrk drops the requests in flight when the script stops it, and makes (and drops) one request
    # before it connects: write the first and last few keys again.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in sorted(set(range(1, min(keys, 2 * conns) + 1)) | set(range(max(1, keys - 2 * conns), keys + 1))):
        c.request("POST", f"/put?key=bench:{i}", body=VALUE, headers={"Content-Type": "application/json"})
        c.getresponse().read()
    c.close()
    stored = stored_keys(node_ports)
    if r["errors"] or stored != keys:
        raise RuntimeError(f"fill through {port}: the nodes hold {stored} keys of {keys}, {r['errors']} errors")
    return r


def lost_share(r):
    """The share of GETs (90% of the mix) answered 404."""
    return r["status_errors"] / max(1, 0.9 * r["requests"])


def fmt_run(name, r):
    return (f"| {name} | {r['rps']:.0f} | {r['p50'] / 1000:.2f} | {r['p99'] / 1000:.2f} | {r['p999'] / 1000:.2f} | "
            f"{r['status_errors']} | {r['connect_errors'] + r['read_errors'] + r['write_errors'] + r['timeouts']} |")


def kvring_runs(build, workdir, keys, seconds, conns, rates):
    nodes = start_nodes(build, workdir, "kv")
    try:
        ports = {nid: p.port for nid, p in nodes}
        old = write_ring(os.path.join(workdir, "old.yaml"), [(f"n{i}", ports[f"n{i}"]) for i in (1, 2, 3)])
        new = write_ring(os.path.join(workdir, "new.yaml"), [(f"n{i}", ports[f"n{i}"]) for i in (1, 2, 3, 4)])
        rows, applies = [], []
        for rate in [None] + rates:
            ring = os.path.join(workdir, "proxy.yaml")
            with open(old) as src, open(ring, "w") as dst:
                dst.write(src.read())
            for suffix in (".migration", ".prev"):
                if os.path.exists(ring + suffix):
                    os.remove(ring + suffix)
            proxy = KvProxy(build, ring, 1, workdir)
            try:
                if rate is None:
                    log(f"kvring: writing {keys} keys")
                    fill(proxy.port, keys, [p.port for _, p in nodes])
                    log("kvring: quiet run")
                    quiet = wrk(proxy.port, "mixed.lua", conns, seconds, keys)
                    rows.append(fmt_run("kvproxy, quiet", quiet))
                    continue
                result = {}

                def load():
                    result["r"] = wrk(proxy.port, "mixed.lua", conns, seconds, keys)
                t = threading.Thread(target=load)
                t.start()
                time.sleep(1)
                argv = [os.path.join(build, "tools", "ring-rebalance"), "apply", "--from", old, "--to", new,
                        "--proxy-admin", f"127.0.0.1:{proxy.p.admin_port}", "--progress", "lines", "--json"]
                if rate:
                    argv += ["--max-rate", str(rate)]
                t0 = time.monotonic()
                res = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
                wall = time.monotonic() - t0
                t.join()
                if res.returncode != 0:
                    raise RuntimeError(f"apply failed:\n{res.stderr}")
                summary = json.loads(res.stdout)
                label = "unthrottled" if rate == 0 else f"--max-rate {rate}"
                log(f"kvring: apply {label}: {wall:.1f} s, {summary['keys_copied']} keys copied")
                rows.append(fmt_run(f"kvproxy, during apply ({label})", result["r"]))
                applies.append((label, wall, summary, result["r"]))
                if wall > seconds - 1:
                    log(f"note: apply ({label}) outlasted the {seconds} s load window")
                # Back to OLD for the next round: move n4's keys home by the same tool.
                back = subprocess.run([os.path.join(build, "tools", "ring-rebalance"), "apply", "--from", new, "--to",
                                       old, "--proxy-admin", f"127.0.0.1:{proxy.p.admin_port}", "--progress",
                                       "lines"], capture_output=True, text=True, timeout=1800)
                if back.returncode != 0:
                    raise RuntimeError(f"apply back failed:\n{back.stderr}")
            finally:
                proxy.stop()
        return rows, applies, quiet["p99"]
    finally:
        for _, p in nodes:
            p.terminate()


def haproxy_runs(build, workdir, keys, seconds, conns):
    nodes = start_nodes(build, workdir, "ha")
    try:
        ports = [(nid, p.port) for nid, p in nodes]
        rows = []
        ha = HAProxy(ports[:3], 1, workdir)
        try:
            log(f"haproxy: writing {keys} keys")
            fill(ha.port, keys, [p.port for _, p in nodes])
            rows.append(fmt_run("HAProxy, 3 servers", wrk(ha.port, "mixed.lua", conns, seconds, keys)))
        finally:
            ha.stop()
        ha = HAProxy(ports, 1, workdir)  # the same backend with a 4th server: consistent hashing remaps
        try:
            after = wrk(ha.port, "mixed.lua", conns, seconds, keys)
            rows.append(fmt_run("HAProxy, after adding a 4th server", after))
        finally:
            ha.stop()
        return rows, after
    finally:
        for _, p in nodes:
            p.terminate()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small and short; for the test suite")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    keys = 5000 if args.quick else 300_000
    seconds = 3 if args.quick else 20
    conns = 32
    rates = [0] if args.quick else [0, 50_000]
    out = args.out or (os.path.join(args.build, "bench-quick") if args.quick else os.path.join(ROOT, "bench"))
    os.makedirs(out, exist_ok=True)
    command = "bench/rebalance.sh" + (" --quick" if args.quick else "")
    with tempfile.TemporaryDirectory(prefix="kvring-rebalance-") as workdir:
        kv_rows, applies, quiet_p99 = kvring_runs(args.build, workdir, keys, seconds, conns, rates)
        ha_rows, ha_after = haproxy_runs(args.build, workdir, keys, seconds, conns)
    v = versions()
    machine = f"{v.get('cpu', '?')}, {v.get('cores', '?')} cores, {v.get('haproxy', 'haproxy ?').split(' - ')[0]}, {v.get('wrk', 'wrk ?').split(' [')[0]}"
    lines = ["## Adding a node under load: ring-rebalance against HAProxy's remapping", "",
             f"`{command}`, {datetime.date.today().isoformat()}, {machine}. 3 kvnodes (RocksDB) and a 4th, "
             f"{keys} keys of ~50 bytes written first; wrk, 1 thread, {conns} connections, {seconds} s of 90% GET / "
             "10% PUT over those keys per row; everything on this 2-core machine. For kvproxy the apply "
             "starts 1 s into the load. A status error is a non-2xx answer: here, a written key not found (404).",
             "", "| run | requests/s | p50 ms | p99 ms | p99.9 ms | status errors | other errors |",
             "|---|---|---|---|---|---|---|", *kv_rows, *ha_rows, "",
             "| apply | wall time s | keys copied | copy s | keys/s copied | share moved (plan, ideal) |", "|---|---|---|---|---|---|"]
    for label, wall, s, _ in applies:
        rate = s["keys_copied"] / s["copy_seconds"] if s["copy_seconds"] else 0
        lines.append(f"| {label} | {wall:.1f} | {s['keys_copied']} | {s['copy_seconds']:.1f} | {rate:.0f} | "
                     f"{s['moved_share'] * 100:.2f}% ({s['ideal_share'] * 100:.0f}%) |")
    worst = max((r for *_, r in applies), key=lambda r: r["p99"])
    lines += ["", f"Conclusion: while kvring moved {applies[0][2]['keys_copied']} keys to the new node, no read of a "
              f"written key failed ({sum(r['status_errors'] for *_, r in applies)} status errors) and p99 stayed at "
              f"{worst['p99'] / 1000:.2f} ms or less (quiet: {quiet_p99 / 1000:.2f} ms). HAProxy, given the same "
              f"change, sent {lost_share(ha_after) * 100:.1f}% of reads to a node that does not have the key "
              "(404), the 25% of keys that changed owner minus those the 10% of writes re-created meanwhile.", ""]
    with open(os.path.join(out, "REBALANCE.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
