// proxy/versioned.hpp: what a node's versioned answer says it holds, and the exact bytes of the tag
// query and the write-back a read of both owners makes.
#include <catch2/catch.hpp>

#include <string>

#include "http/scan.hpp"
#include "proxy/versioned.hpp"

using namespace kv;
using namespace kv::proxy;

namespace {

http::ScannedHead answer(std::string_view in) {
  http::ScannedHead h;
  REQUIRE(http::scan_response(in, 8192, h) == http::ScanResult::complete);
  return h;
}

}  // namespace

TEST_CASE("the version a versioned answer names", "[versioned]") {
  const std::string value = "HTTP/1.1 200 OK\r\nX-KV-Version: 5.00000000000000aa\r\nContent-Length: 0\r\n\r\n";
  auto held = held_of(answer(value));
  REQUIRE(held);
  CHECK(held->tag == Tag{5, 0xaa});
  CHECK_FALSE(held->tombstone);

  const std::string tomb = "HTTP/1.1 404 Not Found\r\nx-kv-tombstone: 1\r\nx-kv-version: 6.1\r\nContent-Length: 0\r\n\r\n";
  held = held_of(answer(tomb));
  REQUIRE(held);
  CHECK(held->tag == Tag{6, 1});
  CHECK(held->tombstone);

  held = held_of(answer("HTTP/1.1 404 Not Found\r\nX-KV-Version: 0.0\r\nContent-Length: 0\r\n\r\n"));
  REQUIRE(held);
  CHECK(held->tag.none());

  // A node that keeps no versions, or says something else: nothing to build on.
  CHECK_FALSE(held_of(answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")));
  CHECK_FALSE(held_of(answer("HTTP/1.1 200 OK\r\nX-KV-Version: soon\r\nContent-Length: 0\r\n\r\n")));
}

TEST_CASE("the tag query is a versioned GET of the same key, its query string as it came", "[versioned]") {
  std::string out;
  append_query(out, "/put?key=a%2Fb&x=1", "127.0.0.1:8081");
  CHECK(out == "GET /get?key=a%2Fb&x=1 HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nX-KV-Versioned: 1\r\n\r\n");
  out.clear();
  append_query(out, "/del?key=k", "n");
  CHECK(out == "GET /get?key=k HTTP/1.1\r\nHost: n\r\nX-KV-Versioned: 1\r\n\r\n");
}

TEST_CASE("a write-back stores the newer owner's value or tombstone, with its tag", "[versioned]") {
  std::string out;
  const std::string body = R"({"status":"success","value":"v"})";
  append_write_back(out, "/get?key=k", "h:1", {Tag{9, 2}, false}, body);
  CHECK(out == "POST /put?key=k HTTP/1.1\r\nHost: h:1\r\nX-KV-Version: 9.0000000000000002\r\n"
               "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  out.clear();
  append_write_back(out, "/get?key=k", "h:1", {Tag{9, 2}, true}, R"({"status":"error"})");
  CHECK(out == "DELETE /del?key=k HTTP/1.1\r\nHost: h:1\r\nX-KV-Version: 9.0000000000000002\r\n\r\n");
}

TEST_CASE("the newer of two owners' states, and whether a write-back is needed", "[versioned]") {
  const Found nothing{}, legacy_value{{Tag{}, false}, true}, v5{{Tag{5, 1}, false}, true},
      t6{{Tag{6, 1}, true}, false}, v5_other{{Tag{5, 2}, false}, true};
  CHECK(newer_of(v5, t6) == 1);
  CHECK(newer_of(t6, v5) == 0);
  CHECK(newer_of(v5, v5_other) == 1);  // the writer breaks the tie
  CHECK(newer_of(v5, v5) == 0);
  CHECK(same_state(v5, v5));
  CHECK_FALSE(same_state(v5, v5_other));
  // A value from before versions has Tag{}, as nothing has: the value is newer, and the owner holding
  // nothing is behind.
  CHECK(newer_of(nothing, legacy_value) == 1);
  CHECK(newer_of(legacy_value, nothing) == 0);
  CHECK_FALSE(same_state(nothing, legacy_value));
  CHECK(same_state(nothing, nothing));
  CHECK(newer_of(legacy_value, v5) == 1);
}
