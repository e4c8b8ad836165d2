// kvproxy's admin listener (default 127.0.0.1:8404): the stats page (/stats, /stats.json), metrics,
// health, and the ring (GET /admin/ring; POST /admin/ring with a ring YAML body to swap it).
// Reloads (POST here, or SIGHUP) validate first, build the new ring on a control thread, then swap
// it whole; a refused config leaves the ring in use untouched.
#pragma once

#include <boost/asio/thread_pool.hpp>

#include <string>

#include "data_path.hpp"
#include "http_server.hpp"
#include "state.hpp"

namespace kv::proxy {

struct ReloadResult {
  bool ok = false;
  std::uint64_t version = 0;
  std::string detail;  // the refusal's exact message
};

class Admin {
 public:
  Admin(State& state, DataPath& data, net::asio::thread_pool& control, net::ReadLimits limits, std::string ring_path);

  net::SessionHandler handler();
  // SIGHUP: re-reads the --ring file. Call on a worker thread; returns at once, logs the outcome.
  void reload_from_file(net::asio::io_context& ioc);

  std::string stats_json() const;
  std::string stats_html() const;

 private:
  net::asio::awaitable<ReloadResult> reload(std::string yaml, std::string source);
  net::asio::awaitable<void> session(net::Worker& worker, net::tcp::socket socket);

  State& state_;
  DataPath& data_;
  net::asio::thread_pool& control_;
  net::ReadLimits limits_;
  std::string ring_path_;
};

}  // namespace kv::proxy
