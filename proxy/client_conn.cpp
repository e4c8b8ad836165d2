#include "proxy/client_conn.hpp"

#include <sys/socket.h>

#include <algorithm>

#include "common/hash.hpp"
#include "common/json.hpp"
#include "common/key.hpp"
#include "common/rebalance.hpp"
#include "common/replica.hpp"
#include "http/head_writer.hpp"
#include "http/policy.hpp"
#include "proxy/access_log.hpp"
#include "proxy/stats.hpp"
#include "proxy/versioned.hpp"
#include "proxy/worker.hpp"

namespace kv::proxy {

using namespace std::string_view_literals;  // appending a literal as a view skips its strlen()

namespace {

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

ClientConn::ClientConn(Worker& w, std::string peer)
    : w_(w), peer_(std::move(peer)), reader_(w.opt.client), exchange_(w, *this) {}

void ClientConn::start(net::Channel* channel) {
  ch_ = channel;
  deadline_ = w_.loop.now() + w_.opt.client.idle_timeout;
  drive();
}

void ClientConn::trim() {
  if (idle()) in_.release(w_.loop.blocks());
}

void ClientConn::receive() {
  if (receiving_) return;
  receiving_ = true;
  ch_->recv(in_);
}

// ---- reading requests ---------------------------------------------------------------------------

void ClientConn::on_recv(long result) {
  receiving_ = false;
  if (stage_ == Stage::closing) {
    linger(result);
    return;
  }
  if (result <= 0) eof_ = true;  // closed, or reset: as good as gone
  drive();
}

void ClientConn::on_sent(int result) {
  sending_ = false;
  if (result < 0) {
    close();
    return;
  }
  if (out_waiting_) {
    out_waiting_ = false;
    send_out();
  } else if (stage_ == Stage::writing) {
    finish_exchange();
  } else if (stage_ == Stage::closing) {
    begin_linger();
  }
}

// Parses until the connection waits for bytes or a request is being dealt with. A request answered
// at once (a local answer) ends in finish_exchange(), which calls drive() again: that call returns
// at once and this loop takes the next request, so pipelined requests never recurse.
void ClientConn::drive() {
  if (driving_) return;
  driving_ = true;
  while (!closed_) {
    if (stage_ != Stage::idle && stage_ != Stage::reading) break;
    if (stage_ == Stage::idle && in_.empty() && (w_.draining || eof_)) {
      close();
      break;
    }
    if (parse()) continue;
    // More bytes needed.
    if (eof_) {  // the client half-closed in the middle of a request: nobody to answer
      close();
      break;
    }
    if (stage_ == Stage::idle) deadline_ = w_.loop.now() + w_.opt.client.idle_timeout;
    receive();
    break;
  }
  driving_ = false;
}

bool ClientConn::parse() {
  if (stage_ == Stage::idle) {
    if (in_.empty()) return false;
    stage_ = Stage::reading;
    if (w_.log) first_byte_ = Clock::now();
    deadline_ = w_.loop.now() + w_.opt.client.header_timeout;
    body_deadline_ = false;
  }
  const auto status = reader_.read(in_);
  if (reader_.head_done() && !body_deadline_) {
    body_deadline_ = true;
    deadline_ = w_.loop.now() + w_.opt.client.body_timeout;
  }
  // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
  if (reader_.take_continue() && !sending_) {
    sending_ = true;
    ch_->send(http::kContinue);
  }
  switch (status) {
    case http::RequestReader::Status::more:
      return false;
    case http::RequestReader::Status::complete:
      dispatch();
      return true;
    case http::RequestReader::Status::rejected:
      reject(reader_.rejection());
      return true;
  }
  return true;
}

void ClientConn::reject(const http::Rejection& r) {
  w_.counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
  out_.clear();
  http::append_rejection(out_, reader_.version(), r);
  stage_ = Stage::closing;
  linger_bytes_ = 0;
  deadline_ = w_.loop.now() + w_.opt.client.write_timeout;
  send_out();
}

void ClientConn::begin_linger() {
  ::shutdown(ch_->fd(), SHUT_WR);
  in_.consume(in_.size());
  linger_bytes_ = 1;  // lingering: counts from 1
  deadline_ = w_.loop.now() + http::kLingerTimeout;
  receive();
}

void ClientConn::linger(long result) {
  if (linger_bytes_ == 0) return;  // the answer is still going out
  if (result <= 0) {
    close();  // the client is done too
    return;
  }
  linger_bytes_ += static_cast<std::size_t>(result);
  in_.consume(in_.size());
  if (linger_bytes_ > http::kLingerBytes) {
    close();
    return;
  }
  deadline_ = w_.loop.now() + http::kLingerTimeout;
  receive();
}

// ---- the exchange -------------------------------------------------------------------------------

// A whole request is in: the proxy's own paths, then the key, then where routing sends it.
void ClientConn::dispatch() {
  stage_ = Stage::forwarding;
  deadline_ = Clock::time_point::max();
  read_done_ = Clock::now();
  answered_by_ = nullptr;
  connect_ms_ = first_byte_ms_ = -1;
  auto& counters = w_.counters;
  const auto path = target_path(req().target);
  if (path == http::kHealthPath || path == http::kMetricsPath) {
    if (!http::is_read(req().method)) {
      counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
      local_answer(405, http::kJson, json_error(http::kMethodNotAllowed), http::kAllowReadLine);
      return;
    }
    counters.local_2xx.fetch_add(1, std::memory_order_relaxed);
    if (path == http::kHealthPath) local_answer(200, http::kJson, http::kHealthOk);
    else local_answer(200, http::kPrometheusText, render_prometheus(snapshot(w_.cluster, counters)));
    return;
  }
  const KeyResult key = extract_key(req().target, w_.opt.max_key_bytes);
  if (key.error != KeyError::none) {
    // HAProxy would fall back to round robin here; a store must not scatter a key.
    counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(key.error == KeyError::too_long ? 413 : 400, http::kJson, json_error(key_error_detail(key.error)));
    return;
  }
  if (path.starts_with(rebalance::kAdminPrefix) || path.starts_with(replica::kPrefix)) {
    // The nodes' rebalancing and replica endpoints are not for clients.
    counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
    local_answer(404, http::kJson, json_error(http::kNotFound));
    return;
  }
  topology_ = w_.current();
  access_ = access_of(req().method);
  const std::uint64_t key_hash = hash_key(key.key);
  if (replicated(*topology_) && (path == "/get"sv || path == "/put"sv || path == "/del"sv)) {
    // The methods kvnode takes on each path, refused here as a node would (no replica is asked).
    const auto m = req().method;
    std::string_view allow;
    if (path == "/get"sv && !http::is_read(m)) allow = http::kAllowReadLine;
    else if (path == "/put"sv && m != http::Method::post) allow = "Allow: POST\r\n"sv;
    else if (path == "/del"sv && m != http::Method::delete_) allow = "Allow: DELETE\r\n"sv;
    if (!allow.empty()) {
      counters.local_4xx.fetch_add(1, std::memory_order_relaxed);
      local_answer(405, http::kJson, json_error(http::kMethodNotAllowed), allow);
      return;
    }
    start_quorum(key_hash);
    return;
  }
  route_ = route(*topology_, key_hash, access_);
  if (route_.plan != Plan::forward && path != "/get"sv && path != "/put"sv && path != "/del"sv) {
    route_.plan = Plan::forward;  // not a key operation: the node answers what it answers
    route_.nodes[0] = route_.nodes[1];
  }
  if (route_.moving) counters.rebalance_routed.fetch_add(1, std::memory_order_relaxed);
  if (Backend* down = route_.down) {
    // Never another node: its keys live on this one.
    down->stats.error(ErrorClass::down);
    answered_by_ = down;
    local_answer(503, http::kJson, json_error("Node " + down->label() + " is down"));
    return;
  }
  step_ = 0;
  if (w_.opt.unsafe_unversioned && route_.plan != Plan::forward) [[unlikely]] {
    if (route_.plan == Plan::read_both) route_.plan = Plan::forward;  // nodes[0]: the new owner
    else step_ = 2;  // no tag queries, and (run_step) no tag
  }
  run_step();
}

// The request the plan's current step sends, and to which node:
//   forward          the request as it came: HTTP/1.1, keep-alive, the client's end-to-end fields (no
//                    X-KV- field: those are kvring's own), the whole body with its length (the proxy
//                    answered any "Expect: 100-continue" itself)
//   versioned_write  steps 0, 1: the tag query to nodes[0], nodes[1]; steps 2, 3: the request as it
//                    came with the one tag, to nodes[0], then nodes[1]
//   read_both        steps 0, 1: the versioned GET to nodes[0], nodes[1]; step 2: the newer's value
//                    or tombstone written back to the other
void ClientConn::run_step() {
  std::string& s = exchange_.request();
  s.clear();
  Backend* to = route_.nodes[0];
  bool head = false;
  switch (route_.plan) {
    case Plan::forward:
      http::append_relayed_request(s, req(), reader_.body(), http::kOwnFieldPrefixLower, {});
      head = req().method == http::Method::head;
      break;
    case Plan::versioned_write:
    case Plan::read_both:
      if (step_ < 2) {  // both plans begin with the tag queries
        to = route_.nodes[step_];
        append_query(s, req().target, to->host);
      } else if (route_.plan == Plan::versioned_write) {
        to = route_.nodes[step_ - 2];
        http::append_relayed_request(s, req(), reader_.body(), http::kOwnFieldPrefixLower,
                                     w_.opt.unsafe_unversioned ? std::string() : version::version_line(tag_));
      } else {
        to = route_.nodes[1 - newer_];
        append_write_back(s, req().target, to->host, found_[newer_].held, saved_body_);
      }
      break;
  }
  exchange_.start(*to, head);
}

void ClientConn::on_node_answer(NodeExchange& x) {
  const unsigned code = x.answer().status;
  if (w_.log) {
    connect_ms_ = x.connect_ms();
    first_byte_ms_ = x.first_byte_ms();
  }
  if (route_.plan == Plan::forward) return relay(x);
  if (route_.plan == Plan::versioned_write && step_ == 3) {
    // A delete answers what the tag queries found, the newer of the two: a read made within the
    // delete and before its own write. The last owner's own 200 or 404 says what it held when the
    // delete came, which may be a write ordered after the delete (it superseded the tombstone).
    if (access_ != Access::remove || (code != 200 && code != 404) || w_.opt.unsafe_unversioned) return relay(x);
    const bool found = found_[newer_of(found_[0], found_[1])].value;
    Backend& b = x.backend();
    x.release();
    if (found) answer_for(b, 200, json_success());
    else answer_for(b, 404, json_error("Key not found"));
    return;
  }
  const bool query = step_ < 2;
  if (query) {
    if (code != 200 && code != 404) return relay(x);  // the node could not say (a storage error)
    const auto held = held_of(x.answer());
    if (!held) {
      Backend& b = x.backend();
      x.release();
      answered_by_ = &b;
      local_answer(502, http::kJson, json_error("Node " + b.label() + " does not keep versions (an older kvnode?)"));
      return;
    }
    found_[step_] = {*held, code == 200};
  }
  if (route_.plan == Plan::versioned_write) {
    if (step_ == 1) tag_ = w_.shared.next_tag(std::max(found_[0].held.tag, found_[1].held.tag));
    if (step_ == 2 && !proceeds(access_, code)) return relay(x);  // the first owner refused the write
    x.release();
    ++step_;
    run_step();
    return;
  }
  // read_both
  if (step_ == 0 || (step_ == 1 && newer_of(found_[0], found_[1]) == 1)) {
    newer_ = step_;
    saved_status_ = code;
    saved_body_.assign(x.body());
  }
  x.release();
  if (step_ == 0 || (step_ == 1 && !same_state(found_[0], found_[1]))) {
    ++step_;  // on to the other owner; then, if one is behind, it gets the newer first
    run_step();
    return;
  }
  if (step_ == 2 && !(code / 100 == 2 || (code == 404 && !found_[newer_].value))) {
    answered_by_ = route_.nodes[1 - newer_];
    local_answer(503, http::kJson, json_error("Node " + answered_by_->label() + " did not take the write-back (" +
                                              std::to_string(code) + ")"));
    return;
  }
  answer_for(*route_.nodes[newer_], saved_status_, saved_body_);
}

// An answer the proxy makes from what node `b` said (a plan that reached two owners): counted in
// b's latency and named by b, as a relayed one is.
void ClientConn::answer_for(Backend& b, unsigned status, std::string_view body) {
  answered_by_ = &b;
  b.stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done_).count()));
  local_answer(status, http::kJson, body, b.node_field);
}

// The node's answer is the client's. Whether the connection stays open is decided now, not when the
// request came in: a drain that began meanwhile closes after this answer. The body is copied out
// before the node's buffer is consumed.
void ClientConn::relay(NodeExchange& x) {
  const auto& ans = x.answer();
  Backend& b = x.backend();
  const std::string_view body = x.body();
  answer_keep_alive_ = req().keep_alive && !w_.draining;
  out_.clear();
  http::append_relayed_answer(out_, req(), ans, body, http::kOwnFieldPrefixLower, b.node_field, answer_keep_alive_);
  answer_status_ = ans.status;
  answer_bytes_ = body.size();
  answered_by_ = &b;
  b.stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done_).count()));
  x.release();
  send_answer();
}

void ClientConn::on_node_failure(NodeExchange& x, NodeExchange::Failure f, const std::string& detail) {
  Backend& b = x.backend();
  answered_by_ = &b;
  if (w_.log) {
    connect_ms_ = x.connect_ms();
    first_byte_ms_ = x.first_byte_ms();
  }
  switch (f) {
    case NodeExchange::Failure::connect:
      local_answer(503, http::kJson, json_error("Node " + b.label() + " is unreachable: " + detail));
      break;
    case NodeExchange::Failure::timeout:
      local_answer(504, http::kJson, json_error("Node " + b.label() + ": " + detail));
      break;
    case NodeExchange::Failure::bad_response:
      local_answer(502, http::kJson, json_error("Node " + b.label() + ": " + detail));
      break;
  }
}

// ---- replicated keys ------------------------------------------------------------------------------

void ClientConn::start_quorum(std::uint64_t key_hash) {
  const ReplicaRoute r = replica_route(*topology_, key_hash);
  if (r.moving) w_.counters.rebalance_routed.fetch_add(1, std::memory_order_relaxed);
  const QuorumKind kind = access_ == Access::read    ? QuorumKind::read
                          : access_ == Access::remove ? QuorumKind::remove
                                                      : QuorumKind::write;
  if (!coord_) coord_ = w_.take_coordinator();
  quorum_active_ = true;
  if (w_.opt.unsafe_read_one && kind == QuorumKind::read) [[unlikely]] {
    // The broken mode: one replica (in turn, skipping those marked down) is a quorum of one.
    unsigned pick = w_.read_one_turn++ % r.count;
    for (unsigned tries = 0; tries < r.count && !r.replicas[pick]->up.load(std::memory_order_relaxed); ++tries)
      pick = (pick + 1) % r.count;
    coord_->start(*this, kind, r.members().subspan(pick, 1), QuorumSystem::majority_of(1), req().target,
                  reader_.body());
    return;
  }
  if (w_.opt.unsafe_new_set_only && r.moving) [[unlikely]] {
    // The broken mode: the key's new replica set alone, as if the change were made the moment it begins.
    std::array<Backend*, kMaxMembers> members{};
    unsigned count = 0;
    for (unsigned i = 0; i < r.count; ++i)
      if (r.system.set(1) & (1u << i)) members[count++] = r.replicas[i];
    coord_->start(*this, kind, std::span<Backend* const>(members.data(), count), QuorumSystem::majority_of(count),
                  req().target, reader_.body());
    return;
  }
  coord_->start(*this, kind, r.members(), r.system, req().target, reader_.body());
}

// The quorum decided: the client's answer, made from what the replicas said.
void ClientConn::on_quorum_done(Coordinator& c) {
  quorum_active_ = false;
  c.detach();
  const Quorum& q = c.quorum();
  QuorumCounters& counters = w_.counters.quorum;
  const QuorumOp op = access_ == Access::read ? QuorumOp::get : access_ == Access::remove ? QuorumOp::del : QuorumOp::put;
  counters.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - read_done_).count()));
  std::string replicas;  // X-KV-Replicas: those that hold what the answer says
  answer_fields_.clear();
  auto add_replicas = [&](std::uint32_t bits) {
    for (unsigned i = 0; i < q.size(); ++i)
      if (bits & (1u << i)) replicas.append(replicas.empty() ? "" : ",").append(c.replica(i).id);
    if (!replicas.empty()) answer_fields_.append("X-KV-Replicas: ").append(replicas).append("\r\n");
  };
  switch (q.action()) {
    case Quorum::Action::answer: {
      Backend& b = c.replica(q.newest_replica());
      answered_by_ = &b;
      answer_fields_.append(b.node_field);
      add_replicas(q.holders());
      counters.count(op, QuorumResult::ok);
      if (op == QuorumOp::get && !q.one_round()) counters.write_backs.fetch_add(1, std::memory_order_relaxed);
      const std::string fields = answer_fields_;
      if (access_ == Access::read) local_answer(c.newest_status(), http::kJson, c.newest_body(), fields);
      else if (access_ == Access::write || q.present()) local_answer(200, http::kJson, json_success(), fields);
      else local_answer(404, http::kJson, json_error("Key not found"), fields);
      break;
    }
    case Quorum::Action::refuse: {
      Backend& b = c.replica(q.refused_replica());
      answered_by_ = &b;
      answer_fields_.append(b.node_field);
      counters.count(op, QuorumResult::refused);
      const std::string fields = answer_fields_;
      local_answer(c.refused_status(), http::kJson, c.refused_body(), fields);
      break;
    }
    default: {  // fail: no majority
      counters.count(op, QuorumResult::failed);
      counters.failure(c.failure_cause());
      std::string detail = "No majority of the replicas of this key answered: ";
      bool first = true;
      for (unsigned i = 0; i < q.size(); ++i) {
        if (!(q.missing() & (1u << i))) continue;
        detail.append(first ? "" : ", ").append(c.replica(i).label());
        if (!c.reason(i).empty()) detail.append(": ").append(c.reason(i));
        first = false;
      }
      if (access_ != Access::read)
        answer_fields_.append(q.outcome() == Quorum::Outcome::none ? "X-KV-Outcome: none\r\n" : "X-KV-Outcome: unknown\r\n");
      const std::string fields = answer_fields_;
      local_answer(503, http::kJson, json_error(detail), fields);
      break;
    }
  }
}

// The coordinator is done with this client's request: handed to the worker, which keeps it until its
// stragglers end. Never freed nor reused here: an answer sent at once ends the exchange inside the
// coordinator's own callback, and the next pipelined request starts from there.
void ClientConn::let_coordinator_go() {
  if (!coord_) return;
  coord_->detach();
  quorum_active_ = false;
  w_.adopt(std::move(coord_));
}

// An answer the proxy makes itself.
void ClientConn::local_answer(unsigned status, std::string_view content_type, std::string_view body,
                              std::string_view extra_fields) {
  out_.clear();
  answer_keep_alive_ = req().keep_alive && !w_.draining;
  http::append_answer(out_, req().version, {status, content_type, body, extra_fields}, answer_keep_alive_,
                      req().method == http::Method::head);
  answer_status_ = status;
  answer_bytes_ = body.size();
  send_answer();
}

void ClientConn::send_answer() {
  stage_ = Stage::writing;
  deadline_ = w_.loop.now() + w_.opt.client.write_timeout;
  send_out();
}

// Sends out_, after the 100 Continue if that is still going out.
void ClientConn::send_out() {
  if (sending_) {
    out_waiting_ = true;
    return;
  }
  sending_ = true;
  ch_->send(out_);
}

void ClientConn::finish_exchange() {
  if (w_.log) {
    const auto now = Clock::now();
    w_.log->write({peer_, req().method_string, req().target, answered_by_ ? std::string_view(answered_by_->id) : "-"sv,
                   answer_status_, answer_bytes_, ms_between(first_byte_, read_done_), connect_ms_, first_byte_ms_,
                   ms_between(first_byte_, now)});
  }
  let_coordinator_go();
  topology_.reset();
  in_.consume(reader_.consumed());
  reader_.reset();
  stage_ = Stage::idle;
  deadline_ = w_.loop.now() + w_.opt.client.idle_timeout;
  if (out_.capacity() > 64 * 1024) std::string().swap(out_);  // a large answer's memory goes
  if (!answer_keep_alive_) {
    close(true);  // FIN after the last answer
    return;
  }
  drive();
}

void ClientConn::on_deadline() {
  deadline_ = Clock::time_point::max();
  switch (stage_) {
    case Stage::idle:
      close();  // keep-alive idle timeout
      break;
    case Stage::reading:
      reject(reader_.timed_out());
      break;
    case Stage::forwarding:
      if (quorum_active_) coord_->on_deadline();
      else exchange_.on_deadline();
      break;
    case Stage::writing:
    case Stage::closing:
      close();
      break;
  }
}

void ClientConn::close(bool graceful) {
  if (closed_) return;
  closed_ = true;
  exchange_.abort();
  if (coord_) {  // its exchanges run on, heard by no one (it is freed on the worker's tick)
    coord_->detach();
    quorum_active_ = false;
    w_.adopt(std::move(coord_));
  }
  topology_.reset();
  ch_->close(graceful);
  in_.consume(in_.size());
  in_.release(w_.loop.blocks());
  w_.remove_client(*this);
}

}  // namespace kv::proxy
