#include "net/io_loop.hpp"

#include <stdexcept>

namespace kv::net {

std::unique_ptr<IoLoop> make_epoll_loop();
#ifdef KV_HAVE_URING
std::unique_ptr<IoLoop> make_uring_loop();
#endif

std::unique_ptr<IoLoop> IoLoop::make(Kind kind) {
  if (kind == Kind::epoll) return make_epoll_loop();
#ifdef KV_HAVE_URING
  try {
    return make_uring_loop();
  } catch (const std::exception&) {
    if (kind == Kind::uring) throw;
  }
#else
  if (kind == Kind::uring) throw std::runtime_error("io_uring: this build has no liburing");
#endif
  return make_epoll_loop();
}

bool parse_io_kind(std::string_view text, IoLoop::Kind& kind) {
  if (text == "auto") kind = IoLoop::Kind::automatic;
  else if (text == "uring") kind = IoLoop::Kind::uring;
  else if (text == "epoll") kind = IoLoop::Kind::epoll;
  else return false;
  return true;
}

}  // namespace kv::net
