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
READY_TIMEOUT = 20.0
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")


class Process:
    """A server process whose stderr is collected; `port` is parsed from its ready line."""

    def __init__(self, argv, ready_timeout=READY_TIMEOUT):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._ready = threading.Event()
        self.port = None
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
