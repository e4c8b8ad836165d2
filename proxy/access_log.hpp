// One line per request, as HAProxy's httplog has it:
//   client [time] method target node status bytes Tr=.. Tc=.. Tf=.. Tt=..
// with timings in ms: Tr reading the request, Tc connecting to the node (-1: a pooled connection),
// Tf request sent to the first byte of the answer, Tt total. Tc and Tf are those of the node that
// answered (the one X-KV-Node names): for a write that went to two nodes during a rebalance, the last. Each line goes out in one write(), so
// lines from several workers never interleave.
#pragma once

#include <string>
#include <string_view>

namespace kv::proxy {

struct AccessEntry {
  std::string_view peer, method, target, node;  // node: "-" when none answered
  unsigned status = 0;
  std::uint64_t bytes = 0;
  double read_ms = 0, connect_ms = -1, first_byte_ms = -1, total_ms = 0;
};

// The line for `e`, with its timestamp `clf_time` ("25/Nov/2026:08:22:15.813") and the newline.
std::string format_access_line(const AccessEntry& e, std::string_view clf_time);
// The current time in the log's form, UTC, with milliseconds.
std::string clf_now();

class AccessLog {
 public:
  explicit AccessLog(const std::string& path);  // "-": stderr. Throws std::runtime_error.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  void write(const AccessEntry& e) noexcept;

 private:
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace kv::proxy
