// Taking `key` from a request target ("/get?key=a%2Fb&x=1"), as HAProxy's url_param does, but strict:
// names and values are percent-decoded ('+' is a space), the first parameter named `key` wins, and
// missing, empty, badly encoded, control-character and over-long keys are distinct errors.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kv {

enum class KeyError { none, missing, empty, bad_encoding, control_char, too_long };

struct KeyResult {
  std::string key;  // decoded; valid only when error == none
  KeyError error = KeyError::none;
};

inline constexpr std::size_t kDefaultMaxKeyBytes = 1024;

KeyResult extract_key(std::string_view target, std::size_t max_key_bytes = kDefaultMaxKeyBytes);

// The JSON "detail" for each error, e.g. "Missing key parameter".
std::string_view key_error_detail(KeyError e) noexcept;

// Percent-decodes `in` into `out` ('+' -> ' '); false on a '%' not followed by two hex digits.
bool percent_decode(std::string_view in, std::string& out);

// The path of a target: everything before '?' (or '#').
std::string_view target_path(std::string_view target) noexcept;

// The raw (not decoded) value of the first query parameter `name`; empty when absent. For admin
// parameters that are hex digits and numbers.
std::string_view query_value(std::string_view target, std::string_view name) noexcept;

}  // namespace kv
