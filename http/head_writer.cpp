#include "http/head_writer.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>

#include "common/json.hpp"

namespace kv::http {

using namespace std::string_view_literals;  // appending a literal as a view skips its strlen()

void append_status_line(std::string& out, unsigned version, unsigned status, std::string_view reason) {
  out.append(version == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv);
  append_number(out, status);
  out.append(" "sv);
  if (reason.empty()) {
    const auto r = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
    out.append(r.data(), r.size());
  } else {
    out.append(reason);
  }
  out.append("\r\n"sv);
}

void append_answer(std::string& out, unsigned version, const LocalAnswer& a, bool keep_alive, bool head_only) {
  append_status_line(out, version, a.status);
  out.append("Content-Type: "sv).append(a.content_type).append("\r\n"sv);
  append_content_length(out, a.body.size());
  out.append(a.extra_fields);
  end_head(out, version, keep_alive);
  if (!head_only) out.append(a.body);
}

void append_rejection(std::string& out, unsigned version, const Rejection& r) {
  const std::string body = json_error(r.detail);
  append_answer(out, version, {static_cast<unsigned>(r.status), "application/json", body, {}}, false, false);
}

namespace {

// Calls fn(token) for each field name a Connection field of `h` lists, other than close and
// keep-alive (which are about this hop's connection, not a field).
template <class Fn>
void each_named_field(const ScannedHead& h, Fn&& fn) {
  for (const auto& f : h.fields) {
    if (f.kind != ScannedHead::Kind::connection) continue;
    std::string_view list = f.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      std::string_view token = list.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (!token.empty() && !iequal_lower(token, "close") && !iequal_lower(token, "keep-alive")) fn(token);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
}

// Whether `name` begins with `prefix_lower`, compared case-insensitively; an empty prefix: never.
bool has_prefix_lower(std::string_view name, std::string_view prefix_lower) noexcept {
  return !prefix_lower.empty() && name.size() >= prefix_lower.size() &&
         iequal_lower(name.substr(0, prefix_lower.size()), prefix_lower);
}

}  // namespace

bool append_relayed(const ScannedHead& h, std::string_view start_line, std::string& out, bool request,
                    std::string_view drop_prefix_lower) {
  using Kind = ScannedHead::Kind;
  // Field names listed in Connection (other than close/keep-alive) are hop-by-hop too; rare, so the
  // common case costs a flag test. The first few are kept at hand; past them, each field is looked
  // up in the lists again.
  constexpr std::size_t kHeld = 8;
  std::string_view named[kHeld];
  std::size_t n_named = 0;
  bool more_named = false;
  if (h.connection_names_fields) {
    each_named_field(h, [&](std::string_view token) {
      if (n_named < kHeld) named[n_named++] = token;
      else more_named = true;
    });
  }
  auto is_named = [&](std::string_view name) {
    for (std::size_t i = 0; i < n_named; ++i)
      if (boost::beast::iequals(name, named[i])) return true;
    bool found = false;
    if (more_named) each_named_field(h, [&](std::string_view token) { found = found || boost::beast::iequals(name, token); });
    return found;
  };
  const char* run = start_line.data();  // the lines to copy, [run, run_end)
  const char* run_end = run + start_line.size();
  auto flush = [&] {
    if (run != run_end) out.append(run, static_cast<std::size_t>(run_end - run));
    run = run_end = nullptr;
  };
  bool length = false;
  for (const auto& f : h.fields) {
    bool keep = f.kind == Kind::other || (f.kind == Kind::expect && !request);
    if (f.kind == Kind::content_length && !f.line.empty()) keep = length = true;
    if (keep && f.kind == Kind::other) keep = !has_prefix_lower(f.name, drop_prefix_lower) && !(n_named && is_named(f.name));
    if (!keep) continue;
    if (f.line.empty()) {
      flush();
      out.append(f.name).append(": "sv).append(f.value).append("\r\n"sv);
    } else if (f.line.data() == run_end) {
      run_end += f.line.size();
    } else {
      flush();
      run = f.line.data();
      run_end = run + f.line.size();
    }
  }
  flush();
  return length;
}

void append_relayed_request(std::string& out, const ScannedHead& req, std::string_view body,
                            std::string_view drop_prefix_lower, std::string_view extra_fields) {
  const bool as_it_came = !req.start_line.empty() && req.version == 11;
  if (!as_it_came) out.append(req.method_string).append(" "sv).append(req.target).append(" HTTP/1.1\r\n"sv);
  const bool length = append_relayed(req, as_it_came ? req.start_line : std::string_view{}, out, true, drop_prefix_lower);
  out.append(extra_fields);
  if (!length && (!body.empty() || req.method == Method::post || req.method == Method::put))
    append_content_length(out, body.size());
  out.append("\r\n"sv).append(body);
}

void append_relayed_answer(std::string& out, const ScannedHead& req, const ScannedHead& ans, std::string_view body,
                           std::string_view drop_prefix_lower, std::string_view extra_fields, bool keep_alive) {
  const bool as_it_came = !ans.start_line.empty() && ans.version == req.version;
  if (!as_it_came) append_status_line(out, req.version, ans.status, ans.reason);
  const bool length = append_relayed(ans, as_it_came ? ans.start_line : std::string_view{}, out, false, drop_prefix_lower);
  out.append(extra_fields);
  const bool head = req.method == Method::head;
  if (head) {
    // An answer to HEAD (read by Beast) says how long its body would be: the node's length, if any.
    for (const auto& f : ans.fields)
      if (f.kind == ScannedHead::Kind::content_length) {
        out.append("Content-Length: "sv).append(f.value).append("\r\n"sv);
        break;
      }
  } else if (!length) {
    append_content_length(out, body.size());
  }
  end_head(out, req.version, keep_alive);
  if (!head) out.append(body);
}

}  // namespace kv::http
