#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace kv::proxy {

std::string format_access_line(const AccessEntry& e, std::string_view clf_time) {
  char times[128];
  std::snprintf(times, sizeof times, " Tr=%.3f Tc=%.3f Tf=%.3f Tt=%.3f\n", e.read_ms, e.connect_ms, e.first_byte_ms,
                e.total_ms);
  std::string line;
  line.reserve(160 + e.target.size());
  line.append(e.peer).append(" [").append(clf_time).append("] ").append(e.method).append(" ");
  line.append(e.target).append(" ").append(e.node).append(" ");
  line.append(std::to_string(e.status)).append(" ").append(std::to_string(e.bytes)).append(times);
  return line;
}

std::string clf_now() {
  char buf[64];
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  const auto n = std::strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms));
  return buf;
}

AccessLog::AccessLog(const std::string& path) {
  if (path == "-") {
    fd_ = 2;
    return;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open access log " + path + ": " + std::strerror(errno));
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

void AccessLog::write(const AccessEntry& e) noexcept {
  try {
    const std::string line = format_access_line(e, clf_now());
    // O_APPEND and one write() per line: concurrent workers never interleave within a line.
    [[maybe_unused]] const auto n = ::write(fd_, line.data(), line.size());
  } catch (...) {
    // Out of memory formatting a line: the request is served all the same.
  }
}

}  // namespace kv::proxy
