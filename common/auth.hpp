// Admin authentication: a bearer token read from a file, compared in constant time. Used by kvproxy
// (mutating admin endpoints), kvnode (its /admin/ endpoints) and ring-rebalance (which sends it).
#pragma once

#include <string>
#include <string_view>

namespace kv {

// The token in `path`: the file's content without trailing whitespace. Throws ConfigError
// ("PATH: cannot read: reason", "PATH: empty token", "PATH: token shorter than 16 characters").
std::string load_token_file(const std::string& path);

enum class AuthResult { ok, missing, wrong };

// Checks an Authorization header value against "Bearer <token>". The comparison takes the same time
// whatever the header holds, so a client cannot find the token byte by byte by timing answers.
AuthResult check_bearer(std::string_view authorization, std::string_view token) noexcept;

// Whether `host` (an address literal or "localhost") is the loopback interface: 127.0.0.0/8, ::1.
bool is_loopback(std::string_view host) noexcept;

}  // namespace kv
