#include <catch2/catch.hpp>

#include <optional>
#include <sstream>
#include <vector>

#include "tools/progress.hpp"

using namespace kv::tools;
using namespace std::chrono_literals;

namespace {

// A Progress on a clock the test moves by hand, writing where the test reads.
struct Watched {
  std::ostringstream out;
  Progress::Clock::time_point t{};
  Progress p;
  explicit Watched(bool bar) : p(Log(out), bar, [this] { return t; }) {}
};

struct Tick {
  std::chrono::milliseconds wait;  // since the tick before (or the start)
  std::uint64_t keys, bytes;
};

// What a copy of `total` counted keys prints for `ticks`, then finishing `finish` after the last.
std::string shown(bool bar, std::uint64_t total, const std::vector<Tick>& ticks, std::optional<std::chrono::milliseconds> finish) {
  Watched w(bar);
  w.p.start(total);
  for (const auto& tick : ticks) {
    w.t += tick.wait;
    w.p.add(tick.keys, tick.bytes);
  }
  if (finish) {
    w.t += *finish;
    w.p.finish();
  }
  return w.out.str();
}

}  // namespace

TEST_CASE("human_bytes picks the largest unit under the value", "[progress]") {
  CHECK(human_bytes(0) == "0 B");
  CHECK(human_bytes(1023) == "1023 B");
  CHECK(human_bytes(1024) == "1.0 KiB");
  CHECK(human_bytes(1536) == "1.5 KiB");
  CHECK(human_bytes(5.25 * (1 << 20)) == "5.2 MiB");
  CHECK(human_bytes(3.0 * (1 << 30)) == "3.0 GiB");
}

TEST_CASE("lines: the first update, then at most one a second, then the last whatever the time", "[progress]") {
  // The second update comes 0.5 s after the first line: not shown; the third 1.1 s after it.
  CHECK(shown(false, 1000, {{500ms, 100, 2048}, {500ms, 100, 2048}, {600ms, 200, 4096}}, 400ms) ==
        "ring-rebalance: copy:  10% 100/1000 keys, 2.0 KiB, 200 keys/s, ETA 4 s\n"
        "ring-rebalance: copy:  40% 400/1000 keys, 8.0 KiB, 250 keys/s, ETA 2 s\n"
        "ring-rebalance: copy: 100% 400 keys (1000 counted before the copy), 8.0 KiB, 200 keys/s, done\n");
}

TEST_CASE("lines: a copy that found exactly the keys counted ends on the plain line", "[progress]") {
  CHECK(shown(false, 50, {{2s, 50, 500}}, 0ms) ==
        "ring-rebalance: copy: 100% 50/50 keys, 500 B, 25 keys/s, ETA 0 s\n"
        "ring-rebalance: copy: 100% 50/50 keys, 500 B, 25 keys/s, ETA 0 s\n");
}

TEST_CASE("lines: more keys than counted stay at 100%, and nothing counted is 100% at once", "[progress]") {
  CHECK(shown(false, 10, {{1s, 30, 300}}, std::nullopt) ==
        "ring-rebalance: copy: 100% 30/10 keys, 300 B, 30 keys/s, ETA 0 s\n");
  CHECK(shown(false, 0, {}, 0ms) == "ring-rebalance: copy: 100% 0/0 keys, 0 B, 0 keys/s, ETA 0 s\n");
}

TEST_CASE("bar: redrawn in place, ten times a second at most, a newline only at the end", "[progress]") {
  // The second update comes 50 ms after the first: not redrawn.
  CHECK(shown(true, 200, {{1s, 50, 100}, {50ms, 50, 100}, {950ms, 50, 100}}, 0ms) ==
        "\r[#######.......................]  25% 50/200 keys, 100 B, 50 keys/s, ETA 3 s\033[K"
        "\r[######################........]  75% 150/200 keys, 300 B, 75 keys/s, ETA 1 s\033[K"
        "\r[##############################] 100% 150 keys (200 counted before the copy), 300 B, 75 keys/s, done\033[K\n");
}

TEST_CASE("the totals, timed from start(), which restarts them", "[progress]") {
  Watched w(false);
  w.p.start(7);
  w.p.add(5, 5);
  w.t += 10s;  // before the start that counts
  w.p.start(100);
  w.t += 1500ms;
  w.p.add(100, 2048);
  w.p.add(1, 1);
  CHECK(w.p.keys() == 101);
  CHECK(w.p.bytes() == 2049);
  CHECK(w.p.seconds() == Approx(1.5));
}
