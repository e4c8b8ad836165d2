// Purges paused for a ring change (node/purge_pause.hpp): a pause waits for the purge turns taken
// before it, refuses every turn after it, survives a restart, and ends only with a resume of the
// change it names, which the node then remembers (and says in its tree answers).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "node/purge_pause.hpp"

using kv::PurgePause;

TEST_CASE("purge pause: waits for the turns before it, refuses those after, until resumed", "[purge_pause]") {
  auto store = kv::open_memory_store();
  PurgePause pause(*store);
  CHECK(pause.paused().empty());
  std::atomic<bool> paused{false};
  std::thread pauser;
  {
    const auto turn = pause.enter();
    REQUIRE(turn);
    const auto second = pause.enter();  // turns do not exclude each other (a node's purge and a peer's)
    REQUIRE(second);
    pauser = std::thread([&] {
      pause.pause("ring-1");
      paused = true;
    });
    // The pause is recorded at once: no new turn, while the two taken before still run.
    while (pause.paused().empty()) std::this_thread::yield();
    CHECK_FALSE(pause.enter());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(paused);  // a turn is still held
  }
  pauser.join();
  CHECK(paused);
  CHECK(pause.paused() == "ring-1");
  CHECK_FALSE(pause.enter());
  pause.pause("ring-1");  // again: returns at once
  pause.pause("ring-2");  // another change's: the latest is named
  CHECK(pause.paused() == "ring-2");
  CHECK_FALSE(pause.resume("ring-1"));  // another change's resume: nothing done
  CHECK(pause.paused() == "ring-2");
  CHECK(pause.resumed().empty());
  CHECK(pause.resume("ring-2"));
  CHECK(pause.paused().empty());
  CHECK(pause.resumed() == "ring-2");
  CHECK(pause.enter());
  CHECK(pause.resume("ring-3"));  // not paused (it missed that change's pause): remembered all the same
  CHECK(pause.resumed() == "ring-3");
}

TEST_CASE("purge pause: kept across a restart of the node", "[purge_pause]") {
  auto store = kv::open_memory_store();
  {
    PurgePause pause(*store);
    pause.pause("ring-1");
  }
  {
    PurgePause pause(*store);  // the same data directory, read again
    CHECK(pause.paused() == "ring-1");
    CHECK_FALSE(pause.enter());
    CHECK(pause.resume("ring-1"));
  }
  PurgePause pause(*store);
  CHECK(pause.paused().empty());
  CHECK(pause.resumed() == "ring-1");
  CHECK(pause.enter());
}
