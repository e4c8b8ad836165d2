// How far the copy of ring-rebalance apply has come, for the operator watching it: a bar redrawn in
// place on a terminal, a log line a second otherwise. The clock is a parameter so that tests can
// check the lines at chosen moments.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "tools/log.hpp"

namespace kv::tools {

// "512 B", "1.5 KiB", "2.0 MiB", "3.1 GiB".
std::string human_bytes(double bytes);

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  // `bar`: redraw one line in place (for a terminal); otherwise a log line at most once a second.
  Progress(Log log, bool bar, Now now = Clock::now);

  // Starts the clock. `total`: the keys counted before the copy, the 100% of the bar.
  void start(std::uint64_t total);
  void add(std::uint64_t keys, std::uint64_t bytes);
  void finish();  // the last line, whatever the time since the one before

  std::uint64_t keys() const noexcept { return keys_; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  double seconds() const;  // since start()

 private:
  void show(bool last);

  Log log_;
  bool bar_;
  Now now_;
  std::uint64_t total_ = 0, keys_ = 0, bytes_ = 0;
  Clock::time_point start_;
  std::optional<Clock::time_point> shown_;  // none yet: the first update always shows
};

}  // namespace kv::tools
