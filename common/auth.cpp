#include "common/auth.hpp"

#include <cerrno>
#include <cstring>

#include "common/config.hpp"
#include "common/files.hpp"

namespace kv {

inline constexpr std::size_t kMinTokenLength = 16;

std::string load_token_file(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  std::string token = std::move(*bytes);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
    token.pop_back();
  if (token.empty()) throw ConfigError(path + ": empty token");
  if (token.size() < kMinTokenLength)
    throw ConfigError(path + ": token shorter than " + std::to_string(kMinTokenLength) + " characters");
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e) throw ConfigError(path + ": the token may hold only printable ASCII without spaces");
  return token;
}

AuthResult check_bearer(std::string_view authorization, std::string_view token) noexcept {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.empty()) return AuthResult::missing;
  if (authorization.size() < kScheme.size()) return AuthResult::wrong;
  // The scheme is case-insensitive (RFC 9110 11.1); checking it leaks nothing about the token.
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char e = kScheme[i];
    if (e >= 'A' && e <= 'Z') e = static_cast<char>(e - 'A' + 'a');
    if (c != e) return AuthResult::wrong;
  }
  const std::string_view given = authorization.substr(kScheme.size());
  // Every byte of the token is compared whatever the length of `given`; the lengths are compared
  // too, without an early exit.
  unsigned diff = given.size() == token.size() ? 0u : 1u;
  for (std::size_t i = 0; i < token.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(token[i]);
  }
  return diff == 0 ? AuthResult::ok : AuthResult::wrong;
}

bool is_loopback(std::string_view host) noexcept {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (!host.starts_with("127.")) return false;
  // 127.a.b.c with decimal parts: enough to tell a loopback literal from a name like "127.example".
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
  }
  return dots == 3;
}

}  // namespace kv
