// A small blocking HTTP/1.1 client, for ring-rebalance and for kvnode's anti-entropy exchanges with
// its peers: one keep-alive connection to one server, every exchange bounded by a timeout. A request on a kept-alive connection that the server had
// closed is sent again once on a fresh one. Not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace kv::net {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string field(std::string_view name) const;  // "" when absent; names compared case-insensitively
};

class HttpClient {
 public:
  // With `token`, every request carries "Authorization: Bearer <token>".
  HttpClient(HostPort server, std::chrono::milliseconds timeout, std::string token = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws std::runtime_error("HOST:PORT: METHOD TARGET: reason") when no answer came.
  HttpResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       std::string_view content_type = "application/octet-stream") {
    return send(method, target, body, content_type, {});
  }
  // With more fields for this request only.
  HttpResponse request(std::string_view method, std::string_view target, std::string_view body,
                       const std::vector<std::pair<std::string, std::string>>& extra);
  const HostPort& server() const noexcept { return server_; }
  // Fields sent with every request from now on (kvnode's id and incarnation, to its peers).
  void set_fields(std::vector<std::pair<std::string, std::string>> fields) { fields_ = std::move(fields); }

 private:
  HttpResponse send(std::string_view method, std::string_view target, std::string_view body, std::string_view content_type,
                    const std::vector<std::pair<std::string, std::string>>& extra);

  struct Impl;
  HostPort server_;
  std::string token_;
  std::vector<std::pair<std::string, std::string>> fields_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kv::net
