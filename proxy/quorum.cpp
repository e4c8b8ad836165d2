#include "proxy/quorum.hpp"

#include <algorithm>

namespace kv::proxy {

namespace {

// Whether `f` holds the write `newest` or a newer one: it counts towards a majority holding it;
// `exactly` (ambiguous()): only that write.
bool holds(const Found& f, const Found& newest, bool exactly = false) noexcept {
  return same_state(f, newest) || (!exactly && f.held.tag > newest.held.tag);
}

}  // namespace

Quorum::Quorum(QuorumKind kind, unsigned replicas) noexcept
    : kind_(kind), n_(replicas < 1 ? 1 : replicas > kMaxReplicas ? kMaxReplicas : replicas), all_((1u << n_) - 1) {}

void Quorum::on_reply(unsigned replica, const ReplicaReply& reply) noexcept {
  if (step_ == Step::done || replica >= n_) return;
  const std::uint32_t bit = 1u << replica;
  using Kind = ReplicaReply::Kind;

  if (step_ == Step::query) {
    if ((answered_ | failed_) & bit) return;  // one answer per replica
    switch (reply.kind) {
      case Kind::found:
        answered_ |= bit;
        found_[replica] = reply.found;
        floor_ = std::max(floor_, reply.found.floor);
        if (answered_ == bit || newer_of(newest_, reply.found) == 1) {
          newest_ = reply.found;
          newest_replica_ = replica;
        }
        break;
      case Kind::refused:
        refused_ = replica;
        return finish(Action::refuse);
      default:  // stored cannot answer a query; failed, not_sent
        failed_ |= bit;
        break;
    }
    return after_query();
  }

  // Step::store: a write's store or a read's write-back.
  if (reply.kind == Kind::found) {
    // A query's late answer: for a read, a replica found holding the newest write (or a newer one)
    // holds what the write-back ensures. A write's store is not helped: its tag is new.
    if (kind_ == QuorumKind::read && !((answered_ | failed_) & bit)) {
      answered_ |= bit;
      found_[replica] = reply.found;
      if (holds(reply.found, newest_, ambiguous())) {
        holders_ |= bit;
        store_failed_ &= ~bit;
      }
      return after_store();
    }
    return;
  }
  if (!(targets_ & bit) || ((holders_ | store_failed_) & bit)) return;
  switch (reply.kind) {
    case Kind::stored:
      // An ambiguous read's write-back counts only where the replica now holds exactly that write.
      if (kind_ == QuorumKind::read && ambiguous() && !same_state(reply.found, newest_)) store_failed_ |= bit;
      else holders_ |= bit;
      break;
    case Kind::refused:
      // Every replica checks a request alike, so a refused store was refused everywhere: the client's
      // answer, unless some replica took it (then it counts as a failure, below).
      if (holders_ == 0 && kind_ != QuorumKind::read) {
        refused_ = replica;
        return finish(Action::refuse);
      }
      store_failed_ |= bit;
      break;
    case Kind::not_sent:
    case Kind::below_floor:
      store_failed_ |= bit;
      not_sent_ |= bit;
      break;
    default: store_failed_ |= bit; break;
  }
  after_store();
}

void Quorum::after_query() noexcept {
  if (count(answered_) >= majority()) {
    if (kind_ == QuorumKind::remove && ambiguous()) {
      unsigned have = 0;
      for (unsigned r = 0; r < n_; ++r) have += (answered_ & (1u << r)) && same_state(found_[r], newest_) ? 1 : 0;
      const unsigned lack = count(answered_) - have;
      if (have >= majority() || lack >= majority()) {
        present_ = have >= majority();
        action_ = Action::store;
        return;
      }
      if (count(answered_ | failed_) < n_) return;  // the others decide
      missing_ = failed_;
      return finish(Action::fail);  // nothing stored: outcome none
    }
    if (kind_ != QuorumKind::read) {
      action_ = Action::store;  // the caller makes the tag (begin_store)
      return;
    }
    std::uint32_t have = 0;
    for (unsigned r = 0; r < n_; ++r)
      if ((answered_ & (1u << r)) && holds(found_[r], newest_, ambiguous())) have |= 1u << r;
    holders_ = have;
    if (count(have) >= majority()) {
      one_round_ = true;
      return finish(Action::answer);
    }
    action_ = Action::write_back;
    return;
  }
  if (count(failed_) > n_ - majority()) {
    missing_ = failed_;
    finish(Action::fail);
  }
}

void Quorum::begin_store(const Tag& tag) noexcept {
  if (action_ != Action::store) return;
  tag_ = tag;
  targets_ = all_;
  holders_ = 0;
  store_failed_ = 0;
  not_sent_ = 0;
  step_ = Step::store;
  action_ = Action::wait;
}

void Quorum::begin_write_back() noexcept {
  if (action_ != Action::write_back) return;
  tag_ = newest_.held.tag;
  targets_ = all_ & ~holders_;
  store_failed_ = 0;
  not_sent_ = 0;
  step_ = Step::store;
  action_ = Action::wait;
}

void Quorum::after_store() noexcept {
  if (count(holders_) >= majority()) return finish(Action::answer);
  const std::uint32_t pending = targets_ & ~holders_ & ~store_failed_;
  if (count(holders_) + count(pending) >= majority()) return;
  // No majority can hold it any more. While every store that ended never left, the ones still out
  // decide whether the failure is "none" or "unknown": they are waited for (each has its deadline).
  if (pending && !(holders_ | (store_failed_ & ~not_sent_))) return;
  missing_ = all_ & ~holders_ & ~pending;
  finish(Action::fail);
}

}  // namespace kv::proxy
