// Beast's parser as the fallback of the scanners (http/scan.hpp): message heads kept as raw field
// lines for relaying (a proxy needs the lines as they came and a few facts about framing, not a
// searchable field container). RawParser is a Beast basic_parser that copies each field into one
// arena string (reused across messages: no allocation per field once warm) and appends the body to
// a caller-owned string.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/scan.hpp"

namespace kv::http {

namespace beast = boost::beast;

struct RawHead {
  struct Field {
    beast::http::field id;
    std::uint32_t name_offset, name_size, value_offset, value_size;
  };

  std::string arena;  // start-line parts and every field's name and value, back to back
  std::vector<Field> fields;
  beast::http::verb method = beast::http::verb::unknown;
  std::uint32_t method_offset = 0, method_size = 0, target_offset = 0, target_size = 0;  // requests
  unsigned status = 0;                                                                     // responses
  std::uint32_t reason_offset = 0, reason_size = 0;
  unsigned version = 11;

  void clear() {
    arena.clear();
    fields.clear();
    method = beast::http::verb::unknown;
    status = 0;
    version = 11;
  }
  std::string_view view(std::uint32_t offset, std::uint32_t size) const { return {arena.data() + offset, size}; }
  std::string_view name(const Field& f) const { return view(f.name_offset, f.name_size); }
  std::string_view value(const Field& f) const { return view(f.value_offset, f.value_size); }
  std::string_view method_string() const { return view(method_offset, method_size); }
  std::string_view target() const { return view(target_offset, target_size); }
  std::string_view reason() const { return view(reason_offset, reason_size); }
  // The first value of a field, or empty.
  std::string_view find(beast::http::field id) const {
    for (const auto& f : fields)
      if (f.id == id) return value(f);
    return {};
  }

  std::uint32_t store(std::string_view s) {
    const auto offset = static_cast<std::uint32_t>(arena.size());
    arena.append(s.data(), s.size());
    return offset;
  }
};

template <bool isRequest>
class RawParser : public beast::http::basic_parser<isRequest> {
 public:
  // `head` and `body` must be cleared by the caller and outlive the parser.
  RawParser(RawHead& head, std::string& body) : head_(head), body_(body) {}
  RawHead& head() noexcept { return head_; }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(beast::http::verb method, string_view method_str, string_view target, int version, error_code&) override {
    head_.method = method;
    head_.method_offset = head_.store({method_str.data(), method_str.size()});
    head_.method_size = static_cast<std::uint32_t>(method_str.size());
    head_.target_offset = head_.store({target.data(), target.size()});
    head_.target_size = static_cast<std::uint32_t>(target.size());
    head_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int code, string_view reason, int version, error_code&) override {
    head_.status = static_cast<unsigned>(code);
    head_.reason_offset = head_.store({reason.data(), reason.size()});
    head_.reason_size = static_cast<std::uint32_t>(reason.size());
    head_.version = static_cast<unsigned>(version);
  }
  void on_field_impl(beast::http::field id, string_view name, string_view value, error_code&) override {
    // A chunked body's trailer fields come here too, after the head: they are not the head's (RFC
    // 9110 6.5.1), so a proxy must not pass them on as such. They are dropped.
    if (header_done_) return;
    RawHead::Field f{id, 0, static_cast<std::uint32_t>(name.size()), 0, static_cast<std::uint32_t>(value.size())};
    f.name_offset = head_.store({name.data(), name.size()});
    f.value_offset = head_.store({value.data(), value.size()});
    head_.fields.push_back(f);
  }
  void on_header_impl(error_code&) override { header_done_ = true; }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) body_.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t on_body_impl(string_view s, error_code&) override {
    body_.append(s.data(), s.size());
    return s.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view s, error_code&) override {
    body_.append(s.data(), s.size());
    return s.size();
  }
  void on_finish_impl(error_code&) override {}

  RawHead& head_;
  std::string& body_;
  bool header_done_ = false;
};

// A message Beast's parser reads, and the parser: what a reader makes on its first message the
// scanners decline, and keeps for the connection's life (the arena and body keep their memory).
template <bool isRequest>
struct BeastMessage {
  RawHead head;
  std::string body;
  std::optional<RawParser<isRequest>> parser;
  // A fresh parser for the next message, from its first byte.
  RawParser<isRequest>& start() {
    head.clear();
    body.clear();
    return parser.emplace(head, body);
  }
};

// Puts what `data` holds into Beast's parser, holding the head to `head_limit` bytes in all. Beast's
// own header limit bounds only what one put() is given, and callers consume what it takes field by
// field, so on its own it would let a head of any length through in pieces; `head_used` counts the
// head's bytes over every call (zero it for each message). Returns the bytes taken; `ec` as put()'s,
// header_limit when the head would not end within the limit.
template <class Parser>
std::size_t put_limited(Parser& p, const char* data, std::size_t size, std::size_t head_limit, std::size_t& head_used,
                        beast::error_code& ec) {
  if (p.is_header_done()) return p.put(boost::asio::buffer(data, size), ec);
  const std::size_t room = head_limit > head_used ? head_limit - head_used : 0;
  const std::size_t n = std::min(size, room);
  const std::size_t used = n ? p.put(boost::asio::buffer(data, n), ec) : 0;
  if (!p.is_header_done()) {
    head_used += used;
    // The parser wants bytes past the limit, or has no room left: the head is too long.
    if ((ec == beast::http::error::need_more && n == room) || (!ec && head_used >= head_limit))
      ec = beast::http::error::header_limit;
  }
  return used;
}

// Gives Beast's parser what `in` holds, consuming what it takes, until the message is done, the
// parser wants more (ec left clear) or it fails (ec set). The head is held to `head_limit` bytes.
template <bool isRequest, class Buffer>
void feed(RawParser<isRequest>& p, Buffer& in, std::size_t head_limit, std::size_t& head_used, beast::error_code& ec) {
  while (!in.empty() && !p.is_done()) {
    const std::size_t used = put_limited(p, in.data(), in.size(), head_limit, head_used, ec);
    in.consume(used);
    if (ec == beast::http::error::need_more) {
      ec = {};
      return;
    }
    if (ec || used == 0) return;
  }
}

// A head Beast's parser read, seen as the scanners in http/scan.hpp see theirs, so that one
// piece of code relays either.
inline Method method_of(beast::http::verb v) {
  switch (v) {
    case beast::http::verb::get: return Method::get;
    case beast::http::verb::head: return Method::head;
    case beast::http::verb::post: return Method::post;
    case beast::http::verb::put: return Method::put;
    case beast::http::verb::delete_: return Method::delete_;
    default: return Method::other;
  }
}

inline ScannedHead::Kind kind_of(beast::http::field id) {
  using Kind = ScannedHead::Kind;
  switch (id) {
    case beast::http::field::content_length: return Kind::content_length;
    case beast::http::field::connection: return Kind::connection;
    case beast::http::field::keep_alive: return Kind::keep_alive;
    case beast::http::field::te: return Kind::te;
    case beast::http::field::trailer: return Kind::trailer;
    case beast::http::field::transfer_encoding: return Kind::transfer_encoding;
    case beast::http::field::upgrade: return Kind::upgrade;
    case beast::http::field::proxy_connection: return Kind::proxy_connection;
    case beast::http::field::expect: return Kind::expect;
    default: return Kind::other;
  }
}

// Views into `raw`. The caller sets keep_alive and content_length from the parser.
inline void view_of(const RawHead& raw, ScannedHead& out) {
  out.fields.clear();
  out.version = raw.version;
  out.method = method_of(raw.method);
  out.method_string = raw.method_string();
  out.target = raw.target();
  out.status = raw.status;
  out.reason = raw.reason();
  out.head_size = 0;
  out.start_line = {};
  out.connection_names_fields = false;
  for (const auto& f : raw.fields) {
    const auto kind = kind_of(f.id);
    out.connection_names_fields |= kind == ScannedHead::Kind::connection;  // its tokens are looked at when relaying
    out.fields.push_back({raw.name(f), raw.value(f), kind, {}});
  }
}

}  // namespace kv::http
