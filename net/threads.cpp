#include "net/threads.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kv::net {

namespace {

// Linux keeps a nice value per thread: PRIO_PROCESS with a thread id sets that thread's alone.
id_t this_tid() { return static_cast<id_t>(::syscall(SYS_gettid)); }

}  // namespace

void name_this_thread(std::string_view name) {
  char buf[16] = {};
  std::memcpy(buf, name.data(), std::min(name.size(), sizeof buf - 1));
  ::pthread_setname_np(::pthread_self(), buf);
}

bool lower_this_thread(int steps, std::string& err) {
  if (steps <= 0) return true;
  errno = 0;  // -1 is a valid nice value: errno says whether getpriority failed
  const int now = ::getpriority(PRIO_PROCESS, this_tid());
  if (now == -1 && errno != 0) {
    err = std::string("getpriority: ") + std::strerror(errno);
    return false;
  }
  const int target = std::min(19, now + steps);
  if (::setpriority(PRIO_PROCESS, this_tid(), target) != 0) {
    err = std::string("setpriority: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace kv::net
