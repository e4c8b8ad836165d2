// One client request over a key's replica set (replicas: N): proxy/quorum.hpp's steps run through one
// NodeExchange per replica, each sending proxy/replica_requests.hpp's requests. A step's queries go
// to a majority of the replicas, the first ones up in placement order; the others are spares, asked
// as soon as an asked replica fails, or once ProxyOptions::spare_after passed without a decision (a
// stalled replica), or when the asked ones ended undecided (a read's disagreement is settled by its
// write-back, which goes to them as well). Stores go to all N. With spare_after 0 every query goes to
// all N. Each step is decided at a majority; a replica's exchange runs its requests in turn (a store
// waits for that replica's query to end). When the quorum decides, the client hears once
// (Client::on_quorum_done) and may answer at once; the exchanges still under way (stragglers) run to
// their end, so that their pooled connections are kept, and the worker ticks the coordinator until
// idle() (a coordinator outlives its request). During a ring change the replicas are the union of the
// key's old and new replica sets, and "a majority" is a majority of each (QuorumSystem). A read or
// remove that a purged tombstone left undecided starts over once (Quorum::Action::requery): its
// queries go to every replica again, a lane still busy with the first round's request sending its
// query when that ends, and the first round's answers are dropped.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "proxy/node_exchange.hpp"
#include "proxy/options.hpp"
#include "proxy/quorum.hpp"

namespace kv::proxy {

class Worker;

class Coordinator final : NodeExchange::Listener {
 public:
  using Clock = std::chrono::steady_clock;

  class Client {
   public:
    virtual void on_quorum_done(Coordinator& c) = 0;

   protected:
    ~Client() = default;
  };

  explicit Coordinator(Worker& w);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Runs a request of `kind` on `replicas` (in placement order; they live as long as the topology the
  // caller holds), whose quorums `system` says (of as many members). `target`: the client's (its
  // query string names the key); `put_body`: a write's body. Copies what it needs. The client hears
  // once, possibly before start() returns.
  void start(Client& client, QuorumKind kind, std::span<Backend* const> replicas, const QuorumSystem& system,
             std::string_view target, std::string_view put_body);
  // The client no longer listens (it answered, or went away). Stragglers run on.
  void detach() noexcept { client_ = nullptr; }
  // No exchange under way: the coordinator may be reused or freed.
  bool idle() const noexcept;

  // After on_quorum_done: what was decided (quorum().action()), and for the answer:
  const Quorum& quorum() const noexcept { return quorum_; }
  Backend& replica(unsigned i) const noexcept { return *replicas_[i]; }
  // A read's answer: the status and body of the replica whose query found the newest write.
  unsigned newest_status() const noexcept { return newest_status_; }
  std::string_view newest_body() const noexcept { return newest_body_; }
  // On refuse: the refusing replica's status and body.
  unsigned refused_status() const noexcept { return refused_status_; }
  std::string_view refused_body() const noexcept { return refused_body_; }
  // Why each replica gave no usable answer (empty: it did), for a failure's detail.
  const std::string& reason(unsigned i) const noexcept { return reasons_[i]; }
  // On fail: what the replicas the quorum missed had in common (mixed when not one thing).
  QuorumCause failure_cause() const noexcept;

  // The earliest deadline of the exchanges under way; the worker's tick calls on_deadline() once
  // it has passed.
  Clock::time_point deadline() const noexcept;
  void on_deadline();

 private:
  struct Lane {
    explicit Lane(Worker& w, NodeExchange::Listener& l) : x(w, l) {}
    NodeExchange x;
    bool busy = false;          // an exchange under way
    bool store_waiting = false;  // the store step's request is due once the query ends
    bool storing = false;        // the exchange under way is a store (else a query)
    Clock::time_point sent{};    // when the exchange under way started: the replica's latency
    bool reserved = false;       // marked down: the step's request not sent yet (call_reserves)
    bool forced = false;         // sent although marked down
    bool spare = false;          // up, not asked yet: a majority of the others was (ask_spares)
    bool query_waiting = false;  // a requery's query is due once the exchange under way ends
    unsigned round = 0;          // the request's round the exchange under way belongs to (round_)
  };

  void on_node_answer(NodeExchange& x) override;
  void on_node_failure(NodeExchange& x, NodeExchange::Failure f, const std::string& detail) override;
  unsigned lane_of(const NodeExchange& x) const noexcept;
  std::string* begin_request(unsigned i, bool storing, bool even_if_down);
  void send_query(unsigned i, bool even_if_down = false);
  void send_store(unsigned i, bool even_if_down = false);
  void advance();  // acts on quorum_.action() after an answer
  void reply(unsigned i, const ReplicaReply& r);
  void hold_in_reserve(unsigned i);  // replica i is marked down: not asked unless needed
  void call_reserves();              // the others ended undecided: ask the ones held in reserve
  bool has_spares() const noexcept;
  void ask_spares(bool late);   // an asked replica failed (or, late, spare_at_ passed): ask the spares
  void begin_round();           // at start() and at a requery: the round's state, fresh
  void requery();               // Action::requery: the queries again, to every replica
  void drop_stale(unsigned i);  // lane i's exchange, of a round before a requery, ended: dropped
  void settle();

  Worker& w_;
  Client* client_ = nullptr;
  bool told_ = false;  // the client heard
  QuorumKind kind_ = QuorumKind::read;
  Quorum quorum_{QuorumKind::read, 1};
  std::array<Backend*, kMaxMembers> replicas_{};
  std::array<std::unique_ptr<Lane>, kMaxMembers> lanes_;
  std::array<std::string, kMaxMembers> reasons_;
  std::array<QuorumCause, kMaxMembers> faults_{};  // with reasons_: the kind of the last fault
  std::string target_, put_body_;
  std::string newest_body_;  // the newest query answer's body (a read's answer, a write-back's value)
  unsigned newest_status_ = 0;
  std::string refused_body_;
  unsigned refused_status_ = 0;
  unsigned acting_ = 0;  // re-entrancy depth of advance() (a connect can fail inside start())
  Clock::time_point spare_at_ = Clock::time_point::max();  // when the spares are asked at the latest
  bool spare_wanted_ = false;  // an asked replica failed in the query step: the spares are due
  unsigned round_ = 0;         // +1 at start() and at a requery: answers of an earlier one are dropped
};

}  // namespace kv::proxy
