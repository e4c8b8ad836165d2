// The JSON answers shared by the client API and the admin endpoints (node/response.hpp).
#include "node/response.hpp"

#include <boost/beast/http/field.hpp>

#include "common/json.hpp"

namespace kv {

void json_response(Response& res, beast::http::status status, std::string body) {
  res.result(status);
  res.set(beast::http::field::content_type, "application/json");
  res.body() = std::move(body);
}

void error_response(Response& res, beast::http::status status, std::string_view detail) {
  json_response(res, status, json_error(detail));
}

bool method_allowed(Response& res, beast::http::verb got, beast::http::verb want, std::string_view allow) {
  if (got == want || (want == beast::http::verb::get && got == beast::http::verb::head)) return true;
  error_response(res, beast::http::status::method_not_allowed, "Method not allowed");
  res.set(beast::http::field::allow, allow);
  return false;
}

}  // namespace kv
