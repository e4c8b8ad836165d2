// ResponseReader: a node's answers fed in every fragmentation (fragments.hpp), with the connection
// ending (EOF or an error) at every point, on the scanner's path and on Beast's.
#include "http/response_reader.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <functional>
#include <string>

#include "fragments.hpp"

using kv::BlockPool;
using kv::IoBuffer;
using kv::http::ResponseReader;
using Status = ResponseReader::Status;
using kvtest::plans;
using kvtest::render_response;

namespace {

constexpr std::uint64_t kLimit = 1 << 20;

std::string outcome(const ResponseReader& r, Status st, std::size_t at, const IoBuffer& in) {
  switch (st) {
    case Status::more: return "more after " + std::to_string(at);
    case Status::failed: return "failed at " + std::to_string(at) + ": " + r.failure();
    case Status::complete:
      return "complete at " + std::to_string(at) + ", consumed " + std::to_string(r.consumed()) + ", buffer " +
             std::to_string(in.size()) + "\n" + render_response(r.head(), r.body());
  }
  return "?";
}

std::string complete(std::size_t at, std::size_t consumed, std::size_t buffer, const std::string& rendered) {
  return "complete at " + std::to_string(at) + ", consumed " + std::to_string(consumed) + ", buffer " + std::to_string(buffer) +
         "\n" + rendered;
}

// Feeds `input` to a started reader as `plan` cuts it, until a read says anything but `more`;
// then, if asked, the connection ends (`eof`, or `error`) with a read of nothing new.
struct Run {
  BlockPool pool;
  IoBuffer in;
  ResponseReader reader;
  Status status = Status::more;
  std::size_t at = 0;

  explicit Run(bool head_request = false, std::uint64_t body_limit = kLimit) { reader.start(head_request, body_limit); }
  std::string feed(std::string_view input, const kvtest::Plan& plan, bool eof = false, int error = 0,
                   const std::function<void(ResponseReader&, std::size_t)>& after_read = {}) {
    std::size_t fed = 0;
    for (std::size_t piece : plan.pieces) {
      kvtest::append(in, pool, input.substr(fed, piece));
      fed += piece;
      status = reader.read(in, false, 0);
      at = fed;
      if (after_read) after_read(reader, fed);
      if (status != Status::more) return outcome(reader, status, at, in);
    }
    if (eof || error) {
      status = reader.read(in, eof, error);
      if (after_read) after_read(reader, fed);
    }
    return outcome(reader, status, at, in);
  }
};

void same_at_every_split(std::string_view input, const std::string& expected, bool head_request = false, bool eof = false) {
  for (const auto& plan : plans(input.size())) {
    INFO(plan.name);
    Run run(head_request);
    REQUIRE(run.feed(input, plan, eof) == expected);
  }
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The first piece boundary at or after `offset`: where a reader can first see what ends there.
std::size_t boundary_at(const kvtest::Plan& plan, std::size_t offset) {
  std::size_t b = 0;
  for (auto it = plan.pieces.begin(); b < offset;) b += *it++;
  return b;
}

const std::string kScanned =
    "HTTP/1.1 200 OK\r\nX-KV-Node: n1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}";
const std::string kChunkedHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-KV-Node: n2\r\n\r\n";
const std::string kChunked = kChunkedHead + "4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";

}  // namespace

TEST_CASE("an answer with a Content-Length is read by the scanner at every split", "[response_reader]") {
  const std::size_t head_size = kScanned.find("\r\n\r\n") + 4;
  const std::string expected = complete(kScanned.size(), kScanned.size(), kScanned.size(),
                                        "200 'OK' v11\n"
                                        "  X-KV-Node: 'n1' [other]\n"
                                        "  Content-Type: 'application/json' [other]\n"
                                        "  Content-Length: '11' [content_length]\n"
                                        "keep_alive=1 body='{\"a\":\"bcd\"}'");
  for (const auto& plan : plans(kScanned.size())) {
    INFO(plan.name);
    Run run;
    // head_seen() once the head is in, not before.
    REQUIRE(run.feed(kScanned, plan, false, 0, [&](ResponseReader& r, std::size_t fed) {
      REQUIRE(r.head_seen() == (fed >= head_size));
    }) == expected);
    CHECK(run.reader.head().start_line == "HTTP/1.1 200 OK\r\n");
    CHECK(run.reader.head().content_length == 11);
    CHECK(run.reader.body().data() == run.in.data() + head_size);  // a view into the buffer
  }
}

TEST_CASE("an answer body of kScanMaxBody stays in the buffer; one byte more goes to Beast", "[response_reader]") {
  using kv::http::kScanMaxBody;
  for (const std::uint64_t length : {kScanMaxBody, kScanMaxBody + 1}) {
    INFO("Content-Length " << length);
    const bool beast = length > kScanMaxBody;
    std::string body(static_cast<std::size_t>(length), '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
    const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n" + body;
    const std::string n = std::to_string(in.size());
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run;
      REQUIRE(first_line(run.feed(in, plan)) == "complete at " + n + (beast ? ", consumed 0, buffer 0" : ", consumed " + n + ", buffer " + n));
      REQUIRE((run.reader.body() == body));
    }
  }
}

TEST_CASE("a chunked answer goes to Beast, which takes the bytes", "[response_reader]") {
  const std::string expected = complete(kChunked.size(), 0, 0,
                                        "200 'OK' v11\n"
                                        "  Transfer-Encoding: 'chunked' [transfer_encoding]\n"
                                        "  X-KV-Node: 'n2' [other]\n"
                                        "keep_alive=1 body='wikipedia'");
  for (const auto& plan : plans(kChunked.size())) {
    INFO(plan.name);
    Run run;
    REQUIRE(run.feed(kChunked, plan, false, 0, [&](ResponseReader& r, std::size_t fed) {
      REQUIRE(r.head_seen() == (fed >= kChunkedHead.size()));
    }) == expected);
    CHECK(run.reader.head().fields[0].line.empty());  // Beast's: relayed field by field
  }
}

// A chunked answer's trailer fields are not its head's (RFC 9110 6.5.1): RawParser once appended
// them, and the proxy relayed them to the client as header fields.
TEST_CASE("a chunked answer's trailer fields are not fields of its head", "[response_reader]") {
  const std::string in = kChunkedHead + "2\r\nok\r\n0\r\nX-Checksum: 9\r\nSet-Cookie: s=1\r\n\r\n";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "200 'OK' v11\n"
                                   "  Transfer-Encoding: 'chunked' [transfer_encoding]\n"
                                   "  X-KV-Node: 'n2' [other]\n"
                                   "keep_alive=1 body='ok'"));
}

TEST_CASE("an answer without a length ends at EOF, whatever came of its body", "[response_reader]") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
  const std::string in = head + "hello world";
  const std::string rendered = "200 'OK' v11\n  Content-Type: 'text/plain' [other]\nkeep_alive=0 body=";
  // Every fragmentation, EOF after the last byte.
  same_at_every_split(in, complete(in.size(), 0, 0, rendered + "'hello world'"), false, true);
  // EOF with the last piece, in the same read.
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    Run run;
    std::size_t fed = 0;
    Status st = Status::more;
    for (std::size_t i = 0; i < plan.pieces.size(); ++i) {
      kvtest::append(run.in, run.pool, std::string_view(in).substr(fed, plan.pieces[i]));
      fed += plan.pieces[i];
      st = run.reader.read(run.in, i + 1 == plan.pieces.size(), 0);
      if (i + 1 < plan.pieces.size()) REQUIRE(st == Status::more);
    }
    REQUIRE(outcome(run.reader, st, fed, run.in) == complete(in.size(), 0, 0, rendered + "'hello world'"));
  }
  // EOF at every point: before the head is complete the answer is partial; after, its body is what came.
  for (std::size_t k = 0; k <= in.size(); ++k) {
    INFO("EOF after " << k << " bytes");
    Run run;
    const std::string got = run.feed(in.substr(0, k), {"whole", {k}}, true);
    if (k < head.size())
      CHECK(got == "failed at " + std::to_string(k) + ": partial message");
    else
      CHECK(got == complete(k, 0, 0, rendered + "'" + in.substr(head.size(), k - head.size()) + "'"));
  }
  // HTTP/1.0, the same.
  const std::string old = "HTTP/1.0 200 OK\r\n\r\nold";
  same_at_every_split(old, complete(old.size(), 0, 0, "200 'OK' v10\nkeep_alive=0 body='old'"), false, true);
}

TEST_CASE("interim 1xx answers are skipped; the answer is the one after them", "[response_reader]") {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
  const std::string head = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n";
  const std::string in = interim + head + "ok";
  const std::string expected = complete(in.size(), 0, 0, "201 'Created' v11\n  Content-Length: '2' [content_length]\nkeep_alive=1 body='ok'");
  for (const auto& plan : plans(in.size())) {
    INFO(plan.name);
    Run run;
    REQUIRE(run.feed(in, plan, false, 0, [&](ResponseReader& r, std::size_t fed) {
      REQUIRE(r.head_seen() == (fed >= interim.size() + head.size()));  // an interim head is not the answer's
    }) == expected);
  }
  // The connection ending after the interim answers: partial.
  Run cut;
  CHECK(cut.feed(interim, {"whole", {interim.size()}}, true) == "failed at " + std::to_string(interim.size()) + ": partial message");
}

TEST_CASE("204 and 304 have no body, whatever their Content-Length says", "[response_reader]") {
  const std::string no_content = "HTTP/1.1 204 No Content\r\nX-KV-Node: n1\r\n\r\n";
  same_at_every_split(no_content, complete(no_content.size(), 0, 0, "204 'No Content' v11\n  X-KV-Node: 'n1' [other]\nkeep_alive=1 body=''"));
  const std::string not_modified = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\n";
  same_at_every_split(not_modified, complete(not_modified.size(), 0, 0,
                                             "304 'Not Modified' v11\n"
                                             "  ETag: '\"v1\"' [other]\n"
                                             "  Content-Length: '5' [content_length]\n"
                                             "keep_alive=1 body=''"));
}

TEST_CASE("an answer to HEAD has no body: it is complete at the end of its head", "[response_reader]") {
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n";
  same_at_every_split(in, complete(in.size(), 0, 0,
                                   "200 'OK' v11\n"
                                   "  Content-Type: 'application/json' [other]\n"
                                   "  Content-Length: '17' [content_length]\n"
                                   "keep_alive=1 body=''"),
                      true);
  // Bytes after it are not its body: they stay in the buffer.
  Run run(true);
  CHECK(first_line(run.feed(in + "{\"status\":\"ok\"}", {"whole", {in.size() + 15}})) ==
        "complete at " + std::to_string(in.size() + 15) + ", consumed 0, buffer 15");
}

TEST_CASE("a body over body_limit fails the answer", "[response_reader]") {
  // At the limit: the scanner reads it.
  const std::string at_limit = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  for (const auto& plan : plans(at_limit.size())) {
    INFO(plan.name);
    Run run(false, 10);
    const std::string n = std::to_string(at_limit.size());
    REQUIRE(first_line(run.feed(at_limit, plan)) == "complete at " + n + ", consumed " + n + ", buffer " + n);
    CHECK(run.reader.body() == "0123456789");
  }
  // A declared length over it: failed once the head is in.
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
  const std::string over = head + "0123456789a";
  for (const auto& plan : plans(over.size())) {
    INFO(plan.name);
    Run run(false, 10);
    REQUIRE(run.feed(over, plan) == "failed at " + std::to_string(boundary_at(plan, head.size())) + ": body limit exceeded");
  }
  // Chunks that add up to more than it.
  const std::string chunked = kChunkedHead + "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n";
  for (const auto& plan : plans(chunked.size())) {
    INFO(plan.name);
    Run run(false, 10);
    const std::string got = run.feed(chunked, plan);
    REQUIRE(run.status == Status::failed);
    CHECK(got.substr(got.find(':')) == ": body limit exceeded");
  }
}

TEST_CASE("the connection ending mid-answer fails it: partial message", "[response_reader]") {
  // On the scanner's path, and on Beast's (a chunked answer), at every point before its last byte.
  for (const std::string& in : {kScanned, kChunked}) {
    INFO(in);
    for (std::size_t k = 0; k < in.size(); ++k) {
      INFO("EOF after " << k << " bytes");
      Run run;
      REQUIRE(run.feed(in.substr(0, k), {"whole", {k}}, true) == "failed at " + std::to_string(k) + ": partial message");
      CHECK(run.status == Status::failed);
    }
    // At its last byte it is complete, EOF or not.
    Run run;
    CHECK(run.feed(in, {"whole", {in.size()}}, true).substr(0, 8) == "complete");
  }
}

TEST_CASE("an answer Beast cannot read fails with Beast's reason", "[response_reader]") {
  const std::pair<std::string, std::string> cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", "bad status"},
      {"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", "bad field"},
      {kChunkedHead + "zz\r\n", "bad chunk"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "multiple Content-Length"},
  };
  for (const auto& [in, reason] : cases) {
    INFO(in);
    for (const auto& plan : plans(in.size())) {
      INFO(plan.name);
      Run run;
      const std::string got = run.feed(in, plan);
      REQUIRE(run.status == Status::failed);
      CHECK(got.substr(got.find(':')) == ": " + reason);
    }
  }
}

TEST_CASE("a connection error on Beast's path fails the answer with the system's reason", "[response_reader]") {
  // The head and part of the body, then a reset.
  const std::string cut = kChunkedHead + "4\r\nwi";
  Run run;
  CHECK(run.feed(cut, {"whole", {cut.size()}}, false, ECONNRESET) == "failed at " + std::to_string(cut.size()) + ": Connection reset by peer");
  CHECK(run.reader.head_seen());
  // Nothing at all, then a reset: on Beast's path once it has begun (a HEAD answer).
  Run nothing(true);
  CHECK(nothing.feed("", {"whole", {0}}, false, ECONNRESET) == "failed at 0: Connection reset by peer");
  // What came whole before the error is the answer.
  Run whole;
  CHECK(whole.feed(kChunked, {"whole", {kChunked.size()}}, false, ECONNRESET).substr(0, 8) == "complete");
  Run scanned;
  CHECK(scanned.feed(kScanned, {"whole", {kScanned.size()}}, false, ECONNRESET).substr(0, 8) == "complete");
}

// On the scanner's path a connection error is reported with the system's reason, as Beast's path
// reports it (it once said "partial message", and what the node did was lost from the log).
TEST_CASE("a connection error on the scanner's path fails with the system's reason", "[response_reader]") {
  const std::string cut = kScanned.substr(0, kScanned.size() - 3);
  Run run;
  CHECK(run.feed(cut, {"whole", {cut.size()}}, false, ECONNRESET) == "failed at " + std::to_string(cut.size()) + ": Connection reset by peer");
}

TEST_CASE("start() forgets the previous answer, even one cut off halfway", "[response_reader]") {
  BlockPool pool;
  ResponseReader r;
  // A whole answer, read by the scanner.
  IoBuffer a;
  r.start(false, kLimit);
  kvtest::append(a, pool, kScanned);
  REQUIRE(r.read(a, false, 0) == Status::complete);
  r.start(false, kLimit);
  CHECK_FALSE(r.head_seen());
  CHECK(r.body().empty());
  CHECK(r.consumed() == 0);
  // Half a chunked answer on Beast's path, cut off (a timeout): the next answer, on a new
  // connection, is read from its first byte.
  IoBuffer b;
  r.start(false, kLimit);
  kvtest::append(b, pool, kChunked.substr(0, kChunkedHead.size() + 5));
  REQUIRE(r.read(b, false, 0) == Status::more);
  REQUIRE(r.head_seen());
  r.start(false, kLimit);
  CHECK_FALSE(r.head_seen());
  IoBuffer c;
  const std::string next = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n";
  kvtest::append(c, pool, next);
  REQUIRE(r.read(c, false, 0) == Status::complete);
  CHECK(render_response(r.head(), r.body()) == "404 'Not Found' v11\n  Transfer-Encoding: 'chunked' [transfer_encoding]\nkeep_alive=1 body='no'");
  // An answer to HEAD, then one to GET: the second has its body.
  IoBuffer d;
  r.start(true, kLimit);
  kvtest::append(d, pool, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
  REQUIRE(r.read(d, false, 0) == Status::complete);
  CHECK(r.body().empty());
  r.start(false, kLimit);
  kvtest::append(d, pool, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  REQUIRE(r.read(d, false, 0) == Status::complete);
  CHECK(r.body() == "ok");
  // A failed answer, then a good one.
  IoBuffer e;
  r.start(false, kLimit);
  kvtest::append(e, pool, "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
  REQUIRE(r.read(e, false, 0) == Status::failed);
  IoBuffer f;
  r.start(false, kLimit);
  kvtest::append(f, pool, kScanned);
  REQUIRE(r.read(f, false, 0) == Status::complete);
  CHECK(r.body() == "{\"a\":\"bcd\"}");
  CHECK(r.consumed() == kScanned.size());
}

// An answer read by Beast says the body's length in head().content_length, as RequestReader does (it
// once kept what the last scan left: 0 for a chunked answer of nine bytes, and for an answer to HEAD
// the previous answer's length).
TEST_CASE("head().content_length on Beast's path is the body's length, as RequestReader's", "[response_reader]") {
  BlockPool pool;
  ResponseReader r;
  IoBuffer a;
  r.start(false, kLimit);
  kvtest::append(a, pool, kChunked);
  REQUIRE(r.read(a, false, 0) == Status::complete);
  CHECK(r.body() == "wikipedia");
  CHECK(r.head().content_length == 9);
  IoBuffer b;
  r.start(false, kLimit);
  kvtest::append(b, pool, kScanned);
  REQUIRE(r.read(b, false, 0) == Status::complete);
  REQUIRE(r.head().content_length == 11);
  IoBuffer c;
  r.start(true, kLimit);
  kvtest::append(c, pool, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n");
  REQUIRE(r.read(c, false, 0) == Status::complete);
  CHECK(r.head().content_length == r.body().size());  // not the 11 of the answer before
}
