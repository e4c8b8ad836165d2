#include <catch2/catch.hpp>

#include "common/config.hpp"
#include "common/rebalance.hpp"

using namespace kv::rebalance;

TEST_CASE("phases, steps and drops have one name each, both ways", "[rebalance]") {
  for (Phase p : {Phase::none, Phase::dual_write, Phase::read_new}) CHECK(parse_phase(phase_name(p)) == p);
  for (Step s : {Step::begin, Step::read_new, Step::finish, Step::abort}) CHECK(parse_step(step_name(s)) == s);
  for (Drop d : {Drop::data, Drop::tombstones, Drop::all}) CHECK(parse_drop(drop_name(d)) == d);
  CHECK(phase_name(Phase::dual_write) == "dual_write");
  CHECK(step_name(Step::read_new) == "read-new");
  CHECK_FALSE(parse_phase("read-new"));
  CHECK_FALSE(parse_step("read_new"));
  CHECK_FALSE(parse_drop(""));
}

TEST_CASE("step and node targets", "[rebalance]") {
  CHECK(step_target(Step::begin, "0123456789abcdef") == "/admin/migration/begin?from=0123456789abcdef");
  CHECK(step_target(Step::read_new, "fedcba9876543210") == "/admin/migration/read-new?to=fedcba9876543210");
  CHECK(step_target(Step::finish, "fedcba9876543210") == "/admin/migration/finish?to=fedcba9876543210");
  CHECK(step_target(Step::abort, "ignored") == "/admin/migration/abort");
  CHECK(drop_target(Drop::tombstones) == "/admin/drop?what=tombstones");
  CHECK(scan_target(1000, 1 << 20, "") == "/admin/scan?limit=1000&max_bytes=1048576");
  CHECK(scan_target(5, 7, "00ff") == "/admin/scan?limit=5&max_bytes=7&after=00ff");
}

TEST_CASE("a proxy's position, as JSON and back", "[rebalance]") {
  Position p;
  p.version = 7;
  p.fingerprint = "0123456789abcdef";
  CHECK(position_json(p) ==
        R"({"status":"success","version":7,"fingerprint":"0123456789abcdef","phase":"none"})");
  CHECK(p.describe() == "ring 0123456789abcdef, no rebalance");
  p.change = {Phase::read_new, "0123456789abcdef", "fedcba9876543210", "ignored"};
  const std::string json = position_json(p);
  CHECK(json == R"({"status":"success","version":7,"fingerprint":"0123456789abcdef","phase":"read_new",)"
                R"("to":"fedcba9876543210","from":"0123456789abcdef"})");
  std::string error;
  const auto back = parse_position(json, error);
  REQUIRE(back);
  CHECK(back->version == 7);
  CHECK(back->fingerprint == p.fingerprint);
  CHECK(back->change.phase == Phase::read_new);
  CHECK(back->change.from == p.change.from);
  CHECK(back->change.to == p.change.to);
  CHECK(back->describe() == "rebalance 0123456789abcdef -> fedcba9876543210, phase read_new");
  CHECK_FALSE(parse_position("<html>", error));
  CHECK(error.starts_with("not JSON"));
  CHECK_FALSE(parse_position(R"({"phase":"sideways","fingerprint":"x"})", error));
}

TEST_CASE("the saved state of a change: written, read back, and refused when it is not ours", "[rebalance]") {
  const RingChange c{Phase::dual_write, "0123456789abcdef", "fedcba9876543210", "nodes:\n  - {id: a, address: 127.0.0.1:1}\n"};
  const std::string text = format_saved_change(c);
  CHECK(text.starts_with("# kvring rebalance in progress: phase=dual_write from=0123456789abcdef to=fedcba9876543210\n"));
  const RingChange back = parse_saved_change(text, "r.yaml.migration");
  CHECK(back.phase == c.phase);
  CHECK(back.from == c.from);
  CHECK(back.to == c.to);
  CHECK(back.yaml == c.yaml);
  CHECK(saved_change_path("/etc/kv/ring.yaml") == "/etc/kv/ring.yaml.migration");
  CHECK_THROWS_WITH(parse_saved_change("nodes: []\n", "f"),
                    "f: line 1: expected \"# kvring rebalance in progress: phase=... from=... to=...\"");
  CHECK_THROWS_WITH(parse_saved_change("# kvring rebalance in progress: phase=none from=0123456789abcdef to=fedcba9876543210\n", "f"),
                    "f: line 1: phase: expected dual_write or read_new, got 'none'");
  CHECK_THROWS_WITH(parse_saved_change("# kvring rebalance in progress: phase=read_new from=01 to=fedcba9876543210\n", "f"),
                    "f: line 1: expected phase=, from= and to= (16 hex digits each)");
}
