// What a request that cannot be served gets: the status and detail of its refusal, and the answer's
// bytes, the same on every listener. After a rejection the connection closes (lingering: limits.hpp).
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/status.hpp>

#include <optional>
#include <string>

namespace kv::http {

struct Rejection {
  boost::beast::http::status status = boost::beast::http::status::bad_request;
  std::string detail;
};

// What a failed read of a request means for the client: nothing when it went away (close quietly),
// else the answer to send before closing. `body`: the failure came after the head.
std::optional<Rejection> rejection_for(const boost::beast::error_code& ec, bool body);

}  // namespace kv::http
