// Whole messages as Beast holds them, for the servers that answer with Beast's message types
// (kvnode's API, kvproxy's admin port): their heads as bytes, and the answers every listener gives
// alike (JSON bodies, errors, the method policy of http/policy.hpp).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>
#include <string_view>

namespace kv::http {

using StringRequest = boost::beast::http::request<boost::beast::http::string_body>;
using StringResponse = boost::beast::http::response<boost::beast::http::string_body>;

// An answer's head alone (status line, fields, blank line), appended to `out`.
void format_head(const StringResponse& msg, std::string& out);

// A JSON answer with `status`.
void json_answer(StringResponse& res, boost::beast::http::status status, std::string body);
// {"status":"error","detail":...} with `status`.
void error_answer(StringResponse& res, boost::beast::http::status status, std::string_view detail);
// Whether `got` may go where `want` goes (HEAD wherever GET does); if not, `res` becomes the 405
// with `Allow: allow`.
bool allow_method(StringResponse& res, boost::beast::http::verb got, boost::beast::http::verb want, std::string_view allow);

}  // namespace kv::http
