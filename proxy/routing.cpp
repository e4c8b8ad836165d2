#include "proxy/routing.hpp"

#include "http/policy.hpp"

namespace kv::proxy {

Access access_of(http::Method m) noexcept {
  if (http::is_read(m)) return Access::read;
  return m == http::Method::delete_ ? Access::remove : Access::write;
}

Route route(const Topology& t, std::uint64_t key_hash, Access access) noexcept {
  Route r;
  Backend* owner = t.backends[t.ring->owner_of_hash(key_hash)].get();
  Step last{owner, false};
  Step first{};
  if (t.migration) [[unlikely]] {
    const Migration& m = *t.migration;
    Backend* next = m.backends[m.ring->owner_of_hash(key_hash)].get();
    if (next->id != owner->id) {
      r.moving = true;
      const bool write = access != Access::read;
      const bool remove = access == Access::remove;
      if (m.phase() == Phase::read_new) {
        if (write) first = {owner, false};
        last = {next, remove};
      } else if (write) {
        first = {next, remove};
      }
    }
  }
  if (first.backend) r.steps[r.count++] = first;
  r.steps[r.count++] = last;
  for (std::uint8_t i = 0; i < r.count; ++i) {
    if (!r.steps[i].backend->up.load(std::memory_order_relaxed)) {
      r.down = r.steps[i].backend;
      break;
    }
  }
  return r;
}

bool proceeds(Access access, unsigned status) noexcept {
  return status / 100 == 2 || (status == 404 && access == Access::remove);
}

}  // namespace kv::proxy
