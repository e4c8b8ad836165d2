"""Admin security: listeners on loopback by default, a token required elsewhere, 401/403 on the
endpoints that change things, and ring-rebalance passing the token along."""
import json
import unittest

from kvtest import Client, harness, request, ring_rebalance, run_kvnode, run_kvproxy, write_ring

TOKEN = "test-token-0123456789abcdef"


class SecurityTest(unittest.TestCase):
    def setUp(self):
        self.h = harness(self)
        self.token_file = self.h.write("token", TOKEN + "\n")

    def test_non_loopback_admin_needs_a_token_file(self):
        ring = write_ring(self.h.path("ring.yaml"), [("n1", 1)])
        res = run_kvproxy("--ring", ring, "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0")
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(), "kvproxy: --admin: 0.0.0.0:0 is not a loopback address; give "
                                             "--admin-token-file so that changing the ring needs a token")
        res = run_kvnode("--port", "0", "--bind", "0.0.0.0", "--engine", "memory")
        self.assertEqual(res.returncode, 2)
        self.assertIn("kvnode: --bind: 0.0.0.0 is not a loopback address; give --admin-token-file", res.stderr)
        weak = self.h.write("weak", "short\n")
        res = run_kvnode("--port", "0", "--engine", "memory", "--admin-token-file", weak)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr.strip(), f"kvnode: --admin-token-file: {weak}: token shorter than 16 characters")

    def test_proxy_admin_changes_need_the_token_reads_do_not(self):
        n1 = self.h.node("n1")
        ring = write_ring(self.h.path("ring.yaml"), [("n1", n1.port)])
        proxy = self.h.proxy(ring, admin="0.0.0.0:0", extra=["--admin-token-file", self.token_file])
        with open(ring) as f:
            text = f.read()
        status, headers, body = request(proxy.admin_port, "POST", "/admin/ring", text)
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="kvproxy admin"')
        self.assertEqual(json.loads(body)["detail"], "This endpoint needs Authorization: Bearer <token>")
        status, _, body = request(proxy.admin_port, "POST", "/admin/ring", text, token=TOKEN + "x")
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body)["detail"], "Wrong token")
        for target in ("/admin/migration/begin?from=0000000000000000", "/admin/migration/abort"):
            self.assertEqual(request(proxy.admin_port, "POST", target, text)[0], 401)
        self.assertEqual(request(proxy.admin_port, "POST", "/admin/ring", text, token=TOKEN)[0], 200)
        for target in ("/stats", "/stats.json", "/metrics", "/admin/ring", "/admin/migration"):
            self.assertEqual(request(proxy.admin_port, "GET", target)[0], 200, target)
        # The data path is not behind the token.
        self.assertEqual(request(proxy.port, "POST", "/put?key=a", {"value": "v"})[0], 200)

    def test_node_admin_endpoints_need_the_token_the_api_does_not(self):
        n1 = self.h.node("n1", extra=["--admin-token-file", self.token_file])
        ranges = "0000000000000000 ffffffffffffffff\n"
        status, headers, _ = request(n1.port, "POST", "/admin/count", ranges)
        self.assertEqual(status, 401)
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="kvnode admin"')
        self.assertEqual(request(n1.port, "POST", "/admin/drop?what=all", ranges, token="nope-nope-nope-nope")[0], 403)
        self.assertEqual(request(n1.port, "POST", "/admin/count", ranges, token=TOKEN)[0], 200)
        self.assertEqual(request(n1.port, "POST", "/put?key=a", {"value": "v"})[0], 200)
        self.assertEqual(request(n1.port, "GET", "/get?key=a")[0], 200)

    def test_replica_endpoints_need_the_token_and_are_never_forwarded(self):
        n1 = self.h.node("n1", extra=["--admin-token-file", self.token_file])
        tagged = {"X-KV-Version": "3.1"}
        status, headers, body = request(n1.port, "POST", "/replica/put?key=a", {"value": "v"}, headers=tagged)
        self.assertEqual((status, json.loads(body)["detail"]), (401, "This endpoint needs Authorization: Bearer <token>"))
        self.assertEqual(request(n1.port, "GET", "/replica/get?key=a", token="nope-nope-nope-nope")[0], 403)
        status, headers, _ = request(n1.port, "POST", "/replica/put?key=a", {"value": "v"}, headers=tagged, token=TOKEN)
        self.assertEqual((status, headers["X-KV-Version"], headers["X-KV-Applied"]), (200, "3.0000000000000001", "1"))
        status, headers, body = request(n1.port, "GET", "/replica/get?key=a", token=TOKEN)
        self.assertEqual((status, json.loads(body)["value"], headers["X-KV-Version"]), (200, "v", "3.0000000000000001"))
        # Through a proxy: the proxy's own 404, whatever the client sends; the node is not asked.
        ring = write_ring(self.h.path("ring.yaml"), [("n1", n1.port)])
        proxy = self.h.proxy(ring)
        for method, target in (("GET", "/replica/get?key=a"), ("POST", "/replica/put?key=a"), ("DELETE", "/replica/del?key=a")):
            status, headers, body = request(proxy.port, method, target, {"value": "w"} if method == "POST" else None,
                                            headers=tagged, token=TOKEN)
            self.assertEqual((status, json.loads(body)["detail"]), (404, "Not found"), target)
            self.assertNotIn("X-KV-Node", headers)
        self.assertEqual(json.loads(request(n1.port, "GET", "/get?key=a")[2])["value"], "v")

    def test_apply_passes_the_token_to_proxies_and_nodes(self):
        nodes = {nid: self.h.node(nid, extra=["--admin-token-file", self.token_file]) for nid in ("n1", "n2")}
        old = write_ring(self.h.path("old.yaml"), [("n1", nodes["n1"].port)])
        new = write_ring(self.h.path("new.yaml"), [("n1", nodes["n1"].port), ("n2", nodes["n2"].port)])
        with open(old) as f:
            ring = self.h.write("proxy.yaml", f.read())
        proxy = self.h.proxy(ring, extra=["--admin-token-file", self.token_file])
        c = Client(proxy.port)
        for i in range(200):
            self.assertEqual(c.put(f"k{i}", f"v{i}")[0], 200)
        args = ["apply", "--from", old, "--to", new, "--proxy-admin", f"127.0.0.1:{proxy.admin_port}"]
        res = ring_rebalance(*args, timeout=60)
        self.assertEqual(res.returncode, 1)
        self.assertIn("HTTP 401: This endpoint needs Authorization: Bearer <token>", res.stderr)
        res = ring_rebalance(*args, "--admin-token-file", self.token_file, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        for i in range(200):
            status, _, body = c.get(f"k{i}")
            self.assertEqual((status, json.loads(body)["value"]), (200, f"v{i}"))
        c.close()


if __name__ == "__main__":
    unittest.main()
