#include "node/anti_entropy.hpp"

#include <cstdlib>
#include <iostream>
#include <string_view>
#include <unordered_map>

#include "common/anti_entropy.hpp"
#include "common/metrics.hpp"
#include "common/storage_key.hpp"
#include "common/transfer.hpp"
#include "net/http_client.hpp"
#include "net/threads.hpp"
#include "node/sync_api.hpp"

namespace kv {

namespace ae = anti_entropy;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kBacklog = 1000;  // keys pulled in one exchange that make the next round come at once

// The width of the digests a serving node's diff requests send: 2 bytes halves what the asker sends,
// and a version a collision hides is found the next round, under another salt
// (common/anti_entropy.hpp).
constexpr std::size_t kShortDigestBytes = 2;

struct PeerError : std::runtime_error {
  explicit PeerError(const std::string& what, int status_ = 0) : std::runtime_error(what), status(status_) {}
  int status;  // the peer's answer when it gave one that was not 200; else 0
};

// Unconfirmed purges kept for another try, at most (each up to kMaxPurgePerRequest tombstones).
constexpr std::size_t kMaxPendingPurges = 16;

}  // namespace

struct AntiEntropy::Peer {
  std::uint32_t node = 0;  // ring index
  PeerSync* stats = nullptr;
  std::unique_ptr<net::HttpClient> client;
  bool failing = false;  // the last exchange failed (said once on stderr, until it works again)

  // A 200 answer, or PeerError naming what went wrong. `extra`: fields for this request only. The
  // bodies count as `step`'s bytes; a diff's request and answer as two steps (digests, records).
  net::HttpResponse call(ExchangeStep step, std::string_view method, const std::string& target, std::string_view body = {},
                         const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    net::HttpResponse r = client->request(method, target, body, extra);
    stats->bytes.fetch_add(body.size() + r.body.size(), std::memory_order_relaxed);
    auto count = [&](ExchangeStep s, std::size_t n) {
      stats->step_bytes[static_cast<std::size_t>(s)].fetch_add(n, std::memory_order_relaxed);
    };
    if (step == ExchangeStep::digests) {
      count(ExchangeStep::digests, body.size());
      count(ExchangeStep::records, r.body.size());
    } else {
      count(step, body.size() + r.body.size());
    }
    if (r.status != 200)
      throw PeerError(std::string(method) + " " + target + ": " + std::to_string(r.status) + " " + r.body, r.status);
    return r;
  }
};

AntiEntropy::AntiEntropy(Store& store, const ReplicaTrees& trees, AntiEntropyOptions options, Incarnation* incarnation)
    : store_(store),
      trees_(trees),
      options_(std::move(options)),
      rate_(options_.rate ? options_.rate : std::make_shared<RepairRate>(options_.busy_percent, options_.keys_per_second)),
      paced_keys_per_second_(rate_->keys_per_second()),
      incarnation_(incarnation),
      purge_fault_armed_(options_.test_purge_fails_once) {
  const Ring& ring = trees_.ring();
  for (const std::uint32_t n : trees_.peers()) {
    auto stats = std::make_unique<PeerSync>();
    stats->id = ring.node(n).id;
    auto link = std::make_unique<Peer>();
    link->node = n;
    link->stats = stats.get();
    link->client = std::make_unique<net::HttpClient>(ring.node(n).address, options_.timeout, options_.token);
    if (incarnation_)
      link->client->set_fields({{std::string(ae::kNodeIdField), ring.node(trees_.self()).id},
                                {std::string(ae::kIncarnationField), incarnation_->id()}});
    peers_.push_back(std::move(stats));
    links_.push_back(std::move(link));
  }
}

AntiEntropy::~AntiEntropy() { stop(); }

void AntiEntropy::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void AntiEntropy::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true, std::memory_order_relaxed);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AntiEntropy::run() {
  net::name_this_thread("kv-exchange");
  if (std::string err; !net::lower_this_thread(options_.nice, err))
    std::cerr << "kvnode: anti-entropy at nice +" << options_.nice << ": " << err << std::endl;
  const Floors* floors = trees_.floors();
  while (!stopping()) {
    // The tombstones first, then settle(): each one listed is in the trees the round compares.
    std::vector<std::pair<std::string, Tag>> candidates;
    PurgePause* pause = trees_.purge_pause();
    if (options_.purge && floors && floors->known() && (!incarnation_ || incarnation_->serving()) &&
        (!pause || pause->paused().empty()) && store_.tombstone_count() > 0) {
      const HashRange everything{0, ~std::uint64_t{0}};
      std::string err;
      if (store_.tombstones({&everything, 1}, options_.purge_limit, candidates, err) != StoreStatus::ok) {
        std::cerr << "kvnode: listing tombstones to purge: " << err << std::endl;
        candidates.clear();
      }
      store_.settle();
    }
    evidence_.assign(trees_.sets().size(), Evidence{});
    bool busy = false;
    for (auto& link : links_) {
      if (stopping()) return;
      busy = exchange(*link) || busy;
    }
    rounds_.fetch_add(1, std::memory_order_relaxed);
    // Purges only in a turn: a ring change's pause waits for this one, and none starts after it.
    if (const auto turn = pause ? pause->enter() : PurgePause::Turn(); turn || !pause) {
      std::erase_if(pending_, [this](PendingPurge& p) { return !stopping() && complete(p, true); });
      pending_size_.store(pending_.size(), std::memory_order_relaxed);
      if (!candidates.empty() && options_.test_hold_purge_turn.count() > 0 && !held_for_test_) hold_turn_for_test();
      if (!candidates.empty() && !stopping()) purge(candidates);
    }
    if (busy) continue;
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, options_.interval, [this] { return stopping(); });
  }
}

void AntiEntropy::hold_turn_for_test() {
  std::cerr << "kvnode: holding a purge turn for " << options_.test_hold_purge_turn.count()
            << " ms for the test (--test-hold-purge-turn-ms)" << std::endl;
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, options_.test_hold_purge_turn, [this] { return stopping(); });
  held_for_test_ = true;  // once
  std::cerr << "kvnode: purge turn released (--test-hold-purge-turn-ms)" << std::endl;
}

bool AntiEntropy::exchange(Peer& p) {
  Found found;
  try {
    if (const Floors* floors = trees_.floors(); floors && !floors->known()) learn_floors(p);
    for (auto set : trees_.shared_with(p.node)) {
      if (stopping()) return false;
      const Found f = exchange_set(p, set);
      found.keys_behind += f.keys_behind;
      found.segments_differing += f.segments_differing;
    }
  } catch (const std::exception& e) {
    p.stats->failures.fetch_add(1, std::memory_order_relaxed);
    p.stats->in_sync.store(false, std::memory_order_relaxed);
    for (auto set : trees_.shared_with(p.node)) evidence_[set].broken = true;
    if (!p.failing) std::cerr << "kvnode: anti-entropy with " << p.stats->id << ": " << e.what() << std::endl;
    p.failing = true;
    return false;
  }
  if (stopping()) return false;  // the pull may have been cut short
  if (incarnation_) incarnation_->exchange_done(p.stats->id);
  if (p.failing) std::cerr << "kvnode: anti-entropy with " << p.stats->id << ": exchanging again" << std::endl;
  p.failing = false;
  p.stats->keys_behind.store(found.keys_behind, std::memory_order_relaxed);
  p.stats->segments_differing.store(found.segments_differing, std::memory_order_relaxed);
  p.stats->in_sync.store(found.segments_differing == 0, std::memory_order_relaxed);
  p.stats->exchanges.fetch_add(1, std::memory_order_relaxed);
  return found.keys_behind >= kBacklog;  // a backlog: more may have come while it was pulled
}

// Buckets, then leaves, then the peer's digests of the differing segments against this node's own;
// then the pull.
AntiEntropy::Found AntiEntropy::exchange_set(Peer& p, std::size_t set) {
  const std::string query = "?set=" + trees_.sets()[set].name;
  std::vector<std::uint64_t> their_groups;
  auto r = p.call(ExchangeStep::tree, "GET", std::string(ae::kTreePath) + query + "&groups=1");
  if (!ae::parse_u64s(r.body, 2 * ae::kGroups, their_groups))
    throw PeerError("tree: expected " + std::to_string(ae::kGroups) + " group hashes and counter sums");
  const std::string incarnation = r.field(ae::kIncarnationField);
  if (incarnation_) {
    const std::string remembered = r.field(ae::kRememberedField);
    incarnation_->peer_remembers(p.stats->id, remembered == ae::kNone ? std::string() : remembered);
    // A peer rebuilding its data holds nothing a serving node lacks (every acknowledged write is on
    // a majority of the others too), and listing its partial copy costs both sides a scan a round.
    const std::string state = r.field(ae::kStateField);
    if (!state.empty() && state != state_name(NodeState::serving)) evidence_[set].broken = true;
    if (incarnation_->serving() && !state.empty() && state != state_name(NodeState::serving)) return {0, 1};
  }
  // A peer paused for a ring change refuses purges: none of this set this round, and none of its
  // peers asked to drop what it would refuse (node/purge_pause.hpp).
  if (!r.field(ae::kPurgesPausedField).empty()) evidence_[set].broken = true;
  // A peer resumed for the change this node is paused for: this node missed that resume, and the
  // change is over (node/purge_pause.hpp). Its purges start again next round.
  if (PurgePause* pause = trees_.purge_pause())
    if (const std::string over = r.field(ae::kPurgesResumedField); !over.empty() && pause->paused() == over) {
      std::cerr << "kvnode: " << p.stats->id << " was resumed for the ring change " << over
                << ", which is over: resuming here too" << std::endl;
      pause->resume(over);
    }
  // A node rebuilding its data becomes a quorum member once it has exchanged with every peer
  // (node/incarnation.hpp), so that exchange must miss nothing the peer holds: no group or bucket
  // skipped as "ahead" (a few new writes can outweigh a bucket's sum), full 8-byte leaves and 4-byte
  // digests. A serving node leaves what a shortcut hides to the next round.
  const bool exact = incarnation_ && !incarnation_->serving();
  const auto ours = trees_.buckets(set);
  const auto sums = trees_.counter_sums(set);
  const auto our_groups = ae::groups_of(ours, sums);
  // Where this node is ahead (its sum above the peer's), the peer pulls: a group, then a bucket in a
  // group descended. For a differing one at least one side descends, as common/anti_entropy.hpp
  // says of buckets; a side that descended into a group pulls what it lacks there, and then its sum
  // is the greater one, or they are equal, and the other side descends into what is left.
  auto behind_or_even = [&](std::uint64_t their_sum, std::uint64_t our_sum) {
    return exact || static_cast<std::int64_t>(their_sum - our_sum) >= 0;
  };
  std::vector<bool> equal(ae::kBuckets, false);  // known equal to the peer's, for the purge evidence
  std::vector<std::uint32_t> groups;
  std::uint64_t ahead = 0;  // differing groups and buckets where this node is ahead: the peer's to pull
  for (std::uint32_t g = 0; g < ae::kGroups; ++g) {
    if (our_groups[g] == their_groups[g]) {
      std::fill_n(equal.begin() + static_cast<std::ptrdiff_t>(g * ae::kBucketsPerGroup), ae::kBucketsPerGroup, true);
    } else if (behind_or_even(their_groups[ae::kGroups + g], our_groups[ae::kGroups + g])) {
      groups.push_back(g);
    } else {
      ++ahead;
    }
  }
  std::vector<std::uint32_t> buckets;
  if (!groups.empty()) {
    std::string body;
    ae::append_u32s(body, groups);
    r = p.call(ExchangeStep::tree, "POST", std::string(ae::kTreePath) + query + "&groups=1", body);
    std::vector<std::uint64_t> theirs;  // per group asked, its buckets' hashes, then their sums
    if (!ae::parse_u64s(r.body, groups.size() * 2 * ae::kBucketsPerGroup, theirs))
      throw PeerError("tree: buckets do not match the groups asked");
    for (std::size_t i = 0; i < groups.size(); ++i)
      for (std::uint32_t j = 0; j < ae::kBucketsPerGroup; ++j) {
        const std::uint32_t b = groups[i] * ae::kBucketsPerGroup + j;
        const std::size_t at = i * 2 * ae::kBucketsPerGroup + j;
        if ((equal[b] = ours[b] == theirs[at])) continue;
        if (behind_or_even(theirs[at + ae::kBucketsPerGroup], sums[b])) buckets.push_back(b);
        else ++ahead;
      }
  }
  note(set, p.node, incarnation, ours, equal);
  if (buckets.empty()) return {0, ahead};

  // The leaves as 2-byte short digests under a salt of this request: a quarter of the bytes, and a
  // leaf whose difference a collision hides is found the next round, under another salt.
  std::string body;
  ae::append_u32s(body, buckets);
  const std::uint64_t salt = salts_();
  // A rebuilding node asks for the full 8-byte leaves (no salt).
  r = p.call(ExchangeStep::leaves, "POST",
             std::string(ae::kTreePath) + query + (exact ? std::string() : "&salt=" + std::to_string(salt)), body);
  const std::size_t count = buckets.size() * ae::kFanout;
  std::vector<std::uint64_t> leaves;
  std::vector<std::uint16_t> short_leaves;
  if (exact ? !ae::parse_u64s(r.body, count, leaves) : !ae::parse_u16_list(r.body, count, short_leaves))
    throw PeerError("tree: leaves do not match the buckets asked");
  std::vector<std::uint32_t> segments;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t s = buckets[i / ae::kFanout] * ae::kFanout + static_cast<std::uint32_t>(i % ae::kFanout);
    const std::uint64_t leaf = trees_.leaf(set, s);
    if (exact ? leaf != leaves[i] : ae::short_leaf(leaf, salt) != short_leaves[i]) segments.push_back(s);
  }

  std::uint64_t behind = 0;
  std::vector<Record> own_records;
  for (std::size_t at = 0; at < segments.size() && !stopping(); at += ae::kMaxSegmentsPerRequest) {
    const std::vector<std::uint32_t> chunk(segments.begin() + static_cast<std::ptrdiff_t>(at),
                                           segments.begin() + static_cast<std::ptrdiff_t>(std::min(segments.size(), at + ae::kMaxSegmentsPerRequest)));
    const auto busy_from = Clock::now();
    std::string own, err;
    if (!SyncApi::digests(store_, trees_, set, chunk, own, err) || !parse_records(own, own_records, err, true))
      throw StoreError("reading this node's digests: " + err);
    behind += pull(p, query, chunk, own_records, busy_from, exact ? 4 : kShortDigestBytes);
  }
  return {behind, segments.size() + ahead};
}

// One POST /replica/diff after another over `segments`, each sending what this node holds there
// (`own`: its records of those segments, values left out, in stored-key order) and storing what the
// peer holds otherwise, at the bounded rate and share of time (`busy_from`: when this node began
// reading `own`), its digests `digest_bytes` wide. Returns the keys the peer held newer.
std::uint64_t AntiEntropy::pull(Peer& p, const std::string& query, const std::vector<std::uint32_t>& segments,
                                const std::vector<Record>& own, Clock::time_point busy_from, std::size_t digest_bytes) {
  const std::uint64_t salt = salts_();
  std::vector<ae::SegmentDigests> asked;
  asked.reserve(segments.size());
  std::unordered_map<std::string_view, Tag> held;
  held.reserve(own.size());
  std::size_t k = 0;
  for (const std::uint32_t s : segments) {
    ae::SegmentDigests sd{s, {}};
    for (; k < own.size() && ae::segment_of(read_be64(own[k].key)) == s; ++k) {
      const Record& o = own[k];
      sd.digests.push_back(ae::short_digest(version_digest(o), salt, digest_bytes));
      held.emplace(o.key, o.tag);
    }
    asked.push_back(std::move(sd));
  }
  const std::uint32_t keys_per_second = rate_->keys_per_second();
  const std::size_t wanted = options_.batch_keys ? options_.batch_keys
                             : keys_per_second   ? keys_per_second / 10
                                                 : ae::kMaxKeysPerFetch;
  const std::size_t limit = std::clamp<std::size_t>(wanted, 1, ae::kMaxKeysPerFetch);
  const std::string target = std::string(ae::kDiffPath) + query + "&limit=" + std::to_string(limit) +
                             "&digest_bytes=" + std::to_string(digest_bytes) + "&records=" + std::string(ae::kCompactRecords);
  auto started = Clock::now();
  std::uint64_t behind = 0, done = 0;
  std::vector<Record> records;
  std::string keys;  // the stored keys of compact records
  std::size_t from = 0;
  while (from < asked.size() && !stopping()) {
    std::string body;
    ae::append_diff_request(body, salt, {asked.begin() + static_cast<std::ptrdiff_t>(from), asked.end()}, digest_bytes);
    // The floors' generation as the records are asked for: a record the peer held then goes in even
    // below a floor, unless a floor rose meanwhile (node/floors.hpp).
    const std::uint64_t floors_seen = trees_.floors() ? trees_.floors()->generation() : 0;
    const auto r = p.call(ExchangeStep::digests, "POST", target, body);
    std::string err;
    // Compact records when the peer says so (an older one answers versioned records).
    const bool parsed = r.field(ae::kRecordsField) == ae::kCompactRecords ? parse_compact_records(r.body, records, keys, err)
                                                                          : parse_records(r.body, records, err, true);
    if (!parsed) throw PeerError("diff: " + err);
    for (const auto& rec : records) {
      const auto it = held.find(rec.key);
      // Newer there, or there and nothing here (a plain record, Tag{}, counts then too).
      if (it == held.end() || it->second < rec.tag) ++behind;
    }
    std::size_t written = 0, conflicts = 0;
    if (store_.ingest(records, written, conflicts, err, floors_seen) != StoreStatus::ok)
      throw StoreError("storing pulled keys: " + err);
    p.stats->keys_repaired.fetch_add(written, std::memory_order_relaxed);
    done += records.size();
    rest(busy_from, started, done);
    busy_from = Clock::now();
    const std::string next = r.field(ae::kNextSegmentField);
    if (next.empty()) break;
    std::size_t to = from + 1;
    while (to < asked.size() && std::to_string(asked[to].segment) != next) ++to;
    if (to == asked.size()) throw PeerError("diff: " + std::string(ae::kNextSegmentField) + " " + next + " was not asked for");
    from = to;
  }
  return behind;
}

// After a batch of pulled keys: waits until the work since `busy_from` is at most busy_percent of
// the time, and until `done` keys since `started` are due at keys_per_second. The bounds are read
// again every kRecheck while it waits, so that one set meanwhile (POST /admin/repair) applies soon.
void AntiEntropy::rest(Clock::time_point busy_from, Clock::time_point& started, std::uint64_t& done) {
  constexpr auto kRecheck = std::chrono::milliseconds(100);
  const auto batch_end = Clock::now();
  for (;;) {
    const std::uint32_t busy = rate_->busy_percent(), keys_per_second = rate_->keys_per_second();
    if (keys_per_second != paced_keys_per_second_) {
      paced_keys_per_second_ = keys_per_second;
      started = Clock::now();
      done = 0;
    }
    auto until = batch_end;
    if (busy && busy < 100) until += (batch_end - busy_from) * (100 - busy) / busy;
    if (keys_per_second) until = std::max(until, started + std::chrono::microseconds(done * 1'000'000 / keys_per_second));
    const auto now = Clock::now();
    if (until <= now) return;
    std::unique_lock lock(mutex_);
    if (wake_.wait_until(lock, std::min(until, now + kRecheck), [this] { return stopping(); })) return;
  }
}

void AntiEntropy::learn_floors(Peer& p) {
  const auto r = p.call(ExchangeStep::floors, "GET", std::string(ae::kFloorsPath));
  std::vector<ae::SegmentFloor> floors;
  if (!ae::parse_floors(r.body, floors)) throw PeerError("floors: expected floor records");
  trees_.floors()->raise(floors);
  trees_.floors()->learned_from(p.stats->id);
}

void AntiEntropy::note(std::size_t set, std::uint32_t peer, const std::string& incarnation,
                       const std::vector<std::uint64_t>& ours, const std::vector<bool>& equal) {
  Evidence& ev = evidence_[set];
  if (incarnation.empty()) {
    ev.broken = true;  // a peer without an incarnation cannot be asked to raise floors
    return;
  }
  if (ev.own.empty()) {
    ev.own = ours;
    ev.agree.assign(ae::kBuckets, true);
  }
  for (std::uint32_t b = 0; b < ae::kBuckets; ++b)
    if (ours[b] != ev.own[b] || !equal[b]) ev.agree[b] = false;
  ev.incarnations.emplace_back(peer, incarnation);
  ++ev.peers;
}

// Why this order is safe: node/floors.hpp. Each candidate was listed before the round and settled
// into the trees; if its key still holds exactly that tombstone at the drop, it held it all round,
// so each equal bucket says the peer held it too.
void AntiEntropy::purge(const std::vector<std::pair<std::string, Tag>>& candidates) {
  const bool unsafe = options_.unsafe_purge_early;
  std::vector<std::vector<std::pair<std::string, Tag>>> by_set(trees_.sets().size());
  for (const auto& c : candidates) {
    const std::uint64_t hash = read_be64(c.first);
    const int set = trees_.set_of_hash(hash);
    if (set < 0) continue;
    const Evidence& ev = evidence_[static_cast<std::size_t>(set)];
    const std::size_t peers = trees_.sets()[static_cast<std::size_t>(set)].members.size() - 1;
    if (ev.own.empty() || (!unsafe && (ev.broken || ev.peers != peers))) continue;
    if (!ev.agree[ae::segment_of(hash) / ae::kFanout]) continue;
    by_set[static_cast<std::size_t>(set)].push_back(c);
  }
  for (std::size_t set = 0; set < by_set.size() && !stopping(); ++set) {
    auto& list = by_set[set];
    if (list.size() > ae::kMaxPurgePerRequest) list.resize(ae::kMaxPurgePerRequest);  // the rest next round
    if (list.empty()) continue;
    PendingPurge p{set, std::move(list), {}, evidence_[set].incarnations};
    for (const auto& [key, tag] : p.tombstones) append_versioned_record(p.body, {key, {}, tag, true});
    try {
      trees_.floors()->raise(ae::floors_of(p.tombstones));  // this node's own stores first
    } catch (const std::exception& e) {
      purge_failures_.fetch_add(1, std::memory_order_relaxed);
      std::cerr << "kvnode: purging tombstones of " << trees_.sets()[set].name << ": " << e.what() << std::endl;
      continue;
    }
    if (!complete(p, false) && pending_.size() < kMaxPendingPurges) pending_.push_back(std::move(p));
  }
  pending_size_.store(pending_.size(), std::memory_order_relaxed);
}

bool AntiEntropy::complete(PendingPurge& p, bool again) {
  const std::string& set_name = trees_.sets()[p.set].name;
  // Each peer raises the same floors, then drops the same tombstones: all replicas let go of them at
  // about one time, so that none pulls back from another one that the others dropped.
  while (!p.peers.empty()) {
    const auto& [peer, incarnation] = p.peers.front();
    Peer* link = nullptr;
    for (auto& l : links_)
      if (l->node == peer) link = l.get();
    if (!link) {  // never: the set has no such peer; this node keeps its tombstones, which is safe
      purge_failures_.fetch_add(1, std::memory_order_relaxed);
      std::cerr << "kvnode: purging tombstones of " << set_name << ": no link to a peer of the set" << std::endl;
      return true;
    }
    if (link->failing) return false;  // its exchange failed this round: not worth waiting out a timeout
    if (again) purge_retries_.fetch_add(1, std::memory_order_relaxed);
    try {
      if (options_.test_crash_mid_purge && p.peers.size() == 1) {
        std::cerr << "kvnode: crashing for the test (--test-crash-mid-purge) before asking the last peer of "
                  << set_name << " to purge" << std::endl;
        std::_Exit(3);
      }
      if (purge_fault_armed_ && p.peers.size() == 1) {
        purge_fault_armed_ = false;
        throw PeerError("failed for the test (--test-purge-fails-once)");
      }
      link->call(ExchangeStep::purge, "POST", std::string(ae::kPurgePath) + "?set=" + set_name, p.body,
                 {{std::string(ae::kExpectField), incarnation}});
    } catch (const std::exception& e) {
      purge_failures_.fetch_add(1, std::memory_order_relaxed);
      std::cerr << "kvnode: purging tombstones of " << set_name << ": " << e.what() << std::endl;
      // 409: the peer's data directory is not the one that showed the evidence (it lost its data
      // since). It can never confirm this purge; this node keeps its tombstones, which is safe.
      const auto* pe = dynamic_cast<const PeerError*>(&e);
      return pe && pe->status == 409;
    }
    p.peers.erase(p.peers.begin());
  }
  std::size_t n = 0;
  std::string err;
  if (store_.purge_tombstones(p.tombstones, n, err) != StoreStatus::ok) {
    purge_failures_.fetch_add(1, std::memory_order_relaxed);
    std::cerr << "kvnode: purging tombstones: " << err << std::endl;
  }
  trees_.floors()->count_purged(n);
  return true;
}

std::string AntiEntropy::health_fields() const {
  std::uint64_t behind = 0, repaired = 0, exchanges = 0, failures = 0, bytes = 0, in_sync = 0;
  for (const auto& p : peers_) {
    behind += p->keys_behind.load(std::memory_order_relaxed);
    repaired += p->keys_repaired.load(std::memory_order_relaxed);
    exchanges += p->exchanges.load(std::memory_order_relaxed);
    failures += p->failures.load(std::memory_order_relaxed);
    bytes += p->bytes.load(std::memory_order_relaxed);
    in_sync += p->in_sync.load(std::memory_order_relaxed) ? 1 : 0;
  }
  const PurgePause* pause = trees_.purge_pause();
  const std::string paused = pause ? pause->paused_json() : std::string("null");
  const std::string resumed = pause ? pause->resumed_json() : std::string("null");
  return ",\"anti_entropy\":{\"keys_behind\":" + std::to_string(behind) + ",\"keys_repaired\":" + std::to_string(repaired) +
         ",\"exchanges\":" + std::to_string(exchanges) + ",\"failures\":" + std::to_string(failures) +
         ",\"bytes\":" + std::to_string(bytes) + ",\"peers_in_sync\":" + std::to_string(in_sync) +
         ",\"peers\":" + std::to_string(peers_.size()) + ",\"tombstones_purged\":" + std::to_string((trees_.floors() ? trees_.floors()->purged() : 0)) +
         ",\"purge_failures\":" + std::to_string(purge_failures_.load(std::memory_order_relaxed)) +
         ",\"purge_retries\":" + std::to_string(purge_retries_.load(std::memory_order_relaxed)) +
         ",\"purges_pending\":" + std::to_string(pending_size_.load(std::memory_order_relaxed)) +
         ",\"purging\":" + (options_.purge ? "true" : "false") + ",\"purges_paused\":" + paused +
         ",\"purges_resumed\":" + resumed + ",\"repair_busy_percent\":" + std::to_string(rate_->busy_percent()) +
         ",\"repair_keys_per_second\":" + std::to_string(rate_->keys_per_second()) + "}";
}

std::string AntiEntropy::render() const {
  std::string out;
  if (incarnation_) {
    metrics::header(out, "kvnode_state", "1 for this node's state: serving, or checking / recovering its data "
                                         "(then it answers no quorum reads).", "gauge");
    const NodeState now = incarnation_->state();
    for (auto s : {NodeState::checking, NodeState::recovering, NodeState::serving})
      metrics::sample(out, "kvnode_state", "state=\"" + std::string(state_name(s)) + "\"", std::uint64_t{s == now ? 1u : 0u});
    metrics::header(out, "kvnode_recovery_peers_done", "Peers answered (checking) or rebuilt from (recovering).", "gauge");
    metrics::sample(out, "kvnode_recovery_peers_done", "", std::uint64_t{incarnation_->peers_done()});
  }
  metrics::header(out, "kvnode_anti_entropy_rounds_total", "Anti-entropy rounds (one exchange with every peer).", "counter");
  metrics::sample(out, "kvnode_anti_entropy_rounds_total", "", rounds());
  metrics::header(out, "kvnode_tombstones_purged_total",
                  "Tombstones purged: every replica of the key held it (found in an exchange), floors raised first.", "counter");
  metrics::sample(out, "kvnode_tombstones_purged_total", "", (trees_.floors() ? trees_.floors()->purged() : 0));
  metrics::header(out, "kvnode_tombstone_purge_failures_total",
                  "Purge requests that failed: a peer raised no floors (unreachable: tried again next round; or its data "
                  "lost since: given up, the tombstones kept), or a storage error.", "counter");
  metrics::sample(out, "kvnode_tombstone_purge_failures_total", "", purge_failures_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_tombstone_purge_retries_total",
                  "Purge requests sent again to a peer that had not confirmed them.", "counter");
  metrics::sample(out, "kvnode_tombstone_purge_retries_total", "", purge_retries_.load(std::memory_order_relaxed));
  metrics::header(out, "kvnode_tombstone_purges_pending", "Purges not yet confirmed by every peer of their set.", "gauge");
  metrics::sample(out, "kvnode_tombstone_purges_pending", "", std::uint64_t{pending_size_.load(std::memory_order_relaxed)});
  if (const PurgePause* pause = trees_.purge_pause()) {
    metrics::header(out, "kvnode_tombstone_purges_paused", "1 while purges are paused for a ring change (ring-rebalance apply).",
                    "gauge");
    metrics::sample(out, "kvnode_tombstone_purges_paused", "", std::uint64_t{pause->paused().empty() ? 0u : 1u});
  }
  if (const Floors* floors = trees_.floors()) {
    metrics::header(out, "kvnode_floor_segments", "Segments with a floor (a deleted key there was purged).", "gauge");
    metrics::sample(out, "kvnode_floor_segments", "", std::uint64_t{floors->segments()});
    metrics::header(out, "kvnode_floors_known", "1 once this node knows its peers' floors (a new directory learns them first).", "gauge");
    metrics::sample(out, "kvnode_floors_known", "", std::uint64_t{floors->known() ? 1u : 0u});
  }
  auto each = [&](std::string_view name, std::string_view help, std::string_view type, auto value) {
    metrics::header(out, name, help, type);
    for (const auto& p : peers_) metrics::sample(out, name, "peer=\"" + metrics::label_value(p->id) + "\"", std::uint64_t{value(*p)});
  };
  auto load = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  each("kvnode_anti_entropy_exchanges_total", "Exchanges of hash trees completed with the peer.", "counter",
       [&](const PeerSync& p) { return load(p.exchanges); });
  each("kvnode_anti_entropy_failures_total", "Exchanges with the peer cut short (unreachable, bad answer).", "counter",
       [&](const PeerSync& p) { return load(p.failures); });
  each("kvnode_anti_entropy_keys_behind", "Keys the peer held newer at the last exchange (this node was behind on them).",
       "gauge", [&](const PeerSync& p) { return load(p.keys_behind); });
  each("kvnode_anti_entropy_segments_differing", "Tree segments that differed from the peer's at the last exchange (a group or bucket where this node was ahead, left to the peer to pull, counts as one).", "gauge",
       [&](const PeerSync& p) { return load(p.segments_differing); });
  each("kvnode_anti_entropy_keys_repaired_total", "Keys pulled from the peer and stored (newer than what was held).",
       "counter", [&](const PeerSync& p) { return load(p.keys_repaired); });
  each("kvnode_anti_entropy_bytes_total", "Request and response bodies exchanged with the peer.", "counter",
       [&](const PeerSync& p) { return load(p.bytes); });
  metrics::header(out, "kvnode_anti_entropy_step_bytes_total",
                  "The bytes above by step: tree (the peer's bucket hashes), leaves (of the buckets that differed), "
                  "digests (this node's, of the segments that differed), records (the peer's answer to them), floors, purge.",
                  "counter");
  for (const auto& p : peers_)
    for (std::size_t s = 0; s < kExchangeSteps; ++s)
      metrics::sample(out, "kvnode_anti_entropy_step_bytes_total",
                      "peer=\"" + metrics::label_value(p->id) + "\",step=\"" + std::string(kExchangeStepNames[s]) + "\"",
                      load(p->step_bytes[s]));
  each("kvnode_anti_entropy_in_sync", "1 when the last exchange found every tree shared with the peer equal.", "gauge",
       [&](const PeerSync& p) { return std::uint64_t{p.in_sync.load(std::memory_order_relaxed) ? 1u : 0u}; });
  return out;
}

}  // namespace kv
