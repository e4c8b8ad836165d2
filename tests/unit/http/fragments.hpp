// How the reader tests cut their input: a message must read the same whatever pieces the network
// delivers it in. Every input is fed whole, one byte at a time, split in two at every point, and in
// pieces of 2, 5, 10 and 100 bytes (STYLE.md: "every input split at every fragment size").
#pragma once

#include <cstddef>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/io_buffer.hpp"
#include "http/scan.hpp"

namespace kvtest {

struct Plan {
  std::string name;                 // for INFO(): "whole", "1-byte pieces", "split at 17", ...
  std::vector<std::size_t> pieces;  // lengths, summing to the input's size
};

// Splits in two are at every point of inputs up to this size; longer ones (bodies over
// kScanMaxBody) are split near both ends and every 997 bytes, which keeps a test under a second.
inline constexpr std::size_t kEverySplitUpTo = 4096;

inline std::vector<Plan> plans(std::size_t n) {
  std::vector<Plan> out;
  out.push_back({"whole", {n}});
  for (std::size_t size : {1, 2, 5, 10, 100}) {
    if (size >= n) continue;
    Plan p{std::to_string(size) + "-byte pieces", {}};
    for (std::size_t at = 0; at < n; at += size) p.pieces.push_back(std::min(size, n - at));
    out.push_back(std::move(p));
  }
  for (std::size_t k = 1; k < n; ++k) {
    if (n > kEverySplitUpTo && k > 300 && k + 300 < n && k % 997 != 0) continue;
    out.push_back({"split at " + std::to_string(k), {k, n - k}});
  }
  return out;
}

// Puts `bytes` into `in` as a receive would.
inline void append(kv::IoBuffer& in, kv::BlockPool& pool, std::string_view bytes) {
  if (bytes.empty()) return;
  auto room = in.prepare(pool, bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  in.commit(bytes.size());
}

inline const char* method_name(kv::http::Method m) {
  switch (m) {
    case kv::http::Method::get: return "get";
    case kv::http::Method::head: return "head";
    case kv::http::Method::post: return "post";
    case kv::http::Method::put: return "put";
    case kv::http::Method::delete_: return "delete";
    default: return "other";
  }
}

inline const char* kind_name(kv::http::ScannedHead::Kind k) {
  using Kind = kv::http::ScannedHead::Kind;
  switch (k) {
    case Kind::content_length: return "content_length";
    case Kind::connection: return "connection";
    case Kind::keep_alive: return "keep_alive";
    case Kind::te: return "te";
    case Kind::trailer: return "trailer";
    case Kind::transfer_encoding: return "transfer_encoding";
    case Kind::upgrade: return "upgrade";
    case Kind::proxy_connection: return "proxy_connection";
    case Kind::expect: return "expect";
    default: return "other";
  }
}

// A message as a reader gave it, in one string, so that a test compares every part at once and a
// failure shows what differs. The parts that depend on the path taken (start_line, each field's
// line, head_size) are left out: the scanner has them, Beast's parser does not.
inline std::string render_request(const kv::http::ScannedHead& h, std::string_view body) {
  std::ostringstream s;
  s << method_name(h.method) << " '" << h.method_string << "' '" << h.target << "' v" << h.version << "\n";
  for (const auto& f : h.fields) s << "  " << f.name << ": '" << f.value << "' [" << kind_name(f.kind) << "]\n";
  s << "keep_alive=" << h.keep_alive << " content_length=" << h.content_length << " body='" << body << "'";
  return s.str();
}

inline std::string render_response(const kv::http::ScannedHead& h, std::string_view body) {
  std::ostringstream s;
  s << h.status << " '" << h.reason << "' v" << h.version << "\n";
  for (const auto& f : h.fields) s << "  " << f.name << ": '" << f.value << "' [" << kind_name(f.kind) << "]\n";
  s << "keep_alive=" << h.keep_alive << " body='" << body << "'";
  return s.str();
}

}  // namespace kvtest
