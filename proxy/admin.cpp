#include "proxy/admin.hpp"

#include "common/auth.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/rebalance.hpp"
#include "http/policy.hpp"
#include "proxy/stats.hpp"

namespace kv::proxy {

namespace beast = net::beast;
using verb = beast::http::verb;
using status = beast::http::status;

net::asio::awaitable<void> Admin::handle(http::StringRequest& req, http::StringResponse& res) {
  const auto path = target_path(std::string_view(req.target().data(), req.target().size()));
  const bool get = req.method() == verb::get || req.method() == verb::head;
  // Changing the ring needs the token when there is one; reading the state does not.
  if (path.starts_with(rebalance::kAdminPrefix) && !get && !token_.empty()) {
    switch (check_bearer(req[beast::http::field::authorization], token_)) {
      case AuthResult::ok:
        break;
      case AuthResult::missing:
        http::error_answer(res, status::unauthorized, "This endpoint needs Authorization: Bearer <token>");
        res.set(beast::http::field::www_authenticate, "Bearer realm=\"kvproxy admin\"");
        co_return;
      case AuthResult::wrong:
        http::error_answer(res, status::forbidden, "Wrong token");
        co_return;
    }
  }
  if (path == "/stats" || path == "/" || path == "/stats.json" || path == http::kMetricsPath || path == http::kHealthPath) {
    if (!http::allow_method(res, req.method(), verb::get, http::kReadMethods)) co_return;
    if (path == http::kHealthPath) {
      http::json_answer(res, status::ok, std::string(http::kHealthOk));
      co_return;
    }
    const Snapshot s = snapshot(cluster_, counters_);
    res.result(status::ok);
    if (path == "/stats.json") {
      http::json_answer(res, status::ok, render_json(s));
    } else if (path == http::kMetricsPath) {
      res.set(beast::http::field::content_type, http::kPrometheusText);
      res.body() = render_prometheus(s);
    } else {
      res.set(beast::http::field::content_type, "text/html; charset=utf-8");
      res.body() = render_html(s);
    }
    co_return;
  }
  if (path == rebalance::kMigrationPath) {
    if (http::allow_method(res, req.method(), verb::get, http::kReadMethods))
      http::json_answer(res, status::ok, control_.position_json());
    co_return;
  }
  if (path.starts_with(rebalance::kStepPrefix)) {
    const auto step = rebalance::parse_step(path.substr(rebalance::kStepPrefix.size()));
    if (!step) {
      http::error_answer(res, status::not_found, http::kNotFound);
      co_return;
    }
    if (!http::allow_method(res, req.method(), verb::post, "POST")) co_return;
    const AdminAnswer a = co_await control_.step(*step, std::string_view(req.target().data(), req.target().size()),
                                                 std::move(req.body()));
    http::json_answer(res, static_cast<status>(a.status), a.body);
    co_return;
  }
  if (path == "/admin/ring") {
    if (req.method() == verb::post) {
      const ReloadResult r = co_await control_.reload(std::move(req.body()), "<admin body>");
      if (r.ok) http::json_answer(res, status::ok, "{\"status\":\"success\",\"version\":" + std::to_string(r.version) + "}");
      else http::error_answer(res, status::bad_request, r.detail);
    } else if (http::allow_method(res, req.method(), verb::get, "GET, HEAD, POST")) {
      http::json_answer(res, status::ok, render_ring_json(*cluster_.topology()));
    }
    co_return;
  }
  http::error_answer(res, status::not_found, http::kNotFound);
}

}  // namespace kv::proxy
