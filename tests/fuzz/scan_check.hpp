// What fuzz_request_scan and fuzz_response_scan check alike: that the fields kvproxy's scanner read
// are the ones Beast's parser read, with the kinds kvproxy acts on matching Beast's field ids.
#pragma once

#include <cstdlib>

#include "http_scan.hpp"
#include "raw_http.hpp"

namespace kv::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

inline void check_fields(const net::RawHead& head, const ScannedHead& scanned) {
  check(head.fields.size() == scanned.fields.size());
  for (std::size_t i = 0; i < head.fields.size(); ++i) {
    check(head.name(head.fields[i]) == scanned.fields[i].name && head.value(head.fields[i]) == scanned.fields[i].value);
    // The scanners decline the fields of the other kinds: what they accept, Beast knows the same way.
    check(scanned.fields[i].kind == net::kind_of(head.fields[i].id));
  }
}

}  // namespace kv::fuzz
