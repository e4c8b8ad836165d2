#include "http/scan.hpp"

#include <catch2/catch.hpp>

#include <string>

using kv::http::ScanResult;

namespace {

ScanResult scan(std::string_view in, kv::http::ScannedHead& out, std::size_t limit = 64 * 1024) {
  return kv::http::scan_response(in, limit, out);
}

ScanResult scan_request(std::string_view in, kv::http::ScannedHead& out, std::size_t limit = 8192) {
  return kv::http::scan_request(in, limit, out);
}

}  // namespace

TEST_CASE("a node's answer is read at every split", "[http_scan]") {
  const std::string head =
      "HTTP/1.1 200 OK\r\nX-KV-Node: n1\r\nContent-Type: application/json\r\nContent-Length: 80\r\n\r\n";
  const std::string answer = head + std::string(80, 'x');
  kv::http::ScannedHead r;
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
  CHECK(r.fields[0].kind == kv::http::ScannedHead::Kind::other);
  CHECK(r.fields[2].kind == kv::http::ScannedHead::Kind::content_length);
}

TEST_CASE("the fields a proxy must not pass on are told apart, in any case", "[http_scan]") {
  kv::http::ScannedHead r;
  REQUIRE(scan("HTTP/1.1 200 OK\r\nCONNECTION: x-a\r\nkeep-alive: 5\r\nTe: trailers\r\nTrailer: X\r\n"
               "X-A: 1\r\ncontent-LENGTH: 0\r\n\r\n", r) == ScanResult::complete);
  using Kind = kv::http::ScannedHead::Kind;
  REQUIRE(r.fields.size() == 6);
  CHECK(r.fields[0].kind == Kind::connection);
  CHECK(r.fields[1].kind == Kind::keep_alive);
  CHECK(r.fields[2].kind == Kind::te);
  CHECK(r.fields[3].kind == Kind::trailer);
  CHECK(r.fields[4].kind == Kind::other);
  CHECK(r.fields[5].kind == Kind::content_length);
}

TEST_CASE("values lose the whitespace around them, the reason keeps its own", "[http_scan]") {
  kv::http::ScannedHead r;
  REQUIRE(scan("HTTP/1.1 404 Not  Found \r\nA:\t x y \t\r\nB:\r\nContent-Length:0\r\n\r\n", r) == ScanResult::complete);
  CHECK(r.status == 404);
  CHECK(r.reason == "Not  Found ");
  CHECK(r.start_line == "HTTP/1.1 404 Not  Found \r\n");
  CHECK(r.fields[0].line == "A:\t x y \t\r\n");  // the line keeps its whitespace, the value does not
  REQUIRE(r.fields.size() == 3);
  CHECK(r.fields[0].value == "x y");
  CHECK(r.fields[1].value.empty());
  CHECK(r.content_length == 0);
  REQUIRE(scan("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", r) == ScanResult::complete);
  CHECK(r.reason.empty());
}

TEST_CASE("keep-alive is decided as Beast decides it", "[http_scan]") {
  kv::http::ScannedHead r;
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

TEST_CASE("anything but the common shape goes to Beast", "[http_scan]") {
  kv::http::ScannedHead r;
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

TEST_CASE("a head longer than the limit goes to Beast, which reports it", "[http_scan]") {
  kv::http::ScannedHead r;
  const std::string in = "HTTP/1.1 200 OK\r\nA: " + std::string(100, 'a') + "\r\nContent-Length: 0\r\n\r\n";
  CHECK(scan(in, r, in.size()) == ScanResult::complete);
  CHECK(scan(in, r, in.size() - 1) == ScanResult::decline);
  CHECK(scan(std::string_view(in).substr(0, 50), r, 50) == ScanResult::decline);
  CHECK(scan(std::string_view(in).substr(0, 50), r, 51) == ScanResult::need_more);
}

TEST_CASE("a client's request is read at every split", "[http_scan]") {
  const std::string head =
      "POST /put?key=a%2Fb HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n"
      "Content-Length: 20\r\n\r\n";
  const std::string request = head + R"({"value":"ab12cd34"})";
  kv::http::ScannedHead r;
  for (std::size_t n = 0; n < head.size(); ++n) {
    INFO("first " << n << " bytes");
    REQUIRE(scan_request(std::string_view(request).substr(0, n), r) == ScanResult::need_more);
  }
  for (std::size_t n = head.size(); n <= request.size(); ++n) {
    INFO("first " << n << " bytes");
    REQUIRE(scan_request(std::string_view(request).substr(0, n), r) == ScanResult::complete);
    REQUIRE(r.head_size == head.size());
  }
  CHECK(r.method == kv::http::Method::post);
  CHECK(r.method_string == "POST");
  CHECK(r.start_line == "POST /put?key=a%2Fb HTTP/1.1\r\n");  // as it came, for relaying
  CHECK(r.target == "/put?key=a%2Fb");
  CHECK(r.version == 11);
  CHECK(r.content_length == 20);
  CHECK(r.keep_alive);
  REQUIRE(r.fields.size() == 3);
  CHECK(r.fields[0].name == "Host");
  CHECK(r.fields[0].value == "localhost:8080");
  CHECK(r.fields[0].line == "Host: localhost:8080\r\n");
  CHECK(r.fields[1].line.data() == r.fields[0].line.data() + r.fields[0].line.size());  // back to back
  CHECK(r.fields[2].kind == kv::http::ScannedHead::Kind::content_length);
}

TEST_CASE("each of the API's methods is known; a request without a length has no body", "[http_scan]") {
  kv::http::ScannedHead r;
  const std::pair<const char*, kv::http::Method> methods[] = {{"GET", kv::http::Method::get},   {"HEAD", kv::http::Method::head},
                                                        {"POST", kv::http::Method::post}, {"PUT", kv::http::Method::put},
                                                        {"DELETE", kv::http::Method::delete_}};
  for (const auto& [name, method] : methods) {
    INFO(name);
    REQUIRE(scan_request(std::string(name) + " /x HTTP/1.0\r\n\r\n", r) == ScanResult::complete);
    CHECK(r.method == method);
    CHECK(r.version == 10);
    CHECK(r.content_length == 0);
    CHECK_FALSE(r.keep_alive);  // HTTP/1.0 without keep-alive
    CHECK(r.fields.empty());
  }
}

TEST_CASE("a Connection that names fields says so", "[http_scan]") {
  kv::http::ScannedHead r;
  REQUIRE(scan_request("GET /get?key=a HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", r) == ScanResult::complete);
  CHECK_FALSE(r.connection_names_fields);
  REQUIRE(scan_request("GET /get?key=a HTTP/1.1\r\nConnection: close, X-Private\r\n\r\n", r) == ScanResult::complete);
  CHECK(r.connection_names_fields);
  CHECK_FALSE(r.keep_alive);
  REQUIRE(scan_request("GET /get?key=a HTTP/1.1\r\n\r\n", r) == ScanResult::complete);
  CHECK_FALSE(r.connection_names_fields);  // reset by each scan
}

TEST_CASE("requests of any other shape go to Beast", "[http_scan]") {
  kv::http::ScannedHead r;
  const char* declined[] = {
      "GARBAGE\r\n\r\n",
      "FOO /get?key=a HTTP/1.1\r\n\r\n",                                  // not one of the API's methods
      "get /get?key=a HTTP/1.1\r\n\r\n",                                  // methods are case-sensitive
      "OPTIONS * HTTP/1.1\r\n\r\n",
      "GET http://x/get?key=a HTTP/1.1\r\n\r\n",                          // absolute-form
      "GET /get?key=a\r\n\r\n",                                            // HTTP/0.9
      "GET /get?key=a HTTP/2.0\r\n\r\n",
      "GET /get?key=a HTTP/1.2\r\n\r\n",
      "GET /get?key=a  HTTP/1.1\r\n\r\n",                                 // two spaces
      "GET /get?key=a\x01b HTTP/1.1\r\n\r\n",                             // control byte in the target
      "GET /get?key=caf\xc3\xa9 HTTP/1.1\r\n\r\n",                        // obs-text in the target
      "GET /get?key=a HTTP/1.1\nHost: x\n\n",                               // bare LF
      "GET /get?key=a HTTP/1.1\r\nHost : x\r\n\r\n",                     // space before the colon
      "GET /get?key=a HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /get?key=a HTTP/1.1\r\nA: b\r\n c\r\n\r\n",                  // folded
      "POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "POST /put?key=a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST /put?key=a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
      "GET /get?key=a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
      "GET /get?key=a HTTP/1.1\r\nProxy-Connection: keep-alive\r\n\r\n",
      "GET /get?key=a HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "\r\nGET /get?key=a HTTP/1.1\r\n\r\n",
  };
  for (const char* in : declined) {
    INFO(in);
    CHECK(scan_request(in, r) == ScanResult::decline);
  }
  // Cut short, the right shape so far: wait for more.
  CHECK(scan_request("DELET", r) == ScanResult::need_more);
  CHECK(scan_request("GET /get?key=a HTTP/1.", r) == ScanResult::need_more);
  // A bad byte declines before the line is complete, as Beast fails at once.
  CHECK(scan_request("GET /get?key=a\x7f", r) == ScanResult::decline);
  CHECK(scan_request("GET /get?key=a HTTX", r) == ScanResult::decline);
  CHECK(scan_request("GET /get?key=a HTTP/1.1\r\nA: b\rX", r) == ScanResult::decline);
  CHECK(scan_request("GET /get?key=a HTTP/1.1\r\nA: b\x01", r) == ScanResult::decline);
  CHECK(scan_request("GET /get?key=a HTTP/1.1\r\nA: b\r", r) == ScanResult::need_more);
}

TEST_CASE("a request head longer than the limit goes to Beast", "[http_scan]") {
  kv::http::ScannedHead r;
  const std::string in = "GET /get?key=a HTTP/1.1\r\nA: " + std::string(100, 'a') + "\r\n\r\n";
  CHECK(scan_request(in, r, in.size()) == ScanResult::complete);
  CHECK(scan_request(in, r, in.size() - 1) == ScanResult::decline);
  CHECK(scan_request(std::string_view(in).substr(0, 50), r, 51) == ScanResult::need_more);
  std::string many = "GET /get?key=a HTTP/1.1\r\n";
  for (int i = 0; i < 257; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(scan_request(many + "\r\n", r, 1 << 20) == ScanResult::decline);  // over 256 fields
}
