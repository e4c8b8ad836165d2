// The replica endpoints of kvnode: what a coordinator (kvproxy, with replicas: N) asks each replica
// of a key, written once for both sides and the tests. Versions are common/version.hpp's tags.
//
//   GET    /replica/get?key=K   what the replica holds: 200 with the value's JSON, or 404 (nothing, or
//   HEAD   /replica/get?key=K   a tombstone); always with X-KV-Version (and X-KV-Tombstone: 1 for a
//                               tombstone). HEAD: the same fields without the body (a write's tag query).
//   POST   /replica/put?key=K   store the value (the body, as /put takes it) under the tag of the
//   DELETE /replica/del?key=K   request's X-KV-Version, or a tombstone: applied only when the tag is
//                               newer than the key's, atomically. 200 with X-KV-Version (what the key
//                               holds after) and X-KV-Applied (1 applied, 0 superseded: it held a newer
//                               version); 409 when the same tag already holds another value.
//                               409 with X-KV-Floor too (a put only): refused, surely not stored,
//                               because the key holds nothing (or a tombstone older than the tag, at
//                               or below the floor) and the tag is not above the floor of its segment
//                               (a deleted key there was purged, and this store may be an older write
//                               of it), or "unknown" while the replica, new, learns its peers' floors.
// A /replica/get of a key that holds no value (nothing, or a tombstone) answers X-KV-Floor:
// <counter> when its segment has a floor: a write's tag must be above it (node/floors.hpp).
// A write without a tag is refused (400): a replica never invents the order of a replicated write.
// kvproxy never forwards /replica/ from clients, and kvnode asks for its admin token here as on
// /admin/ (the token is required when a node listens off loopback).
#pragma once

#include <string_view>

namespace kv::replica {

inline constexpr std::string_view kPrefix = "/replica/";
inline constexpr std::string_view kGetPath = "/replica/get";
inline constexpr std::string_view kPutPath = "/replica/put";
inline constexpr std::string_view kDelPath = "/replica/del";

inline constexpr std::string_view kFloorField = "X-KV-Floor";
inline constexpr std::string_view kFloorFieldLower = "x-kv-floor";
inline constexpr std::string_view kFloorUnknown = "unknown";

inline constexpr std::string_view kTagRequired = "X-KV-Version: a replica write needs the tag it stores (<counter>.<writer in hex>, not 0.0)";

}  // namespace kv::replica
