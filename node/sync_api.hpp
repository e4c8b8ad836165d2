// kvnode's side of anti-entropy (common/anti_entropy.hpp): the endpoints a peer asks this node's
// hash trees and store through (/replica/tree, /replica/diff, /replica/digests, /replica/fetch), and its segment
// floors (/replica/floors: node/floors.hpp). No sockets. Each
// may scan thousands of keys, so the session runs them off its event loops, as /admin/.
#pragma once

#include "http/message.hpp"
#include "node/incarnation.hpp"
#include "node/replica_trees.hpp"
#include "node/store.hpp"

namespace kv {

class SyncApi {
 public:
  // `trees` null: the node keeps no trees (no --ring, or replicas: 1), and says so with a 404.
  // `incarnation`: where peers' incarnations are recorded (null: nowhere, nothing answered).
  SyncApi(Store& store, const ReplicaTrees* trees, Incarnation* incarnation = nullptr)
      : store_(store), trees_(trees), incarnation_(incarnation) {}

  // A request under one of those paths, its token already checked: fills `res`.
  void handle(const http::StringRequest& req, http::StringResponse& res);
  static bool serves(std::string_view path) noexcept;

  // The versioned records of the keys of set `set` in `segments`, values left out (a value record
  // with an empty value), in stored-key order. False with `err` on a storage error.
  static bool digests(Store& store, const ReplicaTrees& trees, std::size_t set, const std::vector<std::uint32_t>& segments,
                      std::string& out, std::string& err);
  // POST /replica/diff's answer: the versioned records with values of the keys of set `set` in the
  // asked segments whose short digest (under `salt`, `digest_bytes` wide) the asker did not send,
  // whole segments in order, stopping after the segment that brings them to `limit`; `next` is then
  // the first segment left out (-1: none). `compact`: as compact records (common/transfer.hpp).
  // False with `err` on a storage error.
  static bool diff(Store& store, const ReplicaTrees& trees, std::size_t set, std::uint64_t salt,
                   const std::vector<anti_entropy::SegmentDigests>& asked, std::size_t limit, std::string& out,
                   std::int64_t& next, std::string& err, std::size_t digest_bytes = 4, bool compact = false);

 private:
  // The asker's incarnation recorded, and what was recorded before said (GET /replica/tree).
  void remember_asker(const http::StringRequest& req, http::StringResponse& res);

  Store& store_;
  const ReplicaTrees* trees_;
  Incarnation* incarnation_;
};

}  // namespace kv
