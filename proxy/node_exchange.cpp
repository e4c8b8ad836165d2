#include "proxy/node_exchange.hpp"

#include <cerrno>
#include <system_error>

#include "proxy/worker.hpp"

namespace kv::proxy {

namespace {

std::string os_message(int e) { return std::system_category().message(e); }

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

void NodeExchange::start(Backend& b, bool head_request) {
  backend_ = &b;
  head_request_ = head_request;
  retried_ = false;
  connect_ms_ = first_byte_ms_ = -1;
  attempt(true);
}

// Sends the request over a pooled connection (when `pooled_ok`) or a new one.
void NodeExchange::attempt(bool pooled_ok) {
  Backend& b = *backend_;
  got_answer_bytes_ = false;
  reader_.start(head_request_, w_.opt.max_response_bytes);
  conn_ = pooled_ok ? w_.pools.take_idle(b) : nullptr;
  reused_ = conn_ != nullptr;
  if (!conn_) {
    std::string error;
    if (w_.log) connect_start_ = Clock::now();
    conn_ = w_.pools.connect(b, error);
    if (!conn_) {
      fail(Failure::connect, error);
      return;
    }
  }
  conn_->owner = this;
  b.stats.pool_active.fetch_add(1, std::memory_order_relaxed);
  active_ = true;
  if (conn_->connecting) {
    deadline_ = w_.loop.now() + w_.opt.connect_timeout;  // sent once connected
    return;
  }
  send();
}

void NodeExchange::send() {
  // One budget for sending and the whole answer.
  if (w_.log) sent_ = Clock::now();
  deadline_ = w_.loop.now() + w_.opt.response_timeout;
  conn_->sending = true;
  conn_->channel->send(request_);
  conn_->receive();  // a pooled connection has its receive outstanding already
}

void NodeExchange::on_node_connected(int result) {
  if (result < 0) {
    fail(Failure::connect, "connect: " + os_message(-result));
    return;
  }
  if (w_.log) connect_ms_ = ms_since(connect_start_);
  send();
}

void NodeExchange::on_node_sent(int result) {
  if (result < 0) answer_failed(-result, "");
}

void NodeExchange::on_node_recv(long result) {
  if (result > 0) got_answer_bytes_ = true;
  read(result == 0, result < 0 ? static_cast<int>(-result) : 0);
}

void NodeExchange::read(bool eof, int error) {
  const auto status = reader_.read(conn_->in, eof, error);
  if (reader_.head_seen() && first_byte_ms_ < 0 && w_.log) first_byte_ms_ = ms_since(sent_);
  switch (status) {
    case http::ResponseReader::Status::more:
      conn_->receive();
      return;
    case http::ResponseReader::Status::failed:
      answer_failed(error, reader_.failure());
      return;
    case http::ResponseReader::Status::complete:
      deadline_ = Clock::time_point::max();
      backend_->stats.response(reader_.head().status);
      listener_.on_node_answer(*this);
      return;
  }
}

// The node closed, failed or sent something unreadable. A pooled connection that the node closed
// as the request reached it, before any byte of an answer, is retried once on a fresh connection.
void NodeExchange::answer_failed(int error, std::string detail) {
  // Nothing came back and the connection is gone (EOF, reset): the node had closed it.
  const bool nothing = !got_answer_bytes_ && (error == 0 || error == ECONNRESET || error == EPIPE);
  if (nothing && reused_ && !retried_) {
    w_.counters.retries.fetch_add(1, std::memory_order_relaxed);
    drop_connection();
    retried_ = true;
    attempt(false);
    return;
  }
  if (detail.empty()) detail = os_message(error);
  fail(Failure::bad_response, nothing ? "closed the connection without answering" : "bad answer: " + detail);
}

void NodeExchange::on_deadline() {
  if (conn_ && conn_->connecting) {
    fail(Failure::connect, "connect timed out after " + std::to_string(w_.opt.connect_timeout.count()) + " ms");
  } else {
    fail(Failure::timeout, "no answer within " + std::to_string(w_.opt.response_timeout.count()) + " ms");
  }
}

void NodeExchange::fail(Failure f, const std::string& detail) {
  Backend& b = *backend_;
  drop_connection();
  deadline_ = Clock::time_point::max();
  switch (f) {
    case Failure::connect:
      w_.cluster.passive_down(b, detail);
      b.stats.error(ErrorClass::connect);
      break;
    case Failure::timeout:
      b.stats.error(ErrorClass::timeout);
      break;
    case Failure::bad_response:
      b.stats.error(ErrorClass::bad_response);
      break;
  }
  listener_.on_node_failure(*this, f, detail);
}

void NodeExchange::release() {
  if (!conn_) return;
  conn_->in.consume(reader_.consumed());
  active_ = false;
  backend_->stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
  conn_->owner = nullptr;
  w_.pools.release(std::move(conn_), reader_.head().keep_alive);
}

void NodeExchange::abort() {
  drop_connection();
  deadline_ = Clock::time_point::max();
}

void NodeExchange::drop_connection() {
  if (!conn_) return;
  if (active_) backend_->stats.pool_active.fetch_sub(1, std::memory_order_relaxed);
  active_ = false;
  conn_->owner = nullptr;
  w_.pools.close(std::move(conn_));
}

}  // namespace kv::proxy
