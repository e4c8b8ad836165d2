// The head writer: exact bytes for every line it writes, and what append_relayed passes on of heads
// read both ways: by the scanner (lines as they came) and by Beast's parser (fields one by one).
#include "http/head_writer.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "http/parser.hpp"

using kv::http::append_relayed;
using kv::http::LocalAnswer;
using kv::http::Rejection;
using kv::http::ScannedHead;
using kv::http::ScanResult;
using boost::beast::http::status;

namespace {

ScannedHead scanned_request(std::string_view in) {
  ScannedHead h;
  REQUIRE(kv::http::scan_request(in, 8192, h) == ScanResult::complete);
  return h;
}

ScannedHead scanned_response(std::string_view in) {
  ScannedHead h;
  REQUIRE(kv::http::scan_response(in, 8192, h) == ScanResult::complete);
  return h;
}

// A head as Beast's parser reads it on the readers' fallback path (its views point into `raw`).
template <bool isRequest>
struct BeastRead {
  kv::http::RawHead raw;
  std::string body;
  ScannedHead head;

  explicit BeastRead(std::string_view in) {
    struct Bytes {
      std::string_view s;
      bool empty() const { return s.empty(); }
      const char* data() const { return s.data(); }
      std::size_t size() const { return s.size(); }
      void consume(std::size_t n) { s.remove_prefix(n); }
    } bytes{in};
    kv::http::RawParser<isRequest> p(raw, body);
    p.eager(true);
    boost::beast::error_code ec;
    std::size_t head_used = 0;
    kv::http::feed(p, bytes, 8192, head_used, ec);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    REQUIRE(p.is_header_done());
    kv::http::view_of(raw, head);
    head.keep_alive = p.keep_alive();
  }
  BeastRead(const BeastRead&) = delete;  // `head` points into `raw`
};

std::string relayed(const ScannedHead& h, std::string_view start_line, bool request, std::string_view drop_lower,
                    bool* length = nullptr) {
  std::string out = "<before>";
  const bool l = append_relayed(h, start_line, out, request, drop_lower);
  if (length) *length = l;
  REQUIRE(out.substr(0, 8) == "<before>");  // appended, never cleared
  return out.substr(8);
}

}  // namespace

TEST_CASE("numbers and Content-Length", "[head_writer]") {
  std::string out = "n=";
  kv::http::append_number(out, 0);
  out += ",";
  kv::http::append_number(out, 42);
  out += ",";
  kv::http::append_number(out, std::numeric_limits<std::uint64_t>::max());
  CHECK(out == "n=0,42,18446744073709551615");
  out.clear();
  kv::http::append_content_length(out, 0);
  kv::http::append_content_length(out, 1048576);
  CHECK(out == "Content-Length: 0\r\nContent-Length: 1048576\r\n");
}

TEST_CASE("status lines: the standard reason unless one is given, HTTP/1.0 when asked", "[head_writer]") {
  auto line = [](unsigned version, unsigned code, std::string_view reason = {}) {
    std::string out = "x";
    kv::http::append_status_line(out, version, code, reason);
    return out.substr(1);
  };
  CHECK(line(11, 200) == "HTTP/1.1 200 OK\r\n");
  CHECK(line(10, 200) == "HTTP/1.0 200 OK\r\n");
  CHECK(line(11, 100) == "HTTP/1.1 100 Continue\r\n");
  CHECK(line(11, 204) == "HTTP/1.1 204 No Content\r\n");
  CHECK(line(10, 404) == "HTTP/1.0 404 Not Found\r\n");
  CHECK(line(11, 405) == "HTTP/1.1 405 Method Not Allowed\r\n");
  CHECK(line(11, 408) == "HTTP/1.1 408 Request Timeout\r\n");
  CHECK(line(11, 413) == "HTTP/1.1 413 Payload Too Large\r\n");
  CHECK(line(11, 431) == "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  CHECK(line(11, 502) == "HTTP/1.1 502 Bad Gateway\r\n");
  CHECK(line(11, 503) == "HTTP/1.1 503 Service Unavailable\r\n");
  CHECK(line(11, 504) == "HTTP/1.1 504 Gateway Timeout\r\n");
  CHECK(line(11, 200, "Fine") == "HTTP/1.1 200 Fine\r\n");
  CHECK(line(10, 503, "Node n1 Busy") == "HTTP/1.0 503 Node n1 Busy\r\n");
}

TEST_CASE("end_head says how the connection goes on only when it must", "[head_writer]") {
  auto end = [](unsigned version, bool keep_alive) {
    std::string out = "X: 1\r\n";
    kv::http::end_head(out, version, keep_alive);
    return out;
  };
  CHECK(end(11, true) == "X: 1\r\n\r\n");  // HTTP/1.1 keeps alive by default
  CHECK(end(11, false) == "X: 1\r\nConnection: close\r\n\r\n");
  CHECK(end(10, true) == "X: 1\r\nConnection: keep-alive\r\n\r\n");  // HTTP/1.0 closes by default
  CHECK(end(10, false) == "X: 1\r\nConnection: close\r\n\r\n");
}

TEST_CASE("append_answer: the server's own answers, byte for byte", "[head_writer]") {
  auto answer = [](unsigned version, const LocalAnswer& a, bool keep_alive, bool head_only) {
    std::string out = "<before>";
    kv::http::append_answer(out, version, a, keep_alive, head_only);
    REQUIRE(out.substr(0, 8) == "<before>");
    return out.substr(8);
  };
  const LocalAnswer ok{200, "application/json", R"({"status":"ok"})", {}};
  CHECK(answer(11, ok, true, false) ==
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}");
  // An answer to HEAD: the length of the body it leaves out.
  CHECK(answer(11, ok, true, true) == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n");
  CHECK(answer(10, ok, true, false) ==
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: keep-alive\r\n\r\n"
        "{\"status\":\"ok\"}");
  // Extra fields go after the length, before the end of the head.
  const LocalAnswer not_allowed{405, "application/json", R"({"status":"error","detail":"Method not allowed"})",
                                "Allow: GET, HEAD\r\nX-KV-Proxy: p1\r\n"};
  CHECK(answer(11, not_allowed, false, false) ==
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 48\r\n"
        "Allow: GET, HEAD\r\nX-KV-Proxy: p1\r\nConnection: close\r\n\r\n{\"status\":\"error\",\"detail\":\"Method not allowed\"}");
  CHECK(answer(10, not_allowed, false, true) ==
        "HTTP/1.0 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 48\r\n"
        "Allow: GET, HEAD\r\nX-KV-Proxy: p1\r\nConnection: close\r\n\r\n");
  const LocalAnswer metrics{200, "text/plain; version=0.0.4", "", {}};
  CHECK(answer(11, metrics, true, false) == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("append_rejection: a JSON error with Connection: close, the same bytes everywhere", "[head_writer]") {
  auto rejection = [](unsigned version, const Rejection& r) {
    std::string out = "<before>";
    kv::http::append_rejection(out, version, r);
    REQUIRE(out.substr(0, 8) == "<before>");
    return out.substr(8);
  };
  CHECK(rejection(11, {status::request_header_fields_too_large, "Request headers too large"}) ==
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\nContent-Length: 55\r\n"
        "Connection: close\r\n\r\n{\"status\":\"error\",\"detail\":\"Request headers too large\"}");
  CHECK(rejection(10, {status::payload_too_large, "Request body too large"}) ==
        "HTTP/1.0 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 52\r\n"
        "Connection: close\r\n\r\n{\"status\":\"error\",\"detail\":\"Request body too large\"}");
  CHECK(rejection(11, {status::request_timeout, "Timed out reading request headers"}) ==
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: 63\r\n"
        "Connection: close\r\n\r\n{\"status\":\"error\",\"detail\":\"Timed out reading request headers\"}");
  // The detail is quoted as JSON.
  CHECK(rejection(11, {status::bad_request, "Malformed request: \"bad\\ field\""}) ==
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 64\r\n"
        "Connection: close\r\n\r\n{\"status\":\"error\",\"detail\":\"Malformed request: \\\"bad\\\\ field\\\"\"}");
}

// ---- append_relayed -----------------------------------------------------------------------------

TEST_CASE("a head with nothing to leave out is relayed byte for byte", "[head_writer]") {
  // Odd whitespace, case and order stay as they came: the lines are copied, not rewritten.
  const std::string request =
      "PUT /put?key=a%2Fb HTTP/1.1\r\nHost: kv:8080\r\nx-a:\t spaced \t\r\nContent-Type: application/json\r\n"
      "content-length: 2\r\nAccept:*/*\r\n\r\n";
  const ScannedHead req = scanned_request(request);
  bool length = false;
  CHECK(relayed(req, req.start_line, true, "x-kv-tombstone", &length) == request.substr(0, request.size() - 2));
  CHECK(length);
  const std::string response = "HTTP/1.1 404 Not  Found\r\nX-Thing: 1\r\nContent-Length: 0\r\nVary:  *\r\n\r\n";
  const ScannedHead res = scanned_response(response);
  CHECK(relayed(res, res.start_line, false, "x-kv-node", &length) == response.substr(0, response.size() - 2));
  CHECK(length);
  // No Content-Length: none goes out, and the caller learns it.
  const std::string get = "GET /get?key=a HTTP/1.1\r\nHost: kv\r\n\r\n";
  CHECK(relayed(scanned_request(get), scanned_request(get).start_line, true, "x-kv-tombstone", &length) ==
        "GET /get?key=a HTTP/1.1\r\nHost: kv\r\n");
  CHECK_FALSE(length);
}

TEST_CASE("the start line is the caller's: its own, or none", "[head_writer]") {
  const std::string in = "GET /get?key=a HTTP/1.0\r\nHost: kv\r\nAccept: */*\r\n\r\n";
  const ScannedHead h = scanned_request(in);
  // An HTTP/1.0 request goes on as HTTP/1.1: the caller writes that line.
  const std::string own = "GET /get?key=a HTTP/1.1\r\n";
  CHECK(relayed(h, own, true, "x-kv-tombstone") == "GET /get?key=a HTTP/1.1\r\nHost: kv\r\nAccept: */*\r\n");
  CHECK(relayed(h, {}, true, "x-kv-tombstone") == "Host: kv\r\nAccept: */*\r\n");
}

TEST_CASE("hop-by-hop fields, those Connection names and drop_lower are left out of a scanned head", "[head_writer]") {
  const std::string in =
      "GET /get?key=a HTTP/1.1\r\n"
      "Host: kv\r\n"
      "Connection: keep-alive, X-Hop\r\n"
      "Keep-Alive: timeout=5\r\n"
      "X-Hop: 1\r\n"
      "x-HOP: 2\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "X-KV-Tombstone: 1\r\n"
      "x-kv-TOMBSTONE: 2\r\n"
      "Accept: */*\r\n"
      "X-Hopper: kept\r\n"
      "Connection: X-Other\r\n"
      "X-Other: gone\r\n"
      "X-Last: kept\r\n"
      "\r\n";
  const ScannedHead h = scanned_request(in);
  REQUIRE(h.connection_names_fields);
  bool length = true;
  CHECK(relayed(h, h.start_line, true, "x-kv-tombstone", &length) ==
        "GET /get?key=a HTTP/1.1\r\nHost: kv\r\nAccept: */*\r\nX-Hopper: kept\r\nX-Last: kept\r\n");
  CHECK_FALSE(length);
  // Another prefix, and none. A prefix drops every field it begins (X-Hop and X-Hopper alike).
  CHECK(relayed(h, {}, true, "accept") ==
        "Host: kv\r\nX-KV-Tombstone: 1\r\nx-kv-TOMBSTONE: 2\r\nX-Hopper: kept\r\nX-Last: kept\r\n");
  CHECK(relayed(h, {}, true, "x-") == "Host: kv\r\nAccept: */*\r\n");
  CHECK(relayed(h, {}, true, "") ==
        "Host: kv\r\nX-KV-Tombstone: 1\r\nx-kv-TOMBSTONE: 2\r\nAccept: */*\r\nX-Hopper: kept\r\nX-Last: kept\r\n");
}

TEST_CASE("every X-KV- field is left out, whatever its case; only those", "[head_writer]") {
  const std::string in =
      "HTTP/1.1 200 OK\r\n"
      "X-KV-Node: n1\r\n"
      "x-kv-version: 3.1\r\n"
      "X-KV-Applied: 1\r\n"
      "X-KVX: kept\r\n"
      "X-KV: kept\r\n"
      "Content-Length: 0\r\n"
      "\r\n";
  const ScannedHead h = scanned_response(in);
  CHECK(relayed(h, h.start_line, false, "x-kv-") == "HTTP/1.1 200 OK\r\nX-KVX: kept\r\nX-KV: kept\r\nContent-Length: 0\r\n");
}

TEST_CASE("Expect is left out of a request and kept in an answer", "[head_writer]") {
  // Scanned answers keep an Expect (meaningless there) as a field of its own kind.
  const std::string in = "HTTP/1.1 200 OK\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n";
  const ScannedHead h = scanned_response(in);
  CHECK(relayed(h, h.start_line, false, "x-kv-node") == "HTTP/1.1 200 OK\r\nExpect: 100-continue\r\nContent-Length: 0\r\n");
  CHECK(relayed(h, h.start_line, true, "x-kv-node") == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
  // Beast's heads, both ways.
  BeastRead<true> req("PUT /put?key=a HTTP/1.1\r\nExpect: 100-continue\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n");
  CHECK(relayed(req.head, {}, true, "x-kv-tombstone") == "X-A: 1\r\n");
  BeastRead<false> res("HTTP/1.1 204 No Content\r\nExpect: 100-continue\r\nX-A: 1\r\n\r\n");
  CHECK(relayed(res.head, {}, false, "x-kv-node") == "Expect: 100-continue\r\nX-A: 1\r\n");
}

TEST_CASE("a head Beast read is relayed field by field, every hop-by-hop field left out", "[head_writer]") {
  const std::string fields =
      "Host: kv\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Upgrade: h2c\r\n"
      "Connection: Upgrade, X-Hop\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "X-Hop: 1\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "Keep-Alive: 5\r\n"
      "X-A:  spaced  \r\n"
      "X-KV-Tombstone: 1\r\n"
      "X-KV-Node: n1\r\n"
      "\r\n";
  BeastRead<true> req("POST /put?key=a HTTP/1.1\r\n" + fields + "0\r\n\r\n");
  bool length = true;
  CHECK(relayed(req.head, "POST /put?key=a HTTP/1.1\r\n", true, "x-kv-tombstone", &length) ==
        "POST /put?key=a HTTP/1.1\r\nHost: kv\r\nX-A: spaced\r\nX-KV-Node: n1\r\n");
  CHECK_FALSE(length);
  BeastRead<false> res("HTTP/1.1 200 OK\r\n" + fields + "0\r\n\r\n");
  CHECK(relayed(res.head, {}, false, "x-kv-node", &length) == "Host: kv\r\nX-A: spaced\r\nX-KV-Tombstone: 1\r\n");
  CHECK_FALSE(length);
}

TEST_CASE("Content-Length goes on only when it came as a line of its own", "[head_writer]") {
  const std::string in = "POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello";
  bool length = false;
  const ScannedHead scanned = scanned_request(in);
  CHECK(relayed(scanned, {}, true, "x-kv-tombstone", &length) == "Content-Length: 5\r\nX-A: 1\r\n");
  CHECK(length);
  // Read by Beast (a body it may have dechunked): the caller writes the length of what it holds.
  BeastRead<true> beast(in);
  CHECK(beast.body == "hello");
  CHECK(relayed(beast.head, {}, true, "x-kv-tombstone", &length) == "X-A: 1\r\n");
  CHECK_FALSE(length);
}

TEST_CASE("runs of kept lines are copied as they came around the ones left out", "[head_writer]") {
  // Kept, kept, dropped, kept, dropped, dropped, kept, kept: four runs, exact bytes.
  const std::string in =
      "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nX-KV-Node: old\r\nC:  3 \r\nKeep-Alive: 1\r\nTE: x\r\nD: 4\r\nContent-Length: 0\r\n\r\n";
  const ScannedHead h = scanned_response(in);
  bool length = false;
  CHECK(relayed(h, h.start_line, false, "x-kv-node", &length) ==
        "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC:  3 \r\nD: 4\r\nContent-Length: 0\r\n");
  CHECK(length);
  // The first field left out: the start line is a run of its own.
  const std::string first = "HTTP/1.1 200 OK\r\nConnection: close\r\nA: 1\r\nContent-Length: 0\r\n\r\n";
  const ScannedHead f = scanned_response(first);
  CHECK(relayed(f, f.start_line, false, "x-kv-node") == "HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 0\r\n");
}

// Every field Connection names is hop-by-hop (RFC 9110 7.6.1), however many: append_relayed once
// remembered only the first eight and relayed a ninth.
TEST_CASE("every field Connection names is left out, not only the first eight", "[head_writer]") {
  std::string in = "GET /get?key=a HTTP/1.1\r\nConnection: x-1, x-2, x-3, x-4, x-5, x-6, x-7, x-8, x-9\r\n";
  for (int i = 1; i <= 9; ++i) in += "X-" + std::to_string(i) + ": v\r\n";
  in += "Host: kv\r\n\r\n";
  const ScannedHead h = scanned_request(in);
  CHECK(relayed(h, {}, true, "x-kv-tombstone") == "Host: kv\r\n");
}
