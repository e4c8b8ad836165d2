// ring.yaml: parsed into plain structs and validated before anything is built from it.
// Every refusal is a ConfigError whose message names the file, the field and the reason:
//   "ring.yaml: nodes[2].address: duplicate address 127.0.0.1:8081 (also nodes[0])"
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kv {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct HostPort {
  std::string host;  // IPv4 literal, IPv6 literal without brackets, or a host name
  std::uint16_t port = 0;
  std::string str() const;  // "host:port", IPv6 in brackets
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses "host:port" / "[v6]:port". allow_port_zero lets a listener ask the kernel for a port.
std::optional<HostPort> parse_host_port(std::string_view s, bool allow_port_zero = false);

struct NodeConfig {
  std::string id;       // stable identity, hashed onto the ring
  HostPort address;
  std::uint32_t weight = 1;
  std::string zone;     // optional failure domain; empty: a zone of its own (see Ring::replicas_of_hash)
};

// The proxy: section. Every field is optional; kvproxy's flags override the file. Times in ms.
struct ProxySection {
  std::optional<HostPort> listen;
  std::optional<HostPort> admin;
  std::optional<std::uint32_t> threads;
  std::optional<std::uint32_t> maxconn;             // client connections at once; more wait in the backlog
  // timeouts:
  std::optional<std::uint32_t> client_header_ms;    // first byte of a request to its last header
  std::optional<std::uint32_t> client_idle_ms;      // keep-alive between requests
  std::optional<std::uint32_t> connect_ms;          // connecting to a node
  std::optional<std::uint32_t> response_ms;         // request sent to whole response received
  // check: (active health checks, GET /health on each node)
  std::optional<std::uint32_t> check_interval_ms;
  std::optional<std::uint32_t> check_timeout_ms;
  std::optional<std::uint32_t> check_fall;          // consecutive failures that mark a node down
  std::optional<std::uint32_t> check_rise;          // consecutive successes that mark it up again
};

inline constexpr std::uint32_t kDefaultVnodes = 32768;
inline constexpr std::uint32_t kMaxVnodes = 1u << 20;
inline constexpr std::uint32_t kMaxWeight = 256;
inline constexpr std::size_t kMaxNodes = 4096;
inline constexpr std::uint64_t kMaxRingPoints = 1ull << 24;  // 128 MiB of ring at most
inline constexpr std::size_t kMaxIdLength = 64;  // node ids and zone names
inline constexpr std::uint32_t kMaxReplicas = 5;

struct RingConfig {
  std::uint32_t vnodes = kDefaultVnodes;  // ring points per unit of weight
  std::uint32_t replicas = 1;             // N: copies of each key, 1..kMaxReplicas, at most the node count
  std::vector<NodeConfig> nodes;          // in file order; the ring does not depend on it
  ProxySection proxy;
};

// `source` names the input in messages (a file path, or "<admin body>").
RingConfig parse_ring_config(std::string_view yaml_text, std::string_view source);
// With `text`, the file's bytes are also kept there (for a caller that passes the ring on as given).
RingConfig load_ring_config(const std::string& path, std::string* text = nullptr);

// A ring file with its membership (vnodes, replicas, nodes) taken from `membership_yaml` and everything else
// (the proxy: section) kept from `file_yaml`: what a proxy saves as its ring file after a rebalance,
// so that each proxy keeps its own listen addresses and settings. Comments are not kept. Both texts
// must parse; throws ConfigError otherwise.
std::string with_membership(std::string_view file_yaml, std::string_view membership_yaml, std::string_view source);

// The checks on an already-built struct (parse_ring_config calls it).
void validate_ring_config(const RingConfig& config, std::string_view source);

}  // namespace kv
