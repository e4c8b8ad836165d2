// The one translation unit that compiles Boost.JSON (header-only mode, no libboost_json needed).
#include <boost/json/src.hpp>

#include "common/json.hpp"

namespace kv {

std::string json_success() { return R"({"status":"success"})"; }

std::string json_quote(std::string_view s) { return boost::json::serialize(boost::json::string_view(s.data(), s.size())); }

std::string json_value(std::string_view value) {
  std::string out = R"({"status":"success","value":)";
  out += json_quote(value);
  out += '}';
  return out;
}

std::string json_error(std::string_view detail) {
  std::string out = R"({"status":"error","detail":)";
  out += json_quote(detail);
  out += '}';
  return out;
}

bool parse_put_body(std::string_view body, std::string& value, std::string& detail) {
  boost::system::error_code ec;
  boost::json::parse_options opts;
  opts.max_depth = 32;
  const boost::json::value doc = boost::json::parse(boost::json::string_view(body.data(), body.size()), ec, {}, opts);
  if (ec) {
    detail = "Invalid JSON body: " + ec.message();
    return false;
  }
  const auto* obj = doc.if_object();
  if (!obj) {
    detail = "Body must be a JSON object with a string field 'value'";
    return false;
  }
  const auto* v = obj->if_contains("value");
  if (!v) {
    detail = "Missing field 'value'";
    return false;
  }
  const auto* str = v->if_string();
  if (!str) {
    detail = "Field 'value' must be a string";
    return false;
  }
  value.assign(str->data(), str->size());
  return true;
}

}  // namespace kv
