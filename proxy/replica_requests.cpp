#include "proxy/replica_requests.hpp"

#include "common/key.hpp"
#include "common/replica.hpp"
#include <charconv>
#include "http/head_writer.hpp"

namespace kv::proxy {

using namespace std::string_view_literals;

namespace {

void append_start(std::string& out, std::string_view method, std::string_view path, std::string_view target,
                  std::string_view host, std::string_view auth) {
  out.append(method).append(" "sv).append(path).append(target.substr(target_path(target).size()));
  out.append(" HTTP/1.1\r\nHost: "sv).append(host).append("\r\n"sv).append(auth);
}

// 401, 403: the node refuses the proxy's token, not the client's request. A replica failure (the
// client cannot fix it), never the client's answer.
bool refuses_the_proxy(unsigned status) noexcept { return status == 401 || status == 403; }

}  // namespace

std::string_view floor_field(const http::ScannedHead& answer) noexcept {
  for (const auto& f : answer.fields)
    if (http::iequal_lower(f.name, replica::kFloorFieldLower)) return f.value;
  return {};
}

void append_replica_get(std::string& out, std::string_view target, std::string_view host, bool head,
                        std::string_view auth) {
  append_start(out, head ? "HEAD"sv : "GET"sv, replica::kGetPath, target, host, auth);
  out.append("\r\n"sv);
}

void append_replica_store(std::string& out, bool remove, std::string_view target, std::string_view host,
                          const Tag& tag, std::string_view put_body, std::string_view auth) {
  append_start(out, remove ? "DELETE"sv : "POST"sv, remove ? replica::kDelPath : replica::kPutPath, target, host, auth);
  out.append(version::version_line(tag));
  if (remove) {
    out.append("\r\n"sv);
    return;
  }
  out.append("Content-Type: application/json\r\n"sv);
  http::append_content_length(out, put_body.size());
  out.append("\r\n"sv).append(put_body);
}

ReplicaReply query_reply(const http::ScannedHead& answer) noexcept {
  const unsigned s = answer.status;
  if (s == 200 || s == 404) {
    if (const auto held = held_of(answer)) {
      Found found{*held, s == 200};
      const auto floor = floor_field(answer);
      std::uint64_t n = 0;
      if (!floor.empty()) {
        const auto [end, ec] = std::from_chars(floor.data(), floor.data() + floor.size(), n);
        if (ec != std::errc() || end != floor.data() + floor.size() || n > kMaxTagCounter) return {ReplicaReply::Kind::failed, {}};
      }
      found.floor = n;
      return {ReplicaReply::Kind::found, found};
    }
    return {ReplicaReply::Kind::failed, {}};
  }
  if (s / 100 == 4 && !refuses_the_proxy(s)) return {ReplicaReply::Kind::refused, {}};
  return {ReplicaReply::Kind::failed, {}};
}

ReplicaReply store_reply(const http::ScannedHead& answer, bool remove) noexcept {
  const unsigned s = answer.status;
  if (s == 200 || (remove && s == 404)) {
    if (const auto held = held_of(answer)) return {ReplicaReply::Kind::stored, Found{*held, !held->tombstone && !held->tag.none()}};
    return {ReplicaReply::Kind::failed, {}};
  }
  if (s == 409 && !floor_field(answer).empty()) return {ReplicaReply::Kind::below_floor, {}};
  if (s / 100 == 4 && s != 404 && s != 409 && !refuses_the_proxy(s)) return {ReplicaReply::Kind::refused, {}};
  return {ReplicaReply::Kind::failed, {}};
}

}  // namespace kv::proxy
