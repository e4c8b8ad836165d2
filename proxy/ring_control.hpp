// How kvproxy's ring changes, one change at a time: reloads (SIGHUP, POST /admin/ring) and the steps
// of a rebalance (common/rebalance.hpp: begin, read-new, finish, abort). Each builds what it needs
// off the event loops (on `control`: a large ring takes a while), publishes the new topology whole,
// and a rebalance step answers only once no request that began on an older ring is still in flight.
// A rebalance's phase is saved next to the ring file before it is published, so that a restart
// never comes back in an earlier phase. Runs on the admin listener's one thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/rebalance.hpp"
#include "proxy/cluster.hpp"

namespace kv::proxy {

class DataPath;

struct ReloadResult {
  bool ok = false;
  std::uint64_t version = 0;
  std::string detail;  // the refusal's exact message
};

// An admin operation's answer: its status and JSON body.
struct AdminAnswer {
  unsigned status = 200;
  std::string body;
};

class RingControl {
 public:
  // `drain_timeout`: how long a rebalance step waits for requests still using the previous ring.
  RingControl(Cluster& cluster, DataPath& data, boost::asio::thread_pool& control, std::string ring_path,
              std::chrono::milliseconds drain_timeout);

  // At start, after the ring is published: takes up a rebalance that an earlier run saved next to
  // the ring file, in its phase. Throws ConfigError when the saved state does not fit the ring.
  void restore();

  // Swaps the ring for `yaml` (named `source` in messages), refused during a rebalance.
  boost::asio::awaitable<ReloadResult> reload(std::string yaml, std::string source);
  // SIGHUP: re-reads the ring file. Call on the admin thread; returns at once, logs the outcome.
  void reload_from_file(boost::asio::io_context& ioc);

  // A rebalance step: `target` carries its from=/to= fingerprint, `body` begin's ring YAML.
  boost::asio::awaitable<AdminAnswer> step(rebalance::Step s, std::string_view target, std::string body);
  // Where this proxy stands (GET /admin/migration).
  std::string position_json() const;

 private:
  struct Current;
  boost::asio::awaitable<AdminAnswer> run_step(rebalance::Step s, std::string_view target, std::string body);
  boost::asio::awaitable<AdminAnswer> begin(Current& c, std::string_view from, std::string yaml);
  boost::asio::awaitable<AdminAnswer> read_new(Current& c, std::string_view to);
  boost::asio::awaitable<AdminAnswer> finish(Current& c, std::string_view to);
  boost::asio::awaitable<AdminAnswer> abort(Current& c);
  std::optional<AdminAnswer> save(const Migration& next) const;
  // Publishes `next`, makes the workers take it up, and waits until no request uses an older ring;
  // answers where the proxy stands (200), or why the drain is unfinished (503).
  boost::asio::awaitable<AdminAnswer> publish_step(std::shared_ptr<Topology> next);

  Cluster& cluster_;
  DataPath& data_;
  boost::asio::thread_pool& control_;
  const std::string ring_path_;
  const std::chrono::milliseconds drain_timeout_;
  bool changing_ = false;  // a reload or step is being applied: the next one is refused meanwhile
};

}  // namespace kv::proxy
