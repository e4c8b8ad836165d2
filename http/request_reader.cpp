#include "http/request_reader.hpp"

#include <algorithm>

#include "http/parser.hpp"

namespace kv::http {

namespace beast = boost::beast;

struct RequestReader::Fallback : BeastMessage<true> {};

RequestReader::RequestReader(const ServerLimits& limits) : limits_(limits) {}
RequestReader::~RequestReader() = default;

RequestReader::Status RequestReader::read(IoBuffer& in) {
  if (!fallback_) {
    // The views it gives point into `in`, which may have moved since the last scan: scanned afresh
    // each time (a head is a few hundred bytes).
    const ScanResult r = scan_request(in.view(), limits_.header_limit, head_);
    if (r == ScanResult::need_more) return Status::more;
    // The version is known even when the body goes to Beast's parser, which may refuse it (413)
    // before it has told its own: the refusal answers in the client's version.
    if (r == ScanResult::complete) version_ = head_.version;
    if (r == ScanResult::complete && head_.content_length <= std::min<std::uint64_t>(kScanMaxBody, limits_.body_limit)) {
      head_done_ = true;
      const std::size_t total = head_.head_size + static_cast<std::size_t>(head_.content_length);
      if (in.size() < total) return Status::more;
      body_ = in.view().substr(head_.head_size, static_cast<std::size_t>(head_.content_length));
      consumed_ = total;
      return Status::complete;
    }
    // Declined, or a body too large for the scanner's path: Beast's parser reads it from the first
    // byte.
    if (!fb_) fb_ = std::make_unique<Fallback>();
    auto& p = fb_->start();
    p.header_limit(limits_.header_limit);
    p.body_limit(limits_.body_limit);
    p.eager(true);
    head_used_ = 0;
    fallback_ = true;
  }
  return read_fallback(in);
}

RequestReader::Status RequestReader::read_fallback(IoBuffer& in) {
  auto& p = *fb_->parser;
  beast::error_code ec;
  feed(p, in, limits_.header_limit, head_used_, ec);
  // The request line's version as soon as Beast has read it: a head it refuses before the end (413
  // on its Content-Length) is answered in the client's version.
  version_ = fb_->head.version;
  if (p.is_header_done()) head_done_ = true;
  if (ec) {
    fallback_ = false;
    // A parser's errors are all the client's to hear; rejection_for's "gone" ones come from a
    // connection, which the caller watches itself.
    auto r = rejection_for(ec, p.is_header_done());
    rejection_ = r ? std::move(*r) : Rejection{beast::http::status::bad_request, "Malformed request: " + ec.message()};
    return Status::rejected;
  }
  if (!p.is_done()) {
    // Clients that wait for "100 Continue" (curl, for large bodies) send the body only then.
    if (p.is_header_done() && !continue_given_ && iequal_lower(fb_->head.find(beast::http::field::expect), "100-continue"))
      continue_due_ = true;
    return Status::more;
  }
  fallback_ = false;
  view_of(fb_->head, head_);
  head_.keep_alive = p.keep_alive();
  head_.content_length = fb_->body.size();
  body_ = fb_->body;
  consumed_ = 0;  // Beast took the bytes already
  return Status::complete;
}

bool RequestReader::take_continue() noexcept {
  if (!continue_due_) return false;
  continue_due_ = false;
  continue_given_ = true;
  return true;
}

const Rejection& RequestReader::timed_out() {
  fallback_ = false;
  rejection_ = {beast::http::status::request_timeout,
                head_done_ ? "Timed out reading request body" : "Timed out reading request headers"};
  return rejection_;
}

void RequestReader::reset() noexcept {
  body_ = {};
  consumed_ = 0;
  head_done_ = false;
  fallback_ = false;
  continue_due_ = continue_given_ = false;
  version_ = 11;
}

}  // namespace kv::http
