#include "proxy/data_path.hpp"

#include <unistd.h>

#include "net/listener.hpp"

namespace kv::proxy {

DataPath::DataPath(Cluster& cluster, ProxyOptions options, unsigned threads, AccessLog* log, net::IoLoop::Kind io)
    : opt_(std::move(options)), gate_(opt_.maxconn), shared_{cluster, opt_, counters_, log, gate_} {
  shared_.several_workers = threads > 1;
  for (unsigned i = 0; i < std::max(1u, threads); ++i)
    workers_.push_back(std::make_unique<Worker>(shared_, net::IoLoop::make(io)));
}

DataPath::~DataPath() {
  join();
  workers_.clear();
  if (shared_.listen_fd >= 0) ::close(shared_.listen_fd);
}

const char* DataPath::io_name() const noexcept { return workers_.front()->loop.name(); }

std::uint16_t DataPath::listen(const HostPort& address) {
  const net::Listening l = net::open_listener(address);
  shared_.listen_fd = l.fd;
  return l.port;
}

void DataPath::start() {
  for (auto& w : workers_) w->thread = std::thread([w = w.get()] { w->run(); });
}

void DataPath::drain(std::chrono::milliseconds timeout) {
  for (auto& w : workers_) w->loop.post([w = w.get(), timeout] { w->begin_drain(timeout); });
}

void DataPath::join() {
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void DataPath::refresh_workers() {
  for (auto& w : workers_) w->loop.post([w = w.get()] { w->current(); });
}

}  // namespace kv::proxy
