#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <set>

#include "tools/resume.hpp"

using namespace kv::tools;
using kv::rebalance::Phase;
using kv::rebalance::Position;

namespace {

const std::string F = "0123456789abcdef";  // OLD
const std::string T = "fedcba9876543210";  // NEW
const std::string X = "00000000deadbeef";  // another ring
const RingPair kRings{F, "old.yaml", T, "new.yaml"};

// Where a proxy can stand, as far as this rebalance is concerned.
enum Kind { on_old, dual, read_new, on_new, other_ring, other_change, reversed, kKinds };

Position position(Kind k) {
  Position p;
  switch (k) {
    case on_old: p.fingerprint = F; break;
    case on_new: p.fingerprint = T; break;
    case other_ring: p.fingerprint = X; break;
    case dual: p = {1, F, {Phase::dual_write, F, T, ""}}; break;
    case read_new: p = {1, F, {Phase::read_new, F, T, ""}}; break;
    case other_change: p = {1, F, {Phase::dual_write, F, X, ""}}; break;
    case reversed: p = {1, T, {Phase::read_new, T, F, ""}}; break;
    default: break;
  }
  return p;
}

std::vector<ProxyPosition> proxies(const std::vector<Kind>& kinds) {
  std::vector<ProxyPosition> out;
  for (std::size_t i = 0; i < kinds.size(); ++i) out.push_back({"127.0.0.1:" + std::to_string(8400 + i), position(kinds[i])});
  return out;
}

// The rule in words: proxies of this rebalance, at most one step apart; start at the first step
// some proxy still needs.
std::optional<StartAt> expected(const std::vector<Kind>& kinds) {
  const std::set<Kind> seen(kinds.begin(), kinds.end());
  for (const auto& together : {std::set<Kind>{on_old, dual}, {dual, read_new}, {read_new, on_new}}) {
    if (!std::includes(together.begin(), together.end(), seen.begin(), seen.end())) continue;
    if (seen == std::set<Kind>{on_old}) return StartAt::clear;
    if (seen.count(read_new)) return StartAt::read_new;
    if (seen == std::set<Kind>{on_new}) return StartAt::cleanup;
    if (seen.count(on_new)) return StartAt::read_new;
    return StartAt::begin;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("every combination of up to three proxies: where apply starts, or that it refuses", "[resume]") {
  std::size_t checked = 0, refused = 0;
  for (std::size_t n = 1; n <= 3; ++n) {
    std::vector<Kind> kinds(n, on_old);
    for (;;) {
      const Resume r = decide_resume(proxies(kinds), kRings);
      const auto want = expected(kinds);
      INFO("proxies " << kinds[0] << (n > 1 ? "," + std::to_string(kinds[1]) : "") << (n > 2 ? "," + std::to_string(kinds[2]) : ""));
      CHECK(r.refusal.empty() == want.has_value());
      if (want) CHECK(r.start == *want);
      refused += !want;
      ++checked;
      std::size_t i = 0;  // the next combination, counting in base kKinds
      while (i < n && kinds[i] == kKinds - 1) kinds[i++] = on_old;
      if (i == n) break;
      kinds[i] = static_cast<Kind>(kinds[i] + 1);
    }
  }
  CHECK(checked == 7 + 49 + 343);
  CHECK(refused > 0);
}

TEST_CASE("the counts, and whether an earlier run finished the copy", "[resume]") {
  const Resume r = decide_resume(proxies({dual, read_new, read_new}), kRings);
  CHECK(r.refusal.empty());
  CHECK(r.start == StartAt::read_new);
  CHECK((r.on_old == 0 && r.dual_write == 1 && r.read_new == 2 && r.on_new == 0));
  CHECK(r.copied());
  CHECK(r.resuming_line() == "resuming: 0 proxies on OLD, 1 in dual_write, 2 in read_new, 0 on NEW");

  const Resume fresh = decide_resume(proxies({on_old, on_old}), kRings);
  CHECK(fresh.start == StartAt::clear);
  CHECK_FALSE(fresh.copied());
  CHECK_FALSE(decide_resume(proxies({on_old, dual}), kRings).copied());
  CHECK(decide_resume(proxies({read_new, on_new}), kRings).copied());
  CHECK(decide_resume(proxies({on_new}), kRings).copied());
  CHECK(decide_resume(proxies({on_old, dual}), kRings).resuming_line() ==
        "resuming: 1 proxies on OLD, 1 in dual_write, 0 in read_new, 0 on NEW");
}

TEST_CASE("the refusal names every proxy's position and the rings expected", "[resume]") {
  const Resume r = decide_resume(proxies({on_old, other_ring, reversed}), kRings);
  CHECK(r.refusal ==
        "the proxies do not agree on a state this rebalance can start or resume from:\n"
        "  127.0.0.1:8400: ring 0123456789abcdef, no rebalance\n"
        "  127.0.0.1:8401: ring 00000000deadbeef, no rebalance\n"
        "  127.0.0.1:8402: rebalance fedcba9876543210 -> 0123456789abcdef, phase read_new\n"
        "  expected ring 0123456789abcdef (old.yaml), ring fedcba9876543210 (new.yaml), or a rebalance between them");
  // Two steps apart is refused too, though each proxy alone is one of ours.
  CHECK_FALSE(decide_resume(proxies({on_old, read_new}), kRings).refusal.empty());
  CHECK_FALSE(decide_resume(proxies({on_old, on_new}), kRings).refusal.empty());
  CHECK_FALSE(decide_resume(proxies({dual, on_new}), kRings).refusal.empty());
}

namespace {

const RingPair kBack{T, "new.yaml", F, "old.yaml"};  // NEW -> OLD

PurgeState resumed_for(const std::string& change) { return {true, "", change}; }
PurgeState paused_for(const std::string& change, const std::string& resumed = "") { return {true, change, resumed}; }

// Every node in `nodes` paused for the change and then resumed: what apply leaves on the nodes it reaches.
void run_change(std::vector<PurgeState>& nodes, const std::vector<std::size_t>& reached, const std::string& change) {
  for (const std::size_t i : reached) nodes[i] = resumed_for(change);
}

std::vector<PurgeState> answering(const std::vector<PurgeState>& nodes, const std::vector<std::size_t>& reached) {
  std::vector<PurgeState> out;
  for (const std::size_t i : reached) out.push_back(nodes[i]);
  return out;
}

}  // namespace

TEST_CASE("change ids: OLD-NEW.G, G one past the highest any node remembers", "[resume][change_id]") {
  CHECK(change_id(kRings, {}) == F + "-" + T + ".1");
  CHECK(change_id(kRings, {{false, "", ""}, {true, "", ""}}) == F + "-" + T + ".1");
  CHECK(change_id(kRings, {resumed_for(T + "-" + F + ".7"), resumed_for(T + "-" + F + ".6")}) == F + "-" + T + ".8");
  // Ids from before (NEW's fingerprint alone) and names given by hand count as 0.
  CHECK(change_id(kRings, {resumed_for(T), paused_for("change-1")}) == F + "-" + T + ".1");
  CHECK(change_id(kRings, {resumed_for(X + "-" + F + ".41"), paused_for(F + "-" + X + ".40")}) == F + "-" + T + ".42");
}

TEST_CASE("change ids: OLD -> NEW, NEW -> OLD, OLD -> NEW again; a node that missed the middle one "
          "remembers no id of the third", "[resume][change_id]") {
  std::vector<PurgeState> nodes(4);  // n1..n4; n3 (index 2) misses the middle change
  const std::vector<std::size_t> all{0, 1, 2, 3}, without_n3{0, 1, 3};
  const std::string first = change_id(kRings, answering(nodes, all));
  run_change(nodes, all, first);
  const std::string second = change_id(kBack, answering(nodes, without_n3));
  run_change(nodes, without_n3, second);
  CHECK(nodes[2].resumed == first);
  for (const auto& reached : {without_n3, all}) {  // n3 still away when the third pauses, or back
    const std::string third = change_id(kRings, answering(nodes, reached));
    CHECK(third != first);  // else n3's "resumed for" would end its peers' pause for the third
    CHECK(third != second);
    CHECK(change_generation(third) > change_generation(second));
    CHECK(change_generation(second) > change_generation(first));
  }
}

TEST_CASE("change ids: a run again of a stopped change keeps its id; an older change's pause does not count",
          "[resume][change_id]") {
  const std::string stopped = F + "-" + T + ".4";
  // Stopped after pausing n1 only (n2, n3 not answering then), or after resuming n2.
  CHECK(change_id(kRings, {paused_for(stopped), resumed_for(T + "-" + F + ".3"), resumed_for(T + "-" + F + ".3")}) == stopped);
  CHECK(change_id(kRings, {paused_for(stopped), resumed_for(stopped), resumed_for(T + "-" + F + ".3")}) == stopped);
  // A node still paused for an earlier OLD -> NEW (it missed that one's resume, and everything since).
  CHECK(change_id(kRings, {paused_for(F + "-" + T + ".1"), resumed_for(T + "-" + F + ".2")}) == F + "-" + T + ".3");
  // A node paused for another change with the highest G: that change is not this one.
  CHECK(change_id(kRings, {paused_for(F + "-" + X + ".5"), resumed_for(T + "-" + F + ".3")}) == F + "-" + T + ".6");
  // Every node resumed for this change already (a run again after the end): a new pause, a new id.
  CHECK(change_id(kRings, {resumed_for(stopped), resumed_for(stopped)}) == F + "-" + T + ".5");
}

TEST_CASE("change_generation: the digits after the last dot, or 0", "[resume][change_id]") {
  CHECK(change_generation(F + "-" + T + ".12") == 12);
  CHECK(change_generation("a.b.3") == 3);
  CHECK(change_generation(T) == 0);
  CHECK(change_generation("x.") == 0);
  CHECK(change_generation("x.1a") == 0);
  CHECK(change_generation("x.-1") == 0);
  CHECK(change_generation("x.99999999999999999999999") == 0);  // past 64 bits
  CHECK(change_generation("") == 0);
}
