#include "http/response_reader.hpp"

#include <algorithm>
#include <optional>

#include "http/parser.hpp"

namespace kv::http {

namespace beast = boost::beast;

struct ResponseReader::Fallback : BeastMessage<false> {};

ResponseReader::ResponseReader() = default;
ResponseReader::~ResponseReader() = default;

void ResponseReader::start(bool head_request, std::uint64_t body_limit) {
  head_request_ = head_request;
  body_limit_ = body_limit;
  fallback_ = head_seen_ = false;
  body_ = {};
  consumed_ = 0;
  // Whatever a parser read of an earlier answer is gone with its connection (a timeout or a failure
  // cut it off): each answer is read from its first byte.
  if (fb_) fb_->parser.reset();
}

ResponseReader::Status ResponseReader::read(IoBuffer& in, bool eof, int error) {
  if (!fallback_ && !head_request_) {
    const ScanResult r = scan_response(in.view(), kAnswerHeaderLimit, head_);
    if (r == ScanResult::complete && head_.content_length <= std::min(kScanMaxBody, body_limit_)) {
      head_seen_ = true;
      const std::size_t total = head_.head_size + static_cast<std::size_t>(head_.content_length);
      if (in.size() >= total) {
        body_ = in.view().substr(head_.head_size, static_cast<std::size_t>(head_.content_length));
        consumed_ = total;
        return Status::complete;
      }
    } else if (r != ScanResult::need_more) {
      fallback_ = true;
    }
    if (!fallback_) {
      if (!eof && !error) return Status::more;
      failure_ = error ? boost::system::system_category().message(error) : "partial message";
      return Status::failed;
    }
  }
  fallback_ = true;
  return read_fallback(in, eof, error);
}

void ResponseReader::fresh_parser() {
  auto& p = fb_->start();
  p.skip(head_request_);  // an answer to HEAD has no body
  p.body_limit(body_limit_);
  p.header_limit(kAnswerHeaderLimit);
  p.eager(true);
  head_used_ = 0;
}

ResponseReader::Status ResponseReader::read_fallback(IoBuffer& in, bool eof, int error) {
  if (!fb_) fb_ = std::make_unique<Fallback>();
  if (!fb_->parser) fresh_parser();
  beast::error_code ec;
  for (;;) {
    auto& p = *fb_->parser;
    feed(p, in, kAnswerHeaderLimit, head_used_, ec);
    if (ec) break;
    // Interim answers (1xx) are not the answer: skip them and read on.
    if (p.is_done() && fb_->head.status / 100 == 1) {
      fresh_parser();
      continue;
    }
    if (p.is_header_done()) head_seen_ = true;
    if (p.is_done()) {
      view_of(fb_->head, head_);
      head_.keep_alive = p.keep_alive();
      head_.content_length = fb_->body.size();
      fb_->parser.reset();
      body_ = fb_->body;
      consumed_ = 0;
      return Status::complete;
    }
    if (eof) {
      if (p.got_some()) p.put_eof(ec);  // complete (a body up to EOF) or partial_message
      if (!ec && p.is_done()) continue;
      if (!ec) ec = beast::http::error::partial_message;
    } else if (error) {
      ec.assign(error, boost::system::system_category());
    }
    break;
  }
  if (!ec) return Status::more;
  fb_->parser.reset();
  failure_ = ec.message();
  return Status::failed;
}

}  // namespace kv::http
