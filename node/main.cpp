// kvnode: a kvring storage node. Exit codes: 0 ok (also after SIGTERM), 2 bad usage, 1 runtime failure.
// main() reads the flags, check() refuses the ones that do not fit together, serve() opens the store
// and serves until SIGTERM.

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "common/auth.hpp"
#include "common/cli.hpp"
#include "common/config.hpp"
#include "common/files.hpp"
#include "common/json.hpp"
#include "common/ring.hpp"
#include "common/ring_change.hpp"
#include "net/server.hpp"
#include "net/threads.hpp"
#include "node/api.hpp"
#include "node/replication.hpp"
#include "node/session.hpp"
#include "node/store.hpp"

namespace {

using namespace kv;

struct Flags {
  std::string bind_host = "127.0.0.1";
  int port = 8081;
  std::string data_dir, node_id, engine = "rocksdb", token_file, ring_path;
  unsigned ae_interval_ms = 1000, repair_rate = 50'000, repair_busy_percent = 20, repair_batch_keys = 0,
           repair_nice = 10;
  bool recover = false, unsafe_serve_at_once = false, unsafe_purge_early = false, keep_tombstones = false,
       test_purge_fails_once = false, test_crash_mid_purge = false;
  unsigned test_hold_purge_turn_ms = 0;
  unsigned threads = 1;
  bool sync = false;
  std::size_t block_cache_mb = RocksOptions::kDefaultBlockCacheMb;
  std::string compression{name_of(RocksOptions{}.compression)};
  std::size_t max_key = 1024;
  std::size_t max_value = 1 << 20;
  std::uint32_t max_header = 8192;
  unsigned idle_ms = 60'000, header_ms = 10'000, body_ms = 30'000, write_ms = 30'000, shutdown_ms = 10'000;
};

std::vector<std::string> compression_names() {
  std::vector<std::string> names;
  for (const auto& [value, name] : kCompressionNames) names.emplace_back(name);
  return names;
}

void add_flags(CLI::App& app, Flags& f) {
  app.add_option("--port", f.port, "TCP port to listen on (0: any free port, printed at start)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--bind", f.bind_host, "Address to listen on")->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "RocksDB directory (created if missing); required with --engine rocksdb");
  app.add_option("--id", f.node_id, "This node's id in ring.yaml; when set, every response carries X-KV-Node: ID");
  app.add_option("--engine", f.engine, "Storage engine: rocksdb (durable) or memory (a cache: lost on exit)")
      ->capture_default_str()->check(CLI::IsMember({"rocksdb", "memory"}));
  app.add_option("--admin-token-file", f.token_file,
                 "File holding the admin token: the rebalancer's /admin/ endpoints then need "
                 "'Authorization: Bearer <token>'; required when --bind is not a loopback address");
  app.add_option("--ring", f.ring_path,
                 "ring.yaml: with replicas of 2 or more, the node keeps hash trees of what it holds and pulls what "
                 "it lacks from the other replicas (anti-entropy); needs --id. Peers are asked with this node's "
                 "--admin-token-file token: give every node the same one");
  app.add_option("--anti-entropy-interval-ms", f.ae_interval_ms,
                 "With --ring: wait between anti-entropy rounds (0: this node pulls nothing; peers still pull from it)")
      ->capture_default_str();
  app.add_option("--repair-keys-per-second", f.repair_rate, "With --ring: at most this many keys pulled per second (0: no bound)")
      ->capture_default_str();
  app.add_option("--repair-busy-percent", f.repair_busy_percent,
                 "With --ring: at most this share of wall time spent pulling keys, in percent (after each batch the "
                 "exchanger rests in proportion; under load batches take longer, so the pull slows and the load keeps "
                 "the machine; 100: no bound)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--repair-batch-keys", f.repair_batch_keys,
                 "With --ring: at most this many keys pulled per request to a peer (0: a tenth of "
                 "--repair-keys-per-second, at most 10000)")
      ->capture_default_str()->check(CLI::Range(0, 10000));
  app.add_option("--repair-nice", f.repair_nice,
                 "With --ring: run the pull, and the peers' anti-entropy requests this node serves, this many nice "
                 "levels below its other threads (0: as they; 19: only when a core is otherwise idle, nearly), so "
                 "that the scheduler hands a core to a client's request first")
      ->capture_default_str()->check(CLI::Range(0, 19));
  app.add_flag("--recover", f.recover,
               "With --ring: discard this directory's data and rebuild it from the peers before answering quorum "
               "reads, as after a lost disk (for a data directory restored from a backup: it forgot the writes after "
               "it, and may hold keys deleted since, whose tombstones the peers have purged)");
  // Purging is the default; --purge-tombstones is kept so that command lines written for it still run.
  auto* purge = app.add_flag("--purge-tombstones")
                    ->description("With --ring: purge a tombstone once every replica holds it, raising its segment's "
                                  "floor first (the default; node/floors.hpp)");
  app.add_flag("--keep-tombstones", f.keep_tombstones,
               "With --ring: keep every tombstone (purging is on by default)")
      ->excludes(purge);
  // A broken mode for the tests: a node with a new data directory answers quorum reads at once.
  app.add_flag("--unsafe-serve-at-once", f.unsafe_serve_at_once)->group("");
  // A broken mode for the tests: tombstones purged when the peers that answered hold them.
  app.add_flag("--unsafe-purge-early", f.unsafe_purge_early)->group("");
  // A fault for the tests: the first purge request to the last peer of a set fails before it is sent.
  app.add_flag("--test-purge-fails-once", f.test_purge_fails_once)->group("");
  // A fault for the tests: the node dies at its first purge request to the last peer of a set.
  app.add_flag("--test-crash-mid-purge", f.test_crash_mid_purge)->group("");
  // A fault for the tests: the first purge step with tombstones to purge holds its turn this long.
  app.add_option("--test-hold-purge-turn-ms", f.test_hold_purge_turn_ms)->group("");
  app.add_option("--threads", f.threads, "Worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_flag("--sync", f.sync, "fsync the write-ahead log before acknowledging each write (survives power loss)");
  app.add_option("--block-cache-mb", f.block_cache_mb,
                 "RocksDB's block cache, MiB: point reads that find their block there neither read the file nor "
                 "decompress")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--compression", f.compression,
                 "How RocksDB compresses new table files: lz4, snappy, zstd or none (files already written keep theirs "
                 "until compaction rewrites them)")
      ->capture_default_str()->check(CLI::IsMember(compression_names()));
  app.add_option("--max-key-bytes", f.max_key, "Longest key, decoded (413 above)")->capture_default_str()->check(CLI::Range(1, 65536));
  app.add_option("--max-value-bytes", f.max_value, "Longest value (413 above)")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  app.add_option("--max-header-bytes", f.max_header, "Longest request line + headers (431 above)")
      ->capture_default_str()->check(CLI::Range(512, 1 << 20));
  app.add_option("--idle-timeout-ms", f.idle_ms, "Keep-alive: close a connection idle this long")->capture_default_str();
  app.add_option("--header-timeout-ms", f.header_ms, "Deadline from a request's first byte to its last header")->capture_default_str();
  app.add_option("--body-timeout-ms", f.body_ms, "Deadline for reading a request body")->capture_default_str();
  app.add_option("--write-timeout-ms", f.write_ms, "Deadline for writing a response")->capture_default_str();
  app.add_option("--shutdown-timeout-ms", f.shutdown_ms, "SIGTERM: longest wait for in-flight requests")->capture_default_str();
}

// POST /admin/ring (common/rebalance.hpp): a node adopts a new ring in place, while serving
// (node/replication.hpp), once it has written it to its --ring file, which a start reads. ring-rebalance
// has each node adopt it once every proxy routes by the new ring, and waits until /health names it.
std::pair<unsigned, std::string> adopt_ring(const Flags& f, std::string_view yaml, Replication& replication) {
  if (f.ring_path.empty()) return {409, json_error("this node runs without --ring: it has no ring to change")};
  try {
    const RingConfig next = parse_ring_config(yaml, "<admin body>");
    std::shared_ptr<const Ring> ring = Ring::build(next);
    const int self = ring->find_node(f.node_id);
    if (self < 0)
      return {409, json_error("'" + f.node_id + "' is not a node of this ring: a node leaving the ring keeps its own")};
    // Another node may share the file and have written it: what counts is the ring this one runs on.
    const std::string fingerprint = ring_fingerprint(next);
    switch (replication.adopt(std::move(ring), static_cast<std::uint32_t>(self), fingerprint,
                              [&] { write_file_atomic(f.ring_path, yaml); })) {
      case Replication::Adoption::current: return {200, R"({"status":"success","adopting":false,"restarting":false})"};
      case Replication::Adoption::started:
        std::cerr << "kvnode: adopting the ring written to " << f.ring_path << " (" << fingerprint << "), serving meanwhile"
                  << std::endl;
        [[fallthrough]];
      case Replication::Adoption::ongoing: return {200, R"({"status":"success","adopting":true,"restarting":false})"};
      case Replication::Adoption::busy: return {409, json_error("this node is adopting another ring already")};
    }
  } catch (const ConfigError& e) {
    return {400, json_error(e.what())};
  } catch (const std::exception& e) {
    return {500, json_error(e.what())};
  }
  return {500, json_error("unreachable")};
}

// The ring of --ring, with this node's index in it; or an exit code (2, after saying why).
std::optional<int> load_ring(const Flags& f, std::shared_ptr<const Ring>& ring, std::uint32_t& self,
                             std::string& fingerprint) {
  if (f.ring_path.empty()) {
    if (!f.recover) return std::nullopt;
    std::cerr << "kvnode: --recover needs --ring (the peers to rebuild from)" << std::endl;
    return 2;
  }
  if (f.node_id.empty()) {
    std::cerr << "kvnode: --ring needs --id, this node's id in the ring" << std::endl;
    return 2;
  }
  try {
    const RingConfig config = load_ring_config(f.ring_path);
    fingerprint = ring_fingerprint(config);
    ring = Ring::build(config);
  } catch (const ConfigError& e) {
    std::cerr << "kvnode: --ring: " << e.what() << std::endl;
    return 2;
  }
  const int index = ring->find_node(f.node_id);
  if (index < 0) {
    std::cerr << "kvnode: --id: '" << f.node_id << "' is not a node of " << f.ring_path << std::endl;
    return 2;
  }
  self = static_cast<std::uint32_t>(index);
  if (f.recover && (ring->replicas() < 2 || f.ae_interval_ms == 0)) {
    std::cerr << "kvnode: --recover rebuilds from the other replicas: it needs a ring with replicas of 2 or more "
                 "and --anti-entropy-interval-ms above 0"
              << std::endl;
    return 2;
  }
  return std::nullopt;
}

// The listen address and the admin token, or an exit code (2, after saying why).
std::optional<int> check(const Flags& f, HostPort& bind, std::string& token) {
  auto hp = parse_host_port(f.bind_host + ":" + std::to_string(f.port), true);
  if (!hp || hp->host.find_first_not_of("0123456789.:abcdefABCDEF") != std::string::npos) {
    std::cerr << "kvnode: --bind: expected an IPv4 or IPv6 address, got '" << f.bind_host << "'" << std::endl;
    return 2;
  }
  bind = *hp;
  if (!f.token_file.empty()) {
    try {
      token = load_token_file(f.token_file);
    } catch (const ConfigError& e) {
      std::cerr << "kvnode: --admin-token-file: " << e.what() << std::endl;
      return 2;
    }
  } else if (!is_loopback(bind.host)) {
    std::cerr << "kvnode: --bind: " << f.bind_host
              << " is not a loopback address; give --admin-token-file so that the /admin/ endpoints (which read and "
                 "delete data in bulk) need a token"
              << std::endl;
    return 2;
  }
  if (f.engine == "rocksdb" && f.data_dir.empty()) {
    std::cerr << "kvnode: --data-dir is required with --engine rocksdb (or use --engine memory)" << std::endl;
    return 2;
  }
  for (char ch : f.node_id) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      std::cerr << "kvnode: --id: '" << f.node_id << "' may contain only letters, digits, '-', '_' and '.'" << std::endl;
      return 2;
    }
  }
  return std::nullopt;
}

// Opens the store and serves until SIGTERM or SIGINT, then flushes and closes it. With a replicated
// ring, the hash trees are built from the store before it serves, and the exchanger runs meanwhile.
int serve(const Flags& f, const HostPort& bind, std::string token, std::shared_ptr<const Ring> ring, std::uint32_t self,
          std::string fingerprint) {
  std::unique_ptr<Store> store;
  try {
    store = f.engine == "memory"
                ? open_memory_store()
                : open_rocksdb_store({f.data_dir, f.sync, f.block_cache_mb, *compression_named(f.compression)});
  } catch (const StoreError& e) {
    std::cerr << "kvnode: " << e.what() << std::endl;
    return 1;
  }
  NodeMetrics metrics;
  Api api(*store, metrics, ApiLimits{f.max_key, f.max_value}, f.node_id);
  if (f.unsafe_serve_at_once) api.unsafe_serve_at_once();
  ReplicationOptions options;
  options.exchange = AntiEntropyOptions{std::chrono::milliseconds(f.ae_interval_ms), f.repair_rate, std::chrono::milliseconds(5000),
                                        token, !f.keep_tombstones || f.unsafe_purge_early, f.unsafe_purge_early};
  options.exchange.busy_percent = f.repair_busy_percent;
  options.exchange.rate = std::make_shared<RepairRate>(options.exchange.busy_percent, options.exchange.keys_per_second);
  const std::shared_ptr<RepairRate> repair_rate = options.exchange.rate;
  options.exchange.batch_keys = f.repair_batch_keys;
  options.exchange.nice = static_cast<int>(f.repair_nice);
  options.exchange.test_purge_fails_once = f.test_purge_fails_once;
  options.exchange.test_crash_mid_purge = f.test_crash_mid_purge;
  options.exchange.test_hold_purge_turn = std::chrono::milliseconds(f.test_hold_purge_turn_ms);
  options.exchanges = f.ae_interval_ms > 0;
  options.unsafe_serve_at_once = f.unsafe_serve_at_once;
  Replication replication(*store, std::move(options), [&api](std::shared_ptr<const NodeRole> role) { api.set_role(std::move(role)); });
  try {
    replication.start(ring, self, std::move(fingerprint), f.recover);
  } catch (const StoreError& e) {
    std::cerr << "kvnode: " << e.what() << std::endl;
    return 1;
  }
  metrics.set_section([&replication] { return replication.metrics(); });
  api.set_admin_token(std::move(token));
  http::ServerLimits limits;
  limits.idle_timeout = std::chrono::milliseconds(f.idle_ms);
  limits.header_timeout = std::chrono::milliseconds(f.header_ms);
  limits.body_timeout = std::chrono::milliseconds(f.body_ms);
  limits.write_timeout = std::chrono::milliseconds(f.write_ms);
  limits.header_limit = f.max_header;
  // The body is JSON: a value of max_value bytes may take up to 6x that escaped ("\u0001").
  limits.body_limit = std::uint64_t{f.max_value} * 6 + 4096;
  limits.admin_body_limit = kAdminBodyLimit;  // the rebalancer's ingest batches

  boost::asio::thread_pool admin_pool(1);  // the rebalancer's bulk requests, off the event loops
  boost::asio::thread_pool sync_pool(1);   // the peers' anti-entropy requests, at background priority
  boost::asio::thread_pool wait_pool(1);   // requests that wait by design, off the admin pool too
  boost::asio::post(admin_pool, [] { net::name_this_thread("kv-admin"); });
  boost::asio::post(wait_pool, [] { net::name_this_thread("kv-wait"); });
  boost::asio::post(sync_pool, [nice = static_cast<int>(f.repair_nice)] {
    net::name_this_thread("kv-sync");
    if (std::string err; !net::lower_this_thread(nice, err)) std::cerr << "kvnode: --repair-nice: " << err << std::endl;
  });
  NodeService service(api, metrics, admin_pool, sync_pool, wait_pool);
  net::Server server("kvnode", f.threads, std::chrono::milliseconds(f.shutdown_ms));
  api.set_ring_adopter([&](std::string_view yaml) { return adopt_ring(f, yaml, replication); });
  api.set_purge_pause(&replication.purge_pause());
  if (ring) api.set_repair_rate(repair_rate.get());  // no exchanger without a ring
  std::uint16_t bound = 0;
  try {
    bound = server.listen(bind, net::serve_with(limits, service));
  } catch (const std::exception& e) {
    std::cerr << "kvnode: " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "kvnode " KVRING_VERSION " listening on " << HostPort{bind.host, bound}.str() << " (engine "
            << store->engine() << (f.data_dir.empty() ? "" : ", data dir " + f.data_dir) << ", threads " << f.threads
            << ", sync " << (f.sync ? "on" : "off") << ")" << std::endl;
  replication.serve();
  server.run();
  replication.stop();
  admin_pool.join();
  sync_pool.join();
  wait_pool.join();
  store.reset();  // flush and close while `server` still holds SIGTERM/SIGINT
  std::cerr << "kvnode: stopped" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvnode: a kvring storage node (HTTP/1.1 key-value server, durable with RocksDB)", "kvnode"};
  app.set_version_flag("--version", std::string("kvnode ") + KVRING_VERSION);
  Flags flags;
  add_flags(app, flags);
  if (auto code = parse_command_line(app, argc, argv)) return *code;
  HostPort bind;
  std::string token;
  if (auto code = check(flags, bind, token)) return *code;
  std::shared_ptr<const Ring> ring;
  std::uint32_t self = 0;
  std::string fingerprint;
  if (auto code = load_ring(flags, ring, self, fingerprint)) return *code;
  return serve(flags, bind, std::move(token), std::move(ring), self, std::move(fingerprint));
}
