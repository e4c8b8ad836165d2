// kvnode on the shared server frame (net/session.hpp): each request goes to the Api. The
// rebalancer's /admin/ requests (scans, ingests and drops of thousands of keys) run on `admin_pool`,
// so that clients of the same worker do not wait behind them; the peers' anti-entropy requests
// (Route::sync: trees, diffs, floors, purges) on `sync_pool`, whose thread runs at background
// priority (kvnode --repair-nice); a purge pause, which waits for a purge under way
// (node/purge_pause.hpp), runs on `wait_pool`, so that the peers' requests do not wait behind it;
// with a group-commit store (--sync), writes are awaited without blocking the worker.
#pragma once

#include <boost/asio/thread_pool.hpp>

#include "net/session.hpp"
#include "node/api.hpp"

namespace kv {

class NodeService final : public net::Service {
 public:
  NodeService(Api& api, NodeMetrics& metrics, net::asio::thread_pool& admin_pool, net::asio::thread_pool& sync_pool,
              net::asio::thread_pool& wait_pool)
      : api_(api), metrics_(metrics), admin_pool_(admin_pool), sync_pool_(sync_pool), wait_pool_(wait_pool) {}

  // Everything but the rebalancer's requests and the writes of a group-commit store (--sync), which
  // handle() awaits.
  bool answer_now(http::StringRequest& req, http::StringResponse& res) override;
  net::asio::awaitable<void> handle(http::StringRequest& req, http::StringResponse& res) override;
  void answered(const http::StringRequest* req, unsigned status, net::Clock::duration took) override;
  void connection_opened() override { metrics_.connection_opened(); }
  void connection_closed() override { metrics_.connection_closed(); }

 private:
  Api& api_;
  NodeMetrics& metrics_;
  net::asio::thread_pool& admin_pool_;
  net::asio::thread_pool& sync_pool_;
  net::asio::thread_pool& wait_pool_;
};

}  // namespace kv
