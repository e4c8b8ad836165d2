#include "node/session.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <string_view>

#include "common/key.hpp"
#include "common/rebalance.hpp"

namespace kv {

namespace asio = boost::asio;

namespace {

// Hands `op` to the store's group committer and completes on the caller's executor once the batch
// holding it is durable. The pending work keeps the caller's io_context running meanwhile.
template <class Token>
auto async_commit(Store& store, WriteOp op, Token&& token) {
  return asio::async_initiate<Token, void(WriteResult)>(
      [&store](auto handler, WriteOp w) { store.submit(std::move(w), net::post_back(std::move(handler))); }, token,
      std::move(op));
}

// The rebalancer's and the peers' bulk requests, which run on the admin and sync pools.
bool off_loop(Route r) noexcept { return r == Route::admin || r == Route::sync; }

// A purge pause, which waits for a purge under way (up to a peer's timeout per request): on the wait pool.
bool waits(std::string_view target) noexcept {
  return target_path(target) == rebalance::kNodePurgesPath;
}

}  // namespace

bool NodeService::answer_now(http::StringRequest& req, http::StringResponse& res) {
  if (api_.store().group_commit() || off_loop(Api::route_of(req.target()))) return false;
  api_.handle(req, res);  // no group commit: writes are applied before it returns
  return true;
}

asio::awaitable<void> NodeService::handle(http::StringRequest& req, http::StringResponse& res) {
  if (const Route route = Api::route_of(req.target()); off_loop(route)) {
    std::function<http::StringResponse()> run = [this, &req] {
      http::StringResponse r;
      api_.handle(req, r);
      return r;
    };
    auto& pool = route == Route::sync ? sync_pool_ : waits(req.target()) ? wait_pool_ : admin_pool_;
    res = co_await net::async_run(pool, std::move(run), asio::use_awaitable);
    co_return;
  }
  std::optional<DeferredWrite> deferred;
  api_.handle(req, res, &deferred);
  if (deferred) {  // --sync: wait for the group commit without blocking this worker
    const WriteForm form = std::move(deferred->form);
    WriteResult result = co_await async_commit(api_.store(), std::move(deferred->op), asio::use_awaitable);
    api_.finish_write(form, result, res);
  }
}

void NodeService::answered(const http::StringRequest* req, unsigned status, net::Clock::duration took) {
  const Route route = req ? Api::route_of(req->target()) : Route::other;
  metrics_.count(route, status, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
}

}  // namespace kv
