// kvproxy's admin listener (default 127.0.0.1:8404): the stats page (/stats, /stats.json), metrics,
// health, and the ring (GET /admin/ring; POST /admin/ring with a ring YAML body to swap it).
// Reloads (POST here, or SIGHUP) validate first, build the new ring on a control thread, then swap
// it whole; a refused config leaves the ring in use untouched.
#pragma once

#include <boost/asio/thread_pool.hpp>

#include <string>

#include "proxy/data_path.hpp"
#include "net/server.hpp"
#include "proxy/state.hpp"

namespace kv::proxy {

struct ReloadResult {
  bool ok = false;
  std::uint64_t version = 0;
  std::string detail;  // the refusal's exact message
};

// A JSON answer from an admin operation.
struct AdminAnswer {
  unsigned status = 200;
  std::string body;
};

class Admin {
 public:
  // `drain_timeout`: how long a ring change waits for requests still using the previous ring.
  // `token`: when not empty, POSTs under /admin/ need "Authorization: Bearer <token>" (401 without,
  // 403 with another); the pages and GETs stay open.
  Admin(State& state, DataPath& data, net::asio::thread_pool& control, http::ServerLimits limits, std::string ring_path,
        std::chrono::milliseconds drain_timeout, std::string token = {});

  // At start, after the ring is published: takes up a rebalance that an earlier run saved next to
  // the ring file, in its phase. Throws ConfigError when the saved state does not fit the ring.
  void restore_migration();

  net::SessionHandler handler();
  // SIGHUP: re-reads the --ring file. Call on a worker thread; returns at once, logs the outcome.
  void reload_from_file(net::asio::io_context& ioc);

  std::string stats_json() const;
  std::string stats_html() const;

 private:
  net::asio::awaitable<ReloadResult> reload(std::string yaml, std::string source);
  // The rebalance endpoints, /admin/migration[/begin|/read-new|/finish|/abort]; see README.
  net::asio::awaitable<AdminAnswer> rebalance(std::string_view path, std::string_view target, bool post, std::string body);
  net::asio::awaitable<AdminAnswer> rebalance_step(std::string_view step, std::string_view target, std::string body);
  // Publishes `next`, makes the workers take it up, and waits until no request uses an older ring;
  // answers where the rebalance stands (200), or why the drain is unfinished (503).
  net::asio::awaitable<AdminAnswer> publish_step(std::shared_ptr<Topology> next);
  std::string migration_json() const;
  net::asio::awaitable<void> session(net::Worker& worker, net::tcp::socket socket);

  State& state_;
  DataPath& data_;
  net::asio::thread_pool& control_;
  http::ServerLimits limits_;
  std::string ring_path_;
  std::chrono::milliseconds drain_timeout_;
  std::string token_;
  bool changing_ = false;  // a reload or rebalance step is being applied (admin runs on one thread)
};

}  // namespace kv::proxy
