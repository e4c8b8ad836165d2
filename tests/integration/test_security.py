"""Admin security: listeners on loopback by default, a token required elsewhere, 401/403 on the
endpoints that change things, and ring-rebalance passing the token along."""
import json
import os
import subprocess
import unittest

from kvtest import KVNODE, KVPROXY, RING_REBALANCE, Client, Process, TempDir, start_proxy, write_ring

TOKEN = "test-token-0123456789abcdef"


class SecurityTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.token_file = os.path.join(self.tmp.path, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.alive():
                p.terminate()
        self.tmp.cleanup()

    def node(self, nid, *extra):
        p = Process([KVNODE, "--port", "0", "--id", nid, "--data-dir", os.path.join(self.tmp.path, nid), *extra])
        self.procs.append(p)
        return p

    def request(self, port, method, target, body=None, token=None):
        c = Client(port)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            status, headers, data = c.request(method, target, body, headers)
            return status, headers, data
        finally:
            c.close()

    def test_non_loopback_admin_needs_a_token_file(self):
        ring = write_ring(os.path.join(self.tmp.path, "ring.yaml"), [("n1", 1)])
        res = subprocess.run([KVPROXY, "--ring", ring, "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(), "kvproxy: --admin: 0.0.0.0:0 is not a loopback address; give "
                                             "--admin-token-file so that changing the ring needs a token")
        res = subprocess.run([KVNODE, "--port", "0", "--bind", "0.0.0.0", "--engine", "memory"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        self.assertIn("kvnode: --bind: 0.0.0.0 is not a loopback address; give --admin-token-file", res.stderr)
        weak = os.path.join(self.tmp.path, "weak")
        with open(weak, "w") as f:
            f.write("short\n")
        res = subprocess.run([KVNODE, "--port", "0", "--engine", "memory", "--admin-token-file", weak],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(), f"kvnode: --admin-token-file: {weak}: token shorter than 16 characters")

    def test_proxy_admin_changes_need_the_token_reads_do_not(self):
        n1 = self.node("n1")
        ring = write_ring(os.path.join(self.tmp.path, "ring.yaml"), [("n1", n1.port)])
        proxy = Process([KVPROXY, "--ring", ring, "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0",
                         "--admin-token-file", self.token_file])
        self.procs.append(proxy)
        with open(ring) as f:
            text = f.read()
        status, headers, body = self.request(proxy.admin_port, "POST", "/admin/ring", text)
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="kvproxy admin"')
        self.assertEqual(json.loads(body)["detail"], "This endpoint needs Authorization: Bearer <token>")
        status, _, body = self.request(proxy.admin_port, "POST", "/admin/ring", text, token=TOKEN + "x")
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["detail"], "Wrong token")
        for target in ("/admin/migration/begin?from=0000000000000000", "/admin/migration/abort"):
            self.assertEqual(self.request(proxy.admin_port, "POST", target, text)[0], 401)
        self.assertEqual(self.request(proxy.admin_port, "POST", "/admin/ring", text, token=TOKEN)[0], 200)
        for target in ("/stats", "/stats.json", "/metrics", "/admin/ring", "/admin/migration"):
            self.assertEqual(self.request(proxy.admin_port, "GET", target)[0], 200, target)
        # The data path is not behind the token.
        self.assertEqual(self.request(proxy.port, "POST", "/put?key=a", {"value": "v"})[0], 200)

    def test_node_admin_endpoints_need_the_token_the_api_does_not(self):
        n1 = self.node("n1", "--admin-token-file", self.token_file)
        ranges = "0000000000000000 ffffffffffffffff\n"
        status, headers, _ = self.request(n1.port, "POST", "/admin/count", ranges)
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="kvnode admin"')
        self.assertEqual(self.request(n1.port, "POST", "/admin/drop?what=all", ranges, token="nope-nope-nope-nope")[0], 403)
        self.assertEqual(self.request(n1.port, "POST", "/admin/count", ranges, token=TOKEN)[0], 200)
        self.assertEqual(self.request(n1.port, "POST", "/put?key=a", {"value": "v"})[0], 200)
        self.assertEqual(self.request(n1.port, "GET", "/get?key=a")[0], 200)

    def test_apply_passes_the_token_to_proxies_and_nodes(self):
        nodes = {nid: self.node(nid, "--admin-token-file", self.token_file) for nid in ("n1", "n2")}
        old = write_ring(os.path.join(self.tmp.path, "old.yaml"), [("n1", nodes["n1"].port)])
        new = write_ring(os.path.join(self.tmp.path, "new.yaml"), [("n1", nodes["n1"].port), ("n2", nodes["n2"].port)])
        ring = os.path.join(self.tmp.path, "proxy.yaml")
        with open(old) as src, open(ring, "w") as dst:
            dst.write(src.read())
        proxy = start_proxy(ring, ["--admin-token-file", self.token_file])
        self.procs.append(proxy)
        c = Client(proxy.port)
        for i in range(200):
            self.assertEqual(c.put(f"k{i}", f"v{i}")[0], 200)
        args = ["apply", "--from", old, "--to", new, "--proxy-admin", f"127.0.0.1:{proxy.admin_port}"]
        res = subprocess.run([RING_REBALANCE, *args], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 1)
        self.assertIn("HTTP 401: This endpoint needs Authorization: Bearer <token>", res.stderr)
        res = subprocess.run([RING_REBALANCE, *args, "--admin-token-file", self.token_file], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        for i in range(200):
            status, _, body = c.get(f"k{i}")
            self.assertEqual((status, json.loads(body)["value"]), (200, f"v{i}"))
        c.close()


if __name__ == "__main__":
    unittest.main()
