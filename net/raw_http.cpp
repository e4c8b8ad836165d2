#include "raw_http.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>

namespace kv::net {

std::optional<Rejection> rejection_for(const boost::beast::error_code& ec, bool body) {
  namespace asio = boost::asio;
  // The client went away, or a drain cancelled the read: nobody to answer.
  if (ec == asio::error::operation_aborted || ec == asio::error::connection_reset || ec == asio::error::eof ||
      ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::broken_pipe)
    return std::nullopt;
  if (ec == http::error::header_limit) return Rejection{http::status::request_header_fields_too_large, "Request headers too large"};
  if (ec == http::error::body_limit) return Rejection{http::status::payload_too_large, "Request body too large"};
  if (ec == boost::beast::error::timeout)
    return Rejection{http::status::request_timeout, body ? "Timed out reading request body" : "Timed out reading request headers"};
  return Rejection{http::status::bad_request, (body ? "Malformed request body: " : "Malformed request: ") + ec.message()};
}

}  // namespace kv::net
