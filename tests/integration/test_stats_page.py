"""The stats page in a real browser: headless Chromium (Debian's package) renders kvproxy's /stats.

The test reads the DOM as Chromium rendered it and keeps a screenshot in $KVRING_ARTIFACTS.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from kvtest import ARTIFACTS, Client, harness, wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(*args):
    profile = tempfile.mkdtemp(prefix="kvring-chromium-")
    try:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class StatsPageTest(unittest.TestCase):
    def test_stats_page_shows_a_row_per_node_with_its_state(self):
        self.assertTrue(os.path.exists(CHROMIUM), "chromium is missing: scripts/setup.sh installs it")
        cluster = harness(self).cluster(3, engine="memory")
        c = Client(cluster.port)
        for i in range(90):
            self.assertEqual(c.put(f"page-{i}", "v")[0], 200)
        c.close()
        cluster.nodes["n2"].kill()
        self.assertTrue(wait_until(lambda: cluster.node_state("n2") == "DOWN", 10))
        url = f"http://127.0.0.1:{cluster.admin}/stats"

        r = chromium("--dump-dom", url)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        dom = r.stdout
        rows = re.findall(r'<tr class="node (up|down)" data-node="([^"]+)" data-state="(UP|DOWN)">(.*?)</tr>', dom, re.S)
        self.assertEqual([(node, state) for _, node, state, _ in rows], [("n1", "UP"), ("n2", "DOWN"), ("n3", "UP")])
        for css, node, state, cells in rows:
            self.assertEqual(css, state.lower())
            self.assertIn(f'<td class="state">{state}</td>', cells)
            self.assertRegex(cells, r"<td>3\d\.\d\d%</td>")  # ownership, about a third each
        self.assertIn("connect", rows[1][3])  # n2's last check says why it is down
        self.assertIn("<title>kvproxy stats</title>", dom)

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "stats.png")
        r = chromium("--window-size=1800,400", f"--screenshot={shot}", url)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
