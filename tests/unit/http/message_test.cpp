// Beast's message types as every listener answers with them: heads as bytes, JSON answers, the
// method policy (http/policy.hpp).
#include "http/message.hpp"

#include <catch2/catch.hpp>

#include <string>

#include "http/policy.hpp"

using boost::beast::http::field;
using boost::beast::http::status;
using boost::beast::http::verb;
using kv::http::StringRequest;
using kv::http::StringResponse;

TEST_CASE("format_head writes a response's head: its reason, or the standard one", "[message]") {
  StringResponse res{status::ok, 11};
  res.set(field::content_type, "application/json");
  res.body() = "{}";
  res.prepare_payload();
  std::string out = "<before>";
  kv::http::format_head(res, out);
  CHECK(out == "<before>HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n");

  StringResponse missing{status::not_found, 10};
  std::string old;
  kv::http::format_head(missing, old);
  CHECK(old == "HTTP/1.0 404 Not Found\r\n\r\n");

  StringResponse own{status::service_unavailable, 11};
  own.reason("Draining");
  std::string reason;
  kv::http::format_head(own, reason);
  CHECK(reason == "HTTP/1.1 503 Draining\r\n\r\n");
}

TEST_CASE("json_answer and error_answer set the status, Content-Type and body", "[message]") {
  StringResponse res{status::ok, 11};
  res.set(field::content_type, "text/plain");
  res.set("X-KV-Node", "n1");
  kv::http::json_answer(res, status::created, R"({"status":"success"})");
  CHECK(res.result() == status::created);
  CHECK(res[field::content_type] == "application/json");  // replaced, not added
  CHECK(res.count(field::content_type) == 1);
  CHECK(res["X-KV-Node"] == "n1");  // the others stay
  CHECK(res.body() == R"({"status":"success"})");

  kv::http::error_answer(res, status::not_found, kv::http::kNotFound);
  CHECK(res.result() == status::not_found);
  CHECK(res[field::content_type] == "application/json");
  CHECK(res.body() == R"({"status":"error","detail":"Not found"})");
  // The detail is quoted as JSON.
  kv::http::error_answer(res, status::bad_request, "key \"a\\b\"\n");
  CHECK(res.result() == status::bad_request);
  CHECK(res.body() == R"({"status":"error","detail":"key \"a\\b\"\n"})");
}

TEST_CASE("allow_method: HEAD goes wherever GET does; anything else is 405 with Allow", "[message]") {
  auto untouched = [](const StringResponse& res) {
    std::string head;
    kv::http::format_head(res, head);
    return head == "HTTP/1.1 200 OK\r\n\r\n" && res.body().empty();
  };
  for (const auto& [got, want] : {std::pair{verb::get, verb::get}, std::pair{verb::head, verb::get},
                                  std::pair{verb::put, verb::put}, std::pair{verb::delete_, verb::delete_}}) {
    INFO(boost::beast::http::to_string(got) << " where " << boost::beast::http::to_string(want) << " goes");
    StringResponse res{status::ok, 11};
    CHECK(kv::http::allow_method(res, got, want, "unused"));
    CHECK(untouched(res));
  }
  const std::string not_allowed = "{\"status\":\"error\",\"detail\":\"Method not allowed\"}";
  StringResponse post{status::ok, 11};
  CHECK_FALSE(kv::http::allow_method(post, verb::post, verb::get, kv::http::kReadMethods));
  std::string head;
  kv::http::format_head(post, head);
  CHECK(head == "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: GET, HEAD\r\n\r\n");
  CHECK(post.body() == not_allowed);
  // GET does not go where only HEAD does; DELETE not where PUT does.
  StringResponse get{status::ok, 11};
  CHECK_FALSE(kv::http::allow_method(get, verb::get, verb::head, "HEAD"));
  CHECK(get.result() == status::method_not_allowed);
  CHECK(get[field::allow] == "HEAD");
  StringResponse del{status::ok, 11};
  CHECK_FALSE(kv::http::allow_method(del, verb::delete_, verb::put, "PUT"));
  CHECK(del.result() == status::method_not_allowed);
  CHECK(del[field::allow] == "PUT");
  CHECK(del.body() == not_allowed);
}
