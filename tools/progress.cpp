#include "tools/progress.hpp"

#include <algorithm>
#include <cstdio>

namespace kv::tools {

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1 << 30) std::snprintf(buf, sizeof buf, "%.1f GiB", b / (1 << 30));
  else if (b >= 1 << 20) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1 << 20));
  else if (b >= 1 << 10) std::snprintf(buf, sizeof buf, "%.1f KiB", b / (1 << 10));
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

Progress::Progress(Log log, bool bar, Now now) : log_(log), bar_(bar), now_(std::move(now)), start_(now_()) {}

void Progress::start(std::uint64_t total) {
  total_ = total;
  keys_ = bytes_ = 0;
  start_ = now_();
  shown_.reset();
}

void Progress::add(std::uint64_t keys, std::uint64_t bytes) {
  keys_ += keys;
  bytes_ += bytes;
  show(false);
}

void Progress::finish() { show(true); }

double Progress::seconds() const { return std::chrono::duration<double>(now_() - start_).count(); }

void Progress::show(bool last) {
  const auto now = now_();
  // A terminal redraws cheaply; a log (a file, a CI console) keeps every line, so it gets fewer.
  const auto every = bar_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
  if (!last && shown_ && now - *shown_ < every) return;
  shown_ = now;
  const double secs = std::max(1e-3, seconds());
  const double rate = static_cast<double>(keys_) / secs;
  // The total was counted before the copy; clients write and delete meanwhile, so the keys copied
  // can end above or below it. The last line says 100%: the copy is done, whatever the count said.
  const double done =
      last || !total_ ? 1.0 : std::min(1.0, static_cast<double>(keys_) / static_cast<double>(total_));
  const double eta = rate > 0 && total_ > keys_ && !last ? static_cast<double>(total_ - keys_) / rate : 0;
  char line[240];
  if (last && keys_ != total_) {
    std::snprintf(line, sizeof line, "100%% %llu keys (%llu counted before the copy), %s, %.0f keys/s, done",
                  static_cast<unsigned long long>(keys_), static_cast<unsigned long long>(total_),
                  human_bytes(static_cast<double>(bytes_)).c_str(), rate);
  } else {
    std::snprintf(line, sizeof line, "%3.0f%% %llu/%llu keys, %s, %.0f keys/s, ETA %.0f s", done * 100,
                  static_cast<unsigned long long>(keys_), static_cast<unsigned long long>(total_),
                  human_bytes(static_cast<double>(bytes_)).c_str(), rate, eta);
  }
  if (bar_) {
    constexpr int kWidth = 30;
    const int fill = static_cast<int>(done * kWidth);
    auto& out = log_.stream();
    out << "\r[" << std::string(fill, '#') << std::string(kWidth - fill, '.') << "] " << line << "\033[K";
    if (last) out << std::endl;
  } else {
    log_.line(std::string("copy: ") + line);
  }
}

}  // namespace kv::tools
