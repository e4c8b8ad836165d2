// One client connection on a data-path worker: it reads requests (pipelined or not) with
// http::RequestReader, answers what is the proxy's own (/health, /metrics, a missing key, /admin/),
// asks proxy/routing.hpp where each key's request goes, runs the steps it returns through a
// NodeExchange, and relays the answer with X-KV-Node. The stages:
//   idle        waiting for a request's first byte (the idle deadline; a drain closes it)
//   reading     a request has begun (header, then body deadline)
//   forwarding  at a node, or two in turn during a rebalance (the exchange's deadlines)
//   writing     the answer is being sent (write deadline)
//   closing     a refused request: its answer is sent, then what the client still sends is read and
//               dropped for a moment (http/limits.hpp), so that it reads the answer, not a reset
// Bytes are received only while idle or reading: during an exchange the request's views point into
// the buffer, which must not move.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "common/io_buffer.hpp"
#include "http/request_reader.hpp"
#include "net/io_loop.hpp"
#include "proxy/coordinator.hpp"
#include "proxy/node_exchange.hpp"
#include "proxy/routing.hpp"
#include "proxy/versioned.hpp"

namespace kv::proxy {

class Worker;

class ClientConn final : public net::ChannelHandler, NodeExchange::Listener, Coordinator::Client {
 public:
  using Clock = std::chrono::steady_clock;

  ClientConn(Worker& w, std::string peer);
  void start(net::Channel* channel);

  void on_recv(long result) override;
  void on_sent(int result) override;

  // When the current wait ends: the worker's tick calls on_deadline() once it has passed.
  Clock::time_point deadline() const noexcept {
    if (stage_ != Stage::forwarding) return deadline_;
    return quorum_active_ ? coord_->deadline() : exchange_.deadline();
  }
  void on_deadline();
  bool idle() const noexcept { return stage_ == Stage::idle && in_.empty(); }
  // Gives the buffer back while idle (the worker's tick: a busy connection keeps its block).
  void trim();
  void close(bool graceful = false);

  std::list<std::unique_ptr<ClientConn>>::iterator self;  // its place in the worker's list

 private:
  enum class Stage { idle, reading, forwarding, writing, closing };

  // Reading requests
  void drive();
  bool parse();  // true: the request was dealt with (an exchange began, or an answer, or a close)
  void receive();
  void reject(const http::Rejection& r);
  void begin_linger();
  void linger(long result);

  // The exchange
  void dispatch();
  void run_step();
  void on_node_answer(NodeExchange& x) override;
  void relay(NodeExchange& x);
  void answer_for(Backend& b, unsigned status, std::string_view body);
  void on_node_failure(NodeExchange& x, NodeExchange::Failure f, const std::string& detail) override;
  // replicas: N > 1: the request runs over the key's replica set (proxy/coordinator.hpp).
  void start_quorum(std::uint64_t key_hash);
  void on_quorum_done(Coordinator& c) override;
  void let_coordinator_go();
  void local_answer(unsigned status, std::string_view content_type, std::string_view body,
                    std::string_view extra_fields = {});
  void send_answer();
  void send_out();
  void finish_exchange();
  const http::ScannedHead& req() const noexcept { return reader_.head(); }

  Worker& w_;
  net::Channel* ch_ = nullptr;
  std::string peer_;  // for the access log
  Stage stage_ = Stage::idle;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool closed_ = false;
  bool driving_ = false;
  bool receiving_ = false;
  bool sending_ = false;
  bool out_waiting_ = false;  // out_ is ready, behind a 100 Continue still being sent
  bool eof_ = false;          // the client has half-closed (or reset)
  bool body_deadline_ = false;  // the body deadline replaced the header deadline
  IoBuffer in_;
  std::string out_;  // the answer, kept until it is sent
  std::size_t linger_bytes_ = 0;
  http::RequestReader reader_;

  // Where it goes
  std::shared_ptr<const Topology> topology_;  // held for the whole exchange: a reload cannot pull it away
  Access access_ = Access::read;
  Route route_;
  std::uint8_t step_ = 0;  // of the plan (run_step() lists them)
  NodeExchange exchange_;
  // The plans that reach both owners of a moving key (proxy/routing.hpp)
  Found found_[2];          // what each owner said it holds
  Tag tag_;                 // versioned_write: the one tag both owners get
  std::uint8_t newer_ = 0;  // read_both: the owner whose answer is the client's
  unsigned saved_status_ = 0;
  std::string saved_body_;  // read_both: that answer's body, kept past its exchange
  // A replicated key's request: its coordinator (kept for the next request once idle; handed to the
  // worker while stragglers run), and the fields of the answer it makes.
  std::unique_ptr<Coordinator> coord_;
  bool quorum_active_ = false;
  std::string answer_fields_;

  // What the client got, and when: read_done_ for the latency histogram; first_byte_ and the
  // exchange's timings only for the access log, and only taken when there is one.
  Clock::time_point first_byte_, read_done_;
  double connect_ms_ = -1, first_byte_ms_ = -1;
  unsigned answer_status_ = 0;
  std::uint64_t answer_bytes_ = 0;
  const Backend* answered_by_ = nullptr;
  bool answer_keep_alive_ = true;
};

}  // namespace kv::proxy
