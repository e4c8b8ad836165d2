// What the tests of kvnode's Api share: a node over a test store, driven without a socket, and the
// checks of its answers.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/storage_key.hpp"
#include "common/replica.hpp"
#include "common/transfer.hpp"
#include "common/version.hpp"
#include "node/api.hpp"
#include "node/store.hpp"

namespace http = boost::beast::http;
using V = http::verb;
using kv::StoreStatus;

// Inline, in an unnamed namespace: each test file uses some of these.
namespace {

// The memory store, or one that fails every call (the memory store cannot), or one that claims group
// commit so that writes are handed back to the caller.
class TestStore final : public kv::Store {
 public:
  bool fail = false;
  bool group = false;

  StoreStatus get(std::string_view k, std::string& v, std::string& err) override {
    return fail ? failed(err) : inner_->get(k, v, err);
  }
  StoreStatus get_versioned(std::string_view k, std::string& v, kv::Tag& tag, bool& tomb, std::string& err) override {
    return fail ? failed(err) : inner_->get_versioned(k, v, tag, tomb, err);
  }
  kv::WriteResult write(kv::WriteOp op) override {
    kv::WriteResult r;
    if (fail) r.status = failed(r.err);
    else r = inner_->write(std::move(op));
    return r;
  }
  std::uint64_t key_count() override { return inner_->key_count(); }
  std::string_view engine() const noexcept override { return fail ? "broken" : inner_->engine(); }
  void flush() override {}
  std::string write_error() const override { return fail ? "disk on fire" : std::string(); }
  bool group_commit() const noexcept override { return group; }
  StoreStatus scan(std::span<const kv::HashRange> r, std::string_view after, std::size_t limit, std::size_t max_bytes,
                   bool versioned, kv::ScanBatch& out, std::string& err) override {
    return fail ? failed(err) : inner_->scan(r, after, limit, max_bytes, versioned, out, err);
  }
  StoreStatus measure(std::span<const kv::HashRange> r, Size& out, std::string& err) override {
    return fail ? failed(err) : inner_->measure(r, out, err);
  }
  StoreStatus ingest_records(std::span<const kv::Record> r, std::uint64_t floors_seen, std::size_t& written,
                             std::size_t& conflicts, std::string& err) override {
    return fail ? failed(err) : inner_->ingest(r, written, conflicts, err, floors_seen);
  }
  StoreStatus drop(std::span<const kv::HashRange> r, bool data, bool tombs, std::string& err) override {
    return fail ? failed(err) : inner_->drop(r, data, tombs, err);
  }
  std::uint64_t tombstone_count() override { return inner_->tombstone_count(); }
  std::string meta(std::string_view k) override { return inner_->meta(k); }
  void set_meta(std::string_view k, std::string_view v) override { inner_->set_meta(k, v); }
  void set_metas(std::span<const std::pair<std::string, std::string>> r) override { inner_->set_metas(r); }
  std::vector<std::pair<std::string, std::string>> metas(std::string_view prefix) override { return inner_->metas(prefix); }
  StoreStatus tombstones(std::span<const kv::HashRange> r, std::size_t limit, std::vector<std::pair<std::string, kv::Tag>>& out,
                         std::string& err) override {
    return fail ? failed(err) : inner_->tombstones(r, limit, out, err);
  }
  StoreStatus purge_tombstones(std::span<const std::pair<std::string, kv::Tag>> t, std::size_t& purged, std::string& err) override {
    return fail ? failed(err) : inner_->purge_tombstones(t, purged, err);
  }
  void settle() override { inner_->settle(); }

 private:
  static StoreStatus failed(std::string& err) {
    err = "disk on fire";
    return StoreStatus::error;
  }
  std::unique_ptr<kv::Store> inner_ = kv::open_memory_store();
};

using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Key limit 16 bytes, value limit 32, node id n1.
struct Node {
  TestStore store;
  kv::NodeMetrics metrics;
  kv::Api api{store, metrics, kv::ApiLimits{16, 32}, "n1"};

  kv::http::StringResponse call(V method, std::string_view target, std::string body = {}, Fields fields = {}) {
    kv::http::StringRequest req{method, target, 11};
    for (const auto& [name, value] : fields) req.set(name, value);
    req.body() = std::move(body);
    kv::http::StringResponse res;
    last_route = api.handle(req, res);
    return res;
  }
  kv::Route last_route = kv::Route::other;
};

inline std::string detail(std::string_view d) { return R"({"status":"error","detail":")" + std::string(d) + "\"}"; }

inline void check_answer(const kv::http::StringResponse& res, unsigned status, const std::string& body) {
  CHECK(res.result_int() == status);
  CHECK(res.body() == body);
  CHECK(res[http::field::content_type] == "application/json");
}

// A range list holding every hash.
const std::string kEverything = "0000000000000000 ffffffffffffffff\n";

inline std::string hash_range_of(std::string_view key) {
  const auto h = kv::read_be64(kv::storage_key(key));
  return kv::hex64(h) + " " + kv::hex64(h) + "\n";
}

// Records (transfer format) of these keys and values.
inline std::string records(std::initializer_list<std::pair<std::string, std::string>> kvs) {
  std::string out;
  for (const auto& [k, v] : kvs) kv::append_record(out, kv::storage_key(k), v);
  return out;
}

// The stored keys of a scan answer's records.
inline std::vector<std::string> scanned_keys(const kv::http::StringResponse& res) {
  std::vector<kv::Record> recs;
  std::string err;
  REQUIRE(kv::parse_records(res.body(), recs, err));
  std::vector<std::string> keys;
  for (const auto& r : recs) keys.emplace_back(r.key);
  return keys;
}

}  // namespace
