#include "net/server.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "net/listener.hpp"

namespace kv::net {

void Worker::sweep() {
  const auto now = Clock::now();
  for (auto& c : connections) {
    if (c.deadline > now) continue;
    c.deadline = Clock::time_point::max();
    c.timed_out = true;
    beast::error_code ignored;
    c.stream->socket().cancel(ignored);
  }
  sweep_timer.expires_after(http::kSweepInterval);
  sweep_timer.async_wait([this](const beast::error_code& ec) {
    if (!ec) sweep();
  });
}

struct Server::Impl {
  struct Listener {
    std::unique_ptr<tcp::acceptor> acceptor;
    SessionHandler handler;
    bool spread = true;
    std::size_t next = 0;
    std::unique_ptr<AcceptGate> gate;
  };

  std::string name;
  std::chrono::milliseconds shutdown_timeout;
  // Listeners before workers, so destroyed after them: a session a drain deadline cut off is destroyed
  // with its worker's loop, and gives its place back to its listener's gate as it goes.
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<std::unique_ptr<Worker>> workers;
  std::map<int, std::function<void()>> signal_handlers;
  std::vector<std::function<void()>> drain_hooks;
  std::atomic<bool> stop_requested{false};
  // Lives as long as the server: while it exists, the signals are ours. Destroying it restores the
  // default action, so a second SIGTERM during the caller's final flush would kill the process.
  std::unique_ptr<asio::signal_set> signals;

  static asio::awaitable<void> counted(Listener& l, asio::awaitable<void> session) {
    struct Release {
      Listener& l;
      ~Release() { l.gate->closed(); }
    } release{l};
    co_await std::move(session);
  }

  asio::awaitable<void> accept_loop(Listener& l) {
    asio::steady_timer pause(workers[0]->ioc);
    for (;;) {
      beast::error_code ec;
      // At maxconn, or pausing after a failed accept, stop accepting: new clients wait in the
      // kernel's backlog, not in our memory.
      while (!l.gate->may_accept(Clock::now()) && l.acceptor->is_open()) {
        pause.expires_after(std::chrono::milliseconds(5));
        co_await pause.async_wait(use_ec(ec));
      }
      Worker& w = *workers[l.spread ? l.next : 0];
      l.next = (l.next + 1) % workers.size();
      // Accepted on the acceptor's own loop (worker 0). A socket must be registered with a worker's
      // reactor on that worker's thread: reactor I/O locking is off (CONCURRENCY_HINT_UNSAFE_IO), so
      // registering it from here could reuse a descriptor record the worker is still reading (TSan).
      tcp::socket sock = co_await l.acceptor->async_accept(use_ec(ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !l.acceptor->is_open()) co_return;
        l.gate->failed(name, ec.value(), Clock::now());
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      l.gate->opened();
      auto start = [&l](Worker& on, tcp::socket s) {
        asio::co_spawn(on.ioc, counted(l, l.handler(on, std::move(s))), asio::detached);
      };
      if (&w == workers[0].get()) {
        start(w, std::move(sock));
        continue;
      }
      const auto protocol = sock.local_endpoint(ec).protocol();
      const int fd = ec ? -1 : sock.release(ec);
      if (fd < 0) {
        l.gate->closed();
        continue;  // the client is gone already
      }
      asio::post(w.ioc, [&l, &w, fd, protocol, start] {
        beast::error_code assign_ec;
        tcp::socket moved(w.ioc);
        moved.assign(protocol, fd, assign_ec);
        if (assign_ec) {
          ::close(fd);
          l.gate->closed();
          return;
        }
        start(w, std::move(moved));
      });
    }
  }

  void begin_drain() {  // on worker 0's thread, where the acceptors live
    for (auto& hook : drain_hooks) hook();
    beast::error_code ec;
    for (auto& l : listeners) l->acceptor->close(ec);
    for (auto& wp : workers) {
      Worker* w = wp.get();
      asio::post(w->ioc, [this, w] {
        w->stopping = true;
        // Whatever is still in flight at the deadline is cut off.
        w->drain_deadline.expires_after(shutdown_timeout);
        w->drain_deadline.async_wait([this, w](const beast::error_code& timer_ec) {
          if (timer_ec) return;
          std::cerr << name << ": drain deadline passed; closing " << w->connections.size() << " connection(s)"
                    << std::endl;
          w->ioc.stop();
        });
        for (auto& c : w->connections)
          if (c.idle) c.stream->socket().cancel();  // busy ones close after their response
        w->finish_if_drained();
      });
    }
  }

  void stop() {
    if (stop_requested.exchange(true)) return;
    asio::post(workers[0]->ioc, [this] { begin_drain(); });
  }

  void wait_for_signal() {
    signals->async_wait([this](const beast::error_code& ec, int sig) {
      if (ec) return;
      if (auto it = signal_handlers.find(sig); it != signal_handlers.end()) {
        it->second();
      } else {
        const char* sname = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        if (stop_requested.load()) {
          std::cerr << name << ": " << sname << ": already draining" << std::endl;
        } else {
          std::cerr << name << ": " << sname << ": draining" << std::endl;
          stop();
        }
      }
      wait_for_signal();
    });
  }
};

Server::Server(std::string name, unsigned threads, std::chrono::milliseconds shutdown_timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->shutdown_timeout = shutdown_timeout;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) impl_->workers.push_back(std::make_unique<Worker>(i));
  // The signals are ours from here on, before any "listening on" line: a SIGTERM that comes before
  // run() is queued by the set and handled then, instead of killing the process (seen: a test that
  // stopped a proxy right after its first answer, on a loaded machine, got exit code -15).
  impl_->signals = std::make_unique<asio::signal_set>(impl_->workers[0]->ioc, SIGTERM, SIGINT);
}

Server::~Server() = default;

std::uint16_t Server::listen(const HostPort& address, SessionHandler handler, bool spread, std::size_t maxconn) {
  const Listening bound = open_listener(address);
  auto acc = std::make_unique<tcp::acceptor>(impl_->workers[0]->ioc);
  beast::error_code ec;
  acc->assign(bound.family == AF_INET6 ? tcp::v6() : tcp::v4(), bound.fd, ec);
  if (ec) {
    ::close(bound.fd);
    throw std::runtime_error("cannot listen on " + address.str() + ": " + ec.message());
  }
  auto l = std::make_unique<Impl::Listener>();
  l->acceptor = std::move(acc);
  l->handler = std::move(handler);
  l->spread = spread;
  l->gate = std::make_unique<AcceptGate>(maxconn);
  impl_->listeners.push_back(std::move(l));
  return bound.port;
}

void Server::on_signal(int signal, std::function<void()> fn) {
  impl_->signal_handlers[signal] = std::move(fn);
  impl_->signals->add(signal);
}

void Server::on_drain(std::function<void()> fn) { impl_->drain_hooks.push_back(std::move(fn)); }

void Server::stop() { impl_->stop(); }

std::size_t Server::worker_count() const { return impl_->workers.size(); }

Worker& Server::worker(std::size_t i) { return *impl_->workers[i]; }

void Server::run() {
  auto& ioc0 = impl_->workers[0]->ioc;
  impl_->wait_for_signal();
  for (auto& l : impl_->listeners) asio::co_spawn(ioc0, impl_->accept_loop(*l), asio::detached);

  for (auto& w : impl_->workers) asio::post(w->ioc, [wp = w.get()] { wp->sweep(); });

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->workers.size(); ++i)
    threads.emplace_back([w = impl_->workers[i].get()] { w->ioc.run(); });
  ioc0.run();
  for (auto& t : threads) t.join();
}

}  // namespace kv::net
