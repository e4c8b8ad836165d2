"""Helpers for integration tests: start real kvring binaries on run-time ports and talk HTTP to them.

Standard library only (no PyPI here). A process is ready when it logs "listening on HOST:PORT";
tests never sleep for a fixed time to wait for readiness.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

KVNODE = os.environ.get("KVNODE", "kvnode")
KVPROXY = os.environ.get("KVPROXY", "kvproxy")
# The data path's I/O under test ("uring" or "epoll"); unset, kvproxy picks (io_uring where it can).
KVPROXY_IO = ["--io", os.environ["KVPROXY_IO"]] if os.environ.get("KVPROXY_IO") else []
RING_REBALANCE = os.environ.get("RING_REBALANCE", "ring-rebalance")
READY_TIMEOUT = 20.0
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
ADMIN_RE = re.compile(r"admin on (\S+):(\d+)")


class Process:
    """A server process whose stderr is collected; `port` is parsed from its ready line."""

    def __init__(self, argv, ready_timeout=READY_TIMEOUT, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        self.admin_port = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(ready_timeout) or self.port is None:
            self.kill()
            raise RuntimeError(f"{argv[0]} did not become ready; output:\n{self.output()}")

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m and self.port is None:
                self.port = int(m.group(2))
                a = ADMIN_RE.search(line)
                if a:
                    self.admin_port = int(a.group(2))
                self._ready.set()
        self._ready.set()  # exited before ready

    def output(self):
        return "".join(self.lines)

    def terminate(self, timeout=20.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self.proc.stderr.close()

    def alive(self):
        return self.proc.poll() is None


def start_node(data_dir=None, engine="rocksdb", extra=()):
    argv = [KVNODE, "--port", "0"]
    if engine == "rocksdb":
        argv += ["--data-dir", data_dir]
    else:
        argv += ["--engine", engine]
    return Process(argv + list(extra))


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="kvring-test-")

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def q(key):
    """Percent-encodes a key for the query string (every reserved byte encoded)."""
    return urllib.parse.quote(key, safe="")


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, target, body=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        self.conn.request(method, target, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data

    def put(self, key, value):
        return self.request("POST", "/put?key=" + q(key), {"value": value})

    def get(self, key):
        return self.request("GET", "/get?key=" + q(key))

    def delete(self, key):
        return self.request("DELETE", "/del?key=" + q(key))

    def close(self):
        self.conn.close()


def raw_exchange(port, payload, timeout=10.0, shut_write=False):
    """Sends raw bytes and reads until the server closes (or timeout); returns all bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def parse_responses(data):
    """Splits a byte stream into HTTP/1.1 responses (Content-Length bodies): [(status, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"truncated response head: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if status == 100:
            n = 0
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def wait_until(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def free_ports(n):
    """Ports free right now (for configs that must name a node's port before it starts)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_ring(path, nodes, proxy=None, vnodes=None):
    """nodes: [(id, port)] or [(id, port, weight)]; proxy: dict for the proxy: section."""
    lines = []
    if vnodes:
        lines.append(f"vnodes: {vnodes}")
    lines.append("nodes:")
    for n in nodes:
        lines.append(f"  - id: {n[0]}\n    address: 127.0.0.1:{n[1]}")
        if len(n) > 2:
            lines.append(f"    weight: {n[2]}")
    if proxy:
        lines.append("proxy:")
        for k, v in proxy.items():
            if isinstance(v, dict):
                lines.append(f"  {k}:")
                for k2, v2 in v.items():
                    lines.append(f"    {k2}: {v2}")
            else:
                lines.append(f"  {k}: {v}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_proxy(ring, extra=()):
    return Process([KVPROXY, "--ring", ring, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *KVPROXY_IO, *extra])


def owners(ring, keys):
    """{key: node id} as ring-rebalance computes it: the reference the proxy must agree with."""
    out = subprocess.run([RING_REBALANCE, "owner", "--ring", ring, *keys], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines()}


def proxy_stats(admin_port):
    """A kvproxy's /stats.json."""
    c = Client(admin_port)
    try:
        return json.loads(c.request("GET", "/stats.json")[2])
    finally:
        c.close()


def proxy_node_state(admin_port, node_id):
    """UP or DOWN: what a kvproxy thinks of a node."""
    return next(n["state"] for n in proxy_stats(admin_port)["nodes"] if n["id"] == node_id)


class Cluster:
    """N real kvnodes and one kvproxy on run-time ports. Fast health checks, so tests are short."""

    CHECKS = {"interval": 200, "timeout": 300, "fall": 2, "rise": 1}

    def __init__(self, n=3, engine="rocksdb", proxy_extra=(), checks=None):
        self.tmp = TempDir()
        self.engine = engine
        self.nodes = {}
        for i in range(1, n + 1):
            self.start_node(f"n{i}")
        self.ring = os.path.join(self.tmp.path, "ring.yaml")
        self.write_ring()
        self.proxy = start_proxy(self.ring, ["--check-interval-ms", str((checks or self.CHECKS)["interval"]),
                                             "--check-timeout-ms", str((checks or self.CHECKS)["timeout"]),
                                             "--check-fall", str((checks or self.CHECKS)["fall"]),
                                             "--check-rise", str((checks or self.CHECKS)["rise"]), *proxy_extra])
        self.port = self.proxy.port
        self.admin = self.proxy.admin_port

    def start_node(self, node_id, port=None):
        argv = [KVNODE, "--port", str(port or 0), "--id", node_id]
        if self.engine == "rocksdb":
            argv += ["--data-dir", os.path.join(self.tmp.path, node_id)]
        else:
            argv += ["--engine", self.engine]
        self.nodes[node_id] = Process(argv)
        return self.nodes[node_id]

    def write_ring(self, order=None):
        ids = order or sorted(self.nodes)
        write_ring(self.ring, [(i, self.nodes[i].port) for i in ids])

    def node_client(self, node_id):
        return Client(self.nodes[node_id].port)

    def stats(self):
        return proxy_stats(self.admin)

    def node_state(self, node_id):
        return proxy_node_state(self.admin, node_id)

    def close(self):
        codes = {}
        if self.proxy.alive():
            codes["proxy"] = self.proxy.terminate()
        else:
            self.proxy.kill()
        for node_id, p in self.nodes.items():
            if p.alive():
                codes[node_id] = p.terminate()
            else:
                p.kill()
        self.tmp.cleanup()
        return codes


def metric(text, name):
    """The value of one sample line (name including labels) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class FakeNode:
    """A scriptable HTTP peer standing in for a node, for answers a real kvnode never gives.

    behaviour(request_bytes, headers) returns bytes to send, a list of byte strings to send one by one
    (a few milliseconds apart, so that they arrive as separate reads), or None to send nothing;
    `close_after` closes the connection after answering; `close_on` closes it, without answering,
    when that request (1 for the first) of the connection has arrived. Every request's headers are
    kept in `seen`.
    """

    def __init__(self, behaviour, close_after=False, close_on=None):
        self.behaviour = behaviour
        self.close_after = close_after
        self.close_on = close_on
        self.seen = []
        self.closed = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        count = 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    buf += conn.recv(65536)
                body, buf = buf[:n], buf[n:]
                self.seen.append((lines[0], headers, body))
                count += 1
                if count == self.close_on:
                    conn.close()
                    self.closed.set()
                    return
                if lines[0].split()[1].startswith("/health"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
                    continue
                answer = self.behaviour(lines[0], headers)
                if answer is None:
                    continue  # say nothing: the proxy must time out
                if isinstance(answer, list):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for piece in answer:
                        conn.sendall(piece)
                        time.sleep(0.005)
                else:
                    conn.sendall(answer)
                if self.close_after:
                    conn.close()
                    self.closed.set()
                    return
        except OSError:
            return

    def close(self):
        self._stop = True
        self.sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


class LoadThread(threading.Thread):
    """Reads and writes keys through the proxy until stopped; records (time, key, status, seconds) per
    request: status -1 when the connection failed (it reconnects), -2 when a read returned other data."""

    def __init__(self, port, keys, values):
        super().__init__(daemon=True)
        self.port, self.keys, self.values = port, keys, values
        self.results = []
        self.stop = threading.Event()

    def run(self):
        c = Client(self.port)
        i = 0
        while not self.stop.is_set():
            k = self.keys[i % len(self.keys)]
            t0 = time.monotonic()
            try:
                if i % 5 == 0:
                    status = c.put(k, self.values[k])[0]
                else:
                    status, _, body = c.get(k)
                    if status == 200 and json.loads(body)["value"] != self.values[k]:
                        status = -2  # wrong data
            except OSError:
                status = -1
                c.close()
                c = Client(self.port)
            self.results.append((time.monotonic(), k, status, time.monotonic() - t0))
            i += 1
        c.close()
