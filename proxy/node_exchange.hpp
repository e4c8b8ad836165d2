// One request to one node and its answer: over a pooled keep-alive connection, or a new one; the
// answer read by http/response_reader.hpp; connect and response deadlines; and the one retry a proxy
// may make on its own, when a pooled connection the node had closed failed before any byte of an
// answer (the request never reached the node). Nothing else is retried.
//
// The caller (a client connection; later, a coordinator of several nodes) fills request(), calls
// start(), and hears once: on_node_answer() (then reads answer() and body() and calls release()) or
// on_node_failure(). Node-level facts are recorded here: answers and errors in the backend's
// statistics, a failed connect marking the node down at once (the passive check).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "http/response_reader.hpp"
#include "proxy/node_pool.hpp"

namespace kv::proxy {

class Worker;

class NodeExchange final : NodeConnOwner {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Failure : std::uint8_t {
    connect,       // could not connect (the node is marked down): 503
    timeout,       // no whole answer within the response timeout: 504
    bad_response,  // closed without answering, or an answer that cannot be read: 502
  };

  class Listener {
   public:
    virtual void on_node_answer(NodeExchange& x) = 0;
    virtual void on_node_failure(NodeExchange& x, Failure f, const std::string& detail) = 0;

   protected:
    ~Listener() = default;
  };

  NodeExchange(Worker& w, Listener& l) : w_(w), listener_(l) {}
  NodeExchange(const NodeExchange&) = delete;
  NodeExchange& operator=(const NodeExchange&) = delete;

  // The request as the node gets it; kept until the exchange ends (a retry sends it again).
  std::string& request() noexcept { return request_; }
  // Sends request() to `b`. `head_request`: the answer has no body whatever it says.
  void start(Backend& b, bool head_request);
  Backend& backend() const noexcept { return *backend_; }

  // After on_node_answer(): the answer, until release().
  const http::ScannedHead& answer() const noexcept { return reader_.head(); }
  std::string_view body() const noexcept { return reader_.body(); }
  // The answer has been used: the connection goes back to its pool if the answer allows it.
  void release();
  // Drops the connection of an exchange under way (the client went away): nothing more is heard.
  void abort();

  // While under way: when the current wait (connect, or request sent to whole answer) ends.
  Clock::time_point deadline() const noexcept { return deadline_; }
  void on_deadline();

  // For the access log, taken only when the worker has one (ms; -1: not measured, or a pooled
  // connection for connect_ms).
  double connect_ms() const noexcept { return connect_ms_; }
  double first_byte_ms() const noexcept { return first_byte_ms_; }

 private:
  void on_node_recv(long result) override;
  void on_node_sent(int result) override;
  void on_node_connected(int result) override;

  void attempt(bool pooled_ok);
  void send();
  void read(bool eof, int error);
  void answer_failed(int error, std::string detail);
  void fail(Failure f, const std::string& detail);
  void drop_connection();

  Worker& w_;
  Listener& listener_;
  std::string request_;
  Backend* backend_ = nullptr;
  std::unique_ptr<NodeConn> conn_;
  http::ResponseReader reader_;
  bool head_request_ = false;
  bool reused_ = false;           // the connection came from the pool
  bool retried_ = false;          // this is the one retry
  bool got_answer_bytes_ = false;
  bool active_ = false;           // counted in the pool's active connections
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point connect_start_, sent_;
  double connect_ms_ = -1, first_byte_ms_ = -1;
};

}  // namespace kv::proxy
