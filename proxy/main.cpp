// kvproxy: the consistent-hashing reverse proxy. Exit codes: 0 ok (also after SIGTERM), 2 bad usage
// or config, 1 runtime failure. Settings: a flag wins over ring.yaml's proxy: section, which wins over
// the default. main() reads the flags, settle() turns them and the ring file into Settings, serve()
// starts the data path, the admin listener and the health checks, and runs until SIGTERM.
#include <boost/asio/thread_pool.hpp>

#include <csignal>
#include <iostream>

#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "net/server.hpp"
#include "net/session.hpp"
#include "proxy/access_log.hpp"
#include "proxy/admin.hpp"
#include "proxy/cluster.hpp"
#include "proxy/data_path.hpp"
#include "proxy/health.hpp"
#include "proxy/ring_control.hpp"

namespace {

using namespace kv;

// The flags as given; unset optionals fall back to the ring file's proxy: section, then the default.
struct Flags {
  std::string ring_path, access_log, token_file, node_token_file, io = "auto";
  std::optional<std::string> listen, admin;
  std::optional<std::uint32_t> threads, maxconn, header_ms, idle_ms, connect_ms, response_ms, interval_ms,
      check_timeout_ms, fall, rise;
  bool check_only = false;
  bool unsafe_unversioned = false;
  bool unsafe_read_one = false;
  bool unsafe_new_set_only = false;
  std::int64_t clock_offset_ms = 0;
  std::size_t max_key = 1024;
  std::uint64_t max_body = (std::uint64_t{1} << 20) * 6 + 4096;
  std::uint32_t max_header = 8192;
  unsigned shutdown_ms = 10'000;
  std::uint32_t spare_ms = static_cast<std::uint32_t>(proxy::ProxyOptions{}.spare_after.count());
  std::size_t pool_max_idle = proxy::ProxyOptions{}.max_idle_per_node;
  std::uint32_t pool_idle_ms = static_cast<std::uint32_t>(proxy::ProxyOptions{}.pool_idle_timeout.count());
};

void add_flags(CLI::App& app, Flags& f) {
  app.add_option("--ring", f.ring_path, "ring.yaml: the nodes, and optionally a proxy: section")->required();
  app.add_option("--listen", f.listen, "Client listener host:port (default 127.0.0.1:8080; 0 takes any free port)");
  app.add_option("--admin", f.admin, "Admin listener host:port: stats, metrics, ring (default 127.0.0.1:8404)");
  app.add_option("--threads", f.threads, "Data-path threads, each with its own event loop and pools (default 1); the admin "
                 "listener and health checks run on one more")->check(CLI::Range(1, 256));
  app.add_option("--io", f.io,
                 "The data path's I/O: uring (io_uring), epoll, or auto (io_uring where the kernel allows it)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "uring", "epoll"}));
  app.add_option("--admin-token-file", f.token_file,
                 "File holding the admin token: changing the ring (POST /admin/...) then needs "
                 "'Authorization: Bearer <token>'; required when --admin is not a loopback address");
  app.add_option("--node-token-file", f.node_token_file,
                 "File holding the nodes' admin token, which kvproxy sends on the replica requests of a ring "
                 "with replicas > 1 (the nodes' /replica/ endpoints need it when they listen off loopback)");
  app.add_option("--access-log", f.access_log, "Write one line per request to this file ('-': stderr); off by default");
  app.add_flag("--check", f.check_only, "Validate the config (and resolve every address), then exit");
  app.add_option("--maxconn", f.maxconn, "Client connections at once; more wait in the accept backlog (default 10000)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--client-header-timeout-ms", f.header_ms, "A request's first byte to its last header (default 10000)");
  app.add_option("--client-idle-timeout-ms", f.idle_ms, "Keep-alive wait between client requests (default 60000)");
  app.add_option("--connect-timeout-ms", f.connect_ms, "Connecting to a node (default 1000)");
  app.add_option("--response-timeout-ms", f.response_ms, "Request sent to a node to its whole answer (default 10000)");
  app.add_option("--spare-after-ms", f.spare_ms,
                 "replicas > 1: each step's queries go to a majority of the key's replicas (the first ones up, in "
                 "placement order); the others, held as spares, are asked as soon as an asked replica fails, or "
                 "after this long without a decision. 0 asks every replica at once (more work per request, no "
                 "wait when a replica stalls)")
      ->capture_default_str()->check(CLI::Range(0u, 3'600'000u));
  app.add_option("--check-interval-ms", f.interval_ms, "Active health check interval (default 2000)");
  app.add_option("--check-timeout-ms", f.check_timeout_ms, "Health check timeout (default 1000)");
  app.add_option("--check-fall", f.fall, "Failed checks in a row that mark a node down (default 3)")->check(CLI::Range(1, 100));
  app.add_option("--check-rise", f.rise, "Good checks in a row that mark it up again (default 2)")->check(CLI::Range(1, 100));
  app.add_option("--pool-max-idle", f.pool_max_idle, "Idle connections kept per node, per worker thread")
      ->capture_default_str()->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
  app.add_option("--pool-idle-timeout-ms", f.pool_idle_ms,
                 "An idle pooled connection older than this is closed; keep it under the nodes' idle timeout")
      ->capture_default_str()->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--max-key-bytes", f.max_key, "Longest key, decoded (413 above)")->capture_default_str();
  app.add_option("--max-body-bytes", f.max_body, "Longest request body (413 above)")->capture_default_str();
  app.add_option("--max-header-bytes", f.max_header, "Request line + headers (431 above)")->capture_default_str();
  app.add_option("--shutdown-timeout-ms", f.shutdown_ms, "SIGTERM: longest wait for requests in flight")->capture_default_str();
  app.add_flag("--unsafe-unversioned", f.unsafe_unversioned,
               "Test only: route a ring change as before per-key versions (writes of a moving key sent to both "
               "owners untagged, reads in read_new from the new owner alone). It loses writes; the "
               "linearizability test runs it to show that its checker catches that")
      ->group("");  // not in --help: no operator should want it
  app.add_flag("--unsafe-read-one", f.unsafe_read_one,
               "Test only: answer a replicated key's read from one replica (each in turn), with no majority "
               "and no write-back. It returns stale values; the linearizability test runs it to show that "
               "its checker catches that")
      ->group("");
  app.add_flag("--unsafe-new-set-only", f.unsafe_new_set_only,
               "Test only: during a ring change, ask a replicated key whose replica set changes at its new set "
               "alone (no joint quorum). It loses writes when most of a set changes; the linearizability test "
               "runs it to show that its checker catches that")
      ->group("");
  app.add_option("--test-clock-offset-ms", f.clock_offset_ms,
                 "Test only: move this process's wall clock by this many milliseconds (negative: behind), as "
                 "a host whose clock is off; the clock skew tests run proxies minutes apart")
      ->check(CLI::Range(std::int64_t{-366} * 86'400'000, std::int64_t{366} * 86'400'000))
      ->group("");
}

// What the proxy runs with, every choice made.
struct Settings {
  std::string ring_path, access_log, token, io;
  RingConfig config;
  HostPort listen, admin;
  proxy::HealthSettings health;
  proxy::ProxyOptions options;
  unsigned threads = 1;
  std::chrono::milliseconds shutdown{10'000};
};

template <class T>
T pick(const std::optional<T>& flag, const std::optional<T>& file, T fallback) {
  return flag ? *flag : file ? *file : fallback;
}

// The flags and the ring file as Settings; an exit code (2, after saying why) when they do not fit.
std::optional<int> settle(const Flags& f, Settings& s) {
  try {
    s.config = load_ring_config(f.ring_path);
  } catch (const ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  auto address = [&](const std::optional<std::string>& flag, const std::optional<HostPort>& file, const char* name,
                     const char* fallback) -> std::optional<HostPort> {
    if (!flag) return file ? *file : *parse_host_port(fallback);
    auto hp = parse_host_port(*flag, true);
    if (!hp) std::cerr << "kvproxy: --" << name << ": expected host:port, got '" << *flag << "'" << std::endl;
    return hp;
  };
  const auto& px = s.config.proxy;
  const auto listen = address(f.listen, px.listen, "listen", "127.0.0.1:8080");
  const auto admin = address(f.admin, px.admin, "admin", "127.0.0.1:8404");
  if (!listen || !admin) return 2;
  s.listen = *listen;
  s.admin = *admin;
  if (!f.token_file.empty()) {
    try {
      s.token = load_token_file(f.token_file);
    } catch (const ConfigError& e) {
      std::cerr << "kvproxy: --admin-token-file: " << e.what() << std::endl;
      return 2;
    }
  } else if (!is_loopback(admin->host)) {
    std::cerr << "kvproxy: --admin: " << admin->str()
              << " is not a loopback address; give --admin-token-file so that changing the ring needs a token"
              << std::endl;
    return 2;
  }
  if (!f.node_token_file.empty()) {
    try {
      s.options.node_auth = "Authorization: Bearer " + load_token_file(f.node_token_file) + "\r\n";
    } catch (const ConfigError& e) {
      std::cerr << "kvproxy: --node-token-file: " << e.what() << std::endl;
      return 2;
    }
  } else if (s.config.replicas > 1) {
    for (const auto& n : s.config.nodes) {
      if (is_loopback(n.address.host)) continue;
      std::cerr << "kvproxy: " << f.ring_path << ": replicas: " << s.config.replicas << " with node " << n.id
                << " at " << n.address.str()
                << ", off loopback: its /replica/ endpoints need its admin token; give --node-token-file"
                << std::endl;
      return 2;
    }
  }
  s.ring_path = f.ring_path;
  s.access_log = f.access_log;
  s.io = f.io;
  s.health.interval = std::chrono::milliseconds(pick(f.interval_ms, px.check_interval_ms, 2000u));
  s.health.timeout = std::chrono::milliseconds(pick(f.check_timeout_ms, px.check_timeout_ms, 1000u));
  s.health.fall = pick(f.fall, px.check_fall, 3u);
  s.health.rise = pick(f.rise, px.check_rise, 2u);
  auto& opt = s.options;
  opt.client.header_timeout = std::chrono::milliseconds(pick(f.header_ms, px.client_header_ms, 10'000u));
  opt.client.idle_timeout = std::chrono::milliseconds(pick(f.idle_ms, px.client_idle_ms, 60'000u));
  opt.client.header_limit = f.max_header;
  opt.client.body_limit = f.max_body;
  opt.connect_timeout = std::chrono::milliseconds(pick(f.connect_ms, px.connect_ms, 1000u));
  opt.response_timeout = std::chrono::milliseconds(pick(f.response_ms, px.response_ms, 10'000u));
  opt.client.body_timeout = std::max(opt.client.body_timeout, opt.client.header_timeout);
  opt.max_key_bytes = f.max_key;
  opt.spare_after = std::chrono::milliseconds(f.spare_ms);
  opt.unsafe_unversioned = f.unsafe_unversioned;
  opt.unsafe_read_one = f.unsafe_read_one;
  opt.unsafe_new_set_only = f.unsafe_new_set_only;
  opt.clock_offset = std::chrono::milliseconds(f.clock_offset_ms);
  opt.max_idle_per_node = f.pool_max_idle;
  opt.pool_idle_timeout = std::chrono::milliseconds(f.pool_idle_ms);
  opt.maxconn = pick(f.maxconn, px.maxconn, 10'000u);
  s.threads = pick(f.threads, px.threads, 1u);
  s.shutdown = std::chrono::milliseconds(f.shutdown_ms);
  return std::nullopt;
}

// Serves until SIGTERM or SIGINT: the data path on threads of its own; the admin listener, health
// checks, reloads and signals on one more (the Asio frame's worker 0).
int serve(proxy::Cluster& cluster, std::shared_ptr<proxy::Topology> initial, const Settings& s) {
  std::unique_ptr<proxy::AccessLog> log;
  try {
    if (!s.access_log.empty()) log = std::make_unique<proxy::AccessLog>(s.access_log);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 1;
  }

  boost::asio::thread_pool control(1);  // ring builds for reloads, off the event loops
  net::IoLoop::Kind io_kind{};
  net::parse_io_kind(s.io, io_kind);  // CLI11 checked it
  std::unique_ptr<proxy::DataPath> data_ptr;
  try {
    data_ptr = std::make_unique<proxy::DataPath>(cluster, s.options, s.threads, log.get(), io_kind);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: --io " << s.io << ": " << e.what() << std::endl;
    return 1;
  }
  proxy::DataPath& data = *data_ptr;
  http::ServerLimits admin_limits;
  admin_limits.body_limit = 16 << 20;  // a ring YAML for thousands of nodes
  // A ring change waits this long for requests that still use the previous ring: a write during a
  // rebalance may go to two nodes, each within connect + response time.
  const auto drain_timeout = 2 * (s.options.connect_timeout + s.options.response_timeout) + std::chrono::milliseconds(1000);
  proxy::RingControl ring_control(cluster, data, control, s.ring_path, drain_timeout);
  proxy::Admin admin_api(cluster, data.counters(), ring_control, s.token);

  // The server last, so destroyed first: sessions a drain deadline cut off are destroyed with its
  // loop, and they refer to the admin routes and the ring control.
  net::Server server("kvproxy", 1, s.shutdown);
  auto& ioc0 = server.worker(0).ioc;
  cluster.on_new_backend = [&cluster, &ioc0](std::shared_ptr<proxy::Backend> b) {
    proxy::start_health_checks(cluster, ioc0, std::move(b));
  };
  cluster.publish(std::move(initial));
  try {
    ring_control.restore();
  } catch (const ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  server.on_signal(SIGHUP, [&ring_control, &ioc0] { ring_control.reload_from_file(ioc0); });

  std::uint16_t port = 0, admin_port = 0;
  try {
    port = data.listen(s.listen);
    admin_port = server.listen(s.admin, net::serve_with(admin_limits, admin_api), false);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "kvproxy " KVRING_VERSION " listening on " << HostPort{s.listen.host, port}.str() << ", admin on "
            << HostPort{s.admin.host, admin_port}.str() << " (" << s.config.nodes.size() << " nodes, ring version "
            << cluster.version() << ", threads " << s.threads << ", " << data.io_name() << ")" << std::endl;
  server.on_drain([&data, &s] { data.drain(s.shutdown); });
  data.start();
  server.run();
  data.join();
  control.join();
  std::cerr << "kvproxy: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvproxy: consistent-hashing reverse proxy for kvring nodes", "kvproxy"};
  app.set_version_flag("--version", std::string("kvproxy ") + KVRING_VERSION);
  Flags flags;
  add_flags(app, flags);
  if (auto code = parse_command_line(app, argc, argv)) return *code;

  Settings settings;
  if (auto code = settle(flags, settings)) return *code;
  proxy::Cluster cluster(settings.health);
  std::shared_ptr<proxy::Topology> initial;
  try {
    initial = cluster.prepare(settings.config, settings.ring_path);
  } catch (const ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  if (flags.check_only) {
    std::cout << "kvproxy: " << settings.ring_path << " is valid: " << initial->backends.size() << " nodes, "
              << initial->ring->point_count() << " ring points" << std::endl;
    return 0;
  }
  return serve(cluster, std::move(initial), settings);
}
