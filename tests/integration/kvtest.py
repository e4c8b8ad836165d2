"""The integration tests' one harness: real kvring binaries on run-time ports, and everything to talk
to them, load them and tear them down.

Standard library only (there is no PyPI here). What it offers:

- Harness: the registry of what one test (or one test class) started. `harness(test)` makes one whose
  close() runs as the test's cleanup, even when the test or its setUp failed; close() stops every
  process by its pid (SIGTERM, a deadline, then SIGKILL), newest first, and removes its directories.
  It starts kvnode (`node`) and kvproxy (`proxy`) on ports chosen at run time, a FakeNode
  (`fake_node`), any other command (`popen`), a Cluster (`cluster`), a NetNamespace (`netns`), and
  keeps files in a temporary directory (`dir`, `path`, `write`, `tempdir`).
- Process: a server whose stderr is collected; ready when it logs "listening on HOST:PORT" (never a
  fixed sleep), its ports read from that line.
- Cluster: N kvnodes and M kvproxies, their ring files, and the proxies' admin addresses.
- Load: client threads in the background, every request recorded.
- FakeNode: a scriptable HTTP peer standing in for a node.
- NetNamespace: a namespace joined by a veth pair whose link a test cuts; skips without root.
- Client, request, admin, migration, proxy_ring, proxy_stats, proxy_node_state, metrics, metric,
  put_all: HTTP to nodes and proxies and their admin endpoints; a port on loopback, or (host, port).
- ring_rebalance, plan, fingerprint, owners, key_hash, run_kvnode, run_kvproxy: the command-line tools
  run to their exit, output captured.
- write_ring, free_ports, start_retrying_busy, q, raw_exchange, parse_responses, wait_until: small pieces.

The binaries are named by the environment (tests/CMakeLists.txt): KVNODE, KVPROXY, RING_REBALANCE,
KVRING_SOURCE, KVRING_ARTIFACTS, and KVPROXY_IO=epoll for the *.epoll suites. bench/ uses Process,
free_ports and write_ring too.
"""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

KVNODE = os.environ.get("KVNODE", "kvnode")
KVPROXY = os.environ.get("KVPROXY", "kvproxy")
RING_REBALANCE = os.environ.get("RING_REBALANCE", "ring-rebalance")
# The data path's I/O under test ("uring" or "epoll"); unset, kvproxy picks (io_uring where it can).
KVPROXY_IO = ["--io", os.environ["KVPROXY_IO"]] if os.environ.get("KVPROXY_IO") else []
SOURCE = os.environ.get("KVRING_SOURCE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ARTIFACTS = os.environ.get("KVRING_ARTIFACTS", os.path.join(tempfile.gettempdir(), "kvring-artifacts"))
READY_TIMEOUT = 20.0
# Set by the sanitizer test presets (CMakePresets.json): "address" or "thread". A sanitizer looks for
# memory errors and races, which any run through a code path finds; it does not need every variation
# of a scenario that the release build already checks for anomalies, at four times the cost.
SANITIZER = os.environ.get("KVRING_SANITIZER", "")
STOP_TIMEOUT = 20.0  # how long SIGTERM has before SIGKILL
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
# A sanitizer's report in a server's output. With halt_on_error the process exits right after it,
# and a test that does not talk to it again would not notice: Harness.close() fails the test instead.
SANITIZER_REPORT_RE = re.compile(r"(ERROR|WARNING): (Address|Thread|Memory|Leak|UndefinedBehavior)Sanitizer|runtime error: ")
ADMIN_RE = re.compile(r"admin on (\S+):(\d+)")


# --- processes ---

class Process:
    """A server process whose stderr is collected; `port` (and `admin_port`, for kvproxy) are parsed
    from its ready line. The constructor returns once that line is logged, or raises RuntimeError with
    the process's output (having killed it) when it exits or is not ready within `ready_timeout`."""

    def __init__(self, argv, ready_timeout=READY_TIMEOUT, env=None):
        self.argv = list(argv)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        self.admin_port = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(ready_timeout) or self.port is None:
            self.kill()
            raise RuntimeError(f"{self.argv[0]} did not become ready; output:\n{self.output()}")

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

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        return "".join(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, timeout=STOP_TIMEOUT):
        """Stops the process by its pid: SIGTERM (and SIGCONT, should a test have frozen it), then
        SIGKILL if it has not exited within `timeout`. Returns the exit code; again after it exited."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._done()
        return self.proc.returncode

    def pause(self):
        """SIGSTOP: the process holds its sockets and answers nothing (terminate() resumes it)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL by its pid (a crash, as the tests make one)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._done()

    def _done(self):
        self._reader.join(5)
        self.proc.stderr.close()


def stop_popen(p, group=False, timeout=STOP_TIMEOUT):
    """Stops a subprocess.Popen as Process.terminate does; with `group` (it was started with
    start_new_session) its whole process group, which may outlive it."""
    if p.poll() is None:
        (os.killpg(p.pid, signal.SIGTERM) if group else p.send_signal(signal.SIGTERM))
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            (os.killpg(p.pid, signal.SIGKILL) if group else p.kill())
            p.wait()
    if group:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for stream in (p.stdin, p.stdout, p.stderr):
        if stream:
            stream.close()


def check_flags(checks):
    """kvproxy's health-check flags for those of interval, timeout (ms), fall and rise given."""
    names = {"interval": "--check-interval-ms", "timeout": "--check-timeout-ms", "fall": "--check-fall",
             "rise": "--check-rise"}
    return [arg for k, v in (checks or {}).items() for arg in (names[k], str(v))]


class Harness:
    """Everything one test (or one test class) started: processes, fake nodes, network namespaces,
    temporary directories. close() undoes them newest first (so proxies stop before their nodes and
    a directory is removed after the processes that used it), and goes on past a failing step."""

    def __init__(self):
        self._cleanups = []
        self._dir = None

    def defer(self, fn, *args, **kwargs):
        """Runs fn(*args, **kwargs) at close(), in its place among the rest (newest first)."""
        self._cleanups.append((fn, args, kwargs))

    def close(self):
        errors = []
        while self._cleanups:
            fn, args, kwargs = self._cleanups.pop()
            try:
                fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - stop everything else before reporting it
                errors.append(e)
        if errors:
            raise errors[0]

    # --- files ---

    def tempdir(self):
        """A new temporary directory, removed at close()."""
        path = tempfile.mkdtemp(prefix="kvring-test-")
        self.defer(shutil.rmtree, path, True)
        return path

    @property
    def dir(self):
        """This harness's own temporary directory (made on first use)."""
        if self._dir is None:
            self._dir = self.tempdir()
        return self._dir

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        """Writes `text` to a file of that name in `dir`; returns its path."""
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # --- processes ---

    def process(self, argv, **kwargs):
        """A Process, stopped at close(), which then fails if the process printed a sanitizer's report."""
        p = Process(argv, **kwargs)
        self.defer(self._stop_and_check, p)
        return p

    @staticmethod
    def _stop_and_check(p):
        p.terminate()
        out = p.output()
        m = SANITIZER_REPORT_RE.search(out)
        if m:
            start = out.rfind("\n", 0, m.start()) + 1
            raise AssertionError(f"{os.path.basename(p.argv[0])} (pid {p.pid}) printed a sanitizer report:\n"
                                 + out[start:start + 6000])

    def popen(self, argv, **kwargs):
        """subprocess.Popen(argv, **kwargs) for a command that is not a server, stopped at close()
        (its whole group if start_new_session)."""
        p = subprocess.Popen(argv, **kwargs)
        self.defer(stop_popen, p, bool(kwargs.get("start_new_session")))
        return p

    def node(self, node_id=None, data_dir=None, engine="rocksdb", port=0, extra=(), netns=None, bind=None):
        """A kvnode on `port` (0: one chosen at run time). RocksDB in `data_dir` (by default a new
        directory under `dir`), or `engine`; in a NetNamespace with `netns`, listening on `bind`."""
        argv = [KVNODE, "--port", str(port)]
        if bind:
            argv += ["--bind", bind]
        if node_id:
            argv += ["--id", node_id]
        if engine == "rocksdb":
            if data_dir is None:
                data_dir = self.path(node_id) if node_id else tempfile.mkdtemp(prefix="kvnode-", dir=self.dir)
            argv += ["--data-dir", data_dir]
        else:
            argv += ["--engine", engine]
        return self.process((netns.exec_prefix() if netns else []) + argv + list(extra))

    def proxy(self, ring, listen="127.0.0.1:0", admin="127.0.0.1:0", io=None, checks=None, extra=(), netns=None):
        """A kvproxy on `ring`, its listener and admin on run-time ports unless given. Its I/O loop is
        `io` or, unset, the suite's (KVPROXY_IO); `checks` as in check_flags; in a network namespace
        with `netns` (anything with exec_prefix())."""
        io_flags = ["--io", io] if io else KVPROXY_IO
        return self.process([*(netns.exec_prefix() if netns else []), KVPROXY, "--ring", ring, "--listen", listen,
                             "--admin", admin, *io_flags, *check_flags(checks), *extra])

    def fake_node(self, behaviour, **kwargs):
        """A FakeNode, closed at close()."""
        fake = FakeNode(behaviour, **kwargs)
        self.defer(fake.close)
        return fake

    def cluster(self, n=3, engine="rocksdb", proxy_extra=(), checks=None):
        """Nodes n1..nN, ring.yaml naming them all, and one kvproxy with fast checks (Cluster.CHECKS)."""
        cluster = Cluster(self, n, engine)
        cluster.write_ring()
        cluster.start_proxy(checks=checks or Cluster.CHECKS, extra=proxy_extra)
        return cluster

    def netns(self):
        """A NetNamespace, removed at close(); skips the test where one cannot be made."""
        ns = NetNamespace()
        self.defer(ns.close)
        return ns


def release_only(why):
    """Skips a test under a sanitizer: for variations of a scenario whose code paths another test of
    the same file runs under it too (`why` names that test)."""
    return unittest.skipIf(SANITIZER, f"under {SANITIZER} sanitizer: {why}")


def harness(test):
    """A Harness closed as `test`'s cleanup: given a TestCase (in setUp or a test) after tearDown,
    given its class (in setUpClass) after tearDownClass; even when the setUp that made it failed."""
    h = Harness()
    if isinstance(test, type):
        test.addClassCleanup(h.close)
    else:
        test.addCleanup(h.close)
    return h


def run(argv, timeout):
    """Runs a command to its exit; stdout and stderr captured as text."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def run_kvnode(*args, timeout=30):
    return run([KVNODE, *args], timeout)


def run_kvproxy(*args, timeout=30):
    return run([KVPROXY, *args], timeout)


# --- ring files and ring-rebalance ---

def write_ring(path, nodes, proxy=None, vnodes=None, replicas=None):
    """nodes: [(id, port)] or [(id, port, weight)], a port standing for 127.0.0.1:port and a string for
    the whole address; proxy: dict for the proxy: section; replicas: N copies per key. Returns `path`."""
    lines = []
    if vnodes:
        lines.append(f"vnodes: {vnodes}")
    if replicas:
        lines.append(f"replicas: {replicas}")
    lines.append("nodes:")
    for n in nodes:
        address = n[1] if isinstance(n[1], str) else f"127.0.0.1:{n[1]}"
        lines.append(f"  - id: {n[0]}\n    address: {address}")
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


def ring_rebalance(*args, timeout=120):
    """ring-rebalance run to its exit (CompletedProcess, output captured as text)."""
    return run([RING_REBALANCE, *args], timeout)


def plan(old, new, *extra):
    """`ring-rebalance plan --json` from OLD to NEW, parsed."""
    return json.loads(ring_rebalance("plan", "--from", old, "--to", new, "--json", *extra).stdout)


def fingerprint(ring):
    """The fingerprint of a ring file, as ring-rebalance and kvproxy compute it."""
    return plan(ring, ring)["to"]["fingerprint"]


def _owner_lines(ring, keys):
    keys = list(keys)
    for i in range(0, len(keys), 2000):  # a bounded command line
        res = subprocess.run([RING_REBALANCE, "owner", "--ring", ring, *keys[i:i + 2000]], capture_output=True,
                             text=True, check=True, timeout=60)
        for line in res.stdout.splitlines():
            yield line.split("\t")


def owners(ring, keys):
    """{key: node id} as ring-rebalance computes it: the reference the proxy must agree with."""
    return {fields[0]: fields[1] for fields in _owner_lines(ring, keys)}


def key_hash(ring, key):
    """The 8-byte hash that prefixes `key` in a node's store (ring-rebalance owner's fourth column)."""
    (fields,) = _owner_lines(ring, [key])
    return bytes.fromhex(fields[3].strip())


# --- HTTP ---

def q(key):
    """Percent-encodes a key for the query string (every reserved byte encoded)."""
    return urllib.parse.quote(key, safe="")


class Client:
    """One keep-alive HTTP/1.1 connection, to `port` on `host`, or to `port` given as (host, port)
    (a server in another network namespace, tests/integration/multihost.py)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        if isinstance(port, tuple):
            host, port = port
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


def request(port, method, target, body=None, headers=None, token=None, timeout=10.0, host="127.0.0.1"):
    """One request on a connection of its own: (status, headers, body). `token` is sent as a Bearer."""
    c = Client(port, host, timeout=timeout)
    try:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        return c.request(method, target, body, h)
    finally:
        c.close()


def node_state(port, host="127.0.0.1", timeout=10.0):
    """A kvnode's replica state from its /health ("checking", "recovering", "serving": kvnode --ring,
    node/incarnation.hpp); None when it has none."""
    return node_health(port, host, timeout).get("state")


def thread_nices(pid):
    """{thread id: (name, nice)} of a process's threads, from /proc (kvnode names its own: kv-exchange,
    kv-sync, kv-admin, kv-wait)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (stat[stat.index("(") + 1:stat.rindex(")")], int(fields[16]))  # field 19: nice
    return out


def thread_switches(pid):
    """{thread name: voluntary context switches, summed over the threads of that name}: a thread that
    waits for work and is handed some switches once more."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        name = status["Name"].strip()
        out[name] = out.get(name, 0) + int(status["voluntary_ctxt_switches"])
    return out


def node_health(port, host="127.0.0.1", timeout=10.0):
    """A kvnode's /health document: with --ring, its state, tombstones held, floors and anti-entropy
    figures ("anti_entropy": tombstones_purged, ...)."""
    return json.loads(request(port, "GET", "/health", host=host, timeout=timeout)[2])


def admin(port, method, target, body=None, token=None):
    """An admin call (a node's or a proxy's): (status, the JSON answer or None when empty)."""
    status, _, data = request(port, method, target, body, token=token, timeout=60)
    return status, json.loads(data) if data else None


def migration(admin_port):
    """A kvproxy's GET /admin/migration: its rebalance phase and ring fingerprint."""
    return admin(admin_port, "GET", "/admin/migration")[1]


def proxy_ring(admin_port):
    """A kvproxy's GET /admin/ring: the ring in use, with its version and point count."""
    return admin(admin_port, "GET", "/admin/ring")[1]


def proxy_stats(admin_port, host="127.0.0.1"):
    """A kvproxy's /stats.json (its admin listener on `host`)."""
    return json.loads(request(admin_port, "GET", "/stats.json", host=host, timeout=60)[2])


def proxy_node_state(admin_port, node_id):
    """UP or DOWN: what a kvproxy thinks of a node."""
    return next(n["state"] for n in proxy_stats(admin_port)["nodes"] if n["id"] == node_id)


def metrics(port):
    """The Prometheus text of a node or proxy (GET /metrics)."""
    return request(port, "GET", "/metrics")[2].decode()


def metric(text, name):
    """The value of one sample line (name including labels) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def holdings(port, host="127.0.0.1", token=None):
    """What one kvnode holds, read from its own store (a versioned /admin/scan of the whole ring):
    {user key: (kind "v" or "t", counter, writer, value bytes)}. Trusts no proxy: convergence checks
    compare these across replicas."""
    out = {}
    after = ""
    headers = {"Content-Type": "text/plain"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    c = Client(port, host)
    try:
        while True:
            target = "/admin/scan?limit=5000&versions=1" + (f"&after={after}" if after else "")
            status, rh, body = c.request("POST", target, "0000000000000000 ffffffffffffffff\n", headers)
            assert status == 200, (status, body)
            pos = 0
            while pos < len(body):
                (klen,) = struct.unpack_from(">I", body, pos)
                key = body[pos + 4 + 8:pos + 4 + klen].decode()
                pos += 4 + klen
                kind = chr(body[pos])
                counter, writer, vlen = struct.unpack_from(">QQI", body, pos + 1)
                pos += 1 + 16 + 4
                out[key] = (kind, counter, writer, body[pos:pos + vlen])
                pos += vlen
            if rh["X-KV-Scan-Done"] == "1":
                return out
            after = rh["X-KV-Scan-Cursor"]
    finally:
        c.close()


def differing_keys(held_by_node):
    """The keys whose versions differ between the nodes' holdings ({node: holdings(...)}), sorted. A
    tombstone counts as nothing held: each replica purges its own once every replica holds it
    (node/floors.hpp), so for a moment one holds it and another holds nothing, and both mean deleted.
    A value against a tombstone or nothing, or two versions of a value, differ."""
    views = list(held_by_node.values())
    keys = set().union(*views)

    def state(v, k):
        h = v.get(k)
        return ("-",) if h is None or h[0] == "t" else h[:3]

    return sorted(k for k in keys if len({state(v, k) for v in views}) > 1)


def put_all(port, values, threads=1):
    """Writes every {key: value} through `port`, on `threads` connections at once; returns the puts
    that did not answer 200, as [(key, status)]."""
    failed = []

    def load(keys):
        c = Client(port)
        try:
            for k in keys:
                status = c.put(k, values[k])[0]
                if status != 200:
                    failed.append((k, status))
        finally:
            c.close()

    keys = list(values)
    workers = [threading.Thread(target=load, args=(keys[i::threads],)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return failed


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


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (the ports connect() gives outgoing sockets)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_RANDOM = random.SystemRandom()  # not the global generator, which tests may seed alike


def free_ports(n):
    """n distinct ports free right now, below the kernel's ephemeral range. A server stopped and started
    again on its port must find it free: a port from the ephemeral range can be taken in between by any
    outgoing connection on the machine, even by a client's own connect() to that very port (a TCP
    self-connect), and the restart then fails with "Address already in use". Below the range only
    explicit binds compete, and the pick is random among thousands."""
    low = _ephemeral_low()
    candidates = range(max(1024, low - 16384), low)
    ports = []
    while len(ports) < n:
        port = _PORT_RANDOM.choice(candidates) if len(candidates) > 64 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def start_retrying_busy(start, seconds=10):
    """start() (which makes a Process on a fixed port), again while it fails because the port is busy,
    for up to `seconds`: a port just let go can still be held for a moment (a connection being torn
    down, another test's server between its check and its bind)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return start()
        except RuntimeError as e:
            if "Address already in use" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- clusters ---

class Cluster:
    """kvnodes on run-time ports and the kvproxies in front of them, every process registered with a
    Harness (which also removes the cluster's directory, `dir`).

    Harness.cluster(n) builds the usual shape: nodes n1..nN, `ring` (ring.yaml) naming them all, one
    proxy with fast checks. By hand, Cluster(h, ["n1", ...]) then write_ring() and start_proxy() build
    any other: nodes that no ring names yet, several rings with weights, proxies each on a copy of a
    ring file of its own (ring-rebalance rewrites a proxy's ring file).
    """

    CHECKS = {"interval": 200, "timeout": 300, "fall": 2, "rise": 1}

    def __init__(self, h, nodes=3, engine="rocksdb"):
        self.h = h
        self.engine = engine
        self.dir = h.tempdir()
        self.ring = os.path.join(self.dir, "ring.yaml")
        self.nodes = {}
        self.proxies = []
        self._proxy_args = []
        for node_id in ([f"n{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else nodes):
            self.start_node(node_id)

    # The first proxy, as most tests have only one.
    proxy = property(lambda self: self.proxies[0])
    port = property(lambda self: self.proxies[0].port)
    admin = property(lambda self: self.proxies[0].admin_port)

    def start_node(self, node_id, port=None):
        """Node `node_id` on `port` (default: one chosen at run time), its data in dir/node_id: so a
        node started again with its old port comes back with its data."""
        data_dir = os.path.join(self.dir, node_id) if self.engine == "rocksdb" else None
        if port:
            start = lambda: self.h.node(node_id, data_dir, self.engine, port)  # noqa: E731
        else:  # below the ephemeral range, so that a restart on this port finds it free
            start = lambda: self.h.node(node_id, data_dir, self.engine, free_ports(1)[0])  # noqa: E731
        self.nodes[node_id] = start_retrying_busy(start)
        return self.nodes[node_id]

    def write_ring(self, members=None, name="ring.yaml", replicas=None):
        """A ring file in `dir` naming `members` (node ids, or (id, weight)), by default every node in
        id order, with `replicas` copies per key; returns its path. write_ring(order) rewrites `ring`
        with the nodes in that order."""
        members = [m if isinstance(m, tuple) else (m,) for m in (members or sorted(self.nodes))]
        return write_ring(os.path.join(self.dir, name), [(m[0], self.nodes[m[0]].port, *m[1:]) for m in members],
                          replicas=replicas)

    def start_proxy(self, ring=None, own_copy=None, settings=None, checks=None, extra=()):
        """A kvproxy on `ring` (default `ring`). With `own_copy`, on a copy of it by that name in `dir`,
        `settings` appended as its proxy: section. Health checks as in check_flags."""
        ring = ring or self.ring
        if own_copy:
            path = os.path.join(self.dir, own_copy)
            with open(ring) as src, open(path, "w") as dst:
                dst.write(src.read())
                if settings:
                    dst.write("proxy:\n" + "".join(f"  {k}: {v}\n" for k, v in settings.items()))
            ring = path
        args = dict(ring=ring, checks=checks, extra=tuple(extra))
        # Its listener below the ephemeral range, so that restart_proxy(same_port=True) finds it free.
        self.proxies.append(start_retrying_busy(lambda: self.h.proxy(listen=f"127.0.0.1:{free_ports(1)[0]}", **args)))
        self._proxy_args.append(args)
        return self.proxies[-1]

    def proxy_ring_path(self, i=0):
        """The ring file proxy i was started on (and that a rebalance rewrites)."""
        return self._proxy_args[i]["ring"]

    def restart_proxy(self, i=0, same_port=False):
        """Proxy i stopped if it runs, then started again with the same ring file and flags: on the
        same port with `same_port`, else on a new one."""
        old = self.proxies[i]
        old.terminate()
        listen = f"127.0.0.1:{old.port}" if same_port else "127.0.0.1:0"
        self.proxies[i] = start_retrying_busy(lambda: self.h.proxy(listen=listen, **self._proxy_args[i]))
        return self.proxies[i]

    def admin_args(self):
        """ring-rebalance's --proxy-admin arguments naming every proxy."""
        return [arg for p in self.proxies for arg in ("--proxy-admin", f"127.0.0.1:{p.admin_port}")]

    def node_client(self, node_id):
        return Client(self.nodes[node_id].port)

    def stats(self):
        return proxy_stats(self.admin)

    def node_state(self, node_id):
        return proxy_node_state(self.admin, node_id)

    def close(self):
        """Stops the proxies, then the nodes; returns the exit codes of those that were still running
        ({"proxy": ..., "proxy1": ..., node id: ...})."""
        codes = {}
        named = [("proxy" if i == 0 else f"proxy{i}", p) for i, p in enumerate(self.proxies)]
        for name, p in named + list(self.nodes.items()):
            if p.alive():
                codes[name] = p.terminate()
            else:
                p.kill()
        return codes


# --- load ---

class Load:
    """Client threads in the background, one per entry of `ports`, each on its own keep-alive connection
    and its own keys, until finish(). Every request is recorded as (time it ended, key, status, seconds
    taken) in `results` (all threads'; fewest_results() is the least any one thread made): status -2
    when a read returned other data than the thread knows the key holds.

    Load.fixed(port, keys, values, threads): each key keeps its value; every fifth request writes it,
    the others read it. A failed connection is recorded as status -1, and the thread reconnects.
    Load.owned(ports, prefix, keys_per_thread): put (35%), delete (15%) and get at random, each key
    first given a value; each thread knows its keys' exact state, so an answer that contradicts an
    acknowledged operation goes to `violations`, any other failure (a 5xx; an exception, which ends
    the thread) to `errors`; `ops` counts the random operations and `state` is each key's last
    acknowledged value (None when deleted), once finished.
    """

    def __init__(self, ports, key_lists, values=None):
        self.values = values
        self.stop = threading.Event()
        self.violations = []
        self.errors = []
        self.ops = 0
        self.state = {}
        self._results = [[] for _ in ports]
        self.threads = [threading.Thread(target=self._run, args=(port, keys, t), daemon=True)
                        for t, (port, keys) in enumerate(zip(ports, key_lists))]

    @classmethod
    def fixed(cls, port, keys, values, threads):
        return cls([port] * threads, [keys[i::threads] for i in range(threads)], values)

    @classmethod
    def owned(cls, ports, prefix="live", keys_per_thread=150):
        return cls(ports, [[f"{prefix}-{t}-{i}-é" for i in range(keys_per_thread)] for t in range(len(ports))])

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(60)
        return self

    @property
    def results(self):
        return [r for results in self._results for r in results]

    def fewest_results(self):
        """The number of requests of the thread that made fewest so far."""
        return min(len(r) for r in self._results)

    def _run(self, port, keys, t):
        owned = self.values is None
        timeout = 30.0 if owned else 10.0
        rng = random.Random(t)
        state = {}
        c = Client(port, timeout=timeout)
        try:
            if owned:  # every key starts with a value, so reads of existing keys happen from the start
                for n, k in enumerate(keys, 1):
                    status, _, body = c.put(k, f"{k}#{n}")
                    if status != 200:
                        self.errors.append(("put", k, status, body))
                        continue
                    state[k] = f"{k}#{n}"
            i = 0
            while not self.stop.is_set():
                k = rng.choice(keys) if owned else keys[i % len(keys)]
                t0 = time.monotonic()
                try:
                    if owned:
                        status = self._owned_op(c, k, rng.random(), f"{k}#{len(keys) + i + 1}", state)
                    else:
                        status = self._fixed_op(c, k, i)
                except OSError:
                    if owned:
                        raise  # its keys' state is unknown from here: an error, and the thread ends
                    status = -1
                    c.close()
                    c = Client(port, timeout=timeout)
                self._results[t].append((time.monotonic(), k, status, time.monotonic() - t0))
                i += 1
        except Exception as e:  # noqa: BLE001 - a dead load thread must fail the test, not hang it
            self.errors.append(("exception", repr(e)))
        finally:
            c.close()
            self.state.update(state)

    def _fixed_op(self, c, k, i):
        if i % 5 == 0:
            return c.put(k, self.values[k])[0]
        status, _, body = c.get(k)
        if status == 200 and json.loads(body)["value"] != self.values[k]:
            status = -2  # wrong data
        return status

    def _owned_op(self, c, k, r, value, state):
        """One random operation on key k (r in [0, 1) picks which), checked against `state`."""
        if r < 0.35:
            status, _, body = c.put(k, value)
            if status == 200:
                state[k] = value
            else:
                self.errors.append(("put", k, status, body))
        elif r < 0.5:
            status, _, body = c.delete(k)
            expected = 200 if state.get(k) is not None else 404
            if status in (200, 404):
                if status != expected:
                    self.violations.append(("del", k, status, state.get(k)))
                state[k] = None
            else:
                self.errors.append(("del", k, status, body))
        else:
            status, _, body = c.get(k)
            want = state.get(k)
            if status == 200:
                got = json.loads(body)["value"]
                if got != want:
                    self.violations.append(("get", k, got, want))
                    status = -2
            elif status == 404 and want is not None:
                self.violations.append(("get 404 for an existing key", k, want))
                status = -2
            elif status != 404:
                self.errors.append(("get", k, status, body))
        self.ops += 1
        return status


# --- stand-ins ---

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


class NetNamespace:
    """A network namespace joined to this one by a veth pair: `host_addr` on this side, `addr`
    inside, a /30 of its own per test process (so concurrent suites do not meet). A process started
    with exec_prefix() runs inside; link(False) cuts the pair, link(True) joins it again.

    The cut is made inside (the namespace's end goes down): the host keeps its route to the /30,
    marked linkdown, and packets for `addr` are dropped on the pair, as by a pulled cable. Taking
    the host's end down instead would remove that route, and they would follow the default route
    off this machine; an `unreachable` route for the /30 (behind the pair's own) keeps them here
    in any case.

    Needs root and iproute2: otherwise the constructor raises unittest.SkipTest saying which.
    """

    def __init__(self):
        pid = os.getpid()
        self.name = f"kvring-test-{pid}"
        self.host_if, self.ns_if = f"kvh{pid}", f"kvn{pid}"
        # 10.200.0.0 to 10.249.255.255, a /30 per process id (collisions need ids 819200 apart).
        idx = pid % (50 * 256 * 64)
        net = f"10.{200 + idx // 16384}.{(idx // 64) % 256}"
        base = (idx % 64) * 4
        self.host_addr, self.addr = f"{net}.{base + 1}", f"{net}.{base + 2}"
        self.subnet = f"{net}.{base}/30"
        if os.geteuid() != 0:
            raise unittest.SkipTest("a network namespace needs root (run the suite as root)")
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "route", "add", "unreachable", self.subnet, "metric", "4294967295"],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
            ["ip", "link", "set", self.ns_if, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_addr}/30", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            [*self.exec_prefix(), "ip", "addr", "add", f"{self.addr}/30", "dev", self.ns_if],
            [*self.exec_prefix(), "ip", "link", "set", self.ns_if, "up"],
            [*self.exec_prefix(), "ip", "link", "set", "lo", "up"],
        ]
        for cmd in steps:
            try:
                res = subprocess.run(cmd, capture_output=True, text=True)
            except FileNotFoundError as e:
                res = subprocess.CompletedProcess(cmd, 127, "", str(e))
            if res.returncode != 0:
                self.close()
                raise unittest.SkipTest(f"cannot build a network namespace here (needs root and iproute2): "
                                        f"{' '.join(cmd)}: {res.stderr.strip()}")

    def exec_prefix(self):
        """The command prefix that runs a program inside (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name]

    def link(self, up):
        subprocess.run([*self.exec_prefix(), "ip", "link", "set", self.ns_if, "up" if up else "down"], check=True)

    def close(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "route", "del", "unreachable", self.subnet, "metric", "4294967295"], capture_output=True)
