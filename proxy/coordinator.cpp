#include "proxy/coordinator.hpp"

#include <algorithm>
#include <optional>

#include "proxy/replica_requests.hpp"
#include "proxy/worker.hpp"

namespace kv::proxy {

Coordinator::Coordinator(Worker& w) : w_(w) {}

void Coordinator::start(Client& client, QuorumKind kind, std::span<Backend* const> replicas,
                        const QuorumSystem& system, std::string_view target, std::string_view put_body) {
  client_ = &client;
  told_ = false;
  kind_ = kind;
  // The system numbers the replicas as given (a mismatch would be the caller's bug: then one set).
  const bool fits = system.members() == replicas.size();
  quorum_ = Quorum(kind, fits ? system : QuorumSystem::majority_of(static_cast<unsigned>(replicas.size())));
  const unsigned n = quorum_.size();
  target_.assign(target);
  put_body_.assign(kind == QuorumKind::write ? put_body : std::string_view());
  refused_status_ = 0;
  refused_body_.clear();
  // A smallest quorum of the replicas up is asked, the first in placement order; the others up are
  // spares (all asked when spare_after is 0). Replicas marked down are held in reserve (send_query).
  // Replicas rebuilding their copy answer a query 503, so the first quorum is of those serving
  // when they make one: else every request that asked one would wait for a spare.
  std::uint32_t up = 0, serving = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (!replicas[i]->up.load(std::memory_order_relaxed)) continue;
    up |= 1u << i;
    if (replicas[i]->serving.load(std::memory_order_relaxed)) serving |= 1u << i;
  }
  const QuorumSystem& qs = quorum_.system();
  const std::uint32_t ask =
      w_.opt.spare_after.count() > 0 ? qs.first_quorum(qs.is_quorum(serving) ? serving : up) : qs.all();
  for (unsigned i = 0; i < n; ++i) {
    replicas_[i] = replicas[i];
    if (!lanes_[i]) lanes_[i] = std::make_unique<Lane>(w_, static_cast<NodeExchange::Listener&>(*this));
  }
  begin_round();  // every lane idle: none has a query waiting
  for (unsigned i = 0; i < n; ++i) {
    // Every lane is busy before the first request leaves: a connect that fails at once may decide the
    // step, and a store then waits for the lanes whose query has not left yet.
    lanes_[i]->busy = true;
    lanes_[i]->storing = false;
    if ((up & ~ask) & (1u << i)) {
      lanes_[i]->busy = false;
      lanes_[i]->spare = true;
      spare_at_ = w_.loop.now() + w_.opt.spare_after;
    }
  }
  ++acting_;
  for (unsigned i = 0; i < n; ++i)
    if (!lanes_[i]->spare) send_query(i);
  --acting_;
  advance();
}

bool Coordinator::idle() const noexcept {
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i] && (lanes_[i]->busy || lanes_[i]->store_waiting || lanes_[i]->query_waiting)) return false;
  return true;
}

bool Coordinator::has_spares() const noexcept {
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i] && lanes_[i]->spare) return true;
  return false;
}

Coordinator::Clock::time_point Coordinator::deadline() const noexcept {
  auto d = !told_ && has_spares() ? spare_at_ : Clock::time_point::max();
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i] && lanes_[i]->busy) d = std::min(d, lanes_[i]->x.deadline());
  return d;
}

void Coordinator::on_deadline() {
  const auto now = w_.loop.now();
  if (!told_ && spare_at_ <= now && has_spares()) ask_spares(true);
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i] && lanes_[i]->busy && lanes_[i]->x.deadline() <= now) lanes_[i]->x.on_deadline();
}

unsigned Coordinator::lane_of(const NodeExchange& x) const noexcept {
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i] && &lanes_[i]->x == &x) return i;
  return 0;
}

// Lane i's next request, a store or a query: its buffer, cleared; null when the replica is marked
// down (and not `even_if_down`): then it is held in reserve, not asked.
std::string* Coordinator::begin_request(unsigned i, bool storing, bool even_if_down) {
  Lane& lane = *lanes_[i];
  lane.storing = storing;
  lane.spare = false;  // a store (or write-back) reaches a spare directly
  if (!even_if_down && !replicas_[i]->up.load(std::memory_order_relaxed)) {  // asked only if needed
    lane.busy = false;
    hold_in_reserve(i);
    return nullptr;
  }
  lane.busy = true;
  lane.round = round_;
  lane.sent = Clock::now();
  std::string& s = lane.x.request();
  s.clear();
  return &s;
}

void Coordinator::send_query(unsigned i, bool even_if_down) {
  std::string* request = begin_request(i, false, even_if_down);
  if (!request) return;
  std::string& s = *request;
  Backend& b = *replicas_[i];
  Lane& lane = *lanes_[i];
  const bool head = kind_ != QuorumKind::read;  // a write's tag query needs no value
  append_replica_get(s, target_, b.host, head, w_.opt.node_auth);
  lane.x.start(b, head);
}

void Coordinator::send_store(unsigned i, bool even_if_down) {
  Lane& lane = *lanes_[i];
  if (lane.busy) {
    lane.store_waiting = true;  // after this replica's query
    return;
  }
  lane.store_waiting = false;
  std::string* request = begin_request(i, true, even_if_down);
  if (!request) return;
  std::string& s = *request;
  Backend& b = *replicas_[i];
  if (kind_ == QuorumKind::read) {  // the write-back of the newest write the query found
    const Held& held = quorum_.newest().held;
    append_replica_store(s, held.tombstone, target_, b.host, held.tag, newest_body_, w_.opt.node_auth);
  } else {
    append_replica_store(s, kind_ == QuorumKind::remove, target_, b.host, quorum_.tag(), put_body_,
                         w_.opt.node_auth);
  }
  lane.x.start(b, false);
}

void Coordinator::on_node_answer(NodeExchange& x) {
  const unsigned i = lane_of(x);
  Lane& lane = *lanes_[i];
  lane.busy = false;
  if (lane.round != round_) {
    x.backend().stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - lane.sent).count()));
    x.release();
    return drop_stale(i);
  }
  const bool remove = kind_ == QuorumKind::remove || (kind_ == QuorumKind::read && quorum_.newest().held.tombstone);
  const ReplicaReply r = lane.storing ? store_reply(x.answer(), remove) : query_reply(x.answer());
  if (r.kind == ReplicaReply::Kind::found && !lane.storing && quorum_.targets() == 0 &&
      quorum_.action() == Quorum::Action::wait) {  // the query step, still undecided
    // Kept while it may become the newest: a read's answer and its write-back's value.
    const Found& before = quorum_.newest();
    const bool first = newest_status_ == 0;
    if (first || newer_of(before, r.found) == 1) {
      newest_status_ = x.answer().status;
      newest_body_.assign(x.body());
    }
  }
  if (r.kind == ReplicaReply::Kind::refused) {
    refused_status_ = x.answer().status;
    refused_body_.assign(x.body());
  } else if (r.kind == ReplicaReply::Kind::below_floor) {
    reasons_[i] = "refused the version: not above the floor of the key's segment (409, X-KV-Floor: " +
                  std::string(floor_field(x.answer())) + ")";
    faults_[i] = QuorumCause::below_floor;
  } else if (r.kind == ReplicaReply::Kind::failed) {
    const unsigned status = x.answer().status;
    reasons_[i] = "answered " + std::to_string(status);
    if (status == 401 || status == 403) reasons_[i] += " (the node wants its admin token: kvproxy --node-token-file)";
    faults_[i] = QuorumCause::node_error;
  }
  x.backend().stats.latency.observe_ns(static_cast<std::uint64_t>((Clock::now() - lane.sent).count()));
  x.release();
  if (!lane.storing && r.kind != ReplicaReply::Kind::found) spare_wanted_ = true;
  reply(i, r);
  if (lane.store_waiting && !lane.busy) send_store(i);
  settle();
}

void Coordinator::on_node_failure(NodeExchange& x, NodeExchange::Failure f, const std::string& detail) {
  const unsigned i = lane_of(x);
  Lane& lane = *lanes_[i];
  lane.busy = false;
  if (lane.round != round_) return drop_stale(i);
  if (lane.forced) {  // asked although marked down: the mark stays the cause
    reasons_[i] = "marked down; asked all the same: " + detail;
  } else {
    reasons_[i] = detail;
    faults_[i] = f == NodeExchange::Failure::connect ? QuorumCause::connect
                 : f == NodeExchange::Failure::timeout ? QuorumCause::timeout
                                                       : QuorumCause::bad_response;
  }
  if (!lane.storing) spare_wanted_ = true;
  // A connect that failed sent nothing (NodeExchange retries only where the request never arrived).
  reply(i, {f == NodeExchange::Failure::connect ? ReplicaReply::Kind::not_sent : ReplicaReply::Kind::failed, {}});
  if (lane.store_waiting && !lane.busy) send_store(i);
  settle();
}

// A replica marked down is not asked at first: the others are, and a majority of them decides. It is
// asked after all (call_reserves) only if the others ended without deciding: a node marked down by
// mistake (a health check that timed out on a busy machine) then still counts, and one truly down
// costs a connect that fails, only for requests that would fail without it.
void Coordinator::hold_in_reserve(unsigned i) {
  lanes_[i]->reserved = true;
  reasons_[i] = "marked down";
  faults_[i] = QuorumCause::down;
  replicas_[i]->stats.error(ErrorClass::down);
}

void Coordinator::call_reserves() {
  if (quorum_.action() != Quorum::Action::wait) return;
  bool reserved = false;
  for (unsigned i = 0; i < quorum_.size(); ++i) {
    const Lane& lane = *lanes_[i];
    if (lane.busy || lane.store_waiting) return;  // an answer may still decide
    reserved = reserved || lane.reserved || lane.spare;
  }
  if (!reserved) return;
  const bool query = quorum_.targets() == 0;
  ++acting_;
  for (unsigned i = 0; i < quorum_.size(); ++i) {
    Lane& lane = *lanes_[i];
    if (!lane.reserved && !lane.spare) continue;
    lane.forced = lane.reserved;  // a spare is asked as any replica (down since: asked all the same)
    lane.reserved = lane.spare = false;
    if (query) send_query(i, true);
    else if (quorum_.targets() & (1u << i)) send_store(i, true);
  }
  --acting_;
}

// Only the query step has spares (a store reaches every replica). A spare marked down since is
// held in reserve by send_query, for call_reserves.
void Coordinator::ask_spares(bool late) {
  spare_wanted_ = false;
  if (quorum_.action() != Quorum::Action::wait || quorum_.targets() != 0 || !has_spares()) return;
  (late ? w_.counters.quorum.spares_late : w_.counters.quorum.spares_failed).fetch_add(1, std::memory_order_relaxed);
  ++acting_;
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (lanes_[i]->spare) send_query(i);
  --acting_;
  settle();
}

// The answer (or failure) of a round before a requery says nothing of the new round: dropped. The
// lane's query of the new round leaves now, if due.
void Coordinator::drop_stale(unsigned i) {
  Lane& lane = *lanes_[i];
  if (lane.query_waiting) {
    lane.query_waiting = false;
    send_query(i);
  }
  settle();
}

// A round's state, fresh: answers of the rounds before are dropped (round_), and a lane still busy
// with one sends its query when it ends.
void Coordinator::begin_round() {
  ++round_;
  newest_body_.clear();
  newest_status_ = 0;
  spare_wanted_ = false;
  spare_at_ = Clock::time_point::max();
  for (unsigned i = 0; i < quorum_.size(); ++i) {
    Lane& lane = *lanes_[i];
    reasons_[i].clear();
    faults_[i] = QuorumCause::mixed;  // until a fault says what it was
    lane.store_waiting = lane.reserved = lane.forced = lane.spare = false;
    lane.query_waiting = lane.busy;
  }
}

void Coordinator::requery() {
  w_.counters.quorum.requeries.fetch_add(1, std::memory_order_relaxed);
  quorum_.begin_requery();
  begin_round();
  for (unsigned i = 0; i < quorum_.size(); ++i)
    if (!lanes_[i]->query_waiting) send_query(i);
}

QuorumCause Coordinator::failure_cause() const noexcept {
  const std::uint32_t missing = quorum_.missing();
  std::optional<QuorumCause> cause;
  for (unsigned i = 0; i < quorum_.size(); ++i) {
    if (!(missing & (1u << i))) continue;
    if (cause && *cause != faults_[i]) return QuorumCause::mixed;
    cause = faults_[i];
  }
  return cause.value_or(QuorumCause::mixed);
}

void Coordinator::reply(unsigned i, const ReplicaReply& r) {
  quorum_.on_reply(i, r);
  if (acting_ == 0) advance();
}

void Coordinator::advance() {
  ++acting_;
  switch (quorum_.action()) {
    case Quorum::Action::wait: break;
    case Quorum::Action::store:
      // Above the newest tag seen, and above every floor reported (a store at or below a replica's
      // floor is refused where the key holds nothing).
      quorum_.begin_store(w_.shared.next_tag(std::max(quorum_.newest().held.tag, Tag{quorum_.floor(), 0})));
      for (unsigned i = 0; i < quorum_.size(); ++i) send_store(i);
      break;
    case Quorum::Action::write_back: {
      quorum_.begin_write_back();
      const std::uint32_t targets = quorum_.targets();
      for (unsigned i = 0; i < quorum_.size(); ++i)
        if (targets & (1u << i)) send_store(i);
      break;
    }
    case Quorum::Action::requery: requery(); break;
    case Quorum::Action::answer:
    case Quorum::Action::refuse:
    case Quorum::Action::fail:
      if (!told_) {
        told_ = true;
        if (client_) client_->on_quorum_done(*this);
      }
      break;
  }
  --acting_;
  // Replies that came in while acting (a connect failing at once) may have decided the next step.
  if (acting_ == 0 && quorum_.action() != Quorum::Action::wait && !told_) advance();
  settle();
}

// Outside any step's sending: replicas held in reserve are asked once nothing else can decide, and
// whatever their asking decided at once is acted on.
void Coordinator::settle() {
  if (acting_ != 0 || told_) return;
  if (spare_wanted_) ask_spares(false);
  if (told_) return;
  call_reserves();
  if (quorum_.action() != Quorum::Action::wait && !told_) advance();
}

}  // namespace kv::proxy
