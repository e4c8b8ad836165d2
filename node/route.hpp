// The routes of kvnode's API: the session dispatches on them (admin requests run off the event
// loops) and the metrics count requests by them. Api::route_of picks a target's route.
#pragma once

#include <cstdint>
#include <string_view>

namespace kv {

// replica: /replica/ (common/replica.hpp), a coordinator's request to one replica of a key.
// sync: a peer's anti-entropy request (/replica/tree, /replica/diff, /replica/floors, /replica/purge, ...:
// common/anti_entropy.hpp), which may scan thousands of keys.
enum class Route : std::uint8_t { put, get, del, replica, sync, health, metrics, admin, other, count_ };

// The `route` label of the metrics.
constexpr std::string_view route_name(Route r) noexcept {
  switch (r) {
    case Route::put: return "put";
    case Route::get: return "get";
    case Route::del: return "del";
    case Route::replica: return "replica";
    case Route::sync: return "sync";
    case Route::health: return "health";
    case Route::metrics: return "metrics";
    case Route::admin: return "admin";
    default: return "other";
  }
}

}  // namespace kv
