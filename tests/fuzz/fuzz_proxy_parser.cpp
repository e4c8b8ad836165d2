// kvproxy's request parsing: the RawParser that keeps heads as raw lines for relaying, fed in two
// pieces, then what the data path reads from a parsed head: the target's key and every field.
#include <boost/beast/core/buffer_traits.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/key.hpp"
#include "http/parser.hpp"

namespace beast = boost::beast;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  const char* p = reinterpret_cast<const char*>(data + 1);
  const std::size_t n = size - 1;
  kv::http::RawHead head;
  std::string body;
  kv::http::RawParser<true> parser(head, body);
  parser.header_limit(8192);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  std::size_t used = parser.put(boost::asio::buffer(p, std::min(split, n)), ec);
  if (ec == beast::http::error::need_more) ec = {};
  if (!ec && used < n && !parser.is_done()) {
    used += parser.put(boost::asio::buffer(p + used, n - used), ec);
    if (ec == beast::http::error::need_more) ec = {};
  }
  if (ec || !parser.is_header_done()) return 0;
  if (head.target().size() > n) std::abort();
  (void)kv::extract_key(head.target(), 1024);
  std::size_t total = 0;
  for (const auto& f : head.fields) total += head.name(f).size() + head.value(f).size();
  if (total > head.arena.size()) std::abort();
  if (parser.is_done() && body.size() > 64 * 1024) std::abort();
  return 0;
}
