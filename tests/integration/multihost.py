"""Several hosts on one machine: kvnodes and kvproxies each in a network namespace of its own, joined
by a bridge, and the faults a network between them has. For the coming replication work: a proxy
that sees only a minority of the nodes, a node that hears but cannot answer.

The network of one run (S: six random hex digits, so interface names stay within 15 characters and
parallel test processes never meet; X: a third octet claimed for the run):

  root namespace   bridge kvbS at 10.77.X.1/24: the test process reaches every host through it
  host hI          namespace kvring-mh-PID-S-hI, its end of a veth pair named eth0 at 10.77.X.(10+I)/24;
                   the other end, kvvS-I, a port of the bridge

X is claimed with `ip route add unreachable 10.77.X.0/24 metric 4294967295`: the kernel refuses the
same route twice, so two runs cannot take one subnet, and the route keeps packets for it on this
machine whatever the bridge's state. Everything is registered with the kvtest.Harness as it is made,
so close() removes it, after the servers (started later, so stopped first), even when a test fails.

Servers (Server): a kvnode or kvproxy run inside a host's namespace (`ip netns exec`, which execs, so
the pid is the server's) through kvtest.Harness.node/proxy, so readiness is its "listening on" line.
They listen on fixed ports of their host's address (each namespace has its ports to itself), so a
restarted server is where it was, with the same data directory.

Nemeses, each with its undo (Hosts.heal() undoes whatever is still in force):
  Server.kill / restart          kill -9, then started again (same address, same data)
  Server.pause / resume          SIGSTOP, SIGCONT
  Hosts.isolate / rejoin         the host's eth0 down (nothing in or out, as a pulled cable), then up
  Hosts.cut / uncut              one way: a blackhole route to B's address inside A, so A sends nothing
                                 to B; B's packets still reach A, A's answers are dropped
  Hosts.cut_off / reconnect      cut(proxy's host, node's host) for each of a set of nodes: the proxy
                                 sees only the others (a minority, when cut off from most)

For linearizability runs across hosts (tests/integration/lintest.py's workload and checker):
MultiHostCluster (nodes and proxies each on its own host, replicas: N when asked) and lin_run (one
nemesis, then heal, final reads and tools/histcheck.py). With replicas, three more nemeses: a node
killed and its data directory deleted (wipe-node: it comes back empty and rebuilds from its peers), a
proxy cut off from a majority of the nodes (proxy-minority), and proxies restarted with clocks minutes
apart (clock-skew, kvproxy --test-clock-offset-ms). With replicas the nodes run anti-entropy (--ring),
and every run ends with a check that all replicas converged (converge()). Proxies send the nodes' admin token (the nodes listen
off loopback, so their /replica/ endpoints need it).

Needs root and iproute2 (with veth and bridge support): otherwise Hosts() raises unittest.SkipTest
saying which.
"""
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
import unittest

import lintest
from kvtest import (Cluster, RING_REBALANCE, differing_keys, holdings, node_health, node_state, owners, proxy_stats,
                    request, start_retrying_busy, wait_until, write_ring)

NODE_PORT, PROXY_PORT, ADMIN_PORT = 7000, 8080, 8404
AE_INTERVAL_MS = 300  # the nodes' anti-entropy rounds, with replicas
# More kvnode flags for replicated runs (KVRING_MULTIHOST_NODE_FLAGS, split on spaces; empty: none):
# the nodes purge tombstones, kvnode's default, unless they include --keep-tombstones.
NODE_FLAGS = os.environ.get("KVRING_MULTIHOST_NODE_FLAGS", "").split()
PURGING = "--keep-tombstones" not in NODE_FLAGS
TOMBSTONES_GONE_TIMEOUT = 30.0  # after the replicas converged, for every tombstone to be purged
NET_PREFIX = "10.77"
CLAIM_METRIC = "4294967295"  # the lowest priority: the bridge's own route wins while it exists


def _run(argv):
    """A command run to its exit, output captured; a missing program is exit status 127."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


class Host:
    """One host: network namespace `ns`, its interface eth0 at `addr` on the bridge."""

    def __init__(self, hosts, index):
        self.index = index
        self.name = f"h{index}"
        self.ns = f"kvring-mh-{os.getpid()}-{hosts.suffix}-{self.name}"
        self.addr = f"{hosts.net}.{10 + index}"
        self.root_if = f"kvv{hosts.suffix}-{index}"  # its pair's end on the bridge

    def __repr__(self):
        return f"{self.name} ({self.addr})"

    def exec_prefix(self):
        """The command prefix that runs a program inside (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.ns]

    def ip(self, *args):
        """`ip` inside; raises with its message when it fails."""
        res = _run(["ip", "-n", self.ns, *args])
        if res.returncode != 0:
            raise RuntimeError(f"ip -n {self.ns} {' '.join(args)}: {res.stderr.strip()}")

    def listen_drops(self):
        """TcpExt ListenDrops inside: connection requests that reached a listener here and were
        dropped, as when the answer to a SYN has no route back."""
        res = _run([*self.exec_prefix(), "cat", "/proc/net/netstat"])
        lines = [line.split() for line in res.stdout.splitlines() if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1]))["ListenDrops"])


class Server:
    """A kvnode or kvproxy inside `host`: `proc` is the kvtest.Process running now, `addr` its client
    address and `admin` (a proxy's) its admin address, as (host address, port)."""

    def __init__(self, host, name, start):
        self.host, self.name, self._start = host, name, start
        self.paused = self.killed = False
        self.proc = start_retrying_busy(start)

    def __repr__(self):
        return f"{self.name} on {self.host!r}"

    addr = property(lambda self: (self.host.addr, self.proc.port))
    admin = property(lambda self: (self.host.addr, self.proc.admin_port))

    def kill(self):
        """kill -9 (a crash)."""
        self.proc.kill()
        self.killed = True

    def restart(self):
        """Started again as it was first (same address, same data directory); it must not run."""
        if self.proc.alive():
            raise RuntimeError(f"{self!r} is still running")
        self.paused = self.killed = False
        self.proc = start_retrying_busy(self._start)

    def pause(self):
        """SIGSTOP: the process holds its sockets and answers nothing."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False


class Hosts:
    """`count` hosts h1..hN on a bridge in the root namespace (see the module's docstring), removed
    at the Harness's close(); servers started in them with node() and proxy(); the network nemeses."""

    def __init__(self, h, count):
        if os.geteuid() != 0:
            raise unittest.SkipTest("multi-host tests skipped: network namespaces, veth pairs and a bridge "
                                    "need root (run the suite as root)")
        self.h = h
        self.suffix = secrets.token_hex(3)
        self.bridge = f"kvb{self.suffix}"
        self.net = None
        self.hosts = []
        self.servers = []
        self._isolated = []
        self._cuts = []
        self._made = []  # what close() removes: ("route", subnet) / ("link", name) / ("netns", name)
        h.defer(self.close)
        self.net = self._claim_subnet()
        self.root_addr = f"{self.net}.1"
        self._build(["ip", "link", "add", self.bridge, "type", "bridge"], ("link", self.bridge))
        self._build(["ip", "addr", "add", f"{self.root_addr}/24", "dev", self.bridge])
        self._build(["ip", "link", "set", self.bridge, "up"])
        for i in range(1, count + 1):
            host = Host(self, i)
            self._build(["ip", "netns", "add", host.ns], ("netns", host.ns))
            self._build(["ip", "link", "add", host.root_if, "type", "veth", "peer", "name", "eth0", "netns", host.ns],
                        ("link", host.root_if))
            self._build(["ip", "link", "set", host.root_if, "master", self.bridge, "up"])
            self._build(["ip", "-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0"])
            self._build(["ip", "-n", host.ns, "link", "set", "eth0", "up"])
            self._build(["ip", "-n", host.ns, "link", "set", "lo", "up"])
            self.hosts.append(host)
        self.token = h.write(f"admin-token-{self.suffix}", f"multihost-admin-token-{self.suffix}\n")

    def _skip(self, argv, res):
        self.close()
        raise unittest.SkipTest(f"multi-host tests skipped: cannot build the hosts' network here (needs root, "
                                f"iproute2, veth and bridge support): {' '.join(argv)}: {res.stderr.strip()}")

    def _build(self, argv, made=None):
        res = _run(argv)
        if res.returncode != 0:
            self._skip(argv, res)
        if made:
            self._made.append(made)

    def _claim_subnet(self):
        """10.77.X for a third octet X no other run holds and no interface here uses."""
        for x in random.sample(range(256), 256):
            subnet = f"{NET_PREFIX}.{x}.0/24"
            argv = ["ip", "route", "add", "unreachable", subnet, "metric", CLAIM_METRIC]
            res = _run(argv)
            if res.returncode != 0:
                if "File exists" in res.stderr:
                    continue  # another run's
                self._skip(argv, res)
            self._made.append(("route", subnet))
            if _run(["ip", "-4", "-o", "addr", "show", "to", subnet]).stdout.strip():
                continue  # in use on this machine: kept claimed until close(), so not tried again
            return f"{NET_PREFIX}.{x}"
        raise unittest.SkipTest(f"multi-host tests skipped: every {NET_PREFIX}.X.0/24 is taken here")

    def close(self):
        """Removes the namespaces, the veth pairs, the bridge and the subnet's claim (the servers must
        have stopped: the Harness stops them first)."""
        while self._made:
            kind, name = self._made.pop()
            if kind == "route":
                _run(["ip", "route", "del", "unreachable", name, "metric", CLAIM_METRIC])
            elif kind == "link":
                _run(["ip", "link", "del", name])
            else:
                _run(["ip", "netns", "del", name])

    # --- servers ---

    def node(self, host, node_id, engine="rocksdb", extra=()):
        """kvnode `node_id` on host:NODE_PORT, its data in the Harness's directory (kept across restarts)."""
        data_dir = self.h.path(f"{node_id}-{self.suffix}") if engine == "rocksdb" else None
        server = Server(host, node_id, lambda: self.h.node(node_id, data_dir, engine, NODE_PORT, netns=host,
                                                           bind=host.addr,
                                                           extra=["--admin-token-file", self.token, *extra]))
        server.data_dir = data_dir
        self.servers.append(server)
        return server

    def proxy(self, host, ring, name="proxy", checks=Cluster.CHECKS, extra=()):
        """kvproxy on `ring`, clients on host:PROXY_PORT, admin on host:ADMIN_PORT, health checks as in
        kvtest.check_flags."""
        server = Server(host, name, lambda: self.h.proxy(ring, listen=f"{host.addr}:{PROXY_PORT}",
                                                         admin=f"{host.addr}:{ADMIN_PORT}", checks=checks,
                                                         extra=("--admin-token-file", self.token,
                                                                "--node-token-file", self.token, *extra),
                                                         netns=host))
        self.servers.append(server)
        return server

    def write_ring(self, name, nodes, replicas=None):
        """A ring file `name` in the Harness's directory naming kvnode Servers by their addresses, with
        `replicas` copies per key."""
        return write_ring(self.h.path(name), [(n.name, f"{n.host.addr}:{n.proc.port}") for n in nodes],
                          replicas=replicas)

    # --- network nemeses ---

    def isolate(self, host):
        """The host's link down: nothing reaches it and nothing leaves it."""
        host.ip("link", "set", "eth0", "down")
        self._isolated.append(host)

    def rejoin(self, host):
        host.ip("link", "set", "eth0", "up")  # its address's route comes back with the link
        self._isolated.remove(host)

    def cut(self, src, dst):
        """One way: `src` sends nothing to `dst` (a blackhole route inside src), dst's packets still
        arrive. A connection either way fails all the same (one side's answers are dropped)."""
        src.ip("route", "add", "blackhole", f"{dst.addr}/32")
        self._cuts.append((src, dst))

    def uncut(self, src, dst):
        src.ip("route", "del", "blackhole", f"{dst.addr}/32")
        self._cuts.remove((src, dst))

    def cut_off(self, host, others):
        """`host` (a proxy's) sends nothing to any of `others` (nodes'): it sees only the rest."""
        for other in others:
            self.cut(host, other)

    def reconnect(self, host, others):
        for other in others:
            self.uncut(host, other)

    def heal(self):
        """Undoes every nemesis still in force: links up, cuts removed, paused servers resumed, killed
        ones started again."""
        for host in list(self._isolated):
            self.rejoin(host)
        for src, dst in list(self._cuts):
            self.uncut(src, dst)
        for server in self.servers:
            if server.paused:
                server.resume()
            if server.killed:
                server.restart()


class MultiHostCluster:
    """kvnodes n1..nN on hosts h1..hN and kvproxies on the next hosts, one each, all routing by one
    ring file that names the nodes by their hosts' addresses."""

    def __init__(self, hosts, nodes=3, proxies=1, checks=Cluster.CHECKS, proxy_extra=(), replicas=None, spare=False):
        need = nodes + proxies + (2 if spare else 0)
        if len(hosts.hosts) < need:
            raise ValueError(f"{nodes} nodes, {proxies} proxies{' and 2 spares' if spare else ''} need {need} hosts, "
                             f"not {len(hosts.hosts)}")
        self.hosts = hosts
        self.replicas = replicas or 1
        # The ring first (nodes listen on their host's NODE_PORT), so that with replicas each node can
        # be given it: then they keep hash trees and pull what they missed from each other.
        self.ring = write_ring(hosts.h.path(f"ring-{hosts.suffix}.yaml"),
                               [(f"n{i + 1}", f"{hosts.hosts[i].addr}:{NODE_PORT}") for i in range(nodes)],
                               replicas=replicas)
        # Each node its ring file of its own, as on hosts of their own: a node adopting a new ring rewrites
        # it, and one the new ring leaves out keeps the old one (it could not start on a ring without it).
        extra = ["--anti-entropy-interval-ms", str(AE_INTERVAL_MS), *NODE_FLAGS] if self.replicas > 1 else []
        self.nodes = []
        for i in range(nodes):
            own = []
            if self.replicas > 1:
                own = ["--ring", hosts.h.path(f"n{i + 1}-ring-{hosts.suffix}.yaml")]
                shutil.copyfile(self.ring, own[1])
            self.nodes.append(hosts.node(hosts.hosts[i], f"n{i + 1}", extra=own + extra))
        self.checks, self.proxy_extra = checks, tuple(proxy_extra)
        self.proxies = [hosts.proxy(hosts.hosts[nodes + j], self.ring, f"proxy{j}", checks, proxy_extra)
                        for j in range(proxies)]
        # With `spare` (and replicas): two more nodes, n4 and n5 on the next hosts, for ring changes.
        # The rings, by name: A the nodes above (where every run starts and ends), B with n4, C that
        # with n2 at weight 2, D with n4 and n5 and replicas 5, E the nodes above with replicas 1. The
        # spares run anti-entropy on a copy of D of their own (a node new to a ring starts on it); the
        # others adopt each ring as apply goes, which has them rewrite their ring files.
        self.spares, self.rings, self.at = [], {}, "A"
        self.ring_nodes, self.ring_replicas = {}, {}
        if spare and self.replicas > 1:
            spare_hosts = hosts.hosts[nodes + proxies:nodes + proxies + 2]
            members = [(f"n{i + 1}", f"{hosts.hosts[i].addr}:{NODE_PORT}") for i in range(nodes)]
            extras = [(f"n{nodes + 1 + k}", f"{h.addr}:{NODE_PORT}") for k, h in enumerate(spare_hosts)]

            def ring(name, nodes_, replicas_):
                return write_ring(hosts.h.path(f"ring-{name.lower()}-{hosts.suffix}.yaml"), nodes_, replicas=replicas_)
            self.rings = {"A": ring("A", members, replicas), "B": ring("B", members + extras[:1], replicas),
                          "C": ring("C", [members[0], (*members[1], 2), *members[2:], extras[0]], replicas),
                          "D": ring("D", members + extras, 5), "E": ring("E", members, 1),
                          "R": ring("R", members[:1] + extras, replicas)}
            # Each ring's node ids and replicas, for the nemeses that strike a node of a change.
            ids = lambda nodes_: [n[0] for n in nodes_]
            self.ring_nodes = {"A": ids(members), "B": ids(members + extras[:1]), "C": ids(members + extras[:1]),
                               "D": ids(members + extras), "E": ids(members), "R": ids(members[:1] + extras)}
            self.ring_replicas = {name: 5 if name == "D" else 1 if name == "E" else self.replicas for name in self.rings}
            for (spare_id, _), host in zip(extras, spare_hosts):
                own = hosts.h.path(f"{spare_id}-ring-{hosts.suffix}.yaml")
                shutil.copyfile(self.rings["D"], own)
                self.spares.append(hosts.node(host, spare_id, extra=["--ring", own, *extra]))

    def apply_argv(self, to):
        argv = [RING_REBALANCE, "apply", "--from", self.rings[self.at], "--to", self.rings[to], "--admin-token-file",
                self.hosts.token, "--timeout-ms", "5000", "--progress", "lines"]
        for p in self.proxies:
            argv += ["--proxy-admin", f"{p.host.addr}:{ADMIN_PORT}"]
        return argv

    def change_ring(self, to, during=None, kill_apply_after=None):
        """ring-rebalance apply from the ring in use to ring `to` (a name of self.rings) through every
        proxy. `during`, when given, is called once apply has run a moment (a node killed, say) and
        returns (what, undo), undo called before apply is waited for. `kill_apply_after`: apply is
        killed (SIGKILL) once it has written that many step lines. An apply that failed or was killed
        runs again to the end. Returns what happened, for the nemesis log."""
        what = f"{self.at} -> {to}"
        p = subprocess.Popen(self.apply_argv(to), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        err = ""
        if kill_apply_after:
            seen = 0
            for line in p.stderr:
                err += line
                seen += "step:" in line
                if seen >= kill_apply_after:
                    p.kill()
                    what += f" (apply killed after {seen} steps)"
                    break
        if during:
            time.sleep(random.uniform(0.05, 0.5))
            struck, undo = during()
            what += f" ({struck})"
            time.sleep(random.uniform(0.3, 0.8))
            undo()
        _, more = p.communicate(timeout=300)
        err += more or ""
        if p.returncode != 0:
            res = subprocess.run(self.apply_argv(to), capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                raise RuntimeError(f"apply {what} failed twice:\n{err}\n{res.stderr}")
            what += ", run again to the end"
        self.at = to
        return what

    def restart_proxy(self, j, extra=()):
        """Proxy j stopped (kill -9) and started again on its host and ports with `extra` flags."""
        old = self.proxies[j]
        old.kill()
        self.hosts.servers.remove(old)
        self.proxies[j] = self.hosts.proxy(old.host, self.ring, old.name, self.checks, self.proxy_extra + tuple(extra))
        return self.proxies[j]

    def healthy(self):
        """Every node UP in every proxy's stats (their health checks have seen them) and, with replicas,
        serving quorums (a new data directory first checks with its peers: node/incarnation.hpp)."""
        return lintest.all_up([p.admin for p in self.proxies]) and all(self.state(n) == "serving" for n in self.nodes
                                                                       if self.replicas > 1)

    def state(self, node):
        """A kvnode's incarnation state from its /health ("serving", "checking", "recovering")."""
        try:
            return node_state(NODE_PORT, node.host.addr, timeout=2)
        except OSError:
            return None

    def keys_per_node(self, prefix, per_node):
        """{node id: [keys]}: `per_node` keys named prefix-I owned by each node (by ring-rebalance owner)."""
        own = owners(self.ring, [f"{prefix}-{i}" for i in range(60 * per_node)])
        keys = {n.name: [] for n in self.nodes}
        for key, node_id in own.items():
            if len(keys[node_id]) < per_node:
                keys[node_id].append(key)
        if any(len(k) < per_node for k in keys.values()):
            raise RuntimeError(f"too few keys for every node: {keys}")
        return keys


# --- linearizability across hosts ---

HOLD = (0.5, 2.0)   # how long a fault lasts, seconds, at random: at times past a proxy's response timeout
MAX_ROUNDS = 20     # faults per run at most, whatever the time


def _rounds(c, rnd, deadline, log, fault, max_rounds=MAX_ROUNDS):
    """fault(rnd) -> (description, undo), repeated until `deadline` (at most `max_rounds` times, None:
    no limit): the fault held for a while, undone, then the proxies given the time to see every node
    up again."""
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        if time.monotonic() >= deadline:
            return
        struck = time.monotonic()  # the history's clock (histcheck.Recorder), to place the fault in it
        what, undo = fault(rnd)
        log.append(f"{what} at {struck:.3f}")
        try:
            time.sleep(rnd.uniform(*HOLD))
        finally:
            undo()
            log.append(f"undone at {time.monotonic():.3f}")
        if not wait_until(c.healthy, timeout=15):
            raise RuntimeError(f"not every node came back up after: {what}")
        time.sleep(rnd.uniform(0.1, 0.4))


def _isolate_node(c, rnd):
    node = rnd.choice(c.nodes)
    c.hosts.isolate(node.host)
    return f"isolate {node!r}", lambda: c.hosts.rejoin(node.host)


def _proxy_cut_off(c, rnd):
    proxy, node = rnd.choice(c.proxies), rnd.choice(c.nodes)
    c.hosts.cut_off(proxy.host, [node.host])
    return f"{proxy!r} cut off from {node!r}", lambda: c.hosts.reconnect(proxy.host, [node.host])


def _kill_node(c, rnd):
    node = rnd.choice(c.nodes)
    node.kill()
    return f"kill -9 {node!r}", node.restart


def _wipe_node(c, rnd):
    """kill -9 and the node's data directory deleted (a lost disk); it comes back empty, with a new
    incarnation, and rebuilds from its peers before it answers quorum reads (node/incarnation.hpp)."""
    node = rnd.choice(c.nodes)
    node.kill()
    shutil.rmtree(node.data_dir)
    return f"kill -9 {node!r} and wipe its data", node.restart


def _stop_node(c, rnd):
    node = rnd.choice(c.nodes)
    node.pause()
    return f"SIGSTOP {node!r}", node.resume


def _proxy_minority(c, rnd):
    """A proxy cut off from a majority of the nodes: with replicas, no key keeps a majority through it."""
    proxy = rnd.choice(c.proxies)
    nodes = rnd.sample(c.nodes, len(c.nodes) // 2 + 1)
    c.hosts.cut_off(proxy.host, [n.host for n in nodes])
    return (f"{proxy!r} cut off from {', '.join(n.name for n in nodes)}",
            lambda: c.hosts.reconnect(proxy.host, [n.host for n in nodes]))


SKEW_MS = (60_000, 600_000)  # a clock one to ten minutes off, either way


def _clock_skew(c, rnd):
    """A proxy restarted with its clock one to ten minutes ahead or behind (kvproxy
    --test-clock-offset-ms); it stays so after the round, until the next round restarts one."""
    j = rnd.randrange(len(c.proxies))
    skew = rnd.choice((-1, 1)) * rnd.randrange(*SKEW_MS)
    c.restart_proxy(j, ("--test-clock-offset-ms", str(skew)))
    return f"proxy{j} restarted with its clock {skew / 60_000:+.1f} min", lambda: None


CYCLE = ["B", "C", "D", "A", "E", "A"]  # from A: add n4, reweigh n2, 3 -> 5 (n5 too), 5 -> 3, 3 -> 1, 1 -> 3


def _ring_changes(c, rnd, kill_apply=False):
    """Every kind of ring change in turn under the load (MultiHostCluster with spares): CYCLE from A;
    with `kill_apply`, each apply killed after a random number of steps and run again."""
    done = [c.change_ring(to, kill_apply_after=rnd.randint(1, 5) if kill_apply else None) for to in CYCLE]
    return "apply " + "; ".join(done), lambda: None


def _ring_change_kill_node(c, rnd):
    """n4 into the replica sets and out again, with a node of either ring killed during each change and
    started again; with replicas 3 every key keeps a majority of its old and of its new set."""
    def kill():
        node = rnd.choice(c.nodes + c.spares[:1])
        node.kill()
        return f"kill -9 {node!r}", node.restart
    done = [c.change_ring(to, during=kill) for to in ("B", "A")]
    return "apply " + "; ".join(done), lambda: None


def _one_change(c, rnd, to):
    """A change from the ring in use to `to`, at random plain, with apply killed part way and run again,
    or with a node of either ring killed during it (not where either side has replicas 1: the key's one
    replica down fails its requests, rightly)."""
    fault = rnd.choice(("none", "apply-killed", "kill-node"))
    if fault == "kill-node" and 1 in (c.ring_replicas[c.at], c.ring_replicas[to]):
        fault = "none"
    if fault == "apply-killed":
        return c.change_ring(to, kill_apply_after=rnd.randint(1, 5))
    if fault == "kill-node":
        either = set(c.ring_nodes[c.at]) | set(c.ring_nodes[to])
        struck = rnd.choice([n for n in c.nodes + c.spares if n.name in either])

        def kill():
            struck.kill()
            return f"kill -9 {struck!r}", struck.restart
        return c.change_ring(to, during=kill)
    return c.change_ring(to)


# One kind of change at a time, for the long runs (bench/linearizability.py --hosts --replicas 3 --nemesis
# change-KIND): each round makes the change and its reverse, each with a fault of _one_change.
# replace: n1..n3 -> n1, n4, n5, two of every key's three replicas replaced at once.
CHANGES = {"add-remove": ["B", "A"], "reweigh": ["C", "B"], "replicas-3-5": ["D", "A"], "replicas-3-1": ["E", "A"],
           "replace": ["R", "A"]}


def _change_kind(kind):
    def strike(c, rnd):
        return "apply " + "; ".join(_one_change(c, rnd, to) for to in CHANGES[kind]), lambda: None
    return strike


# Ring changes with replicas, on a MultiHostCluster with spares. Each leaves every key a majority of
# its old and its new set (nodes adopt each ring in place, serving throughout; no node is killed where
# either side has replicas 1), so none may fail a request.
RING_NEMESES = {"ring-changes": _ring_changes, "ring-changes-apply-killed": lambda c, r: _ring_changes(c, r, True),
                "ring-change-kill-node": _ring_change_kill_node}
CHANGE_NEMESES = {f"change-{kind}": _change_kind(kind) for kind in CHANGES}
RING_KEEP_A_MAJORITY = (*RING_NEMESES, *CHANGE_NEMESES)

NEMESES = {"isolate-node": _isolate_node, "proxy-cut-off": _proxy_cut_off, "kill-node": _kill_node,
           "stop-node": _stop_node}
# With replicas: these too. Every nemesis but these two leaves every key a majority through every proxy.
REPLICATED_NEMESES = {**NEMESES, "wipe-node": _wipe_node, "proxy-minority": _proxy_minority,
                      "clock-skew": _clock_skew}
KEEP_A_MAJORITY = ("isolate-node", "proxy-cut-off", "kill-node", "stop-node", "wipe-node")


class FloorWatch(lintest.histcheck.Recorder):
    """A Recorder that, when a request fails on a segment floor (a 503 whose detail names X-KV-Floor,
    node/floors.hpp), reads at once what every node holds of that key (/replica/get on each: status,
    version, tombstone, floor), for the run's summary ("floor_failures", the first five): what the
    replicas held when the quorum could not decide."""

    def __init__(self, c):
        super().__init__()
        with open(c.hosts.token) as f:
            self._token = f.read().strip()
        self._nodes = list(c.nodes) + list(c.spares)
        self.snapshots = []

    def _held(self, node, key):
        try:
            status, h, _ = request(NODE_PORT, "GET", f"/replica/get?key={key}", host=node.host.addr,
                                   token=self._token, timeout=1.0)
        except OSError as e:
            return str(e)
        return [status, h.get("X-KV-Version"), h.get("X-KV-Tombstone"), h.get("X-KV-Floor")]

    def complete(self, handle, outcome, value=None, **extra):
        super().complete(handle, outcome, value, **extra)
        if "X-KV-Floor" in extra.get("detail", "") and len(self.snapshots) < 5:
            with self._lock:
                key = self._ops[handle]["key"]
            self.snapshots.append({"key": key, "at": time.monotonic(),
                                   "held": {n.name: self._held(n, key) for n in self._nodes}})


def lin_run(c, nemesis, seconds, keys_per_node=3, clients=6, seed=1, max_ops=20000, max_rounds=MAX_ROUNDS):
    """One run on MultiHostCluster `c`: lintest's workload through every proxy on keys of its own
    (`keys_per_node` per node, named after the nemesis), the nemesis for `seconds`, heal, final reads
    through every proxy, tools/histcheck.py. Returns (summary, recorder, result) as lintest.run. The
    suite's bounds (operations per client, faults per run) are lifted with None for long runs."""
    rnd = random.Random(seed)
    recorder = FloorWatch(c) if c.replicas > 1 else lintest.histcheck.Recorder()
    keys = [k for ks in c.keys_per_node(nemesis, keys_per_node).values() for k in ks]
    proxies = [p.addr for p in c.proxies]
    load = lintest.Workload(proxies, keys, clients, recorder, seed=seed, max_ops=max_ops).start()
    log = []
    started = time.monotonic()
    try:
        wait_until(lambda: len(recorder.ops()) >= 20, timeout=5)  # the load under way before the first fault
        strike = {**REPLICATED_NEMESES, **RING_NEMESES, **CHANGE_NEMESES}[nemesis]
        _rounds(c, rnd, started + seconds, log, lambda r: strike(c, r), max_rounds)
    finally:
        c.hosts.heal()
        load.stop()
    if c.rings and c.at != "A":  # back to ring A, whose nodes all hold every key: what converge() compares
        if not wait_until(c.healthy, timeout=30):
            raise RuntimeError("the cluster did not heal within 30 s")
        log.append(f"apply {c.change_ring('A')} after the run")
    if not wait_until(c.healthy, timeout=30):
        raise RuntimeError("the cluster did not heal within 30 s")
    final_started = time.monotonic()
    converged = converge(c) if c.replicas > 1 else None
    lintest.final_reads(recorder, proxies, keys)
    result = lintest.histcheck.check_history(recorder.ops())
    summary = lintest.result_summary(result)
    summary.update(nemesis=nemesis, seconds=round(final_started - started, 1), log=log,
                   workload_errors=load.errors, replicas=c.replicas, not_ok=lintest.not_ok(recorder),
                   converged=converged)
    if getattr(recorder, "snapshots", None):
        summary["floor_failures"] = recorder.snapshots
    return summary, recorder, result


def converge(c, timeout=30.0):
    """After a run healed, with the load stopped: how long until every node's own store (read on the
    node, not through a proxy) holds every key at the same version, or the keys still differing after
    `timeout`: {"seconds": s or None, "differing": [...], "tombstones" and "purged": per node,
    "requeries": per proxy}. When the nodes purge, also how long after that until no replica holds a
    tombstone ("tombstones_gone": s or None): with every replica up and equal, none is still needed."""
    with open(c.hosts.token) as f:
        token = f.read().strip()
    started = time.monotonic()
    last = []

    def equal():
        nonlocal last
        last = differing_keys({n.name: holdings(NODE_PORT, n.host.addr, token) for n in c.nodes})
        return not last

    done = wait_until(equal, timeout=timeout, interval=0.2)
    result = {"seconds": round(time.monotonic() - started, 2) if done else None, "differing": last[:20]}
    # The tombstones each replica holds, and has purged since it started (0 when the nodes run with
    # --keep-tombstones: NODE_FLAGS, node/floors.hpp).
    health = {n.name: node_health(NODE_PORT, n.host.addr) for n in c.nodes}
    result["tombstones"] = {name: h["tombstones"] for name, h in health.items()}
    if PURGING and done:
        purged_at = time.monotonic()

        def gone():
            nonlocal health
            health = {n.name: node_health(NODE_PORT, n.host.addr) for n in c.nodes}
            return all(h["tombstones"] == 0 for h in health.values())

        ok = wait_until(gone, timeout=TOMBSTONES_GONE_TIMEOUT, interval=0.2)
        result["tombstones_gone"] = round(time.monotonic() - purged_at, 2) if ok else None
        result["tombstones_left"] = {name: h["tombstones"] for name, h in health.items()}
        # A node paused for a ring change purges nothing, nor do its sets (node/purge_pause.hpp).
        result["paused"] = {name: h.get("anti_entropy", {}).get("purges_paused") for name, h in health.items()}
    result["purged"] = {name: h.get("anti_entropy", {}).get("tombstones_purged", 0) for name, h in health.items()}
    # Reads and deletes such a purge left undecided, asked again by each proxy (since its start).
    result["requeries"] = {p.name: proxy_stats(p.admin[1], p.admin[0])["quorum"]["requeries"] for p in c.proxies}
    return result
