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

QuorumSystem QuorumSystem::majority_of(unsigned n) noexcept {
  QuorumSystem s;
  s.members_ = n < 1 ? 1 : n > kMaxMembers ? kMaxMembers : n;
  s.sets_ = {s.all(), 0};
  return s;
}

QuorumSystem QuorumSystem::joint(unsigned members, std::uint32_t old_set, std::uint32_t new_set) noexcept {
  QuorumSystem s = majority_of(members);
  old_set &= s.all();
  new_set &= s.all();
  if (old_set == 0 || new_set == 0 || old_set == new_set) {
    s.sets_ = {old_set | new_set ? old_set | new_set : s.all(), 0};
    return s;
  }
  s.sets_ = {old_set, new_set};
  s.set_count_ = 2;
  return s;
}

bool QuorumSystem::has_majority(std::uint32_t bits, std::uint32_t set) noexcept {
  return __builtin_popcount(bits & set) >= __builtin_popcount(set) / 2 + 1;
}

bool QuorumSystem::is_quorum(std::uint32_t bits) const noexcept {
  for (unsigned i = 0; i < set_count_; ++i)
    if (!has_majority(bits, sets_[i])) return false;
  return true;
}

std::uint32_t QuorumSystem::first_quorum(std::uint32_t usable) const noexcept {
  usable &= all();
  const std::uint32_t shared = set_count_ == 2 ? sets_[0] & sets_[1] : all();
  std::uint32_t pick = 0;
  // A member is taken while some set it belongs to still lacks a majority.
  auto wanted = [&](std::uint32_t bit) {
    for (unsigned i = 0; i < set_count_; ++i)
      if ((sets_[i] & bit) && !has_majority(pick, sets_[i])) return true;
    return false;
  };
  for (const std::uint32_t pass : {shared, ~shared})
    for (unsigned m = 0; m < members_; ++m) {
      const std::uint32_t bit = std::uint32_t{1} << m;
      if ((usable & pass & bit) && wanted(bit)) pick |= bit;
    }
  return is_quorum(pick) ? pick : usable;
}

Quorum::Quorum(QuorumKind kind, const QuorumSystem& system) noexcept
    : kind_(kind), system_(system), n_(system.members()), all_(system.all()) {}

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
  if (system_.is_quorum(answered_)) {
    if (kind_ == QuorumKind::remove && ambiguous()) {
      std::uint32_t have = 0;
      for (unsigned r = 0; r < n_; ++r)
        if ((answered_ & (1u << r)) && same_state(found_[r], newest_)) have |= 1u << r;
      const std::uint32_t lack = answered_ & ~have;
      if (system_.is_quorum(have) || system_.is_quorum(lack)) {
        present_ = system_.is_quorum(have);
        action_ = Action::store;
        return;
      }
      if ((answered_ | failed_) != all_) return;  // the others decide
      if (!requeried_) return finish(Action::requery);
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
    if (system_.is_quorum(have)) {
      one_round_ = true;
      return finish(Action::answer);
    }
    action_ = Action::write_back;
    return;
  }
  if (!system_.is_quorum(all_ & ~failed_)) {
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
  if (system_.is_quorum(holders_)) return finish(Action::answer);
  const std::uint32_t pending = targets_ & ~holders_ & ~store_failed_;
  if (system_.is_quorum(holders_ | pending)) return;
  // No majority can hold it any more. While every store that ended never left, the ones still out
  // decide whether the failure is "none" or "unknown": they are waited for (each has its deadline).
  if (pending && !(holders_ | (store_failed_ & ~not_sent_))) return;
  if (kind_ == QuorumKind::read && ambiguous() && !requeried_) return finish(Action::requery);
  missing_ = all_ & ~holders_ & ~pending;
  finish(Action::fail);
}

void Quorum::begin_requery() noexcept {
  if (action_ != Action::requery) return;
  *this = Quorum(kind_, system_);
  requeried_ = true;
}

}  // namespace kv::proxy
