#include "proxy/admin.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/write.hpp>

#include <cstdio>
#include <ctime>
#include <iostream>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/auth.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "proxy/rebalance_state.hpp"
#include "common/ring_change.hpp"
#include "common/files.hpp"

namespace kv::proxy {

namespace asio = net::asio;
namespace beast = net::beast;
using net::Clock;
using net::tcp;
using net::use_ec;

namespace {

using Response = beast::http::response<beast::http::string_body>;

// Sets a flag for as long as it lives.
class ScopedFlag {
 public:
  explicit ScopedFlag(bool& flag) : flag_(flag) { flag_ = true; }
  ~ScopedFlag() { flag_ = false; }
  ScopedFlag(const ScopedFlag&) = delete;
  ScopedFlag& operator=(const ScopedFlag&) = delete;

 private:
  bool& flag_;
};

std::string iso_time(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return "";
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void json_answer(Response& res, beast::http::status status, std::string body) {
  res.result(status);
  res.set(beast::http::field::content_type, "application/json");
  res.body() = std::move(body);
}

std::string ring_json(const Topology& t) {
  std::string out = "{\"version\":" + std::to_string(t.version) + ",\"fingerprint\":\"" + t.fingerprint + "\"" + ",\"vnodes\":" + std::to_string(t.ring->vnodes()) +
                    ",\"points\":" + std::to_string(t.ring->point_count()) + ",\"nodes\":[";
  for (std::size_t i = 0; i < t.backends.size(); ++i) {
    const auto& b = *t.backends[i];
    if (i) out += ',';
    out += "{\"id\":" + json_quote(b.id) + ",\"address\":" + json_quote(b.address.str()) +
           ",\"weight\":" + std::to_string(t.ring->node(static_cast<std::uint32_t>(i)).weight) +
           ",\"ownership\":" + fmt("%.6f", t.ownership[i]) +
           ",\"state\":\"" + (b.up.load() ? "UP" : "DOWN") + "\"}";
  }
  return out + "]}";
}

}  // namespace

Admin::Admin(State& state, DataPath& data, asio::thread_pool& control, http::ServerLimits limits, std::string ring_path,
             std::chrono::milliseconds drain_timeout, std::string token)
    : state_(state), data_(data), control_(control), limits_(limits), ring_path_(std::move(ring_path)),
      drain_timeout_(drain_timeout), token_(std::move(token)) {
  limits_.body_limit = 16 << 20;  // a ring YAML for thousands of nodes
}

net::SessionHandler Admin::handler() {
  return [this](net::Worker& w, tcp::socket s) { return session(w, std::move(s)); };
}

asio::awaitable<ReloadResult> Admin::reload(std::string yaml, std::string source) {
  ReloadResult r;
  auto refuse = [&](std::string why) {
    r.detail = std::move(why);
    state_.reloads_failed.fetch_add(1);
    std::cerr << "kvproxy: reload refused, keeping version " << state_.version() << ": " << r.detail << std::endl;
  };
  if (const auto t = state_.topology(); t->migration) {
    refuse("a rebalance to ring " + t->migration->fingerprint + " is in progress (phase " +
           std::string(phase_name(t->migration->phase)) + "); finish or abort it first");
    co_return r;
  }
  if (changing_) {
    refuse("another ring change is being applied; retry");
    co_return r;
  }
  const ScopedFlag changing(changing_);
  try {
    // Parse, validate, resolve and build off the event loop; only the swap happens here.
    std::function<std::shared_ptr<Topology>()> build = [this, yaml = std::move(yaml), source]() {
      return state_.prepare(parse_ring_config(yaml, source), source);
    };
    auto next = co_await net::async_run(control_, std::move(build), asio::use_awaitable);
    r.version = state_.publish(std::move(next));
    r.ok = true;
    state_.reloads_ok.fetch_add(1);
    std::cerr << "kvproxy: ring reloaded from " << source << ": version " << r.version << std::endl;
  } catch (const std::exception& e) {
    refuse(e.what());
  }
  co_return r;
}

// ---- rebalance ----------------------------------------------------------------------------------

namespace {

AdminAnswer answer(unsigned status, std::string body) { return {status, std::move(body)}; }
AdminAnswer refusal(unsigned status, std::string_view detail) { return {status, json_error(detail)}; }

// The current topology with `migration` in place of its own (null: none).
std::shared_ptr<Topology> with_migration(const Topology& t, std::shared_ptr<const Migration> migration) {
  auto next = std::make_shared<Topology>(t);
  next->migration = std::move(migration);
  return next;
}

}  // namespace

std::string Admin::migration_json() const {
  const auto t = state_.topology();
  std::string out = "{\"status\":\"success\",\"version\":" + std::to_string(t->version) +
                    ",\"fingerprint\":\"" + t->fingerprint + "\",\"phase\":\"" +
                    std::string(phase_name(t->migration ? t->migration->phase : Phase::none)) + "\"";
  if (t->migration) out += ",\"to\":\"" + t->migration->fingerprint + "\",\"from\":\"" + t->migration->from + "\"";
  return out + "}";
}

asio::awaitable<AdminAnswer> Admin::publish_step(std::shared_ptr<Topology> next) {
  const auto version = state_.publish(std::move(next));
  data_.refresh_workers();
  const auto deadline = Clock::now() + drain_timeout_;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    const auto in_use = state_.older_in_use();
    if (in_use == 0) co_return answer(200, migration_json());
    if (Clock::now() >= deadline) {
      co_return refusal(503, "ring version " + std::to_string(version) + " is in use, but " + std::to_string(in_use) +
                                 " requests still used an older one after " + std::to_string(drain_timeout_.count()) +
                                 " ms; retry");
    }
    timer.expires_after(std::chrono::milliseconds(2));
    beast::error_code ec;
    co_await timer.async_wait(use_ec(ec));
    data_.refresh_workers();  // a worker may have taken a request meanwhile with the older ring
  }
}

asio::awaitable<AdminAnswer> Admin::rebalance(std::string_view path, std::string_view target, bool post, std::string body) {
  if (path == "/admin/migration") {
    if (post) co_return refusal(405, "Method not allowed");
    co_return answer(200, migration_json());
  }
  const std::string_view step = path.substr(std::string_view("/admin/migration/").size());
  if (step != "begin" && step != "read-new" && step != "finish" && step != "abort") co_return refusal(404, "Not found");
  if (!post) co_return refusal(405, "Method not allowed");
  if (changing_) co_return refusal(409, "another ring change is being applied; retry");
  const ScopedFlag changing(changing_);
  AdminAnswer a = co_await rebalance_step(step, target, std::move(body));
  std::cerr << "kvproxy: rebalance " << step << ": " << (a.status == 200 ? "ok" : "refused") << ": " << a.body << std::endl;
  co_return a;
}

asio::awaitable<AdminAnswer> Admin::rebalance_step(std::string_view step, std::string_view target, std::string body) {
  // The admin's own references to the ring in use must go before a drain: it waits for every
  // reference to an older ring to be dropped. release() hands over the topology to publish.
  auto t = state_.topology();
  const auto* m = t->migration.get();
  auto release = [&](std::shared_ptr<Topology> next) {
    m = nullptr;
    t.reset();
    return next;
  };
  const std::string state_path = migration_state_path(ring_path_);
  // Saved before it is published: a restart must never come back in an earlier phase.
  auto save = [&](const Migration& next) -> std::optional<AdminAnswer> {
    try {
      write_file_atomic(state_path, format_saved_migration(next));
      return std::nullopt;
    } catch (const std::exception& e) {
      return refusal(500, std::string("cannot save the rebalance state: ") + e.what());
    }
  };
  auto in_progress = [&] {
    return "a rebalance to ring " + m->fingerprint + " is in progress (phase " + std::string(phase_name(m->phase)) + ")";
  };

  if (step == "abort") {
    if (m) {
      if (::unlink(state_path.c_str()) != 0 && errno != ENOENT)
        co_return refusal(500, "cannot remove " + state_path + ": " + std::strerror(errno));
      co_return co_await publish_step(release(with_migration(*t, nullptr)));
    }
    co_return answer(200, migration_json());
  }

  const std::string_view to = query_value(target, "to");
  if (step == "begin") {
    const std::string_view from = query_value(target, "from");
    if (from.size() != 16) co_return refusal(400, "from: expected the current ring's fingerprint (16 hex digits)");
    std::shared_ptr<Migration> next;
    try {
      std::function<std::shared_ptr<Migration>()> build = [this, yaml = std::move(body)]() mutable {
        auto config = parse_ring_config(yaml, "<admin body>");
        return state_.prepare_migration(std::move(config), std::move(yaml), Phase::dual_write, "<admin body>");
      };
      next = co_await net::async_run(control_, std::move(build), asio::use_awaitable);
    } catch (const std::exception& e) {
      co_return refusal(400, e.what());
    }
    // (Nothing else changed the ring during the build: changing_ keeps reloads and steps out.)
    if (m) {
      if (m->fingerprint != next->fingerprint) co_return refusal(409, in_progress() + "; finish or abort it first");
      // Begun already (an apply run again): wait for the drain once more and say where it stands.
      co_return co_await publish_step(release(with_migration(*t, t->migration)));
    }
    if (from != t->fingerprint)
      co_return refusal(409, "this proxy's ring is " + t->fingerprint + ", not " + std::string(from));
    if (next->fingerprint == t->fingerprint) co_return refusal(409, "the new ring is the ring in use: nothing to move");
    if (auto failed = save(*next)) co_return *failed;
    co_return co_await publish_step(release(with_migration(*t, std::move(next))));
  }

  if (step == "read-new") {
    if (!m) co_return refusal(409, "no rebalance is in progress");
    if (m->fingerprint != to) co_return refusal(409, in_progress() + ", not to " + std::string(to));
    auto next = std::make_shared<Migration>(*m);
    next->phase = Phase::read_new;
    if (auto failed = save(*next)) co_return *failed;
    co_return co_await publish_step(release(with_migration(*t, std::move(next))));
  }

  // finish: the new ring becomes the ring, saved as the ring file (the old one kept as .prev).
  if (!m) {
    if (t->fingerprint == to) {  // finished already (an apply run again)
      co_return co_await publish_step(release(with_migration(*t, nullptr)));
    }
    co_return refusal(409, "no rebalance is in progress and the ring is " + t->fingerprint + ", not " + std::string(to));
  }
  if (m->fingerprint != to) co_return refusal(409, in_progress() + ", not to " + std::string(to));
  if (m->phase != Phase::read_new) co_return refusal(409, in_progress() + ": read-new comes before finish");
  try {
    // NEW's membership, this proxy's own settings (its proxy: section) kept.
    std::string text = m->yaml;
    if (auto old = read_file_if_exists(ring_path_)) {
      text = "# saved by kvproxy on finishing a rebalance to ring " + m->fingerprint + "; the file before is " +
             ring_path_ + ".prev\n" + with_membership(*old, m->yaml, ring_path_);
      if (ring_fingerprint(parse_ring_config(text, ring_path_)) != m->fingerprint)
        throw ConfigError(ring_path_ + ": the merged file is not ring " + m->fingerprint);
      write_file_atomic(ring_path_ + ".prev", *old);
    }
    write_file_atomic(ring_path_, text);
  } catch (const std::exception& e) {
    co_return refusal(500, std::string("cannot save the new ring: ") + e.what());
  }
  ::unlink(state_path.c_str());
  auto next = std::make_shared<Topology>();
  next->config = m->config;
  next->fingerprint = m->fingerprint;
  next->ring = m->ring;
  next->backends = m->backends;
  next->ownership = m->ownership;
  co_return co_await publish_step(release(std::move(next)));
}

void Admin::restore_migration() {
  const std::string path = migration_state_path(ring_path_);
  std::optional<std::string> text;
  try {
    text = read_file_if_exists(path);
  } catch (const std::exception& e) {
    throw ConfigError(e.what());
  }
  if (!text) return;
  const SavedMigration saved = parse_saved_migration(*text, path);
  const auto t = state_.topology();
  if (saved.from != t->fingerprint)
    throw ConfigError(path + ": from: the rebalance began from ring " + saved.from + ", but " + ring_path_ + " is ring " +
                      t->fingerprint + " (finish it by hand: see README, Add a node)");
  auto m = state_.prepare_migration(parse_ring_config(saved.yaml, path), saved.yaml, saved.phase, path);
  if (m->fingerprint != saved.to)
    throw ConfigError(path + ": to: the header says ring " + saved.to + ", the text is ring " + m->fingerprint);
  state_.publish(with_migration(*t, std::move(m)));
  std::cerr << "kvproxy: resuming the rebalance saved in " << path << ": phase " << phase_name(saved.phase) << ", to ring "
            << saved.to << std::endl;
}

void Admin::reload_from_file(asio::io_context& ioc) {
  auto text = read_file(ring_path_);
  if (!text) {
    state_.reloads_failed.fetch_add(1);
    std::cerr << "kvproxy: reload refused, keeping version " << state_.version() << ": " << ring_path_
              << ": (file): cannot open for reading" << std::endl;
    return;
  }
  asio::co_spawn(ioc, [this, text = std::move(*text)]() -> asio::awaitable<void> { co_await reload(text, ring_path_); },
                 asio::detached);
}

std::string Admin::stats_json() const {
  const auto t = state_.topology();
  std::string out = "{\"version\":" + std::to_string(t->version) + ",\"fingerprint\":\"" + t->fingerprint + "\"" +
                    ",\"rebalance\":" +
                    (t->migration ? "{\"phase\":\"" + std::string(phase_name(t->migration->phase)) + "\",\"to\":\"" +
                                        t->migration->fingerprint + "\"}"
                                  : std::string("null")) +
                    ",\"uptime_seconds\":" +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - state_.started).count()) +
                    ",\"nodes\":[";
  const auto views = node_views(*t);
  for (std::size_t i = 0; i < views.size(); ++i) {
    const auto& v = views[i];
    const auto& b = *v.backend;
    const auto& s = b.stats;
    std::string last_check, since;
    {
      std::lock_guard lock(b.mutex);
      last_check = b.last_check;
      since = iso_time(b.last_change_at);
    }
    if (i) out += ',';
    out += "{\"id\":" + json_quote(b.id) + ",\"address\":" + json_quote(b.address.str()) +
           ",\"state\":\"" + (b.up.load() ? "UP" : "DOWN") + "\",\"since\":\"" + since + "\"" +
           ",\"weight\":" + std::to_string(v.weight) + ",\"ownership\":" + fmt("%.6f", v.ownership) +
           (v.next ? ",\"next_ownership\":" + fmt("%.6f", *v.next) : std::string()) +
           (v.joining ? ",\"joining\":true" : "") + ",\"requests\":" + std::to_string(s.requests()) + ",\"responses\":{";
    for (int c = 0; c < 5; ++c)
      out += (c ? ",\"" : "\"") + std::to_string(c + 1) + "xx\":" + std::to_string(s.responses[c].load());
    out += "},\"errors\":{";
    for (std::size_t c = 0; c < static_cast<std::size_t>(ErrorClass::count_); ++c)
      out += (c ? ",\"" : "\"") + std::string(error_class_name(static_cast<ErrorClass>(c))) + "\":" + std::to_string(s.errors[c].load());
    out += "},\"latency_ms\":{\"p50\":" + fmt("%.3f", s.latency.quantile(0.5) * 1000) +
           ",\"p99\":" + fmt("%.3f", s.latency.quantile(0.99) * 1000) + "}" +
           ",\"pool\":{\"active\":" + std::to_string(std::max<std::int64_t>(0, s.pool_active.load())) +
           ",\"idle\":" + std::to_string(std::max<std::int64_t>(0, s.pool_idle.load())) + "}" +
           ",\"last_check\":" + json_quote(last_check) + "}";
  }
  const auto& c = data_.counters();
  out += "],\"clients\":{\"open\":" + std::to_string(std::max<std::int64_t>(0, c.client_open.load())) +
         ",\"total\":" + std::to_string(c.client_total.load()) + "},\"retries\":" + std::to_string(c.retries.load()) + "}";
  return out;
}

std::string Admin::stats_html() const {
  const auto t = state_.topology();
  std::string rows;
  for (const auto& v : node_views(*t)) {
    const auto& b = *v.backend;
    const auto& s = b.stats;
    const bool up = b.up.load();
    std::string last_check, since;
    {
      std::lock_guard lock(b.mutex);
      last_check = b.last_check;
      since = iso_time(b.last_change_at);
    }
    std::uint64_t errors = 0;
    for (const auto& e : s.errors) errors += e.load();
    rows += "<tr class=\"node " + std::string(up ? "up" : "down") + "\" data-node=\"" + html_escape(b.id) +
            "\" data-state=\"" + (up ? "UP" : "DOWN") + "\">";
    rows += "<td class=\"id\">" + html_escape(b.id) + (v.joining ? " (joining)" : "") + "</td><td>" +
            html_escape(b.address.str()) + "</td>";
    rows += "<td class=\"state\">" + std::string(up ? "UP" : "DOWN") + "</td><td>" + html_escape(since) + "</td>";
    rows += "<td>" + std::to_string(v.weight) + "</td><td>" + fmt("%.2f%%", v.ownership * 100) +
            (v.next ? " &rarr; " + fmt("%.2f%%", *v.next * 100) : std::string()) + "</td>";
    rows += "<td>" + std::to_string(s.requests()) + "</td>";
    for (int c : {1, 3, 4}) rows += "<td>" + std::to_string(s.responses[c].load()) + "</td>";
    rows += "<td>" + std::to_string(errors) + "</td>";
    for (std::size_t c = 0; c < static_cast<std::size_t>(ErrorClass::count_); ++c)
      rows += "<td>" + std::to_string(s.errors[c].load()) + "</td>";
    rows += "<td>" + fmt("%.2f", s.latency.quantile(0.5) * 1000) + "</td><td>" + fmt("%.2f", s.latency.quantile(0.99) * 1000) + "</td>";
    rows += "<td>" + std::to_string(std::max<std::int64_t>(0, s.pool_active.load())) + "</td><td>" +
            std::to_string(std::max<std::int64_t>(0, s.pool_idle.load())) + "</td>";
    rows += "<td class=\"check\">" + html_escape(last_check) + "</td></tr>\n";
  }
  const auto& c = data_.counters();
  return R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>kvproxy stats</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}
p.meta{color:#555;margin:.2em 0 1em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#e8e8f0} td.id,td.check,td:nth-child(2){text-align:left}
tr.up td.state{background:#b8e6b8;font-weight:bold;text-align:center}
tr.down td.state{background:#f2a6a6;font-weight:bold;text-align:center}
tr.down{background:#fbe9e9}
</style></head><body>
<h1>kvproxy )" KVRING_VERSION R"(</h1>
<p class="meta">ring version )" + std::to_string(t->version) + " (" + t->fingerprint + ")" +
         (t->migration ? " &middot; <b>rebalancing to ring " + t->migration->fingerprint + ", phase " +
                             std::string(phase_name(t->migration->phase)) + "</b>"
                       : std::string()) +
         " &middot; " + std::to_string(t->backends.size()) +
         " nodes &middot; " + std::to_string(t->ring->point_count()) + " ring points &middot; clients open " +
         std::to_string(std::max<std::int64_t>(0, c.client_open.load())) + " &middot; retries " +
         std::to_string(c.retries.load()) + R"( &middot; refreshes every 2 s &middot; <a href="/stats.json">json</a> &middot; <a href="/metrics">metrics</a></p>
<table id="nodes">
<thead><tr><th rowspan="2">node</th><th rowspan="2">address</th><th colspan="2">status</th><th rowspan="2">weight</th><th rowspan="2">ownership</th>
<th colspan="4">responses</th><th colspan="5">proxy errors</th><th colspan="2">latency ms</th><th colspan="2">pool</th><th rowspan="2">last check</th></tr>
<tr><th>state</th><th>since</th><th>total</th><th>2xx</th><th>4xx</th><th>5xx</th><th>all</th><th>connect</th><th>timeout</th><th>bad</th><th>down</th><th>p50</th><th>p99</th><th>active</th><th>idle</th></tr></thead>
<tbody>
)" + rows + R"(</tbody></table>
</body></html>
)";
}

asio::awaitable<void> Admin::session(net::Worker& worker, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  net::ConnectionScope scope(worker, stream);
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    net::RequestParser parser;
    http::Rejection rejection;
    const auto status = co_await net::read_request(stream, buffer, parser, limits_, scope, rejection);
    if (status == net::ReadStatus::closed) break;
    if (status == net::ReadStatus::rejected) {
      co_await net::send_rejection(stream, parser.is_header_done() ? parser.get().version() : 11, rejection, limits_);
      break;
    }
    auto& req = parser.get();
    Response res;
    res.version(req.version());
    const auto path = target_path(req.target());
    auto allow = [&](beast::http::verb v, std::string_view allowed) {
      if (req.method() == v) return true;
      json_answer(res, beast::http::status::method_not_allowed, json_error("Method not allowed"));
      res.set(beast::http::field::allow, allowed);
      return false;
    };
    // Changing the ring needs the token when there is one; reading the state does not.
    const bool mutating = path.starts_with("/admin/") && req.method() != beast::http::verb::get && req.method() != beast::http::verb::head;
    const auto auth = mutating && !token_.empty() ? check_bearer(req[beast::http::field::authorization], token_) : AuthResult::ok;
    if (auth == AuthResult::missing) {
      json_answer(res, beast::http::status::unauthorized, json_error("This endpoint needs Authorization: Bearer <token>"));
      res.set(beast::http::field::www_authenticate, "Bearer realm=\"kvproxy admin\"");
    } else if (auth == AuthResult::wrong) {
      json_answer(res, beast::http::status::forbidden, json_error("Wrong token"));
    } else if (path == "/stats" || path == "/") {
      if (allow(beast::http::verb::get, "GET")) {
        res.result(beast::http::status::ok);
        res.set(beast::http::field::content_type, "text/html; charset=utf-8");
        res.body() = stats_html();
      }
    } else if (path == "/stats.json") {
      if (allow(beast::http::verb::get, "GET")) json_answer(res, beast::http::status::ok, stats_json());
    } else if (path == "/metrics") {
      if (allow(beast::http::verb::get, "GET")) {
        res.result(beast::http::status::ok);
        res.set(beast::http::field::content_type, "text/plain; version=0.0.4");
        res.body() = data_.render_metrics();
      }
    } else if (path == "/health") {
      if (allow(beast::http::verb::get, "GET")) json_answer(res, beast::http::status::ok, R"({"status":"ok"})");
    } else if (path == "/admin/migration" || path.starts_with("/admin/migration/")) {
      const std::string_view target(req.target().data(), req.target().size());
      const AdminAnswer a = co_await rebalance(path, target, req.method() == beast::http::verb::post, std::move(req.body()));
      json_answer(res, static_cast<beast::http::status>(a.status), a.body);
      if (a.status == 405) res.set(beast::http::field::allow, path == "/admin/migration" ? "GET" : "POST");
    } else if (path == "/admin/ring") {
      if (req.method() == beast::http::verb::get) {
        json_answer(res, beast::http::status::ok, ring_json(*state_.topology()));
      } else if (req.method() == beast::http::verb::post) {
        const ReloadResult r = co_await reload(std::move(req.body()), "<admin body>");
        if (r.ok)
          json_answer(res, beast::http::status::ok, "{\"status\":\"success\",\"version\":" + std::to_string(r.version) + "}");
        else
          json_answer(res, beast::http::status::bad_request, json_error(r.detail));
      } else {
        json_answer(res, beast::http::status::method_not_allowed, json_error("Method not allowed"));
        res.set(beast::http::field::allow, "GET, POST");
      }
    } else {
      json_answer(res, beast::http::status::not_found, json_error("Not found"));
    }
    res.keep_alive(req.keep_alive() && !scope.draining());
    res.prepare_payload();
    stream.expires_after(limits_.write_timeout);
    co_await beast::http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  net::close_stream(stream);
}

}  // namespace kv::proxy
