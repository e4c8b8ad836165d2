// kvnode's anti-entropy exchanger (common/anti_entropy.hpp): a background thread that, round after
// round, compares this node's hash tree of each replica set with each peer's in the set, and pulls
// the keys the peer holds newer. What it pulls goes into the store as tagged writes (newest tag
// wins, atomically per key), like any other write, so it is safe at any moment: against client
// writes of the same key, against a peer that dies mid-exchange, against two exchanges at once.
//
// A round visits every peer; an exchange with one peer costs one request per shared set when the
// trees agree (kBuckets hashes, 8 KiB). After a round the exchanger waits `interval` (not when it
// pulled a backlog: then it goes on at once), so that a healed fault is repaired within about one
// interval plus the copy, and writes in flight, which make trees differ for a moment, cost one
// small pull per interval at most. The copy is bounded to `keys_per_second`, and to `busy_percent` of
// wall time.
//
// Tombstones are purged by evidence (node/floors.hpp): each round starts by listing the tombstones
// this node holds (after which the trees know every one of them: Store::settle), and ends by purging
// those in buckets it found equal to every peer's of their set, with its own bucket the same at each
// comparison; floors raised on itself and on every peer first. Purges and pulls run on this one thread.
// A node with a new data directory learns every peer's floors first (GET /replica/floors).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/transfer.hpp"
#include "node/incarnation.hpp"
#include "node/repair_rate.hpp"
#include "node/replica_trees.hpp"
#include "node/store.hpp"

namespace kv {

struct AntiEntropyOptions {
  std::chrono::milliseconds interval{1000};  // between rounds that found nothing to repair
  std::uint32_t keys_per_second = 50'000;    // pulled keys, at most (0: no bound)
  std::chrono::milliseconds timeout{5000};   // each request to a peer
  std::string token;                         // sent to peers ("Authorization: Bearer"); empty: none
  // Purge tombstones by evidence (node/floors.hpp; kvnode --keep-tombstones turns it off).
  bool purge = true;
  // A broken mode for the tests (kvnode --unsafe-purge-early): purge on the evidence of the peers
  // that answered, a missing one ignored.
  bool unsafe_purge_early = false;
  // A fault for the tests (kvnode --test-purge-fails-once): this node's first purge request to the
  // last peer of a set fails before it is sent, after the peers before it dropped the tombstones.
  bool test_purge_fails_once = false;
  // A fault for the tests (kvnode --test-crash-mid-purge): this node dies (exit 3) at its first purge
  // request to the last peer of a set, before it is sent, after the peers before it dropped the
  // tombstones: a purge half done, and its retry forgotten with the process.
  bool test_crash_mid_purge = false;
  // A fault for the tests (kvnode --test-hold-purge-turn-ms): the first purge step that has
  // tombstones to purge holds its turn this long first, so that a pause has one to wait for.
  std::chrono::milliseconds test_hold_purge_turn{0};
  std::size_t purge_limit = 100'000;         // tombstones considered per round
  // Share of wall time spent pulling, at most, in percent (100: no bound): after each batch (this
  // node's digests read, the peer's diff, the ingest) the exchanger rests (100 - p) / p times as long
  // as the batch took. On an idle cluster batches are quick and the rate is high; under load they
  // wait for the CPU the load uses, so the rate falls by itself, and the load keeps most of the
  // machine (bench/RESULTS.md, "A wiped replica's rebuild").
  std::uint32_t busy_percent = 20;
  // Keys asked for per diff request, at most (0: a tenth of keys_per_second, within
  // ae::kMaxKeysPerFetch). Smaller batches are shorter bursts for the same share of time, but each
  // key costs more: at 500 the foreground lost more than at the default 5,000 (bench/RESULTS.md,
  // "The pull's own cost, and batch size").
  std::uint32_t batch_keys = 0;
  // When set, the two bounds above as they are now (node/repair_rate.hpp: POST /admin/repair changes
  // them while the node runs), shared with the node's other exchangers; unset, the fields above.
  std::shared_ptr<RepairRate> rate{};
  // Nice levels below the node's other threads that the exchanger's thread runs at (0: the same;
  // kvnode --repair-nice; the peers' requests it serves run at the same on their own thread:
  // node/session.hpp). The pull's share of time above is wall time; at a lower priority a batch
  // waits longer for a core under load, so the pull slows, and the rest after it grows with it.
  int nice = 0;
};

// The requests of an exchange, for the bytes each costs (kvnode_anti_entropy_step_bytes_total): the
// peer's bucket hashes; the leaves of the buckets that differ; this node's digests of the segments
// that differ (a diff request's body) and the peer's records it answers with; floors; purges.
enum class ExchangeStep : std::uint8_t { tree, leaves, digests, records, floors, purge };
inline constexpr std::size_t kExchangeSteps = 6;
inline constexpr std::string_view kExchangeStepNames[kExchangeSteps] = {"tree", "leaves", "digests", "records", "floors", "purge"};

// Per peer, for metrics and tests. Relaxed atomics: read while the exchanger runs.
struct PeerSync {
  std::string id;
  std::atomic<std::uint64_t> exchanges{0};       // completed, agreeing or not
  std::atomic<std::uint64_t> failures{0};        // exchanges cut short (peer unreachable, bad answer)
  std::atomic<std::uint64_t> keys_behind{0};     // keys the peer held newer, at the last exchange
  std::atomic<std::uint64_t> keys_repaired{0};   // keys pulled and stored (newer than what was held)
  std::atomic<std::uint64_t> segments_differing{0};  // at the last exchange (a group or bucket where this node
                                                     // was ahead counts as one)
  std::atomic<std::uint64_t> bytes{0};           // request and response bodies, all steps
  std::atomic<std::uint64_t> step_bytes[kExchangeSteps] = {};  // the same by ExchangeStep
  std::atomic<bool> in_sync{false};              // the last exchange found every shared tree equal
};

class AntiEntropy {
 public:
  // With `incarnation`, every request carries this node's id and incarnation; peers' answers tell it
  // whether they remember another (checking), and completed exchanges advance a rebuild (recovering).
  AntiEntropy(Store& store, const ReplicaTrees& trees, AntiEntropyOptions options, Incarnation* incarnation = nullptr);
  ~AntiEntropy();  // stops
  AntiEntropy(const AntiEntropy&) = delete;
  AntiEntropy& operator=(const AntiEntropy&) = delete;

  void start();
  // Ends the thread: the current request finishes or times out first.
  void stop();

  const std::vector<std::unique_ptr<PeerSync>>& peers() const noexcept { return peers_; }
  std::uint64_t rounds() const noexcept { return rounds_.load(std::memory_order_relaxed); }
  // Prometheus text of the figures above (kvnode_anti_entropy_*).
  std::string render() const;
  // The figures summed over peers, as JSON fields for /health: ,"anti_entropy":{...}.
  std::string health_fields() const;

 private:
  struct Peer;
  struct Found {
    std::uint64_t keys_behind = 0;         // keys the peer held newer (all pulled, unless stopping)
    std::uint64_t segments_differing = 0;
  };
  // What a round learned of one set: which buckets every peer showed equal to this node's.
  struct Evidence {
    std::vector<std::uint64_t> own;      // this node's bucket hashes at the round's first comparison
    std::vector<bool> agree;             // equal to every peer's so far, and own unchanged
    std::vector<std::pair<std::uint32_t, std::string>> incarnations;  // peer (ring index), incarnation shown
    std::size_t peers = 0;               // peers compared
    bool broken = false;                 // a peer failed or was not serving: no evidence this round
  };
  void run();
  void hold_turn_for_test();
  // One exchange of every set shared with peer `p`: true when it pulled a backlog (the next round
  // comes at once, to see whether more came meanwhile).
  bool exchange(Peer& p);
  Found exchange_set(Peer& p, std::size_t set);
  std::uint64_t pull(Peer& p, const std::string& query, const std::vector<std::uint32_t>& segments,
                     const std::vector<Record>& own, std::chrono::steady_clock::time_point busy_from,
                     std::size_t digest_bytes);
  // After a batch: rests as the bounds say (re-read while resting). A new keys_per_second paces
  // from now on (`started` and `done` start again), not over the pull so far.
  void rest(std::chrono::steady_clock::time_point busy_from, std::chrono::steady_clock::time_point& started,
            std::uint64_t& done);
  // Floors: a new directory's learning from `p`; and a round's purge.
  void learn_floors(Peer& p);
  void purge(const std::vector<std::pair<std::string, Tag>>& candidates);
  // A purge whose floors this node raised, not yet confirmed by every peer of its set.
  struct PendingPurge {
    std::size_t set = 0;
    std::vector<std::pair<std::string, Tag>> tombstones;
    std::string body;  // the POST /replica/purge body
    std::vector<std::pair<std::uint32_t, std::string>> peers;  // still to confirm: ring index, incarnation
  };
  // Sends `p` to the peers still to confirm it, in order (`again`: not for the first time); once all
  // have, drops this node's own tombstones. False when it is to be tried again (a peer failed, or
  // its exchange did this round); true when done or given up.
  bool complete(PendingPurge& p, bool again);
  // The purge evidence of one comparison: this node's bucket hashes `ours`, and which buckets were
  // found equal to the peer's (in a group found equal, or compared one by one).
  void note(std::size_t set, std::uint32_t peer, const std::string& incarnation, const std::vector<std::uint64_t>& ours,
            const std::vector<bool>& equal);
  bool stopping() const noexcept { return stop_.load(std::memory_order_relaxed); }

  Store& store_;
  const ReplicaTrees& trees_;
  AntiEntropyOptions options_;
  std::shared_ptr<RepairRate> rate_;  // options_.rate, or one of options_' fields
  std::uint32_t paced_keys_per_second_ = 0;  // the rate `rest` paced by last (the exchanger's thread only)
  bool held_for_test_ = false;  // --test-hold-purge-turn-ms, on the exchanger's thread only
  Incarnation* incarnation_;
  std::vector<std::unique_ptr<PeerSync>> peers_;
  std::vector<std::unique_ptr<Peer>> links_;
  std::atomic<std::uint64_t> rounds_{0};
  std::vector<Evidence> evidence_;  // per set of trees_, for the current round
  std::atomic<std::uint64_t> purge_failures_{0};
  // Purges some peer did not confirm, tried again each round (the exchanger's thread only), so that
  // they finish soon. In memory only: a purge this node forgets (it crashed, or adopted a ring) is
  // finished another way. The peers that dropped the tombstones take them back from those that kept
  // them (a tombstone at or below a floor is taken: node/floors.hpp), the buckets agree again, and a
  // later round purges them everywhere.
  std::vector<PendingPurge> pending_;
  std::atomic<std::uint64_t> purge_retries_{0};
  std::atomic<std::size_t> pending_size_{0};  // pending_.size(), for the metrics' threads
  bool purge_fault_armed_ = false;  // test_purge_fails_once, not yet spent
  std::mt19937_64 salts_{std::random_device{}()};  // one salt per diff (the exchanger's thread only)
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace kv
