#include "http/message.hpp"

#include "common/json.hpp"
#include "http/head_writer.hpp"
#include "http/policy.hpp"

namespace kv::http {

namespace beast = boost::beast;

namespace {

template <class Fields>
void append_fields(const Fields& fields, std::string& out) {
  for (const auto& f : fields) {
    const auto name = f.name_string();
    const auto value = f.value();
    out.append(name.data(), name.size()).append(": ").append(value.data(), value.size()).append("\r\n");
  }
  out.append("\r\n");
}

const char* version_string(unsigned v) { return v == 10 ? "HTTP/1.0" : "HTTP/1.1"; }

}  // namespace

void format_head(const StringResponse& msg, std::string& out) {
  out.append(version_string(msg.version())).append(" ");
  append_number(out, msg.result_int());  // not snprintf: printf's machinery is most of a head's cost
  out.append(" ");
  auto reason = msg.reason();
  if (reason.empty()) reason = beast::http::obsolete_reason(msg.result());
  out.append(reason.data(), reason.size()).append("\r\n");
  append_fields(msg.base(), out);
}

void json_answer(StringResponse& res, beast::http::status status, std::string body) {
  res.result(status);
  res.set(beast::http::field::content_type, kJson);
  res.body() = std::move(body);
}

void error_answer(StringResponse& res, beast::http::status status, std::string_view detail) {
  json_answer(res, status, json_error(detail));
}

bool allow_method(StringResponse& res, beast::http::verb got, beast::http::verb want, std::string_view allow) {
  if (got == want || (want == beast::http::verb::get && got == beast::http::verb::head)) return true;
  error_answer(res, beast::http::status::method_not_allowed, kMethodNotAllowed);
  res.set(beast::http::field::allow, allow);
  return false;
}

}  // namespace kv::http
