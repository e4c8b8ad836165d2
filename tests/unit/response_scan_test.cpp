#include "response_scan.hpp"

#include <catch2/catch.hpp>

#include <string>

using kv::ScanResult;

namespace {

ScanResult scan(std::string_view in, kv::ScannedResponse& out, std::size_t limit = 64 * 1024) {
  return kv::scan_response(in, limit, out);
}

}  // namespace

TEST_CASE("a node's answer is read at every split", "[response_scan]") {
  const std::string head =
      "HTTP/1.1 200 OK\r\nX-KV-Node: n1\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n";
  const std::string answer = head + std::string(80, 'x');
  kv::ScannedResponse r;
  for (std::size_t n = 0; n < head.size(); ++n) {
    INFO("first " << n << " bytes");
    REQUIRE(scan(std::string_view(answer).substr(0, n), r) == ScanResult::need_more);
  }
  for (std::size_t n = head.size(); n <= answer.size(); ++n) {
    INFO("first " << n << " bytes");
    REQUIRE(scan(std::string_view(answer).substr(0, n), r) == ScanResult::complete);
    REQUIRE(r.head_size == head.size());
  }
  CHECK(r.version == 11);
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.content_length == 80);
  CHECK(r.keep_alive);
  REQUIRE(r.fields.size() == 3);
  CHECK(r.fields[0].name == "X-KV-Node");
  CHECK(r.fields[0].value == "n1");
  CHECK(r.fields[1].value == "application/json");
  CHECK(r.fields[2].name == "Content-Length");
  CHECK(r.fields[0].kind == kv::ScannedResponse::Kind::other);
  CHECK(r.fields[2].kind == kv::ScannedResponse::Kind::content_length);
}

TEST_CASE("the fields a proxy must not pass on are told apart, in any case", "[response_scan]") {
  kv::ScannedResponse r;
  REQUIRE(scan("HTTP/1.1 200 OK\r\nCONNECTION: x-a\r\nkeep-alive: 5\r\nTe: trailers\r\nTrailer: X\r\n"
               "X-A: 1\r\ncontent-LENGTH: 0\r\n\r\n", r) == ScanResult::complete);
  using Kind = kv::ScannedResponse::Kind;
  REQUIRE(r.fields.size() == 6);
  CHECK(r.fields[0].kind == Kind::connection);
  CHECK(r.fields[1].kind == Kind::keep_alive);
  CHECK(r.fields[2].kind == Kind::te);
  CHECK(r.fields[3].kind == Kind::trailer);
  CHECK(r.fields[4].kind == Kind::other);
  CHECK(r.fields[5].kind == Kind::content_length);
}

TEST_CASE("values lose the whitespace around them, the reason keeps its own", "[response_scan]") {
  kv::ScannedResponse r;
  REQUIRE(scan("HTTP/1.1 404 Not  Found \r\nA:\t x y \t\r\nB:\r\nContent-Length:0\r\n\r\n", r) == ScanResult::complete);
  CHECK(r.status == 404);
  CHECK(r.reason == "Not  Found ");
  REQUIRE(r.fields.size() == 3);
  CHECK(r.fields[0].value == "x y");
  CHECK(r.fields[1].value.empty());
  CHECK(r.content_length == 0);
  REQUIRE(scan("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", r) == ScanResult::complete);
  CHECK(r.reason.empty());
}

TEST_CASE("keep-alive is decided as Beast decides it", "[response_scan]") {
  kv::ScannedResponse r;
  auto keep_alive = [&](const std::string& version, const std::string& connection) {
    std::string in = "HTTP/" + version + " 200 OK\r\n";
    if (!connection.empty()) in += "Connection: " + connection + "\r\n";
    in += "Content-Length: 0\r\n\r\n";
    REQUIRE(scan(in, r) == ScanResult::complete);
    return r.keep_alive;
  };
  CHECK(keep_alive("1.1", ""));
  CHECK_FALSE(keep_alive("1.1", "close"));
  CHECK_FALSE(keep_alive("1.1", "x-thing, CLOSE"));
  CHECK(keep_alive("1.1", "keep-alive"));
  CHECK_FALSE(keep_alive("1.0", ""));
  CHECK(keep_alive("1.0", "Keep-Alive"));
  CHECK(keep_alive("1.0", "keep-alive, close"));  // HTTP/1.0: Beast looks only for keep-alive
}

TEST_CASE("anything but the common shape goes to Beast", "[response_scan]") {
  kv::ScannedResponse r;
  const char* declined[] = {
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\n\r\n",                                                  // body up to EOF
      "HTTP/1.1 100 Continue\r\n\r\n",                                            // interim
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",                     // never a body
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",        // duplicate
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",          // 19 digits
      "HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 0\r\n\r\n",               // folded
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",                               // bare LF
      "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
      "HTTP/1.1 200 OK\r\nA : b\r\nContent-Length: 0\r\n\r\n",                    // space before colon
      "HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n",                      // no name
      "HTTP/1.1 200 OK\r\nA: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",           // obs-text
      "HTTP/1.1 200 OK\r\nA: b\x01\r\nContent-Length: 0\r\n\r\n",                 // control
      "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: close,,\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nConnection: \"close\"\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",                                // no space after status
      "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
      "ICY 200 OK\r\n",                                                           // not HTTP: at once
      "HTTX",
  };
  for (const char* in : declined) {
    INFO(in);
    CHECK(scan(in, r) == ScanResult::decline);
  }
  CHECK(scan("HTTP/1.", r) == ScanResult::need_more);
  CHECK(scan("HTT", r) == ScanResult::need_more);
}

TEST_CASE("a head longer than the limit goes to Beast, which reports it", "[response_scan]") {
  kv::ScannedResponse r;
  const std::string in = "HTTP/1.1 200 OK\r\nA: " + std::string(100, 'a') + "\r\nContent-Length: 0\r\n\r\n";
  CHECK(scan(in, r, in.size()) == ScanResult::complete);
  CHECK(scan(in, r, in.size() - 1) == ScanResult::decline);
  CHECK(scan(std::string_view(in).substr(0, 50), r, 50) == ScanResult::decline);
  CHECK(scan(std::string_view(in).substr(0, 50), r, 51) == ScanResult::need_more);
}
