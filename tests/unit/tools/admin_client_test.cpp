#include <catch2/catch.hpp>

#include <deque>
#include <sstream>
#include <variant>

#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "tools/admin_client.hpp"

using namespace kv;
using namespace kv::tools;
using namespace std::chrono_literals;
using kv::rebalance::Drop;
using kv::rebalance::Phase;
using kv::rebalance::Step;

namespace {

struct Sent {
  std::string method, target, body, content_type;
};

// A server that answers from a script, in order, and remembers what it was sent. An exception in
// the script stands for a request that got no answer.
struct Script {
  std::deque<std::variant<HttpResponse, std::runtime_error>> answers;
  std::vector<Sent> sent;

  Exchange exchange() {
    return [this](std::string_view m, std::string_view t, std::string_view b, std::string_view ct) {
      sent.push_back({std::string(m), std::string(t), std::string(b), std::string(ct)});
      REQUIRE_FALSE(answers.empty());
      auto next = std::move(answers.front());
      answers.pop_front();
      if (auto* e = std::get_if<std::runtime_error>(&next)) throw *e;
      return std::get<HttpResponse>(std::move(next));
    };
  }
  Script& answer(unsigned status, std::string body, std::vector<std::pair<std::string, std::string>> fields = {}) {
    answers.push_back(HttpResponse{status, std::move(body), std::move(fields)});
    return *this;
  }
  Script& no_answer(const std::string& what) {
    answers.push_back(std::runtime_error(what));
    return *this;
  }
};

// The retry policy with its pauses and log kept for the test, and no waiting.
struct Retries {
  std::ostringstream log;
  std::vector<std::chrono::milliseconds> pauses;
  RetryPolicy policy() {
    RetryPolicy p;
    p.sleep = [this](std::chrono::milliseconds d) { pauses.push_back(d); };
    p.log = Log(log);
    return p;
  }
};

const HostPort kProxy{"127.0.0.1", 8404};
const HostPort kNode{"127.0.0.1", 8081};

std::vector<HashRange> ranges(std::size_t n) {
  std::vector<HashRange> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back({i * 10, i * 10 + 5});
  return out;
}

std::size_t lines(const std::string& body) { return static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n')); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const AdminError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("proxy: its position, and a step with its target and body", "[admin]") {
  Script s;
  Retries r;
  ProxyAdmin proxy(kProxy, s.exchange(), r.policy());
  s.answer(200, R"({"status":"success","version":3,"fingerprint":"0123456789abcdef","phase":"dual_write",)"
                R"("to":"fedcba9876543210","from":"0123456789abcdef"})");
  const auto p = proxy.position();
  CHECK(p.version == 3);
  CHECK(p.change.phase == Phase::dual_write);
  CHECK(p.change.to == "fedcba9876543210");
  CHECK((s.sent[0].method == "GET" && s.sent[0].target == "/admin/migration"));

  s.answer(200, R"({"status":"success"})");
  proxy.step(Step::begin, "0123456789abcdef", "nodes: []\n");
  CHECK(s.sent[1].method == "POST");
  CHECK(s.sent[1].target == "/admin/migration/begin?from=0123456789abcdef");
  CHECK(s.sent[1].body == "nodes: []\n");
  CHECK(s.sent[1].content_type == "application/yaml");
  CHECK(r.pauses.empty());
}

TEST_CASE("proxy: an answer that is not a position names the proxy and the request", "[admin]") {
  Script s;
  Retries r;
  ProxyAdmin proxy(kProxy, s.exchange(), r.policy());
  s.answer(200, "<html>hello</html>");
  CHECK(error_of([&] { proxy.position(); }) == "proxy 127.0.0.1:8404: GET /admin/migration: not JSON: <html>hello</html>");
}

TEST_CASE("a 503 is retried with a growing pause and a log line each time", "[admin]") {
  Script s;
  Retries r;
  ProxyAdmin proxy(kProxy, s.exchange(), r.policy());
  s.answer(503, R"({"status":"error","detail":"draining"})").answer(503, "busy").answer(200, "{}");
  proxy.step(Step::finish, "fedcba9876543210");
  CHECK(s.sent.size() == 3);
  CHECK(r.pauses == std::vector{200ms, 400ms});
  CHECK(r.log.str() ==
        "ring-rebalance: proxy 127.0.0.1:8404: draining; retrying\n"
        "ring-rebalance: proxy 127.0.0.1:8404: busy; retrying\n");
}

TEST_CASE("five 503s: the last is the error, without the query", "[admin]") {
  Script s;
  Retries r;
  ProxyAdmin proxy(kProxy, s.exchange(), r.policy());
  for (int i = 0; i < 5; ++i) s.answer(503, R"({"status":"error","detail":"draining"})");
  CHECK(error_of([&] { proxy.step(Step::read_new, "fedcba9876543210"); }) ==
        "proxy 127.0.0.1:8404: POST /admin/migration/read-new: HTTP 503: draining");
  CHECK(r.pauses == std::vector{200ms, 400ms, 600ms, 800ms});
  CHECK(lines(r.log.str()) == 4);
}

TEST_CASE("no answer: retried silently, then the transport's reason", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n1", kNode, s.exchange(), r.policy());
  for (int i = 0; i < 5; ++i) s.no_answer("127.0.0.1:8081: POST /admin/ingest: connect: Connection refused");
  CHECK(error_of([&] { node.ingest("x", true); }) ==
        "node n1 (127.0.0.1:8081): 127.0.0.1:8081: POST /admin/ingest: connect: Connection refused");
  CHECK(r.pauses == std::vector{200ms, 400ms, 600ms, 800ms});
  CHECK(r.log.str().empty());

  s.no_answer("gone").answer(200, R"({"status":"success","written":2,"skipped":0})");
  CHECK(node.ingest("records", true) == 2);
}

TEST_CASE("any other status fails at once, with the answer's detail or the start of its body", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n1", kNode, s.exchange(), r.policy());
  s.answer(500, R"({"status":"error","detail":"Storage scan failed"})");
  CHECK(error_of([&] { node.scan(ranges(1), 10, 100, "", true); }) ==
        "node n1 (127.0.0.1:8081): POST /admin/scan: HTTP 500: Storage scan failed");
  s.answer(401, std::string(300, 'x'));
  CHECK(error_of([&] { node.drop(Drop::all, ranges(1)); }) ==
        "node n1 (127.0.0.1:8081): POST /admin/drop: HTTP 401: " + std::string(200, 'x'));
  CHECK(s.sent.size() == 2);
  CHECK(r.pauses.empty());
}

TEST_CASE("count: 4096 ranges a request, the keys summed, the node named by its id in messages", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n1", kNode, s.exchange(), r.policy());
  const auto all = ranges(5000);
  s.answer(200, R"({"status":"success","keys":7})").answer(200, R"({"status":"success","keys":5})");
  CHECK(node.count(all) == 12);
  REQUIRE(s.sent.size() == 2);
  CHECK(s.sent[0].target == "/admin/count");
  CHECK(s.sent[0].content_type == "text/plain");
  CHECK(lines(s.sent[0].body) == 4096);
  CHECK(lines(s.sent[1].body) == 904);
  std::string line;
  append_range(line, all[4096]);
  CHECK(s.sent[1].body.starts_with(line));
  CHECK(node.count({}) == 0);  // no ranges, no request
  CHECK(s.sent.size() == 2);

  s.answer(500, R"({"detail":"boom"})");
  CHECK(error_of([&] { node.count(all); }) == "node n1: POST /admin/count: HTTP 500: boom");
  s.answer(200, R"({"status":"success"})");
  CHECK(error_of([&] { node.count(ranges(1)); }) ==
        R"(node n1: POST /admin/count: unexpected answer: {"status":"success"})");
}

TEST_CASE("scan: the target, the records, and the cursor as raw bytes", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n1", kNode, s.exchange(), r.policy());
  const std::string cursor = storage_key("k7", 0x0102030405060708);
  s.answer(200, "RECORDS", {{"X-KV-Scan-Count", "3"}, {"x-kv-scan-done", "0"}, {"X-KV-Scan-Cursor", hex_bytes(cursor)}});
  auto b = node.scan(ranges(2), 50, 4096, std::string("\x00\x00\x00\x00\x00\x00\x00\x2a" "a", 9), true);
  CHECK(s.sent[0].target == "/admin/scan?limit=50&max_bytes=4096&after=000000000000002a61&versions=1");
  CHECK(lines(s.sent[0].body) == 2);
  CHECK(b.records == "RECORDS");
  CHECK(b.count == 3);
  CHECK_FALSE(b.done);
  CHECK(b.cursor == cursor);

  s.answer(200, "", {{"X-KV-Scan-Done", "1"}});
  b = node.scan(ranges(1), 50, 4096, "", false);
  CHECK(s.sent[1].target == "/admin/scan?limit=50&max_bytes=4096");
  CHECK(b.count == 0);
  CHECK(b.done);
}

TEST_CASE("scan: an answer without a way on is refused", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n1", kNode, s.exchange(), r.policy());
  for (const std::string& cursor : {std::string(), std::string("zz"), hex_bytes("short")}) {
    s.answer(200, "", {{"X-KV-Scan-Count", "1"}, {"X-KV-Scan-Done", "0"}, {"X-KV-Scan-Cursor", cursor}});
    CHECK(error_of([&] { node.scan(ranges(1), 1, 1, "", true); }) == "node n1 (127.0.0.1:8081): scan answered without a valid cursor");
  }
  s.answer(200, "", {{"X-KV-Scan-Count", "-1"}, {"X-KV-Scan-Done", "1"}});
  CHECK(error_of([&] { node.scan(ranges(1), 1, 1, "", true); }) == "node n1 (127.0.0.1:8081): scan answered X-KV-Scan-Count: -1");
}

TEST_CASE("ingest and drop: their targets, bodies and answers", "[admin]") {
  Script s;
  Retries r;
  NodeAdmin node("n2", {"::1", 8082}, s.exchange(), r.policy());
  s.answer(200, R"({"status":"success","written":4,"skipped":1})");
  CHECK(node.ingest("RECS", true) == 4);
  CHECK((s.sent[0].target == "/admin/ingest?versions=1" && s.sent[0].body == "RECS"));
  CHECK(s.sent[0].content_type == "application/octet-stream");
  s.answer(200, R"({"status":"success","skipped":1})");
  CHECK(error_of([&] { node.ingest("RECS", false); }) ==
        R"(node n2 ([::1]:8082): POST /admin/ingest: unexpected answer: {"status":"success","skipped":1})");

  s.answer(200, "{}").answer(200, "{}");
  node.drop(Drop::tombstones, ranges(4097));
  REQUIRE(s.sent.size() == 4);
  CHECK(s.sent[2].target == "/admin/drop?what=tombstones");
  CHECK(lines(s.sent[2].body) == 4096);
  CHECK(lines(s.sent[3].body) == 1);
}

TEST_CASE("node clients: one per node, made on first use", "[admin]") {
  std::vector<HostPort> connected;
  Script s;
  NodeAdmins nodes([&](const HostPort& a) { connected.push_back(a); return s.exchange(); }, RetryPolicy{});
  NodeAdmin& a = nodes.node("n1", kNode);
  NodeAdmin& b = nodes.node("n2", {"127.0.0.1", 8082});
  CHECK(&nodes.node("n1", kNode) == &a);
  CHECK(&a != &b);
  CHECK(b.id() == "n2");
  CHECK(connected == std::vector<HostPort>{kNode, {"127.0.0.1", 8082}});
}
