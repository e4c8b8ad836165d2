// RequestReader: every request is fed in every fragmentation (fragments.hpp) and must read the same
// (the same head, body and consumed() once its last byte is in, `more` before), on the scanner's
// path and on Beast's, and be refused with the same status and detail.
#include "http/request_reader.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "fragments.hpp"

using kv::BlockPool;
using kv::IoBuffer;
using kv::http::RequestReader;
using kv::http::ServerLimits;
using Status = RequestReader::Status;
using kvtest::plans;
using kvtest::render_request;

namespace {

constexpr std::size_t npos = std::string::npos;

// What read() said last, and after how many bytes, with what the reader then holds.
std::string outcome(const RequestReader& r, Status st, std::size_t at, const IoBuffer& in) {
  switch (st) {
    case Status::more: return "more after " + std::to_string(at);
    case Status::rejected:
      return "rejected at " + std::to_string(at) + ": " + std::to_string(static_cast<unsigned>(r.rejection().status)) + " " +
             r.rejection().detail;
    case Status::complete:
      return "complete at " + std::to_string(at) + ", consumed " + std::to_string(r.consumed()) + ", buffer " +
             std::to_string(in.size()) + "\n" + render_request(r.head(), r.body());
  }
  return "?";
}

// Feeds `input` to a fresh reader as `plan` cuts it, until a read says anything but `more`;
// `after_read(reader, bytes fed so far)` runs after every read.
struct Run {
  ServerLimits limits;
  BlockPool pool;
  IoBuffer in;
  RequestReader reader{limits};
  Status status = Status::more;
  std::size_t at = 0;  // bytes fed when `status` came

  explicit Run(const ServerLimits& l) : limits(l) {}
  std::string feed(std::string_view input, const kvtest::Plan& plan,
                   const std::function<void(RequestReader&, std::size_t)>& after_read = {}) {
    std::size_t fed = 0;
    for (std::size_t piece : plan.pieces) {
      kvtest::append(in, pool, input.substr(fed, piece));
      fed += piece;
      status = reader.read(in);
      at = fed;
      if (after_read) after_read(reader, fed);
      if (status != Status::more) break;
    }
    return outcome(reader, status, at, in);
  }
};

// The result every fragmentation of `input` must give.
void same_at_every_split(std::string_view input, const std::string& expected, const ServerLimits& limits = {}) {
  for (const auto& plan : plans(input.size())) {
    INFO(plan.name);
    Run run(limits);
    REQUIRE(run.feed(input, plan) == expected);
  }
}

std::string complete(std::size_t at, std::size_t consumed, std::size_t buffer, const std::string& rendered) {
  return "complete at " + std::to_string(at) + ", consumed " + std::to_string(consumed) + ", buffer " + std::to_string(buffer) +
         "\n" + rendered;
}

// A request head of exactly `size` bytes: `start` (its request line and any fields), padding fields,
// the blank line.
std::string head_of_size(std::string start, std::size_t size) {
  int i = 0;
  while (size - start.size() - 2 > 64) {
    std::string n = std::to_string(i++);
    if (n.size() < 2) n = "0" + n;
    start += "X-Pad-" + n + ": " + std::string(28, 'p') + "\r\n";  // 40 bytes
  }
  const std::size_t last = size - start.size() - 2;  // the last field's line, CRLF included
  start += "X-Last: " + std::string(last - 10, 'v') + "\r\n\r\n";
  REQUIRE(start.size() == size);
  return start;
}

}  // namespace

// ---- the scanner's path -------------------------------------------------------------------------

TEST_CASE("a GET is read by the scanner at every split, where it lies in the buffer", "[request_reader]") {
  const std::string in = "GET /get?key=a HTTP/1.1\r\nHost: kv:8080\r\nAccept: */*\r\n\r\n";
  same_at_every_split(in, complete(in.size(), in.size(), in.size(),
                                   "get 'GET' '/get?key=a' v11\n"
                                   "  Host: 'kv:8080' [other]\n"
                                   "  Accept: '*/*' [other]\n"
                                   "keep_alive=1 content_length=0 body=''"));
  // The scanner's head keeps the lines as they came, for relaying.
  Run run({});
  run.feed(in, plans(in.size())[0]);
  CHECK(run.reader.head().start_line == "GET /get?key=a HTTP/1.1\r\n");
  CHECK(run.reader.head().head_size == in.size());
  REQUIRE(run.reader.head().fields.size() == 2);
  CHECK(run.reader.head().fields[1].line == "Accept: */*\r\n");
  CHECK(run.reader.head().start_line.data() == run.in.data());  // a view into the buffer, not a copy
}

TEST_CASE("a POST's body is read by the scanner at every split, up to its Content-Length", "[request_reader]") {
  const std::string head = "POST /put?key=a HTTP/1.1\r\nHost: kv\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n";
  const std::string in = head + R"({"value":"ab12cd34"})";
  same_at_every_split(in, complete(in.size(), in.size(), in.size(),
                                   "post 'POST' '/put?key=a' v11\n"
                                   "  Host: 'kv' [other]\n"
                                   "  Content-Type: 'application/json' [other]\n"
                                   "  Content-Length: '20' [content_length]\n"
                                   "keep_alive=1 content_length=20 body='{\"value\":\"ab12cd34\"}'"));
  // head_done() as soon as the head is in, with the body still to come.
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    Run run({});
    run.feed(in, plan, [&](RequestReader& r, std::size_t fed) { REQUIRE(r.head_done() == (fed >= head.size())); });
  }
}

TEST_CASE("HTTP/1.0 closes unless it asks for keep-alive; HTTP/1.1 keeps alive unless it asks to close", "[request_reader]") {
  const std::string v10 = "GET /get?key=a HTTP/1.0\r\nHost: kv\r\n\r\n";
  same_at_every_split(v10, complete(v10.size(), v10.size(), v10.size(),
                                    "get 'GET' '/get?key=a' v10\n"
                                    "  Host: 'kv' [other]\n"
                                    "keep_alive=0 content_length=0 body=''"));
  const std::string v10_keep = "PUT /put?key=a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc";
  same_at_every_split(v10_keep, complete(v10_keep.size(), v10_keep.size(), v10_keep.size(),
                                         "put 'PUT' '/put?key=a' v10\n"
                                         "  Connection: 'keep-alive' [connection]\n"
                                         "  Content-Length: '3' [content_length]\n"
                                         "keep_alive=1 content_length=3 body='abc'"));
  const std::string v11_close = "DELETE /delete?key=a HTTP/1.1\r\nConnection: close\r\n\r\n";
  same_at_every_split(v11_close, complete(v11_close.size(), v11_close.size(), v11_close.size(),
                                          "delete 'DELETE' '/delete?key=a' v11\n"
                                          "  Connection: 'close' [connection]\n"
                                          "keep_alive=0 content_length=0 body=''"));
}

TEST_CASE("pipelined requests are read one after another at every split, across both paths", "[request_reader]") {
  // A scanner request, a chunked one (Beast's), a POST with a body (the scanner's again), and an
  // HTTP/1.0 one last: read, consume(consumed()), reset(), read the next.
  const std::string a = "GET /get?key=a HTTP/1.1\r\nHost: kv\r\n\r\n";
  const std::string b = "POST /put?key=b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string c = "POST /put?key=c HTTP/1.1\r\nContent-Length: 4\r\n\r\nwxyz";
  const std::string d = "HEAD /get?key=d HTTP/1.0\r\n\r\n";
  const std::string in = a + b + c + d;
  const std::size_t ends[] = {a.size(), a.size() + b.size(), a.size() + b.size() + c.size(), in.size()};
  const std::string heads[] = {
      "get 'GET' '/get?key=a' v11\n  Host: 'kv' [other]\nkeep_alive=1 content_length=0 body=''",
      "post 'POST' '/put?key=b' v11\n  Transfer-Encoding: 'chunked' [transfer_encoding]\nkeep_alive=1 content_length=3 body='abc'",
      "post 'POST' '/put?key=c' v11\n  Content-Length: '4' [content_length]\nkeep_alive=1 content_length=4 body='wxyz'",
      "head 'HEAD' '/get?key=d' v10\nkeep_alive=0 content_length=0 body=''",
  };
  const std::size_t consumed[] = {a.size(), 0, c.size(), d.size()};
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    BlockPool pool;
    IoBuffer buf;
    ServerLimits limits;
    RequestReader r(limits);
    std::vector<std::string> got, want;
    std::size_t fed = 0, boundary = 0;
    for (std::size_t piece : plan.pieces) {
      kvtest::append(buf, pool, std::string_view(in).substr(fed, piece));
      fed += piece;
      Status st;
      while ((st = r.read(buf)) == Status::complete) {
        got.push_back("at " + std::to_string(fed) + ", consumed " + std::to_string(r.consumed()) + "\n" +
                      render_request(r.head(), r.body()));
        buf.consume(r.consumed());
        r.reset();
        CHECK(r.version() == 11);
        CHECK_FALSE(r.head_done());
      }
      REQUIRE(st == Status::more);
    }
    // Each one complete once the piece holding its last byte is in.
    auto piece_end = plan.pieces.begin();
    for (std::size_t i = 0; i < 4; ++i) {
      while (boundary < ends[i]) boundary += *piece_end++;
      want.push_back("at " + std::to_string(boundary) + ", consumed " + std::to_string(consumed[i]) + "\n" + heads[i]);
    }
    REQUIRE(got == want);
    CHECK(buf.empty());
  }
}

// ---- Beast's path ---------------------------------------------------------------------------------

TEST_CASE("a chunked body goes to Beast, which takes the bytes as it reads them", "[request_reader]") {
  const std::string in =
      "POST /put?key=c HTTP/1.1\r\nHost: kv\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "post 'POST' '/put?key=c' v11\n"
                                   "  Host: 'kv' [other]\n"
                                   "  Transfer-Encoding: 'chunked' [transfer_encoding]\n"
                                   "keep_alive=1 content_length=11 body='hello world'"));
  // A head Beast read has no lines: it is relayed field by field.
  Run run({});
  run.feed(in, plans(in.size())[0]);
  CHECK(run.reader.head().start_line.empty());
  CHECK(run.reader.head().head_size == 0);
  CHECK(run.reader.head().fields[0].line.empty());
}

// Beast's parser reports the trailer fields of a chunked body through the same callback as the
// head's; RawParser once appended them to the head, and the relayed request carried them as header
// fields (here a second Host), which RFC 9110 6.5.1 forbids. They are dropped now.
TEST_CASE("a chunked request's trailer fields are not fields of its head", "[request_reader]") {
  const std::string in =
      "POST /put?key=t HTTP/1.1\r\nHost: kv\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nX-Sum: 1\r\nHost: elsewhere\r\n\r\n";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "post 'POST' '/put?key=t' v11\n"
                                   "  Host: 'kv' [other]\n"
                                   "  Transfer-Encoding: 'chunked' [transfer_encoding]\n"
                                   "keep_alive=1 content_length=3 body='abc'"));
}

TEST_CASE("Expect: 100-continue is due once, after the head and before the body", "[request_reader]") {
  const std::string head = "PUT /put?key=e HTTP/1.1\r\nHost: kv\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
  const std::string in = head + "hello";
  const std::string expected = complete(in.size(), 0, 0,
                                        "put 'PUT' '/put?key=e' v11\n"
                                        "  Host: 'kv' [other]\n"
                                        "  Expect: '100-Continue' [expect]\n"
                                        "  Content-Length: '5' [content_length]\n"
                                        "keep_alive=1 content_length=5 body='hello'");
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    // Due when some read ends with the head in and the body not complete.
    std::size_t due = 0, boundary = 0;
    for (std::size_t piece : plan.pieces) {
      boundary += piece;
      if (boundary >= head.size() && boundary < in.size()) due = 1;
    }
    std::size_t given = 0, given_at = 0;
    Run run({});
    const std::string got = run.feed(in, plan, [&](RequestReader& r, std::size_t fed) {
      if (!r.take_continue()) return;
      ++given;
      given_at = fed;
      CHECK(r.head_done());
      CHECK_FALSE(r.take_continue());  // once
    });
    REQUIRE(got == expected);
    REQUIRE(given == due);
    if (plan.name == "1-byte pieces") CHECK(given_at == head.size());
    CHECK_FALSE(run.reader.take_continue());
  }
}

TEST_CASE("take_continue() is due again for the next request, and never without Expect", "[request_reader]") {
  const std::string head = "POST /put?key=e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  BlockPool pool;
  IoBuffer in;
  ServerLimits limits;
  RequestReader r(limits);
  CHECK_FALSE(r.take_continue());
  for (int round = 0; round < 2; ++round) {
    INFO("request " << round);
    kvtest::append(in, pool, head);
    REQUIRE(r.read(in) == Status::more);
    CHECK(r.take_continue());
    CHECK_FALSE(r.take_continue());
    kvtest::append(in, pool, "ok");
    REQUIRE(r.read(in) == Status::complete);
    CHECK(r.body() == "ok");
    CHECK_FALSE(r.take_continue());
    in.consume(r.consumed());
    r.reset();
  }
  // Other expectations, and requests read by the scanner, wait for nothing.
  for (const std::string other : {"POST /put?key=e HTTP/1.1\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n",
                                  "POST /put?key=e HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
                                  "POST /put?key=e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    INFO(other);
    RequestReader fresh(limits);
    IoBuffer buf;
    kvtest::append(buf, pool, other);
    REQUIRE(fresh.read(buf) == Status::more);
    CHECK(fresh.head_done());
    CHECK_FALSE(fresh.take_continue());
  }
}

TEST_CASE("obs-text in a field goes to Beast, which takes it", "[request_reader]") {
  const std::string in = "GET /get?key=a HTTP/1.1\r\nHost: kv\r\nX-Name: caf\xc3\xa9\r\n\r\n";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "get 'GET' '/get?key=a' v11\n"
                                   "  Host: 'kv' [other]\n"
                                   "  X-Name: 'caf\xc3\xa9' [other]\n"
                                   "keep_alive=1 content_length=0 body=''"));
}

TEST_CASE("a body of kScanMaxBody stays in the buffer; one byte more goes to Beast", "[request_reader]") {
  using kv::http::kScanMaxBody;
  for (const std::uint64_t length : {kScanMaxBody, kScanMaxBody + 1}) {
    INFO("Content-Length " << length);
    const bool beast = length > kScanMaxBody;
    std::string body(static_cast<std::size_t>(length), '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    const std::string head = "PUT /put?key=big HTTP/1.1\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
    const std::string in = head + body;
    const std::string expected = "complete at " + std::to_string(in.size()) + ", consumed " +
                                 std::to_string(beast ? 0 : in.size()) + ", buffer " + std::to_string(beast ? 0 : in.size()) +
                                 "\nput 'PUT' '/put?key=big' v11\n  Content-Length: '" + std::to_string(length) +
                                 "' [content_length]\nkeep_alive=1 content_length=" + std::to_string(length) + " body='";
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run({});
      const std::string got = run.feed(in, plan);
      REQUIRE(got.substr(0, expected.size()) == expected);
      REQUIRE(run.reader.body().size() == body.size());
      REQUIRE((run.reader.body() == body));
    }
  }
}

TEST_CASE("two equal Content-Lengths are one length (Beast's reading)", "[request_reader]") {
  const std::string in = "POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "post 'POST' '/put?key=a' v11\n"
                                   "  Content-Length: '5' [content_length]\n"
                                   "  Content-Length: '5' [content_length]\n"
                                   "keep_alive=1 content_length=5 body='hello'"));
}

// ---- refusals -----------------------------------------------------------------------------------

TEST_CASE("a head of exactly header_limit bytes is read, on either path", "[request_reader]") {
  ServerLimits limits;
  limits.header_limit = 512;
  for (const std::string start : {"GET /limit HTTP/1.1\r\n", "GET /limit HTTP/1.1\r\nExpect: 100-continue\r\n"}) {
    const std::string in = head_of_size(start, 512);
    INFO(in);
    const bool beast = start.find("Expect") != npos;
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run(limits);
      const std::string got = run.feed(in, plan);
      REQUIRE(got.substr(0, got.find('\n')) == "complete at 512, consumed " + std::string(beast ? "0, buffer 0" : "512, buffer 512"));
    }
  }
}

TEST_CASE("a head far over header_limit is refused with 431 at every split, on either path", "[request_reader]") {
  ServerLimits limits;
  limits.header_limit = 512;
  for (const std::string start : {"GET /limit HTTP/1.1\r\n", "GET /limit HTTP/1.1\r\nExpect: 100-continue\r\n"}) {
    const std::string in = head_of_size(start, 3 * 512);
    INFO(start);
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run(limits);
      const std::string got = run.feed(in, plan);
      REQUIRE(run.status == Status::rejected);
      CHECK(got.substr(got.find(':')) == ": 431 Request headers too large");
      CHECK(run.reader.rejection().status == boost::beast::http::status::request_header_fields_too_large);
    }
  }
}

// header_limit holds for "request line + headers" (limits.hpp) on Beast's path too, however the head
// arrives. Beast's parser applies it only to what one put() is given, and feed() consumes the request
// line and every complete field as it goes, so until http::put_limited counted the head over every
// put, a head one byte over the limit was read whole, and one half as long again as the limit was
// read when it came in pieces and refused when it came whole.
TEST_CASE("a head over header_limit is refused with 431 whatever its fragmentation", "[request_reader]") {
  ServerLimits limits;
  limits.header_limit = 512;
  for (const std::size_t size : {std::size_t{513}, std::size_t{768}}) {
    const std::string in = head_of_size("GET /limit HTTP/1.1\r\n", size);
    INFO("a head of " << size << " bytes, header_limit 512");
    std::vector<std::string> wrong;
    std::size_t n = 0;
    for (const auto& plan : plans(in.size())) {
      ++n;
      Run run(limits);
      const std::string got = run.feed(in, plan);
      if (got.find("431 Request headers too large") == npos) wrong.push_back(plan.name + ": " + got.substr(0, got.find('\n')));
    }
    INFO(wrong.size() << " of " << n << " fragmentations not refused, first: " << (wrong.empty() ? "" : wrong.front()));
    CHECK(wrong.empty());
  }
}

TEST_CASE("a body over body_limit is refused with 413 as soon as its length is known", "[request_reader]") {
  ServerLimits limits;
  limits.body_limit = 1000;
  // At the limit: read by the scanner.
  const std::string at_head = "PUT /put?key=a HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
  const std::string at_limit = at_head + std::string(1000, 'b');
  for (const auto& plan : plans(at_limit.size())) {
    INFO(plan.name);
    Run run(limits);
    const std::string got = run.feed(at_limit, plan);
    const std::string n = std::to_string(at_limit.size());
    REQUIRE(got.substr(0, got.find('\n')) == "complete at " + n + ", consumed " + n + ", buffer " + n);
  }
  // One byte over: refused once the head is in, before any of the body.
  const std::string head = "PUT /put?key=a HTTP/1.1\r\nContent-Length: 1001\r\n\r\n";
  const std::string over = head + std::string(1001, 'b');
  for (const auto& plan : plans(over.size())) {
    INFO(plan.name);
    std::size_t boundary = 0;
    for (auto it = plan.pieces.begin(); boundary < head.size();) boundary += *it++;
    Run run(limits);
    REQUIRE(run.feed(over, plan) == "rejected at " + std::to_string(boundary) + ": 413 Request body too large");
    CHECK(run.reader.rejection().status == boost::beast::http::status::payload_too_large);
  }
}

TEST_CASE("a chunked body over body_limit is refused with 413 at the chunk that crosses it", "[request_reader]") {
  ServerLimits limits;
  limits.body_limit = 100;
  const std::string head = "POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string first = "64\r\n" + std::string(100, 'c') + "\r\n";  // exactly the limit
  const std::string second = "1\r\n";
  const std::string in = head + first + second + "c\r\n0\r\n\r\n";
  const std::size_t crossing = head.size() + first.size() + second.size();
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    Run run(limits);
    const std::string got = run.feed(in, plan);
    REQUIRE(run.status == Status::rejected);
    CHECK(run.at >= crossing);
    CHECK(got.substr(got.find(':')) == ": 413 Request body too large");
    CHECK(run.reader.head_done());
  }
}

// An HTTP/1.0 request whose Content-Length is over body_limit is refused before Beast says its head
// is done: version() must still be the request's, so that the 413 goes out as HTTP/1.0 (it once
// went out as HTTP/1.1).
TEST_CASE("a 413 to an HTTP/1.0 request says HTTP/1.0", "[request_reader]") {
  ServerLimits limits;
  limits.body_limit = 10;
  BlockPool pool;
  IoBuffer in;
  RequestReader r(limits);
  kvtest::append(in, pool, "PUT /put?key=a HTTP/1.0\r\nContent-Length: 11\r\n\r\n");
  REQUIRE(r.read(in) == Status::rejected);
  CHECK(r.rejection().detail == "Request body too large");
  CHECK(r.version() == 10);
}

TEST_CASE("malformed requests are refused with 400 and Beast's reason, at every split", "[request_reader]") {
  const std::pair<std::string, std::string> cases[] = {
      {"G@T /get?key=a HTTP/1.1\r\n\r\n", "Malformed request: bad method"},
      {"GET /get?key=a HTTP/1.2\r\n\r\n", "Malformed request: bad version"},
      {"GET /get?key=a HTTP/1.1\r\nBad Name: v\r\n\r\n", "Malformed request: bad field"},
      {"GET /get?key=a HTTP/1.1\r\nX-A: b\x01" "c\r\n\r\n", "Malformed request: bad value"},
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "Malformed request: bad Content-Length"},
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Malformed request: bad Content-Length"},
      // Content-Length and Transfer-Encoding together, in either order: Beast names the second.
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
       "Malformed request: bad Transfer-Encoding"},
      {"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
       "Malformed request: bad Content-Length"},
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       "Malformed request: multiple Content-Length"},
      // After the head: the body is what is malformed.
      {"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "Malformed request body: bad chunk"},
  };
  for (const auto& [in, detail] : cases) {
    INFO(in);
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run({});
      const std::string got = run.feed(in, plan);
      REQUIRE(run.status == Status::rejected);
      CHECK(got.substr(got.find(':')) == ": 400 " + detail);
      CHECK(run.reader.rejection().status == boost::beast::http::status::bad_request);
    }
  }
}

TEST_CASE("bare LFs are refused when the head comes whole; in pieces Beast waits for a CRLF CRLF", "[request_reader]") {
  // Beast's parser, given part of a head, looks for its end before parsing it: a head of bare LFs
  // has none, so it waits (for the header deadline: 408, or header_limit: 431).
  const std::string in = "GET /get?key=a HTTP/1.1\nHost: kv\n\n";
  Run whole({});
  CHECK(whole.feed(in, plans(in.size())[0]) == "rejected at " + std::to_string(in.size()) + ": 400 Malformed request: bad version");
  Run pieces({});
  REQUIRE(plans(in.size())[1].name == "1-byte pieces");
  CHECK(pieces.feed(in, plans(in.size())[1]) == "more after " + std::to_string(in.size()));
  CHECK(pieces.reader.timed_out().detail == "Timed out reading request headers");
}

// ---- deadlines and the version ------------------------------------------------------------------

TEST_CASE("timed_out() says which part of the request was late", "[request_reader]") {
  using boost::beast::http::status;
  ServerLimits limits;
  BlockPool pool;
  struct Case {
    std::string sent;
    std::string detail;
  };
  const Case cases[] = {
      {"", "Timed out reading request headers"},
      {"GET /get?key=a HT", "Timed out reading request headers"},                                        // scanner, mid-head
      {"GET /get?key=a HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n", "Timed out reading request headers"},          // Beast, mid-head
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"val", "Timed out reading request body"},  // scanner
      {"POST /put?key=a HTTP/1.1\r\nContent-Length: 20\r\n\r\n", "Timed out reading request body"},  // nothing of it yet
      {"POST /put?key=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", "Timed out reading request body"},  // Beast
  };
  for (const auto& c : cases) {
    INFO(c.sent);
    IoBuffer in;
    RequestReader r(limits);
    kvtest::append(in, pool, c.sent);
    if (!c.sent.empty()) REQUIRE(r.read(in) == Status::more);
    const auto& rejection = r.timed_out();
    CHECK(rejection.status == status::request_timeout);
    CHECK(rejection.detail == c.detail);
    CHECK(&r.rejection() == &rejection);
  }
}

TEST_CASE("version() is 11 until the request's is known, then the request's, until reset()", "[request_reader]") {
  const std::string scanner = "POST /put?key=a HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
  const std::string beast = "POST /put?key=a HTTP/1.0\r\nX-A: caf\xc3\xa9\r\nContent-Length: 3\r\n\r\nabc";
  for (const auto& in : {scanner, beast}) {
    INFO(in);
    const std::size_t head_size = in.find("\r\n\r\n") + 4;
    // The scanner's path knows the version with the whole head; Beast's path with the request line,
    // which it reads as soon as the scanner has declined the head (at its first byte of obs-text).
    const std::size_t known = in == beast ? in.find('\xc3') + 1 : head_size;
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run({});
      const std::string got = run.feed(in, plan, [&](RequestReader& r, std::size_t fed) {
        REQUIRE(r.version() == (fed >= known ? 10u : 11u));
        REQUIRE(r.head_done() == (fed >= head_size));
      });
      REQUIRE(run.status == Status::complete);
      CHECK(run.reader.head().version == 10);
      run.reader.reset();
      CHECK(run.reader.version() == 11);
      CHECK_FALSE(run.reader.head_done());
      CHECK(run.reader.body().empty());
      CHECK(run.reader.consumed() == 0);
    }
  }
  // A refused HTTP/1.0 request after its head: the refusal goes out as HTTP/1.0.
  BlockPool pool;
  IoBuffer in;
  ServerLimits limits;
  RequestReader r(limits);
  kvtest::append(in, pool, "POST /put?key=a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  REQUIRE(r.read(in) == Status::rejected);
  CHECK(r.rejection().detail == "Malformed request body: bad chunk");
  CHECK(r.version() == 10);
}
