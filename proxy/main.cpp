// kvproxy: the consistent-hashing reverse proxy. Exit codes: 0 ok (also after SIGTERM), 2 bad usage
// or config, 1 runtime failure. Settings: a flag wins over ring.yaml's proxy: section, which wins over
// the default.
#include <boost/asio/thread_pool.hpp>

#include <csignal>
#include <iostream>

#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "net/server.hpp"
#include "proxy/access_log.hpp"
#include "proxy/admin.hpp"
#include "proxy/cluster.hpp"
#include "proxy/data_path.hpp"
#include "proxy/health.hpp"
#include "proxy/ring_control.hpp"

namespace {

template <class T>
T pick(const std::optional<T>& flag, const std::optional<T>& file, T fallback) {
  return flag ? *flag : file ? *file : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvproxy: consistent-hashing reverse proxy for kvring nodes", "kvproxy"};
  app.set_version_flag("--version", std::string("kvproxy ") + KVRING_VERSION);

  std::string ring_path, access_log, token_file, io = "auto";
  std::optional<std::string> listen_flag, admin_flag;
  std::optional<std::uint32_t> threads, maxconn, header_ms, idle_ms, connect_ms, response_ms, interval_ms, check_timeout_ms,
      fall, rise;
  bool check_only = false;
  std::size_t max_key = 1024;
  std::uint64_t max_body = (std::uint64_t{1} << 20) * 6 + 4096;
  std::uint32_t max_header = 8192;
  unsigned shutdown_ms = 10'000;
  std::size_t pool_max_idle = kv::proxy::ProxyOptions{}.max_idle_per_node;
  auto pool_idle_ms = static_cast<std::uint32_t>(kv::proxy::ProxyOptions{}.pool_idle_timeout.count());

  app.add_option("--ring", ring_path, "ring.yaml: the nodes, and optionally a proxy: section")->required();
  app.add_option("--listen", listen_flag, "Client listener host:port (default 127.0.0.1:8080; 0 takes any free port)");
  app.add_option("--admin", admin_flag, "Admin listener host:port: stats, metrics, ring (default 127.0.0.1:8404)");
  app.add_option("--threads", threads, "Data-path threads, each with its own event loop and pools (default 1); the admin "
                 "listener and health checks run on one more")->check(CLI::Range(1, 256));
  app.add_option("--io", io,
                 "The data path's I/O: uring (io_uring), epoll, or auto (io_uring where the kernel allows it)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "uring", "epoll"}));
  app.add_option("--admin-token-file", token_file,
                 "File holding the admin token: changing the ring (POST /admin/...) then needs "
                 "'Authorization: Bearer <token>'; required when --admin is not a loopback address");
  app.add_option("--access-log", access_log, "Write one line per request to this file ('-': stderr); off by default");
  app.add_flag("--check", check_only, "Validate the config (and resolve every address), then exit");
  app.add_option("--maxconn", maxconn, "Client connections at once; more wait in the accept backlog (default 10000)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--client-header-timeout-ms", header_ms, "A request's first byte to its last header (default 10000)");
  app.add_option("--client-idle-timeout-ms", idle_ms, "Keep-alive wait between client requests (default 60000)");
  app.add_option("--connect-timeout-ms", connect_ms, "Connecting to a node (default 1000)");
  app.add_option("--response-timeout-ms", response_ms, "Request sent to a node to its whole answer (default 10000)");
  app.add_option("--check-interval-ms", interval_ms, "Active health check interval (default 2000)");
  app.add_option("--check-timeout-ms", check_timeout_ms, "Health check timeout (default 1000)");
  app.add_option("--check-fall", fall, "Failed checks in a row that mark a node down (default 3)")->check(CLI::Range(1, 100));
  app.add_option("--check-rise", rise, "Good checks in a row that mark it up again (default 2)")->check(CLI::Range(1, 100));
  app.add_option("--pool-max-idle", pool_max_idle, "Idle connections kept per node, per worker thread")
      ->capture_default_str()->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20));
  app.add_option("--pool-idle-timeout-ms", pool_idle_ms,
                 "An idle pooled connection older than this is closed; keep it under the nodes' idle timeout")
      ->capture_default_str()->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--max-key-bytes", max_key, "Longest key, decoded (413 above)")->capture_default_str();
  app.add_option("--max-body-bytes", max_body, "Longest request body (413 above)")->capture_default_str();
  app.add_option("--max-header-bytes", max_header, "Request line + headers (431 above)")->capture_default_str();
  app.add_option("--shutdown-timeout-ms", shutdown_ms, "SIGTERM: longest wait for requests in flight")->capture_default_str();

  if (auto code = kv::parse_command_line(app, argc, argv)) return *code;

  kv::RingConfig config;
  try {
    config = kv::load_ring_config(ring_path);
  } catch (const kv::ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  auto address = [&](const std::optional<std::string>& flag, const std::optional<kv::HostPort>& file, const char* name,
                     const char* fallback) -> std::optional<kv::HostPort> {
    if (!flag) return file ? *file : *kv::parse_host_port(fallback);
    auto hp = kv::parse_host_port(*flag, true);
    if (!hp) std::cerr << "kvproxy: --" << name << ": expected host:port, got '" << *flag << "'" << std::endl;
    return hp;
  };
  const auto listen = address(listen_flag, config.proxy.listen, "listen", "127.0.0.1:8080");
  const auto admin = address(admin_flag, config.proxy.admin, "admin", "127.0.0.1:8404");
  if (!listen || !admin) return 2;
  std::string token;
  if (!token_file.empty()) {
    try {
      token = kv::load_token_file(token_file);
    } catch (const kv::ConfigError& e) {
      std::cerr << "kvproxy: --admin-token-file: " << e.what() << std::endl;
      return 2;
    }
  } else if (!kv::is_loopback(admin->host)) {
    std::cerr << "kvproxy: --admin: " << admin->str()
              << " is not a loopback address; give --admin-token-file so that changing the ring needs a token"
              << std::endl;
    return 2;
  }

  const auto& px = config.proxy;
  kv::proxy::HealthSettings health;
  health.interval = std::chrono::milliseconds(pick(interval_ms, px.check_interval_ms, 2000u));
  health.timeout = std::chrono::milliseconds(pick(check_timeout_ms, px.check_timeout_ms, 1000u));
  health.fall = pick(fall, px.check_fall, 3u);
  health.rise = pick(rise, px.check_rise, 2u);

  kv::proxy::ProxyOptions opt;
  opt.client.header_timeout = std::chrono::milliseconds(pick(header_ms, px.client_header_ms, 10'000u));
  opt.client.idle_timeout = std::chrono::milliseconds(pick(idle_ms, px.client_idle_ms, 60'000u));
  opt.client.header_limit = max_header;
  opt.client.body_limit = max_body;
  opt.connect_timeout = std::chrono::milliseconds(pick(connect_ms, px.connect_ms, 1000u));
  opt.response_timeout = std::chrono::milliseconds(pick(response_ms, px.response_ms, 10'000u));
  opt.client.body_timeout = std::max(opt.client.body_timeout, opt.client.header_timeout);
  opt.max_key_bytes = max_key;
  opt.max_idle_per_node = pool_max_idle;
  opt.pool_idle_timeout = std::chrono::milliseconds(pool_idle_ms);
  opt.maxconn = pick(maxconn, px.maxconn, 10'000u);
  const unsigned nthreads = pick(threads, px.threads, 1u);

  kv::proxy::Cluster cluster(health);
  std::shared_ptr<kv::proxy::Topology> initial;
  try {
    initial = cluster.prepare(config, ring_path);
  } catch (const kv::ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  if (check_only) {
    std::cout << "kvproxy: " << ring_path << " is valid: " << initial->backends.size() << " nodes, "
              << initial->ring->point_count() << " ring points" << std::endl;
    return 0;
  }

  std::unique_ptr<kv::proxy::AccessLog> log;
  try {
    if (!access_log.empty()) log = std::make_unique<kv::proxy::AccessLog>(access_log);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 1;
  }

  // The admin listener, health checks, reloads and signals; the data path has threads of its own.
  kv::net::Server server("kvproxy", 1, std::chrono::milliseconds(shutdown_ms));
  auto& ioc0 = server.worker(0).ioc;
  cluster.on_new_backend = [&cluster, &ioc0](std::shared_ptr<kv::proxy::Backend> b) {
    kv::proxy::start_health_checks(cluster, ioc0, std::move(b));
  };
  cluster.publish(std::move(initial));

  boost::asio::thread_pool control(1);  // ring builds for reloads, off the event loops
  kv::net::IoLoop::Kind io_kind{};
  kv::net::parse_io_kind(io, io_kind);  // CLI11 checked it
  std::unique_ptr<kv::proxy::DataPath> data_ptr;
  try {
    data_ptr = std::make_unique<kv::proxy::DataPath>(cluster, opt, nthreads, log.get(), io_kind);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: --io " << io << ": " << e.what() << std::endl;
    return 1;
  }
  kv::proxy::DataPath& data = *data_ptr;
  kv::http::ServerLimits admin_limits;
  admin_limits.body_limit = 16 << 20;  // a ring YAML for thousands of nodes
  // A ring change waits this long for requests that still use the previous ring: a write during a
  // rebalance may go to two nodes, each within connect + response time.
  const auto drain_timeout = 2 * (opt.connect_timeout + opt.response_timeout) + std::chrono::milliseconds(1000);
  kv::proxy::RingControl ring_control(cluster, data, control, ring_path, drain_timeout);
  try {
    ring_control.restore();
  } catch (const kv::ConfigError& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 2;
  }
  kv::proxy::Admin admin_api(cluster, data.counters(), ring_control, token);
  server.on_signal(SIGHUP, [&ring_control, &ioc0] { ring_control.reload_from_file(ioc0); });

  std::uint16_t port = 0, admin_port = 0;
  try {
    port = data.listen(*listen);
    admin_port = server.listen(*admin, kv::net::serve_with(admin_limits, admin_api), false);
  } catch (const std::exception& e) {
    std::cerr << "kvproxy: " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "kvproxy " KVRING_VERSION " listening on " << kv::HostPort{listen->host, port}.str() << ", admin on "
            << kv::HostPort{admin->host, admin_port}.str() << " (" << config.nodes.size() << " nodes, ring version "
            << cluster.version() << ", threads " << nthreads << ", " << data.io_name() << ")" << std::endl;
  server.on_drain([&data, shutdown_ms] { data.drain(std::chrono::milliseconds(shutdown_ms)); });
  data.start();
  server.run();
  data.join();
  control.join();
  std::cerr << "kvproxy: stopped" << std::endl;
  return 0;
}
