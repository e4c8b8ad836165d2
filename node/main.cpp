// kvnode: a kvring storage node. Exit codes: 0 ok (also after SIGTERM), 2 bad usage, 1 runtime failure.

#include <boost/asio/thread_pool.hpp>

#include <cctype>
#include <iostream>
#include <stdexcept>

#include "node/api.hpp"
#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "net/server.hpp"
#include "node/session.hpp"
#include "node/store.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kvnode: a kvring storage node (HTTP/1.1 key-value server, durable with RocksDB)", "kvnode"};
  app.set_version_flag("--version", std::string("kvnode ") + KVRING_VERSION);

  std::string bind_host = "127.0.0.1";
  int port = 8081;
  std::string data_dir;
  std::string node_id;
  std::string engine = "rocksdb";
  std::string token_file;
  unsigned threads = 1;
  bool sync = false;
  std::size_t max_key = 1024;
  std::size_t max_value = 1 << 20;
  std::uint32_t max_header = 8192;
  unsigned idle_ms = 60'000, header_ms = 10'000, body_ms = 30'000, write_ms = 30'000, shutdown_ms = 10'000;

  app.add_option("--port", port, "TCP port to listen on (0: any free port, printed at start)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--bind", bind_host, "Address to listen on")->capture_default_str();
  app.add_option("--data-dir", data_dir, "RocksDB directory (created if missing); required with --engine rocksdb");
  app.add_option("--id", node_id, "This node's id in ring.yaml; when set, every response carries X-KV-Node: ID");
  app.add_option("--engine", engine, "Storage engine: rocksdb (durable) or memory (a cache: lost on exit)")
      ->capture_default_str()->check(CLI::IsMember({"rocksdb", "memory"}));
  app.add_option("--admin-token-file", token_file,
                 "File holding the admin token: the rebalancer's /admin/ endpoints then need "
                 "'Authorization: Bearer <token>'; required when --bind is not a loopback address");
  app.add_option("--threads", threads, "Worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_flag("--sync", sync, "fsync the write-ahead log before acknowledging each write (survives power loss)");
  app.add_option("--max-key-bytes", max_key, "Longest key, decoded (413 above)")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--max-value-bytes", max_value, "Longest value (413 above)")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  app.add_option("--max-header-bytes", max_header, "Longest request line + headers (431 above)")
      ->capture_default_str()->check(CLI::Range(512, 1 << 20));
  app.add_option("--idle-timeout-ms", idle_ms, "Keep-alive: close a connection idle this long")->capture_default_str();
  app.add_option("--header-timeout-ms", header_ms, "Deadline from a request's first byte to its last header")->capture_default_str();
  app.add_option("--body-timeout-ms", body_ms, "Deadline for reading a request body")->capture_default_str();
  app.add_option("--write-timeout-ms", write_ms, "Deadline for writing a response")->capture_default_str();
  app.add_option("--shutdown-timeout-ms", shutdown_ms, "SIGTERM: longest wait for in-flight requests")->capture_default_str();

  if (auto code = kv::parse_command_line(app, argc, argv)) return *code;

  auto bind = kv::parse_host_port(bind_host + ":" + std::to_string(port), true);
  if (!bind || bind->host.find_first_not_of("0123456789.:abcdefABCDEF") != std::string::npos) {
    std::cerr << "kvnode: --bind: expected an IPv4 or IPv6 address, got '" << bind_host << "'" << std::endl;
    return 2;
  }
  std::string token;
  if (!token_file.empty()) {
    try {
      token = kv::load_token_file(token_file);
    } catch (const kv::ConfigError& e) {
      std::cerr << "kvnode: --admin-token-file: " << e.what() << std::endl;
      return 2;
    }
  } else if (!kv::is_loopback(bind->host)) {
    std::cerr << "kvnode: --bind: " << bind_host
              << " is not a loopback address; give --admin-token-file so that the /admin/ endpoints (which read and "
                 "delete data in bulk) need a token"
              << std::endl;
    return 2;
  }
  if (engine == "rocksdb" && data_dir.empty()) {
    std::cerr << "kvnode: --data-dir is required with --engine rocksdb (or use --engine memory)" << std::endl;
    return 2;
  }

  std::unique_ptr<kv::Store> store;
  try {
    store = engine == "memory" ? kv::open_memory_store() : kv::open_rocksdb_store({data_dir, sync});
  } catch (const kv::StoreError& e) {
    std::cerr << "kvnode: " << e.what() << std::endl;
    return 1;
  }

  kv::NodeMetrics metrics;
  for (char ch : node_id) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      std::cerr << "kvnode: --id: '" << node_id << "' may contain only letters, digits, '-', '_' and '.'" << std::endl;
      return 2;
    }
  }
  kv::Api api(*store, metrics, kv::ApiLimits{max_key, max_value}, node_id);
  api.set_admin_token(std::move(token));
  kv::http::ServerLimits limits;
  limits.idle_timeout = std::chrono::milliseconds(idle_ms);
  limits.header_timeout = std::chrono::milliseconds(header_ms);
  limits.body_timeout = std::chrono::milliseconds(body_ms);
  limits.write_timeout = std::chrono::milliseconds(write_ms);
  limits.header_limit = max_header;
  // The body is JSON: a value of max_value bytes may take up to 6x that escaped ("\u0001").
  limits.body_limit = std::uint64_t{max_value} * 6 + 4096;
  limits.admin_body_limit = kv::kAdminBodyLimit;  // the rebalancer's ingest batches

  boost::asio::thread_pool admin_pool(1);  // the rebalancer's bulk requests, off the event loops
  kv::NodeService service(api, metrics, admin_pool);
  kv::net::Server server("kvnode", threads, std::chrono::milliseconds(shutdown_ms));
  std::uint16_t bound = 0;
  try {
    bound = server.listen(*bind, kv::net::serve_with(limits, service));
  } catch (const std::exception& e) {
    std::cerr << "kvnode: " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "kvnode " KVRING_VERSION " listening on " << kv::HostPort{bind->host, bound}.str() << " (engine "
            << store->engine() << (data_dir.empty() ? "" : ", data dir " + data_dir) << ", threads " << threads
            << ", sync " << (sync ? "on" : "off") << ")" << std::endl;
  server.run();
  admin_pool.join();
  store.reset();  // flush and close while `server` still holds SIGTERM/SIGINT
  std::cerr << "kvnode: stopped" << std::endl;
  return 0;
}
