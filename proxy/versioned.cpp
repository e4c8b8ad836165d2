#include "proxy/versioned.hpp"

#include "common/key.hpp"
#include "http/head_writer.hpp"

namespace kv::proxy {

using namespace std::string_view_literals;

namespace {

// The target with its path replaced: the query string (the key, as the client encoded it) stays.
void append_target(std::string& out, std::string_view path, std::string_view target) {
  out.append(path).append(target.substr(target_path(target).size()));
}

}  // namespace

std::optional<Held> held_of(const http::ScannedHead& answer) noexcept {
  std::optional<Held> held;
  bool tombstone = false;
  for (const auto& f : answer.fields) {
    if (http::iequal_lower(f.name, version::kFieldLower)) {
      const auto tag = parse_tag(f.value);
      if (!tag) return std::nullopt;
      held = Held{*tag, false};
    } else if (http::iequal_lower(f.name, version::kTombstoneFieldLower)) {
      tombstone = f.value == "1"sv;
    }
  }
  if (held) held->tombstone = tombstone;
  return held;
}

int newer_of(const Found& a, const Found& b) noexcept {
  if (b.held.tag != a.held.tag) return b.held.tag > a.held.tag ? 1 : 0;
  return b.value && !a.value ? 1 : 0;
}

bool same_state(const Found& a, const Found& b) noexcept {
  return a.held.tag == b.held.tag && a.value == b.value;
}

void append_query(std::string& out, std::string_view target, std::string_view host) {
  out.append("GET "sv);
  append_target(out, "/get"sv, target);
  out.append(" HTTP/1.1\r\nHost: "sv).append(host).append("\r\n"sv).append(version::kVersionedLine).append("\r\n"sv);
}

void append_write_back(std::string& out, std::string_view target, std::string_view host, const Held& from,
                       std::string_view get_answer_body) {
  out.append(from.tombstone ? "DELETE "sv : "POST "sv);
  append_target(out, from.tombstone ? "/del"sv : "/put"sv, target);
  out.append(" HTTP/1.1\r\nHost: "sv).append(host).append("\r\n"sv).append(version::version_line(from.tag));
  if (from.tombstone) {
    out.append("\r\n"sv);
    return;
  }
  out.append("Content-Type: application/json\r\n"sv);
  http::append_content_length(out, get_answer_body.size());
  out.append("\r\n"sv).append(get_answer_body);
}

}  // namespace kv::proxy
