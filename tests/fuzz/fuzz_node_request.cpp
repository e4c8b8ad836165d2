// kvnode's request handling without sockets: the bytes go through Beast's request parser with the
// node's limits (split in two at a point the input chooses, as a network would), and every request
// that parses is answered by the Api over a memory store, /admin/ endpoints included. The memory
// store cannot fail, so a 5xx answer is a bug.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "node/api.hpp"
#include "node/store.hpp"

namespace beast = boost::beast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto store = kv::open_memory_store();
  static kv::NodeMetrics metrics;
  static kv::Api api(*store, metrics, kv::ApiLimits{256, 4096}, "n1");
  if (size == 0) return 0;
  const std::size_t split = data[0] % (size);  // where the first read ends
  const char* p = reinterpret_cast<const char*>(data + 1);
  std::size_t left = size - 1;
  boost::beast::error_code ec;
  while (left > 0) {  // pipelined requests, one parser each
    beast::http::request_parser<beast::http::string_body> parser;
    parser.header_limit(8192);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    std::size_t used = 0;
    const std::size_t first = std::min(split, left);
    if (first > 0) used = parser.put(boost::asio::buffer(p, first), ec);
    if (ec == beast::http::error::need_more) ec = {};
    if (!ec && used < left && !parser.is_done()) {
      used += parser.put(boost::asio::buffer(p + used, left - used), ec);
      if (ec == beast::http::error::need_more) ec = {};
    }
    if (ec || !parser.is_done() || used == 0) return 0;
    p += used;
    left -= used;
    kv::http::StringResponse res;
    api.handle(parser.get(), res);
    if (res.result_int() >= 500 || res.result_int() < 200) std::abort();
  }
  return 0;
}
