// The node requests of the plans that reach two owners of a moving key (proxy/routing.hpp), and what
// their answers say of the version a node holds (common/version.hpp). Pure: no sockets, so the unit
// tests check the bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/version.hpp"
#include "http/scan.hpp"

namespace kv::proxy {

// What a node holds of a key, as a versioned answer says.
struct Held {
  Tag tag;                 // none: nothing, neither a value nor a tombstone
  bool tombstone = false;  // a delete
};
// nullopt when the answer carries no valid X-KV-Version (a node that does not keep versions).
std::optional<Held> held_of(const http::ScannedHead& answer) noexcept;

// What a tag query found on one owner: the version, and whether it is a value (the answer was 200).
struct Found {
  Held held;
  bool value = false;
  std::uint64_t floor = 0;  // a replica query's X-KV-Floor: a new write's tag must be above it
};
// Which of two owners' states is newer: 1 for `b`, else 0. The newer tag; at equal tags, a value
// over nothing, which differ only with Tag{} (a value from before versions: it has no order).
int newer_of(const Found& a, const Found& b) noexcept;
// Whether two owners hold the same write (no write-back needed).
bool same_state(const Found& a, const Found& b) noexcept;

// The tag query: a versioned GET of the key `target` names (its query string kept as it came).
void append_query(std::string& out, std::string_view target, std::string_view host);
// The write-back of what `from` held: its value (`get_answer_body`, the node's JSON answer to the
// query, which is also a valid put body) or its tombstone, with its tag.
void append_write_back(std::string& out, std::string_view target, std::string_view host, const Held& from,
                       std::string_view get_answer_body);

}  // namespace kv::proxy
