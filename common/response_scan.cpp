#include "response_scan.hpp"

#include <array>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace kv {

namespace {

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" /
// "`" / "|" / "~" / DIGIT / ALPHA
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }
// Printable ASCII, space and tab. Beast takes obs-text (bytes >= 0x80) too; they are declined here.
bool text(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x20 && u < 0x7f) || u == '\t';
}

// text() over a whole line, sixteen bytes at a time where SSE2 is there (every x86-64).
bool all_text(const char* s, std::size_t n) {
#ifdef __SSE2__
  if (n >= 16) {
    const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t');
    auto bad = [&](const char* at) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
      // Signed: bytes >= 0x80 are negative, so "below space" takes in obs-text with the controls.
      const __m128i out = _mm_or_si128(_mm_cmplt_epi8(x, space), _mm_cmpeq_epi8(x, del));
      return _mm_movemask_epi8(_mm_andnot_si128(_mm_cmpeq_epi8(x, tab), out)) != 0;
    };
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16)
      if (bad(s + i)) return false;
    return i == n || !bad(s + n - 16);  // the tail, as the last sixteen bytes
  }
#endif
  for (std::size_t i = 0; i < n; ++i)
    if (!text(s[i])) return false;
  return true;
}

bool ows(char c) { return c == ' ' || c == '\t'; }

bool iequal(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// Connection's value as a plain list of tokens ("close", "keep-alive, x"): sets the flags Beast
// would; false for anything else (empty elements, quotes, "upgrade"), which is declined.
bool connection_tokens(std::string_view v, bool& close, bool& keep_alive) {
  for (;;) {
    std::size_t i = 0;
    while (i < v.size() && ows(v[i])) ++i;
    const std::size_t start = i;
    while (i < v.size() && tchar(v[i])) ++i;
    const std::string_view token = v.substr(start, i - start);
    if (token.empty()) return false;
    if (iequal(token, "close")) close = true;
    else if (iequal(token, "keep-alive")) keep_alive = true;
    else if (iequal(token, "upgrade")) return false;
    while (i < v.size() && ows(v[i])) ++i;
    if (i == v.size()) return true;
    if (v[i] != ',') return false;
    v.remove_prefix(i + 1);
  }
}

}  // namespace

ScanResult scan_response(std::string_view in, std::size_t header_limit, ScannedResponse& out) {
  out.fields.clear();
  const std::string_view v = in.substr(0, header_limit);
  // Where the head is cut short: wait for more, unless the limit is what cut it.
  const ScanResult more = in.size() >= header_limit ? ScanResult::decline : ScanResult::need_more;

  // "HTTP/1.x 200 reason\r\n"
  constexpr std::string_view kPrefix = "HTTP/1.";
  if (v.substr(0, kPrefix.size()) != kPrefix.substr(0, std::min(v.size(), kPrefix.size()))) return ScanResult::decline;
  if (v.size() < 13) return more;
  if ((v[7] != '0' && v[7] != '1') || v[8] != ' ') return ScanResult::decline;
  out.version = v[7] == '1' ? 11 : 10;
  unsigned status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (v[i] < '0' || v[i] > '9') return ScanResult::decline;
    status = status * 10 + static_cast<unsigned>(v[i] - '0');
  }
  // 1xx are interim, 204 and 304 have no body whatever their Content-Length says.
  if (v[12] != ' ' || status < 200 || status > 599 || status == 204 || status == 304) return ScanResult::decline;
  out.status = status;
  // Each line is found with memchr, then checked whole: printable ASCII, space and tab only (so a
  // bare LF, any other control byte or obs-text declines).
  const char* const base = v.data();
  auto line_end = [&](std::size_t from) -> std::size_t {  // index of the next CR, or npos
    const void* cr = std::memchr(base + from, '\r', v.size() - from);
    return cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - base) : std::string_view::npos;
  };
  // A bad byte declines even before its line is complete, as Beast fails at once.
  std::size_t e = line_end(13);
  if (!all_text(base + 13, (e == std::string_view::npos ? v.size() : e) - 13)) return ScanResult::decline;
  if (e == std::string_view::npos || e + 1 >= v.size()) return more;
  if (v[e + 1] != '\n') return ScanResult::decline;
  out.reason = v.substr(13, e - 13);  // as Beast: not trimmed
  std::size_t p = e + 2;

  bool have_length = false, close = false, keep_alive = false;
  for (;;) {
    if (p >= v.size()) return more;
    if (v[p] == '\r') {
      if (p + 1 >= v.size()) return more;
      if (v[p + 1] != '\n') return ScanResult::decline;
      out.head_size = p + 2;
      break;
    }
    e = line_end(p);
    if (!all_text(base + p, (e == std::string_view::npos ? v.size() : e) - p)) return ScanResult::decline;
    // The CRLF, and one byte past it: a line that starts with a space or tab continues this one
    // (obsolete folding), which is declined.
    if (e == std::string_view::npos || e + 2 >= v.size()) return more;
    if (v[e + 1] != '\n' || ows(v[e + 2])) return ScanResult::decline;
    const std::string_view line = v.substr(p, e - p);
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return ScanResult::decline;
    const std::string_view name = line.substr(0, colon);
    for (char c : name)
      if (!tchar(c)) return ScanResult::decline;
    std::size_t vs = colon + 1, ve = line.size();
    while (vs < ve && ows(line[vs])) ++vs;
    while (ve > vs && ows(line[ve - 1])) --ve;
    const std::string_view value = line.substr(vs, ve - vs);
    p = e + 2;

    using Kind = ScannedResponse::Kind;
    Kind kind = Kind::other;
    switch (name.size()) {  // the fields with a meaning for framing or the next hop, by length first
      case 14:
        if (iequal(name, "content-length")) {
          kind = Kind::content_length;
          if (have_length || value.empty() || value.size() > 18) return ScanResult::decline;
          std::uint64_t n = 0;
          for (char c : value) {
            if (c < '0' || c > '9') return ScanResult::decline;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
          }
          out.content_length = n;
          have_length = true;
        }
        break;
      case 10:
        if (iequal(name, "connection")) {
          kind = Kind::connection;
          if (!connection_tokens(value, close, keep_alive)) return ScanResult::decline;
        } else if (iequal(name, "keep-alive")) {
          kind = Kind::keep_alive;
        }
        break;
      case 17:
        if (iequal(name, "transfer-encoding")) return ScanResult::decline;
        break;
      case 7:
        if (iequal(name, "upgrade")) return ScanResult::decline;
        if (iequal(name, "trailer")) kind = Kind::trailer;
        break;
      case 2:
        if (iequal(name, "te")) kind = Kind::te;
        break;
      case 16:
        if (iequal(name, "proxy-connection")) return ScanResult::decline;
        break;
      default:
        break;
    }
    if (out.fields.size() == 256) return ScanResult::decline;
    out.fields.push_back({name, value, kind});
  }
  if (!have_length) return ScanResult::decline;  // a body up to EOF: Beast's
  out.keep_alive = out.version == 11 ? !close : keep_alive;
  return ScanResult::complete;
}

}  // namespace kv
