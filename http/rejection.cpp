#include "http/rejection.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace kv::http {

std::optional<Rejection> rejection_for(const boost::beast::error_code& ec, bool body) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  // The client went away, or a drain cancelled the read: nobody to answer.
  if (ec == asio::error::operation_aborted || ec == asio::error::connection_reset || ec == asio::error::eof ||
      ec == beast::http::error::end_of_stream || ec == beast::http::error::partial_message || ec == asio::error::broken_pipe)
    return std::nullopt;
  if (ec == beast::http::error::header_limit) return Rejection{beast::http::status::request_header_fields_too_large, "Request headers too large"};
  if (ec == beast::http::error::body_limit) return Rejection{beast::http::status::payload_too_large, "Request body too large"};
  if (ec == boost::beast::error::timeout)
    return Rejection{beast::http::status::request_timeout, body ? "Timed out reading request body" : "Timed out reading request headers"};
  return Rejection{beast::http::status::bad_request, (body ? "Malformed request body: " : "Malformed request: ") + ec.message()};
}

}  // namespace kv::http
