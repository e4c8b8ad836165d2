// The requests a coordinator sends to the replicas of a key (common/replica.hpp), and what their
// answers say (proxy/quorum.hpp's ReplicaReply). Pure: no sockets, so the unit tests check the bytes
// and every answer's reading.
#pragma once

#include <string>
#include <string_view>

#include "common/version.hpp"
#include "http/scan.hpp"
#include "proxy/quorum.hpp"

namespace kv::proxy {

// `auth`: a whole "Authorization: Bearer <token>\r\n" line for nodes that ask for their token, or
// empty. `target`: the client's request target, whose query string (the key, as the client encoded
// it) is kept.

// A read (GET) or a write's tag query (HEAD: the version fields without the value).
void append_replica_get(std::string& out, std::string_view target, std::string_view host, bool head,
                        std::string_view auth);
// A store of `tag`: the value (`put_body`, a body as /put takes it) or, with `remove`, a tombstone.
void append_replica_store(std::string& out, bool remove, std::string_view target, std::string_view host,
                          const Tag& tag, std::string_view put_body, std::string_view auth);

// What an answer to append_replica_get says: found (a 200 or 404 with a valid X-KV-Version, and a
// valid X-KV-Floor if any: Found::floor), refused
// (another 4xx: about the request, the client's answer), else failed (a 5xx, a 401 or 403 refusing
// the proxy's token, or a node that does not keep versions).
ReplicaReply query_reply(const http::ScannedHead& answer) noexcept;
// What an answer to append_replica_store says: stored (a 200, or a delete's 404, with its version:
// the replica holds that tag or a newer one; Found::held says which), below_floor (a 409 with X-KV-Floor: refused, surely
// not stored), refused (another 4xx), else failed: a 5xx; a 401 or 403
// (the proxy's token refused); a 409 (the
// same tag holding another value, which a coordinator never causes); a put's 404 (a node without the
// replica endpoints).
ReplicaReply store_reply(const http::ScannedHead& answer, bool remove) noexcept;
// X-KV-Floor's value in an answer ("" when absent).
std::string_view floor_field(const http::ScannedHead& answer) noexcept;

}  // namespace kv::proxy
