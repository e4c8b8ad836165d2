// rejection_for: what a failed read of a request means for the client, for each error it maps.
#include "http/rejection.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <cerrno>
#include <string>

using boost::beast::error_code;
using boost::beast::http::status;
namespace asio = boost::asio;
namespace http_error = boost::beast::http;

namespace {

// "<status> <detail>", or "gone".
std::string answer(const error_code& ec, bool body) {
  const auto r = kv::http::rejection_for(ec, body);
  if (!r) return "gone";
  return std::to_string(static_cast<unsigned>(r->status)) + " " + r->detail;
}

}  // namespace

TEST_CASE("a client that went away, or a read the drain cancelled, gets no answer", "[rejection]") {
  const error_code gone[] = {
      asio::error::operation_aborted,
      asio::error::connection_reset,
      error_code(ECONNRESET, boost::system::system_category()),  // as a socket reports it
      asio::error::eof,
      asio::error::broken_pipe,
      error_code(EPIPE, boost::system::system_category()),
      http_error::error::end_of_stream,
      http_error::error::partial_message,
  };
  for (const auto& ec : gone) {
    INFO(ec.message());
    CHECK(answer(ec, false) == "gone");
    CHECK(answer(ec, true) == "gone");
  }
}

TEST_CASE("limits: 431 for the head, 413 for the body, whenever they are hit", "[rejection]") {
  for (const bool body : {false, true}) {
    INFO("after the head: " << body);
    CHECK(answer(http_error::error::header_limit, body) == "431 Request headers too large");
    CHECK(answer(http_error::error::body_limit, body) == "413 Request body too large");
    CHECK(kv::http::rejection_for(http_error::error::header_limit, body)->status == status::request_header_fields_too_large);
    CHECK(kv::http::rejection_for(http_error::error::body_limit, body)->status == status::payload_too_large);
  }
}

TEST_CASE("a deadline: 408, saying which part was late", "[rejection]") {
  CHECK(answer(boost::beast::error::timeout, false) == "408 Timed out reading request headers");
  CHECK(answer(boost::beast::error::timeout, true) == "408 Timed out reading request body");
  CHECK(kv::http::rejection_for(boost::beast::error::timeout, false)->status == status::request_timeout);
}

TEST_CASE("anything else the parser says: 400 with its reason, the head's or the body's", "[rejection]") {
  CHECK(answer(http_error::error::bad_method, false) == "400 Malformed request: bad method");
  CHECK(answer(http_error::error::bad_target, false) == "400 Malformed request: bad target");
  CHECK(answer(http_error::error::bad_version, false) == "400 Malformed request: bad version");
  CHECK(answer(http_error::error::bad_field, false) == "400 Malformed request: bad field");
  CHECK(answer(http_error::error::bad_value, false) == "400 Malformed request: bad value");
  CHECK(answer(http_error::error::bad_content_length, false) == "400 Malformed request: bad Content-Length");
  CHECK(answer(http_error::error::multiple_content_length, false) == "400 Malformed request: multiple Content-Length");
  CHECK(answer(http_error::error::bad_transfer_encoding, false) == "400 Malformed request: bad Transfer-Encoding");
  CHECK(answer(http_error::error::buffer_overflow, false) == "400 Malformed request: buffer overflow");
  CHECK(answer(http_error::error::bad_chunk, true) == "400 Malformed request body: bad chunk");
  CHECK(answer(http_error::error::bad_chunk_extension, true) == "400 Malformed request body: bad chunk extension");
  CHECK(kv::http::rejection_for(http_error::error::bad_method, false)->status == status::bad_request);
}
