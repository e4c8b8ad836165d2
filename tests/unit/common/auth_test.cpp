#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "common/auth.hpp"
#include "common/config.hpp"

TEST_CASE("check_bearer: ok only for the exact token; missing and wrong told apart", "[auth]") {
  const std::string token = "0123456789abcdef-token";
  CHECK(kv::check_bearer("Bearer 0123456789abcdef-token", token) == kv::AuthResult::ok);
  CHECK(kv::check_bearer("bearer 0123456789abcdef-token", token) == kv::AuthResult::ok);  // scheme is case-insensitive
  CHECK(kv::check_bearer("", token) == kv::AuthResult::missing);
  CHECK(kv::check_bearer("Bearer 0123456789abcdef-toke", token) == kv::AuthResult::wrong);   // a prefix
  CHECK(kv::check_bearer("Bearer 0123456789abcdef-tokenX", token) == kv::AuthResult::wrong); // longer
  CHECK(kv::check_bearer("Bearer 0123456789abcdef-tokeN", token) == kv::AuthResult::wrong);  // last byte
  CHECK(kv::check_bearer("Basic 0123456789abcdef-token", token) == kv::AuthResult::wrong);
  CHECK(kv::check_bearer("Bearer", token) == kv::AuthResult::wrong);
  CHECK(kv::check_bearer("Bearer ", token) == kv::AuthResult::wrong);
}

TEST_CASE("load_token_file trims the trailing newline and refuses weak or unreadable files", "[auth]") {
  char path[] = "/tmp/kvring-token-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::trunc) << text; };
  write("s3cret-token-of-32-characters-xx\n");
  CHECK(kv::load_token_file(path) == "s3cret-token-of-32-characters-xx");
  write("\n");
  CHECK_THROWS_WITH(kv::load_token_file(path), std::string(path) + ": empty token");
  write("short\n");
  CHECK_THROWS_WITH(kv::load_token_file(path), std::string(path) + ": token shorter than 16 characters");
  write("has a space in the middle\n");
  CHECK_THROWS_WITH(kv::load_token_file(path), std::string(path) + ": the token may hold only printable ASCII without spaces");
  std::remove(path);
  CHECK_THROWS_WITH(kv::load_token_file(path), std::string(path) + ": cannot read: No such file or directory");
}

TEST_CASE("is_loopback: 127.0.0.0/8, ::1 and localhost only", "[auth]") {
  CHECK(kv::is_loopback("127.0.0.1"));
  CHECK(kv::is_loopback("127.1.2.3"));
  CHECK(kv::is_loopback("::1"));
  CHECK(kv::is_loopback("localhost"));
  CHECK_FALSE(kv::is_loopback("0.0.0.0"));
  CHECK_FALSE(kv::is_loopback("::"));
  CHECK_FALSE(kv::is_loopback("10.0.0.1"));
  CHECK_FALSE(kv::is_loopback("127.example.com"));
  CHECK_FALSE(kv::is_loopback("1270.0.0.1"));
}
