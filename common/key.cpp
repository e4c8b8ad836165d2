#include "common/key.hpp"

namespace kv {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool percent_decode(std::string_view in, std::string& out) {
  // Most keys need no decoding: copy them whole. (A loop: find_first_of calls memchr per byte.)
  bool plain = true;
  for (char c : in) plain &= c != '%' && c != '+';
  if (plain) {
    out.assign(in.data(), in.size());
    return true;
  }
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;  // needs two more characters
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

std::string_view target_path(std::string_view target) noexcept {
  std::size_t i = 0;
  while (i < target.size() && target[i] != '?' && target[i] != '#') ++i;
  return target.substr(0, i);
}

KeyResult extract_key(std::string_view target, std::size_t max_key_bytes) {
  KeyResult r;
  const auto q = target.find('?');
  if (q == std::string_view::npos) {
    r.error = KeyError::missing;
    return r;
  }
  std::string_view query = target.substr(q + 1);
  if (const auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);

  std::string name;
  while (true) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    const auto eq = param.find('=');
    const std::string_view raw_name = param.substr(0, eq);
    // "key" as it usually comes, or percent-encoded (then longer than three bytes).
    if (raw_name == "key" || (raw_name.size() > 3 && percent_decode(raw_name, name) && name == "key")) {
      const std::string_view raw_value = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
      // A decoded key is never longer than its encoding; refuse absurd encodings before decoding.
      if (raw_value.size() > 3 * max_key_bytes) {
        r.error = KeyError::too_long;
        return r;
      }
      if (!percent_decode(raw_value, r.key)) {
        r.error = KeyError::bad_encoding;
      } else if (r.key.empty()) {
        r.error = KeyError::empty;
      } else if (r.key.size() > max_key_bytes) {
        r.error = KeyError::too_long;
      } else {
        for (unsigned char c : r.key) {
          if (c < 0x20 || c == 0x7f) {
            r.error = KeyError::control_char;
            break;
          }
        }
      }
      if (r.error != KeyError::none) r.key.clear();
      return r;
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  r.error = KeyError::missing;
  return r;
}

std::string_view key_error_detail(KeyError e) noexcept {
  switch (e) {
    case KeyError::none: return "";
    case KeyError::missing: return "Missing key parameter";
    case KeyError::empty: return "Empty key";
    case KeyError::bad_encoding: return "Invalid percent-encoding in key";
    case KeyError::control_char: return "Key contains a control character";
    case KeyError::too_long: return "Key too long";
  }
  return "Invalid key";
}

std::string_view query_value(std::string_view target, std::string_view name) noexcept {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  rest = rest.substr(0, rest.find('#'));
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace kv
