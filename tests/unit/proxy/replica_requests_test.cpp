// proxy/replica_requests.hpp: the exact bytes a coordinator sends to a key's replicas, and how every
// kind of answer reads as a ReplicaReply.
#include <catch2/catch.hpp>

#include <string>

#include "http/scan.hpp"
#include "proxy/replica_requests.hpp"

using namespace kv;
using namespace kv::proxy;
using Kind = ReplicaReply::Kind;

namespace {

http::ScannedHead answer(const std::string& in) {
  http::ScannedHead h;
  REQUIRE(http::scan_response(in, 8192, h) == http::ScanResult::complete);
  return h;
}

std::string with(unsigned status, std::string fields) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\n" + fields + "Content-Length: 0\r\n\r\n";
}

}  // namespace

TEST_CASE("replica requests: the read, the tag query and the stores, byte for byte", "[replica]") {
  std::string out;
  append_replica_get(out, "/get?key=a%20b&x=1", "10.0.0.1:7000", false, "");
  CHECK(out == "GET /replica/get?key=a%20b&x=1 HTTP/1.1\r\nHost: 10.0.0.1:7000\r\n\r\n");
  out.clear();
  append_replica_get(out, "/put?key=k", "h:1", true, "Authorization: Bearer t0k3n-t0k3n-t0k3n\r\n");
  CHECK(out == "HEAD /replica/get?key=k HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t0k3n-t0k3n-t0k3n\r\n\r\n");
  out.clear();
  append_replica_store(out, false, "/put?key=k", "h:1", Tag{7, 0xab}, R"({"value":"v"})", "");
  CHECK(out ==
        "POST /replica/put?key=k HTTP/1.1\r\nHost: h:1\r\nX-KV-Version: 7.00000000000000ab\r\n"
        "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"value\":\"v\"}");
  out.clear();
  append_replica_store(out, true, "/del?key=k", "h:1", Tag{8, 1}, "ignored", "");
  CHECK(out == "DELETE /replica/del?key=k HTTP/1.1\r\nHost: h:1\r\nX-KV-Version: 8.0000000000000001\r\n\r\n");
}

TEST_CASE("replica answers: what a query's and a store's answers say", "[replica]") {
  auto q = query_reply(answer(with(200, "X-KV-Version: 5.1\r\n")));
  CHECK(q.kind == Kind::found);
  CHECK(q.found.value);
  CHECK(q.found.held.tag == Tag{5, 1});
  q = query_reply(answer(with(404, "X-KV-Version: 6.1\r\nX-KV-Tombstone: 1\r\n")));
  CHECK(q.kind == Kind::found);
  CHECK_FALSE(q.found.value);
  CHECK(q.found.held.tombstone);
  q = query_reply(answer(with(404, "X-KV-Version: 0.0\r\n")));
  CHECK((q.kind == Kind::found && q.found.held.tag.none()));
  CHECK(query_reply(answer(with(200, ""))).kind == Kind::failed);  // a node that keeps no versions
  CHECK(query_reply(answer(with(400, ""))).kind == Kind::refused);
  // The proxy's token refused: the replica failed, the client's request did not.
  CHECK(query_reply(answer(with(401, ""))).kind == Kind::failed);
  CHECK(query_reply(answer(with(403, ""))).kind == Kind::failed);
  CHECK(query_reply(answer(with(405, ""))).kind == Kind::refused);
  CHECK(query_reply(answer(with(500, "X-KV-Version: 5.1\r\n"))).kind == Kind::failed);

  CHECK(store_reply(answer(with(200, "X-KV-Version: 5.1\r\nX-KV-Applied: 1\r\n")), false).kind == Kind::stored);
  CHECK(store_reply(answer(with(200, "X-KV-Version: 9.1\r\nX-KV-Applied: 0\r\n")), false).kind == Kind::stored);
  CHECK(store_reply(answer(with(404, "X-KV-Version: 5.1\r\nX-KV-Tombstone: 1\r\n")), true).kind == Kind::stored);
  CHECK(store_reply(answer(with(404, "")), false).kind == Kind::failed);  // a put's 404: a node without /replica/
  CHECK(store_reply(answer(with(200, "")), false).kind == Kind::failed);
  CHECK(store_reply(answer(with(409, "")), false).kind == Kind::failed);
  // Refused below the key's segment floor (node/floors.hpp): surely not stored.
  CHECK(store_reply(answer(with(409, "X-KV-Floor: 812\r\nX-KV-Applied: 0\r\n")), false).kind == Kind::below_floor);
  CHECK(store_reply(answer(with(409, "X-KV-Floor: unknown\r\n")), true).kind == Kind::below_floor);
  CHECK(floor_field(answer(with(409, "x-kv-floor: 812\r\n"))) == "812");
  // A tag query of a key that holds nothing tells the floor; a malformed one is a bad answer.
  q = query_reply(answer(with(404, "X-KV-Version: 0.0\r\nX-KV-Floor: 812\r\n")));
  CHECK((q.kind == Kind::found && q.found.floor == 812));
  CHECK(query_reply(answer(with(404, "X-KV-Version: 0.0\r\nX-KV-Floor: many\r\n"))).kind == Kind::failed);
  CHECK(query_reply(answer(with(404, "X-KV-Version: 0.0\r\n"))).found.floor == 0);
  CHECK(store_reply(answer(with(413, "")), false).kind == Kind::refused);
  CHECK(store_reply(answer(with(401, "")), false).kind == Kind::failed);
  CHECK(store_reply(answer(with(403, "")), true).kind == Kind::failed);
  CHECK(store_reply(answer(with(503, "")), true).kind == Kind::failed);
}
