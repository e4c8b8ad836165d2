#include "proxy/ring_control.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "common/files.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/ring_change.hpp"
#include "net/server.hpp"
#include "proxy/data_path.hpp"

namespace kv::proxy {

namespace asio = boost::asio;
using rebalance::Step;

namespace {

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

AdminAnswer refusal(unsigned status, std::string_view detail) { return {status, json_error(detail)}; }

}  // namespace

RingControl::RingControl(Cluster& cluster, DataPath& data, asio::thread_pool& control, std::string ring_path,
                         std::chrono::milliseconds drain_timeout)
    : cluster_(cluster), data_(data), control_(control), ring_path_(std::move(ring_path)), drain_timeout_(drain_timeout) {}

asio::awaitable<ReloadResult> RingControl::reload(std::string yaml, std::string source) {
  ReloadResult r;
  auto refuse = [&](std::string why) {
    r.detail = std::move(why);
    cluster_.reloads_failed.fetch_add(1);
    std::cerr << "kvproxy: reload refused, keeping version " << cluster_.version() << ": " << r.detail << std::endl;
  };
  if (const auto t = cluster_.topology(); t->migration) {
    refuse("a rebalance to ring " + t->migration->fingerprint() + " is in progress (phase " +
           std::string(rebalance::phase_name(t->migration->phase())) + "); finish or abort it first");
    co_return r;
  }
  if (changing_) {
    refuse("another ring change is being applied; retry");
    co_return r;
  }
  const ScopedFlag changing(changing_);
  try {
    // Parse, validate, resolve and build off the event loop; only the swap happens here.
    const auto current = cluster_.topology();
    std::function<std::shared_ptr<Topology>()> build = [this, current, yaml = std::move(yaml), source]() {
      auto next = cluster_.prepare(parse_ring_config(yaml, source), source);
      // A reload moves no data. With one owner per key that is the operator's call (as HAProxy's);
      // with replicas it would break the majorities' overlap (a majority of the new replica set may
      // hold none of a key's writes), so replicated membership changes only through a rebalance.
      const std::uint32_t was = current->ring->replicas(), now = next->ring->replicas();
      if ((was > 1 || now > 1) && next->fingerprint != current->fingerprint)
        throw ConfigError(source + ": " +
                          (was != now ? "replicas: " + std::to_string(was) + " -> " + std::to_string(now)
                                      : std::string("the membership of a ring with replicas: ") + std::to_string(was)) +
                          " cannot change by a reload, which moves no data (a majority of the new replica sets "
                          "could hold none of a key's writes); only proxy settings can");
      return next;
    };
    auto next = co_await net::async_run(control_, std::move(build), asio::use_awaitable);
    r.version = cluster_.publish(std::move(next));
    r.ok = true;
    cluster_.reloads_ok.fetch_add(1);
    std::cerr << "kvproxy: ring reloaded from " << source << ": version " << r.version << std::endl;
  } catch (const std::exception& e) {
    refuse(e.what());
  }
  co_return r;
}

void RingControl::reload_from_file(asio::io_context& ioc) {
  auto text = read_file(ring_path_);
  if (!text) {
    cluster_.reloads_failed.fetch_add(1);
    std::cerr << "kvproxy: reload refused, keeping version " << cluster_.version() << ": " << ring_path_
              << ": (file): cannot open for reading" << std::endl;
    return;
  }
  asio::co_spawn(ioc, [this, text = std::move(*text)]() -> asio::awaitable<void> { co_await reload(text, ring_path_); },
                 asio::detached);
}

std::string RingControl::position_json() const {
  const auto t = cluster_.topology();
  rebalance::Position p;
  p.version = t->version;
  p.fingerprint = t->fingerprint;
  if (t->migration) {
    p.change.phase = t->migration->phase();
    p.change.from = t->migration->change.from;
    p.change.to = t->migration->fingerprint();
  }
  return rebalance::position_json(p);
}

asio::awaitable<AdminAnswer> RingControl::publish_step(std::shared_ptr<Topology> next) {
  const auto version = cluster_.publish(std::move(next));
  data_.refresh_workers();
  const auto deadline = net::Clock::now() + drain_timeout_;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    const auto in_use = cluster_.older_in_use();
    if (in_use == 0) co_return AdminAnswer{200, position_json()};
    if (net::Clock::now() >= deadline) {
      co_return refusal(503, "ring version " + std::to_string(version) + " is in use, but " + std::to_string(in_use) +
                                 " requests still used an older one after " + std::to_string(drain_timeout_.count()) +
                                 " ms; retry");
    }
    timer.expires_after(std::chrono::milliseconds(2));
    boost::system::error_code ec;
    co_await timer.async_wait(net::use_ec(ec));
    data_.refresh_workers();  // a worker may have taken a request meanwhile with the older ring
  }
}

asio::awaitable<AdminAnswer> RingControl::step(Step s, std::string_view target, std::string body) {
  if (changing_) co_return refusal(409, "another ring change is being applied; retry");
  const ScopedFlag changing(changing_);
  AdminAnswer a = co_await run_step(s, target, std::move(body));
  std::cerr << "kvproxy: rebalance " << rebalance::step_name(s) << ": " << (a.status == 200 ? "ok" : "refused") << ": "
            << a.body << std::endl;
  co_return a;
}

// What a step works on: the topology in use, its rebalance if any, and how to let go of both before
// publishing (a drain waits for every reference to an older ring to be dropped, these included).
struct RingControl::Current {
  std::shared_ptr<const Topology> t;
  const Migration* m = nullptr;
  std::shared_ptr<Topology> release(std::shared_ptr<Topology> next) {
    m = nullptr;
    t.reset();
    return next;
  }
  std::string in_progress() const {
    return "a rebalance to ring " + m->fingerprint() + " is in progress (phase " +
           std::string(rebalance::phase_name(m->phase())) + ")";
  }
};

asio::awaitable<AdminAnswer> RingControl::run_step(Step s, std::string_view target, std::string body) {
  Current c{cluster_.topology()};
  c.m = c.t->migration.get();
  switch (s) {
    case Step::begin: co_return co_await begin(c, query_value(target, rebalance::kFromParam), std::move(body));
    case Step::read_new: co_return co_await read_new(c, query_value(target, rebalance::kToParam));
    case Step::finish: co_return co_await finish(c, query_value(target, rebalance::kToParam));
    case Step::abort: co_return co_await abort(c);
  }
  co_return refusal(404, "Not found");
}

// Saved before it is published: a restart must never come back in an earlier phase.
std::optional<AdminAnswer> RingControl::save(const Migration& next) const {
  try {
    write_file_atomic(rebalance::saved_change_path(ring_path_), rebalance::format_saved_change(next.change));
    return std::nullopt;
  } catch (const std::exception& e) {
    return refusal(500, std::string("cannot save the rebalance state: ") + e.what());
  }
}

asio::awaitable<AdminAnswer> RingControl::begin(Current& c, std::string_view from, std::string yaml) {
  if (from.size() != 16) co_return refusal(400, "from: expected the current ring's fingerprint (16 hex digits)");
  std::shared_ptr<Migration> next;
  try {
    std::function<std::shared_ptr<Migration>()> build = [this, yaml = std::move(yaml)]() mutable {
      auto config = parse_ring_config(yaml, "<admin body>");
      return cluster_.prepare_migration(std::move(config), std::move(yaml), Phase::dual_write, "<admin body>");
    };
    next = co_await net::async_run(control_, std::move(build), asio::use_awaitable);
  } catch (const std::exception& e) {
    co_return refusal(400, e.what());
  }
  // (Nothing else changed the ring during the build: changing_ keeps reloads and steps out.)
  if (c.m) {
    if (c.m->fingerprint() != next->fingerprint()) co_return refusal(409, c.in_progress() + "; finish or abort it first");
    // Begun already (an apply run again): wait for the drain once more and say where it stands.
    co_return co_await publish_step(c.release(with_migration(*c.t, c.t->migration)));
  }
  if (from != c.t->fingerprint)
    co_return refusal(409, "this proxy's ring is " + c.t->fingerprint + ", not " + std::string(from));
  if (next->fingerprint() == c.t->fingerprint) co_return refusal(409, "the new ring is the ring in use: nothing to move");
  if (auto failed = save(*next)) co_return *failed;
  co_return co_await publish_step(c.release(with_migration(*c.t, std::move(next))));
}

asio::awaitable<AdminAnswer> RingControl::read_new(Current& c, std::string_view to) {
  if (!c.m) {
    // Past it already: this proxy finished while another did not (an apply stopped between the two
    // finishes, then run again, takes read-new on every proxy).
    if (c.t->fingerprint == to) co_return co_await publish_step(c.release(with_migration(*c.t, nullptr)));
    co_return refusal(409, "no rebalance is in progress");
  }
  if (c.m->fingerprint() != to) co_return refusal(409, c.in_progress() + ", not to " + std::string(to));
  auto next = std::make_shared<Migration>(*c.m);
  next->change.phase = Phase::read_new;
  if (auto failed = save(*next)) co_return *failed;
  co_return co_await publish_step(c.release(with_migration(*c.t, std::move(next))));
}

// The new ring becomes the ring, saved as the ring file (the old one kept as .prev).
asio::awaitable<AdminAnswer> RingControl::finish(Current& c, std::string_view to) {
  if (!c.m) {
    if (c.t->fingerprint == to) {  // finished already (an apply run again)
      co_return co_await publish_step(c.release(with_migration(*c.t, nullptr)));
    }
    co_return refusal(409, "no rebalance is in progress and the ring is " + c.t->fingerprint + ", not " + std::string(to));
  }
  if (c.m->fingerprint() != to) co_return refusal(409, c.in_progress() + ", not to " + std::string(to));
  if (c.m->phase() != Phase::read_new) co_return refusal(409, c.in_progress() + ": read-new comes before finish");
  try {
    // NEW's membership, this proxy's own settings (its proxy: section) kept.
    std::string text = c.m->change.yaml;
    if (auto old = read_file_if_exists(ring_path_)) {
      text = "# saved by kvproxy on finishing a rebalance to ring " + c.m->fingerprint() + "; the file before is " +
             ring_path_ + ".prev\n" + with_membership(*old, c.m->change.yaml, ring_path_);
      if (ring_fingerprint(parse_ring_config(text, ring_path_)) != c.m->fingerprint())
        throw ConfigError(ring_path_ + ": the merged file is not ring " + c.m->fingerprint());
      write_file_atomic(ring_path_ + ".prev", *old);
    }
    write_file_atomic(ring_path_, text);
  } catch (const std::exception& e) {
    co_return refusal(500, std::string("cannot save the new ring: ") + e.what());
  }
  ::unlink(rebalance::saved_change_path(ring_path_).c_str());
  co_return co_await publish_step(c.release(finished(*c.m)));
}

asio::awaitable<AdminAnswer> RingControl::abort(Current& c) {
  if (!c.m) co_return AdminAnswer{200, position_json()};
  const std::string state_path = rebalance::saved_change_path(ring_path_);
  if (::unlink(state_path.c_str()) != 0 && errno != ENOENT)
    co_return refusal(500, "cannot remove " + state_path + ": " + std::strerror(errno));
  co_return co_await publish_step(c.release(with_migration(*c.t, nullptr)));
}

void RingControl::restore() {
  const std::string path = rebalance::saved_change_path(ring_path_);
  std::optional<std::string> text;
  try {
    text = read_file_if_exists(path);
  } catch (const std::exception& e) {
    throw ConfigError(e.what());
  }
  if (!text) return;
  const rebalance::RingChange saved = rebalance::parse_saved_change(*text, path);
  const auto t = cluster_.topology();
  if (saved.from != t->fingerprint)
    throw ConfigError(path + ": from: the rebalance began from ring " + saved.from + ", but " + ring_path_ + " is ring " +
                      t->fingerprint + " (finish it by hand: see README, Add a node)");
  auto m = cluster_.prepare_migration(parse_ring_config(saved.yaml, path), saved.yaml, saved.phase, path);
  if (m->fingerprint() != saved.to)
    throw ConfigError(path + ": to: the header says ring " + saved.to + ", the text is ring " + m->fingerprint());
  cluster_.publish(with_migration(*t, std::move(m)));
  std::cerr << "kvproxy: resuming the rebalance saved in " << path << ": phase " << rebalance::phase_name(saved.phase)
            << ", to ring " << saved.to << std::endl;
}

}  // namespace kv::proxy
