#include "common/config.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/files.hpp"

namespace kv {
namespace {

[[noreturn]] void fail(std::string_view source, std::string_view field, std::string_view reason) {
  std::string msg;
  msg.append(source).append(": ").append(field).append(": ").append(reason);
  throw ConfigError(msg);
}

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t label = 0;
  for (char c : h) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

bool all_digits_or_dots(std::string_view h) {
  for (char c : h)
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  return true;
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "empty";
    default: return "undefined";
  }
}

std::string scalar(const YAML::Node& n, std::string_view source, const std::string& field) {
  if (!n.IsScalar()) fail(source, field, "expected a value, got " + kind_of(n));
  return n.Scalar();
}

std::uint32_t bounded_uint(const YAML::Node& n, std::string_view source, const std::string& field,
                           std::uint64_t lo, std::uint64_t hi) {
  const std::string s = scalar(n, source, field);
  auto v = parse_uint(s);
  if (!v) fail(source, field, "expected a whole number, got '" + s + "'");
  if (*v < lo || *v > hi)
    fail(source, field, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + s);
  return static_cast<std::uint32_t>(*v);
}

// Refuses keys of `map` that are not in `allowed`, and keys given twice (YAML parsers differ on
// which one wins; the fuzzer found yaml-cpp keeping the first); prefix names where the map is.
void only_fields(const YAML::Node& map, std::string_view source, const std::string& prefix,
                 std::initializer_list<std::string_view> allowed) {
  std::vector<std::string> seen;
  for (const auto& kv : map) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      fail(source, prefix + key, "given twice (say it once)");
    seen.push_back(key);
    bool ok = false;
    for (auto a : allowed) ok = ok || key == a;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list.append(list.empty() ? "" : ", ").append(a);
      fail(source, prefix + key, "unknown field (expected one of: " + list + ")");
    }
  }
}

// Node ids and zone names: letters, digits, '-', '_' and '.'.
bool name_chars_ok(std::string_view name) {
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                    ch == '_' || ch == '.';
    if (!ok) return false;
  }
  return true;
}

std::string replicas_over_nodes(std::uint32_t replicas, std::size_t nodes) {
  return std::to_string(replicas) + " replicas need at least " + std::to_string(replicas) + " nodes; the ring has " +
         std::to_string(nodes);
}

HostPort host_port_field(const YAML::Node& n, std::string_view source, const std::string& field, bool allow_zero) {
  const std::string s = scalar(n, source, field);
  auto hp = parse_host_port(s, allow_zero);
  if (!hp) fail(source, field, "expected host:port (port 1-65535), got '" + s + "'");
  return *hp;
}

}  // namespace

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> parse_host_port(std::string_view s, bool allow_port_zero) {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    // Only IPv6 characters: inet_pton reads a C string, so "::1" followed by a NUL and anything
    // would pass (fuzz_config found it).
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) return std::nullopt;
    in6_addr a6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) return std::nullopt;
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // bare IPv6 needs brackets
    if (all_digits_or_dots(host)) {
      in_addr a4{};
      if (inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1) return std::nullopt;
    } else if (!valid_hostname(host)) {
      return std::nullopt;
    }
  }
  auto p = parse_uint(port);
  if (!p || *p > 65535 || (*p == 0 && !allow_port_zero)) return std::nullopt;
  return HostPort{std::string(host), static_cast<std::uint16_t>(*p)};
}

void validate_ring_config(const RingConfig& c, std::string_view source) {
  if (c.vnodes < 1 || c.vnodes > kMaxVnodes)
    fail(source, "vnodes", "must be between 1 and " + std::to_string(kMaxVnodes));
  if (c.nodes.empty()) fail(source, "nodes", "at least one node is required");
  if (c.nodes.size() > kMaxNodes) fail(source, "nodes", "at most " + std::to_string(kMaxNodes) + " nodes");
  std::map<std::string, std::size_t> ids, addrs;
  std::uint64_t points = 0;
  for (std::size_t i = 0; i < c.nodes.size(); ++i) {
    const auto& n = c.nodes[i];
    const std::string at = "nodes[" + std::to_string(i) + "]";
    if (n.id.empty()) fail(source, at + ".id", "must not be empty");
    if (n.id.size() > kMaxIdLength) fail(source, at + ".id", "longer than " + std::to_string(kMaxIdLength) + " bytes");
    if (!name_chars_ok(n.id)) fail(source, at + ".id", "'" + n.id + "' may contain only letters, digits, '-', '_' and '.'");
    if (n.zone.size() > kMaxIdLength) fail(source, at + ".zone", "longer than " + std::to_string(kMaxIdLength) + " bytes");
    if (!name_chars_ok(n.zone))
      fail(source, at + ".zone", "'" + n.zone + "' may contain only letters, digits, '-', '_' and '.'");
    if (n.weight < 1 || n.weight > kMaxWeight)
      fail(source, at + ".weight", "must be between 1 and " + std::to_string(kMaxWeight));
    if (auto [it, fresh] = ids.emplace(n.id, i); !fresh)
      fail(source, at + ".id", "duplicate id '" + n.id + "' (also nodes[" + std::to_string(it->second) + "])");
    const std::string addr = n.address.str();
    if (auto [it, fresh] = addrs.emplace(addr, i); !fresh)
      fail(source, at + ".address", "duplicate address " + addr + " (also nodes[" + std::to_string(it->second) + "])");
    points += std::uint64_t{n.weight} * c.vnodes;
  }
  if (c.replicas < 1 || c.replicas > kMaxReplicas)
    fail(source, "replicas", "must be between 1 and " + std::to_string(kMaxReplicas));
  if (c.replicas > c.nodes.size()) fail(source, "replicas", replicas_over_nodes(c.replicas, c.nodes.size()));
  if (points > kMaxRingPoints)
    fail(source, "vnodes", "vnodes x total weight is " + std::to_string(points) + " ring points, more than the limit of " +
                               std::to_string(kMaxRingPoints) + "; lower vnodes");
}

RingConfig parse_ring_config(std::string_view yaml_text, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    fail(source, "line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1),
         e.msg.empty() ? "invalid YAML" : e.msg);
  }
  if (!root.IsMap()) fail(source, "(top level)", "expected a mapping with 'nodes', got " + kind_of(root));
  only_fields(root, source, "", {"vnodes", "replicas", "nodes", "proxy"});

  RingConfig c;
  if (root["vnodes"]) c.vnodes = bounded_uint(root["vnodes"], source, "vnodes", 1, kMaxVnodes);
  if (root["replicas"]) c.replicas = bounded_uint(root["replicas"], source, "replicas", 1, kMaxReplicas);

  const YAML::Node nodes = root["nodes"];
  if (!nodes) fail(source, "nodes", "missing (a list of {id, address, weight})");
  if (!nodes.IsSequence()) fail(source, "nodes", "expected a list, got " + kind_of(nodes));
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::string at = "nodes[" + std::to_string(i) + "]";
    const YAML::Node n = nodes[i];
    if (!n.IsMap()) fail(source, at, "expected a mapping with id and address, got " + kind_of(n));
    only_fields(n, source, at + ".", {"id", "address", "weight", "zone"});
    NodeConfig nc;
    if (!n["id"]) fail(source, at + ".id", "missing");
    nc.id = scalar(n["id"], source, at + ".id");
    if (!n["address"]) fail(source, at + ".address", "missing");
    nc.address = host_port_field(n["address"], source, at + ".address", false);
    if (n["weight"]) nc.weight = bounded_uint(n["weight"], source, at + ".weight", 1, kMaxWeight);
    if (n["zone"]) {
      nc.zone = scalar(n["zone"], source, at + ".zone");
      if (nc.zone.empty()) fail(source, at + ".zone", "must not be empty (leave the field out for no zone)");
    }
    c.nodes.push_back(std::move(nc));
  }
  // Said here, with the line, before the other checks: a ring of fewer nodes than replicas is the
  // usual slip when a node is removed from a replicated ring.
  if (root["replicas"] && !c.nodes.empty() && c.replicas > c.nodes.size())
    fail(source, "replicas",
         replicas_over_nodes(c.replicas, c.nodes.size()) + " (line " + std::to_string(root["replicas"].Mark().line + 1) + ")");

  if (const YAML::Node p = root["proxy"]) {
    if (!p.IsMap()) fail(source, "proxy", "expected a mapping, got " + kind_of(p));
    only_fields(p, source, "proxy.", {"listen", "admin", "threads", "maxconn", "timeouts", "check"});
    auto& px = c.proxy;
    if (p["listen"]) px.listen = host_port_field(p["listen"], source, "proxy.listen", true);
    if (p["admin"]) px.admin = host_port_field(p["admin"], source, "proxy.admin", true);
    if (p["threads"]) px.threads = bounded_uint(p["threads"], source, "proxy.threads", 1, 256);
    if (p["maxconn"]) px.maxconn = bounded_uint(p["maxconn"], source, "proxy.maxconn", 1, 1000000);
    constexpr std::uint64_t kHour = 3'600'000;
    if (const YAML::Node t = p["timeouts"]) {
      if (!t.IsMap()) fail(source, "proxy.timeouts", "expected a mapping, got " + kind_of(t));
      only_fields(t, source, "proxy.timeouts.", {"client_header", "client_idle", "connect", "response"});
      if (t["client_header"]) px.client_header_ms = bounded_uint(t["client_header"], source, "proxy.timeouts.client_header", 1, kHour);
      if (t["client_idle"]) px.client_idle_ms = bounded_uint(t["client_idle"], source, "proxy.timeouts.client_idle", 1, kHour);
      if (t["connect"]) px.connect_ms = bounded_uint(t["connect"], source, "proxy.timeouts.connect", 1, kHour);
      if (t["response"]) px.response_ms = bounded_uint(t["response"], source, "proxy.timeouts.response", 1, kHour);
    }
    if (const YAML::Node k = p["check"]) {
      if (!k.IsMap()) fail(source, "proxy.check", "expected a mapping, got " + kind_of(k));
      only_fields(k, source, "proxy.check.", {"interval", "timeout", "fall", "rise"});
      if (k["interval"]) px.check_interval_ms = bounded_uint(k["interval"], source, "proxy.check.interval", 10, kHour);
      if (k["timeout"]) px.check_timeout_ms = bounded_uint(k["timeout"], source, "proxy.check.timeout", 1, kHour);
      if (k["fall"]) px.check_fall = bounded_uint(k["fall"], source, "proxy.check.fall", 1, 100);
      if (k["rise"]) px.check_rise = bounded_uint(k["rise"], source, "proxy.check.rise", 1, 100);
    }
  }
  validate_ring_config(c, source);
  return c;
}

RingConfig load_ring_config(const std::string& path, std::string* text) {
  auto bytes = read_file(path);
  if (!bytes) fail(path, "(file)", "cannot open for reading");
  auto config = parse_ring_config(*bytes, path);
  if (text) *text = std::move(*bytes);
  return config;
}

std::string with_membership(std::string_view file_yaml, std::string_view membership_yaml, std::string_view source) {
  YAML::Node file, membership;
  try {
    file = YAML::Load(std::string(file_yaml));
    membership = YAML::Load(std::string(membership_yaml));
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string(source) + ": " + e.what());
  }
  if (!file.IsMap() || !membership.IsMap()) throw ConfigError(std::string(source) + ": expected a mapping at the top");
  YAML::Node out(YAML::NodeType::Map);
  for (const char* key : {"vnodes", "replicas", "nodes"})
    if (membership[key]) out[key] = membership[key];
  for (const auto& kv : file) {
    const auto key = kv.first.as<std::string>();
    if (key != "vnodes" && key != "replicas" && key != "nodes") out[key] = kv.second;
  }
  YAML::Emitter emitter;
  emitter << out;
  return std::string(emitter.c_str()) + "\n";
}

}  // namespace kv
