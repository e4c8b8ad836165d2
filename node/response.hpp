// The answers both of kvnode's APIs build: JSON with a content type, {"status":"error","detail":...}
// errors, and the 405 with its Allow field. One place, so the client and admin endpoints cannot
// drift apart in how they say the same thing.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <string>
#include <string_view>

namespace kv {

namespace beast = boost::beast;
using Request = beast::http::request<beast::http::string_body>;
using Response = beast::http::response<beast::http::string_body>;

// Status, Content-Type: application/json and `body`.
void json_response(Response& res, beast::http::status status, std::string body);
// An error response: {"status":"error","detail":...} with the given status.
void error_response(Response& res, beast::http::status status, std::string_view detail);
// True when `got` may go where `want` goes (HEAD wherever GET does, RFC 9110 9.1: the session sends
// its answer without the body); otherwise fills a 405 with `allow` and returns false.
bool method_allowed(Response& res, beast::http::verb got, beast::http::verb want, std::string_view allow);

}  // namespace kv
