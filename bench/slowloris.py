#!/usr/bin/python3
"""Normal clients among 1000 idle connections and 50 slowloris senders: kvproxy and HAProxy on the same
nodes. For each proxy, wrk's mixed load (90% GET / 10% PUT) runs twice, quiet and then with the idle
and slowloris connections open (a header byte every 100 ms each); p99 is compared.

Writes SLOWLORIS.md into --out (bench/ by default; run.py includes bench/SLOWLORIS.md in RESULTS.md).
"""
import argparse
import datetime
import os
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kvtest import Process, write_ring  # noqa: E402
from run import HAProxy, KvProxy, log, preload, wrk  # noqa: E402


class Attack:
    """`idle` connections that say nothing, and `slow` ones that send a header a byte at a time."""

    def __init__(self, port, idle, slow):
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
        self.slow = []
        for _ in range(slow):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /get?key=bench:1 HTTP/1.1\r\nX-Slow: ")
            self.slow.append(s)
        self.port = port
        self.stop = threading.Event()
        self.reopened = 0
        self.thread = threading.Thread(target=self.drip, daemon=True)
        self.thread.start()

    def drip(self):
        while not self.stop.is_set():
            for i, s in enumerate(self.slow):
                try:
                    s.sendall(b"a")
                except OSError:  # the proxy gave up on it (408): a slowloris opens another
                    s.close()
                    s = socket.create_connection(("127.0.0.1", self.port))
                    s.sendall(b"GET /get?key=bench:1 HTTP/1.1\r\nX-Slow: ")
                    self.slow[i] = s
                    self.reopened += 1
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks + self.slow:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    seconds, keys, conns = (3, 1000, 20) if args.quick else (10, 10000, 50)
    out = args.out or (os.path.join(args.build, "bench-quick") if args.quick else os.path.join(ROOT, "bench"))
    os.makedirs(out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kvring-slowloris-") as workdir:
        nodes = [Process([os.path.join(args.build, "node", "kvnode"), "--port", "0", "--id", f"n{i}",
                          "--engine", "memory"]) for i in (1, 2, 3)]
        try:
            ports = [(f"n{i + 1}", p.port) for i, p in enumerate(nodes)]
            ring = write_ring(os.path.join(workdir, "ring.yaml"), ports)
            for make in (lambda: KvProxy(args.build, ring, 1, workdir), lambda: HAProxy(ports, 1, workdir)):
                proxy = make()
                try:
                    preload(proxy.port, keys)
                    quiet = wrk(proxy.port, "mixed.lua", conns, seconds, keys)
                    attack = Attack(proxy.port, 1000, 50)
                    try:
                        loaded = wrk(proxy.port, "mixed.lua", conns, seconds, keys)
                    finally:
                        attack.close()
                    log(f"{proxy.name}: p99 quiet {quiet['p99']} us, under attack {loaded['p99']} us")
                    rows.append(f"| {proxy.name} | {quiet['rps']:.0f} | {quiet['p99'] / 1000:.2f} | {loaded['rps']:.0f} | "
                                f"{loaded['p99'] / 1000:.2f} | {loaded['p99'] / max(1, quiet['p99']):.2f}x | "
                                f"{loaded['errors']} | {attack.reopened} |")
                finally:
                    proxy.stop()
        finally:
            for p in nodes:
                p.terminate()
    command = "bench/slowloris.sh" + (" --quick" if args.quick else "")
    lines = ["## Normal clients among 1000 idle connections and 50 slowloris senders", "",
             f"`{command}`, {datetime.date.today().isoformat()}: 3 kvnodes (memory engine), each proxy with one "
             f"thread and its defaults (kvproxy: 10 s header deadline; HAProxy: `timeout client 60s`); wrk, "
             f"{conns} connections, {seconds} s of 90% GET / 10% PUT, quiet and then with 1000 idle connections "
             "and 50 senders dripping a header byte every 100 ms (each reconnects when cut off).", "",
             "| proxy | quiet req/s | quiet p99 ms | attacked req/s | attacked p99 ms | p99 ratio (target <= 2x) | "
             "errors | slowloris reconnects |", "|---|---|---|---|---|---|---|---|", *rows, ""]
    with open(os.path.join(out, "SLOWLORIS.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
