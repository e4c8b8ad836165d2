#include "http/scan.hpp"

#include <array>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace kv::http {

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

constexpr std::size_t npos = std::string_view::npos;

// The index of the first byte of s[0, n) that is not text(), or n: where a line ends (at its CR), or
// the bad byte that makes the scanner decline it. `colon` gets the index of the first ':' before
// that, or npos. Sixteen bytes at a time where SSE2 is there (every x86-64): one pass does the work
// of memchr, a validation loop and a search for the colon.
std::size_t text_end(const char* s, std::size_t n, std::size_t& colon) {
  colon = npos;
  std::size_t i = 0;
#ifdef __SSE2__
  if (n >= 16) {
    const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t'),
                  col = _mm_set1_epi8(':');
    // Bit k of each mask is about byte at + k; lanes below `from` were looked at already.
    auto look = [&](std::size_t at, unsigned from) -> std::size_t {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
      // Signed: bytes >= 0x80 are negative, so "below space" takes in obs-text with the controls.
      const __m128i out = _mm_andnot_si128(_mm_cmpeq_epi8(x, tab), _mm_or_si128(_mm_cmplt_epi8(x, space), _mm_cmpeq_epi8(x, del)));
      const unsigned keep = ~((1u << from) - 1);
      const unsigned bad = static_cast<unsigned>(_mm_movemask_epi8(out)) & keep;
      unsigned colons = colon == npos ? static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, col))) & keep : 0;
      if (bad) colons &= (1u << __builtin_ctz(bad)) - 1;  // only those before the end
      if (colons) colon = at + static_cast<std::size_t>(__builtin_ctz(colons));
      return bad ? at + static_cast<std::size_t>(__builtin_ctz(bad)) : npos;
    };
    for (; i + 16 <= n; i += 16)
      if (const std::size_t e = look(i, 0); e != npos) return e;
    if (i == n) return n;
    // The tail, as the last sixteen bytes.
    const std::size_t e = look(n - 16, static_cast<unsigned>(i - (n - 16)));
    return e == npos ? n : e;
  }
#endif
  for (; i < n; ++i) {
    if (!text(s[i])) return i;
    if (s[i] == ':' && colon == npos) colon = i;
  }
  return n;
}

// The index of the first byte of s[0, n) outside 0x21..0x7e (printable ASCII, no space), or n: the
// end of a request target.
std::size_t target_end(const char* s, std::size_t n) {
  std::size_t i = 0;
#ifdef __SSE2__
  const __m128i bang = _mm_set1_epi8(0x21), del = _mm_set1_epi8(0x7f);
  for (; i + 16 <= n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    const unsigned stop = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(x, bang), _mm_cmpeq_epi8(x, del))));
    if (stop) return i + static_cast<std::size_t>(__builtin_ctz(stop));
  }
#endif
  for (; i < n; ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u <= 0x20 || u >= 0x7f) return i;
  }
  return n;
}

bool ows(char c) { return c == ' ' || c == '\t'; }

// Connection's value as a plain list of tokens ("close", "keep-alive, x"): sets the flags Beast
// would; false for anything else (empty elements, quotes, "upgrade"), which is declined.
bool connection_tokens(std::string_view v, bool& close, bool& keep_alive, bool& names_fields) {
  for (;;) {
    std::size_t i = 0;
    while (i < v.size() && ows(v[i])) ++i;
    const std::size_t start = i;
    while (i < v.size() && tchar(v[i])) ++i;
    const std::string_view token = v.substr(start, i - start);
    if (token.empty()) return false;
    if (iequal_lower(token, "close")) close = true;
    else if (iequal_lower(token, "keep-alive")) keep_alive = true;
    else if (iequal_lower(token, "upgrade")) return false;
    else names_fields = true;
    while (i < v.size() && ows(v[i])) ++i;
    if (i == v.size()) return true;
    if (v[i] != ',') return false;
    v.remove_prefix(i + 1);
  }
}

// The head's lines after the start line, from `p`: every field into out.fields, then the blank
// line. `more` is what to say where the input runs out.
template <bool isRequest>
ScanResult scan_fields(std::string_view v, std::size_t p, ScanResult more, ScannedHead& out) {
  const char* const base = v.data();
  bool have_length = false, close = false, keep_alive = false;
  for (;;) {
    if (p >= v.size()) return more;
    if (v[p] == '\r') {
      if (p + 1 >= v.size()) return more;
      if (v[p + 1] != '\n') return ScanResult::decline;
      out.head_size = p + 2;
      break;
    }
    // A line is printable ASCII, space and tab up to its CRLF: a bare LF, any other control byte or
    // obs-text declines, even before the line is complete, as Beast fails at once.
    std::size_t colon;
    const std::size_t e = p + text_end(base + p, v.size() - p, colon);
    if (e < v.size() && v[e] != '\r') return ScanResult::decline;
    if (e + 1 < v.size() && v[e + 1] != '\n') return ScanResult::decline;
    // The CRLF, and one byte past it: a line that starts with a space or tab continues this one
    // (obsolete folding), which is declined.
    if (e + 2 >= v.size()) return more;
    if (ows(v[e + 2])) return ScanResult::decline;
    const std::string_view line = v.substr(p, e - p), whole = v.substr(p, e + 2 - p);
    if (colon == 0 || colon == npos) return ScanResult::decline;
    const std::string_view name = line.substr(0, colon);
    bool token = true;  // no branch per byte: names are short and almost always good
    for (char c : name) token &= tchar(c);
    if (!token) return ScanResult::decline;
    std::size_t vs = colon + 1, ve = line.size();
    while (vs < ve && ows(line[vs])) ++vs;
    while (ve > vs && ows(line[ve - 1])) --ve;
    const std::string_view value = line.substr(vs, ve - vs);
    p = e + 2;

    using Kind = ScannedHead::Kind;
    Kind kind = Kind::other;
    switch (name.size()) {  // the fields with a meaning for framing or the next hop, by length first
      case 14:
        if (iequal_lower(name, "content-length")) {
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
        if (iequal_lower(name, "connection")) {
          kind = Kind::connection;
          if (!connection_tokens(value, close, keep_alive, out.connection_names_fields)) return ScanResult::decline;
        } else if (iequal_lower(name, "keep-alive")) {
          kind = Kind::keep_alive;
        }
        break;
      case 17:
        if (iequal_lower(name, "transfer-encoding")) return ScanResult::decline;
        break;
      case 7:
        if (iequal_lower(name, "upgrade")) return ScanResult::decline;
        if (iequal_lower(name, "trailer")) kind = Kind::trailer;
        break;
      case 6:
        if (iequal_lower(name, "expect")) {
          if (isRequest) return ScanResult::decline;  // the proxy answers 100-continue, on Beast's path
          kind = Kind::expect;                        // meaningless in an answer: relayed as it is
        }
        break;
      case 2:
        if (iequal_lower(name, "te")) kind = Kind::te;
        break;
      case 16:
        if (iequal_lower(name, "proxy-connection")) return ScanResult::decline;
        break;
      default:
        break;
    }
    if (out.fields.size() == 256) return ScanResult::decline;
    out.fields.push_back({name, value, kind, whole});
  }
  if (!have_length) {
    if (!isRequest) return ScanResult::decline;  // a body up to EOF: Beast's
    out.content_length = 0;                      // a request without a body
  }
  out.keep_alive = out.version == 11 ? !close : keep_alive;
  return ScanResult::complete;
}

void reset(ScannedHead& out) {
  out.fields.clear();
  out.content_length = 0;
  out.connection_names_fields = false;
}

// Where the input is cut short: wait for more, unless the limit is what cut it.
ScanResult more_for(std::string_view in, std::size_t header_limit) {
  return in.size() >= header_limit ? ScanResult::decline : ScanResult::need_more;
}

// The methods kvring's API has; any other goes to Beast, which passes it on (the node answers 405).
Method method_of(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::get;
      if (m == "PUT") return Method::put;
      break;
    case 4:
      if (m == "HEAD") return Method::head;
      if (m == "POST") return Method::post;
      break;
    case 6:
      if (m == "DELETE") return Method::delete_;
      break;
    default:
      break;
  }
  return Method::other;
}

}  // namespace

bool iequal_lower(std::string_view a, std::string_view lower) noexcept {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

ScanResult scan_request(std::string_view in, std::size_t header_limit, ScannedHead& out) {
  reset(out);
  const std::string_view v = in.substr(0, header_limit);
  const ScanResult more = more_for(in, header_limit);

  // "GET /get?key=a HTTP/1.1\r\n", checked left to right so that a bad byte declines at once.
  std::size_t i = 0;
  while (i < v.size() && i < 7 && v[i] >= 'A' && v[i] <= 'Z') ++i;
  if (i == v.size()) return more;
  if (v[i] != ' ') return ScanResult::decline;  // not one of ours (or not a method at all)
  out.method_string = v.substr(0, i);
  out.method = method_of(out.method_string);
  if (out.method == Method::other) return ScanResult::decline;
  const std::size_t t = ++i;
  if (i == v.size()) return more;
  if (v[i] != '/') return ScanResult::decline;  // origin-form only
  // The target: printable ASCII without space, a subset of what Beast takes (it allows obs-text).
  const std::size_t te = i + target_end(v.data() + i, v.size() - i);
  if (te < v.size() && v[te] != ' ') return ScanResult::decline;
  i = te;
  if (i == v.size()) return more;
  out.target = v.substr(t, te - t);
  ++i;
  constexpr std::string_view kVersion = "HTTP/1.x\r\n";  // x: 0 or 1
  std::size_t k = 0;
  for (; k < kVersion.size() && i + k < v.size(); ++k) {
    const char c = v[i + k];
    if (k == 7 ? (c != '0' && c != '1') : c != kVersion[k]) return ScanResult::decline;
  }
  if (k < kVersion.size()) return more;
  out.version = v[i + 7] == '1' ? 11 : 10;
  out.start_line = v.substr(0, i + kVersion.size());
  return scan_fields<true>(v, i + kVersion.size(), more, out);
}

ScanResult scan_response(std::string_view in, std::size_t header_limit, ScannedHead& out) {
  reset(out);
  const std::string_view v = in.substr(0, header_limit);
  const ScanResult more = more_for(in, header_limit);

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
  std::size_t colon;
  const std::size_t e = 13 + text_end(v.data() + 13, v.size() - 13, colon);
  if (e < v.size() && v[e] != '\r') return ScanResult::decline;
  if (e + 1 >= v.size()) return more;
  if (v[e + 1] != '\n') return ScanResult::decline;
  out.reason = v.substr(13, e - 13);  // as Beast: not trimmed
  out.start_line = v.substr(0, e + 2);
  return scan_fields<false>(v, e + 2, more, out);
}

}  // namespace kv::http
