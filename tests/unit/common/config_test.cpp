#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "common/config.hpp"

using kv::parse_ring_config;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_ring_config(yaml, "ring.yaml");
  } catch (const kv::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

const std::string kTwo = "nodes:\n  - id: n1\n    address: 127.0.0.1:8081\n  - id: n2\n    address: 127.0.0.1:8082\n";

}  // namespace

TEST_CASE("a full ring.yaml parses", "[config]") {
  const auto c = parse_ring_config(R"(
vnodes: 1024
nodes:
  - id: n1
    address: 127.0.0.1:8081
    weight: 1
  - id: n2
    address: "[::1]:8082"
  - id: store-3.eu_west
    address: kv3.example.com:8083
    weight: 4
proxy:
  listen: 127.0.0.1:8080
  admin: 127.0.0.1:8404
)",
                                   "ring.yaml");
  CHECK(c.vnodes == 1024);
  REQUIRE(c.nodes.size() == 3);
  CHECK(c.nodes[0].id == "n1");
  CHECK(c.nodes[0].address == kv::HostPort{"127.0.0.1", 8081});
  CHECK(c.nodes[1].address.host == "::1");
  CHECK(c.nodes[1].address.str() == "[::1]:8082");
  CHECK(c.nodes[1].weight == 1);
  CHECK(c.nodes[2].address.host == "kv3.example.com");
  CHECK(c.nodes[2].weight == 4);
  CHECK(c.proxy.listen->str() == "127.0.0.1:8080");
  CHECK(c.proxy.admin->str() == "127.0.0.1:8404");
}

TEST_CASE("defaults: vnodes and weight", "[config]") {
  const auto c = parse_ring_config(kTwo, "ring.yaml");
  CHECK(c.vnodes == kv::kDefaultVnodes);
  CHECK(c.nodes[1].weight == 1);
  CHECK_FALSE(c.proxy.listen.has_value());
}

TEST_CASE("the shipped configs/ring.yaml is valid", "[config]") {
  const auto c = kv::load_ring_config(KV_SOURCE_DIR "/configs/ring.yaml");
  CHECK(c.nodes.size() == 3);
  const auto r = kv::load_ring_config(KV_SOURCE_DIR "/configs/ring-replicas.yaml");  // the README's example
  CHECK(r.replicas == 3);
  CHECK(r.nodes[3].zone == "c");
}

TEST_CASE("every refusal names the file, the field and the reason", "[config]") {
  CHECK(error_of("vnodes: 8\n") == "ring.yaml: nodes: missing (a list of {id, address, weight})");
  CHECK(error_of("nodes: []\n") == "ring.yaml: nodes: at least one node is required");
  CHECK(error_of("nodes: n1\n") == "ring.yaml: nodes: expected a list, got a scalar");
  CHECK(error_of("- a\n- b\n") == "ring.yaml: (top level): expected a mapping with 'nodes', got a list");
  CHECK(error_of("") == "ring.yaml: (top level): expected a mapping with 'nodes', got empty");
  CHECK(error_of(kTwo + "colour: blue\n") == "ring.yaml: colour: unknown field (expected one of: vnodes, replicas, nodes, proxy)");
  CHECK(error_of("nodes:\n  - id: n1\n    address: 127.0.0.1:8081\n    port: 3\n") ==
        "ring.yaml: nodes[0].port: unknown field (expected one of: id, address, weight, zone)");
  CHECK(error_of("nodes:\n  - address: 127.0.0.1:8081\n") == "ring.yaml: nodes[0].id: missing");
  CHECK(error_of("nodes:\n  - id: n1\n") == "ring.yaml: nodes[0].address: missing");
  CHECK(error_of("nodes:\n  - n1\n") == "ring.yaml: nodes[0]: expected a mapping with id and address, got a scalar");
  CHECK(error_of("nodes:\n  - id: ''\n    address: 127.0.0.1:1\n") == "ring.yaml: nodes[0].id: must not be empty");
  CHECK(error_of("nodes:\n  - id: a b\n    address: 127.0.0.1:1\n") ==
        "ring.yaml: nodes[0].id: 'a b' may contain only letters, digits, '-', '_' and '.'");
  CHECK(error_of("nodes:\n  - id: " + std::string(65, 'x') + "\n    address: 127.0.0.1:1\n") ==
        "ring.yaml: nodes[0].id: longer than 64 bytes");
  CHECK(error_of("nodes:\n  - id: [1]\n    address: 127.0.0.1:1\n") == "ring.yaml: nodes[0].id: expected a value, got a list");
  CHECK(error_of(kTwo + "  - id: n1\n    address: 127.0.0.1:8083\n") ==
        "ring.yaml: nodes[2].id: duplicate id 'n1' (also nodes[0])");
  CHECK(error_of(kTwo + "  - id: n3\n    address: 127.0.0.1:8081\n") ==
        "ring.yaml: nodes[2].address: duplicate address 127.0.0.1:8081 (also nodes[0])");
}

TEST_CASE("addresses: host:port with a port from 1 to 65535", "[config]") {
  auto addr_error = [](const std::string& a) { return error_of("nodes:\n  - id: n1\n    address: '" + a + "'\n"); };
  for (std::string bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x", "256.1.1.1:80",
                          "::1:80", "[::1:80", "[zz::1]:80", "bad_host:80", ":80", "a..b:80", "-:80x"}) {
    INFO(bad);
    CHECK(addr_error(bad) == "ring.yaml: nodes[0].address: expected host:port (port 1-65535), got '" + bad + "'");
  }
  for (std::string good : {"127.0.0.1:1", "10.0.0.7:65535", "[::1]:8081", "[2001:db8::2]:80", "localhost:8081", "kv-1.internal:9"}) {
    INFO(good);
    CHECK(addr_error(good) == "(accepted)");
  }
}

TEST_CASE("numbers: vnodes, weight and the total ring size", "[config]") {
  CHECK(error_of("vnodes: 0\n" + kTwo) == "ring.yaml: vnodes: must be between 1 and 1048576, got 0");
  CHECK(error_of("vnodes: 1048577\n" + kTwo) == "ring.yaml: vnodes: must be between 1 and 1048576, got 1048577");
  CHECK(error_of("vnodes: -3\n" + kTwo) == "ring.yaml: vnodes: expected a whole number, got '-3'");
  CHECK(error_of("vnodes: 1.5\n" + kTwo) == "ring.yaml: vnodes: expected a whole number, got '1.5'");
  CHECK(error_of("vnodes: 99999999999999999999999\n" + kTwo) ==
        "ring.yaml: vnodes: expected a whole number, got '99999999999999999999999'");
  CHECK(error_of("nodes:\n  - id: n1\n    address: 127.0.0.1:1\n    weight: 0\n") ==
        "ring.yaml: nodes[0].weight: must be between 1 and 256, got 0");
  CHECK(error_of("nodes:\n  - id: n1\n    address: 127.0.0.1:1\n    weight: 257\n") ==
        "ring.yaml: nodes[0].weight: must be between 1 and 256, got 257");
  CHECK(error_of("vnodes: 1048576\nnodes:\n  - id: n1\n    address: 127.0.0.1:1\n    weight: 17\n") ==
        "ring.yaml: vnodes: vnodes x total weight is 17825792 ring points, more than the limit of 16777216; lower vnodes");
}

TEST_CASE("replicas and zones", "[config][replicas]") {
  const auto c = parse_ring_config("replicas: 2\nnodes:\n  - id: n1\n    address: 127.0.0.1:8081\n    zone: a\n"
                                   "  - id: n2\n    address: 127.0.0.1:8082\n",
                                   "ring.yaml");
  CHECK(c.replicas == 2);
  CHECK(c.nodes[0].zone == "a");
  CHECK(c.nodes[1].zone.empty());
  CHECK(parse_ring_config(kTwo, "ring.yaml").replicas == 1);  // the default: one owner per key

  CHECK(error_of("replicas: 0\n" + kTwo) == "ring.yaml: replicas: must be between 1 and 5, got 0");
  CHECK(error_of("replicas: 6\n" + kTwo) == "ring.yaml: replicas: must be between 1 and 5, got 6");
  CHECK(error_of("replicas: three\n" + kTwo) == "ring.yaml: replicas: expected a whole number, got 'three'");
  // More replicas than nodes: with the line, wherever the field is.
  CHECK(error_of("replicas: 3\n" + kTwo) == "ring.yaml: replicas: 3 replicas need at least 3 nodes; the ring has 2 (line 1)");
  CHECK(error_of("vnodes: 8\n\n" + kTwo + "replicas: 3\n") ==
        "ring.yaml: replicas: 3 replicas need at least 3 nodes; the ring has 2 (line 8)");
  kv::RingConfig built = parse_ring_config(kTwo, "ring.yaml");
  built.replicas = 3;  // a config made in code is checked too, without a line to name
  CHECK_THROWS_WITH(kv::validate_ring_config(built, "ring"), "ring: replicas: 3 replicas need at least 3 nodes; the ring has 2");

  const std::string one = "nodes:\n  - id: n1\n    address: 127.0.0.1:1\n";
  CHECK(error_of(one + "    zone: ''\n") == "ring.yaml: nodes[0].zone: must not be empty (leave the field out for no zone)");
  CHECK(error_of(one + "    zone: eu west\n") ==
        "ring.yaml: nodes[0].zone: 'eu west' may contain only letters, digits, '-', '_' and '.'");
  CHECK(error_of(one + "    zone: " + std::string(65, 'z') + "\n") == "ring.yaml: nodes[0].zone: longer than 64 bytes");
  CHECK(error_of(one + "    zone: [a]\n") == "ring.yaml: nodes[0].zone: expected a value, got a list");
}

TEST_CASE("a full proxy section parses", "[config]") {
  const auto c = parse_ring_config(kTwo + R"(proxy:
  listen: 127.0.0.1:8080
  admin: 127.0.0.1:8404
  threads: 2
  maxconn: 5000
  timeouts: {client_header: 5000, client_idle: 30000, connect: 500, response: 2000}
  check: {interval: 1000, timeout: 300, fall: 2, rise: 3}
)",
                                   "ring.yaml");
  CHECK(*c.proxy.threads == 2);
  CHECK(*c.proxy.maxconn == 5000);
  CHECK(*c.proxy.client_header_ms == 5000);
  CHECK(*c.proxy.client_idle_ms == 30000);
  CHECK(*c.proxy.connect_ms == 500);
  CHECK(*c.proxy.response_ms == 2000);
  CHECK(*c.proxy.check_interval_ms == 1000);
  CHECK(*c.proxy.check_timeout_ms == 300);
  CHECK(*c.proxy.check_fall == 2);
  CHECK(*c.proxy.check_rise == 3);
}

TEST_CASE("proxy section", "[config]") {
  CHECK(error_of(kTwo + "proxy:\n  listen: nowhere\n") ==
        "ring.yaml: proxy.listen: expected host:port (port 1-65535), got 'nowhere'");
  CHECK(error_of(kTwo + "proxy:\n  workers: 4\n") ==
        "ring.yaml: proxy.workers: unknown field (expected one of: listen, admin, threads, maxconn, timeouts, check)");
  CHECK(error_of(kTwo + "proxy:\n  threads: 0\n") == "ring.yaml: proxy.threads: must be between 1 and 256, got 0");
  CHECK(error_of(kTwo + "proxy:\n  timeouts:\n    read: 5\n") ==
        "ring.yaml: proxy.timeouts.read: unknown field (expected one of: client_header, client_idle, connect, response)");
  CHECK(error_of(kTwo + "proxy:\n  timeouts:\n    connect: 0\n") ==
        "ring.yaml: proxy.timeouts.connect: must be between 1 and 3600000, got 0");
  CHECK(error_of(kTwo + "proxy:\n  check:\n    interval: 5\n") ==
        "ring.yaml: proxy.check.interval: must be between 10 and 3600000, got 5");
  CHECK(error_of(kTwo + "proxy:\n  check:\n    fall: x\n") == "ring.yaml: proxy.check.fall: expected a whole number, got 'x'");
  CHECK(error_of(kTwo + "proxy:\n  check: 3\n") == "ring.yaml: proxy.check: expected a mapping, got a scalar");
  CHECK(error_of(kTwo + "proxy: 3\n") == "ring.yaml: proxy: expected a mapping, got a scalar");
  CHECK(error_of(kTwo + "proxy:\n  listen: 127.0.0.1:0\n") == "(accepted)");  // a listener may ask for any port
}

TEST_CASE("YAML syntax errors name the line and column", "[config]") {
  CHECK(error_of("nodes: [\n") .rfind("ring.yaml: line ", 0) == 0);
  CHECK(error_of("nodes:\n  - id: n1\n   address: x: y\n").rfind("ring.yaml: line 3, column ", 0) == 0);
}

TEST_CASE("a missing file is refused with its path", "[config]") {
  CHECK_THROWS_WITH(kv::load_ring_config("/nonexistent/ring.yaml"), "/nonexistent/ring.yaml: (file): cannot open for reading");
}

TEST_CASE("with_membership takes vnodes and nodes from one file and the rest from the other", "[config]") {
  const std::string file = "# a comment\nvnodes: 64\nnodes:\n  - id: a\n    address: 127.0.0.1:1\n"
                           "proxy:\n  listen: 127.0.0.1:9000\n  timeouts:\n    connect: 50\n";
  const std::string membership = "nodes:\n  - id: a\n    address: 127.0.0.1:1\n  - id: b\n    address: 127.0.0.1:2\n"
                                 "proxy:\n  listen: 127.0.0.1:7777\n";
  const auto merged = kv::parse_ring_config(kv::with_membership(file, membership, "r.yaml"), "r.yaml");
  CHECK(merged.vnodes == kv::kDefaultVnodes);  // NEW has none: the default, not the old 64
  REQUIRE(merged.nodes.size() == 2);
  CHECK(merged.nodes[1].id == "b");
  REQUIRE(merged.proxy.listen);
  CHECK(merged.proxy.listen->port == 9000);  // this proxy's own settings
  CHECK(merged.proxy.connect_ms == 50u);
  CHECK_THROWS_AS(kv::with_membership("nodes: [", membership, "r.yaml"), kv::ConfigError);

  // replicas and zones are membership: they decide where keys live.
  const auto replicated = kv::parse_ring_config(
      kv::with_membership(file, "replicas: 2\n" + membership, "r.yaml"), "r.yaml");
  CHECK(replicated.replicas == 2);
  CHECK(kv::parse_ring_config(kv::with_membership("replicas: 2\n" + membership, membership, "r.yaml"), "r.yaml").replicas == 1);
}

TEST_CASE("a field given twice is refused, at any level (found by fuzz_config)", "[config]") {
  const std::string nodes = "nodes:\n  - id: a\n    address: 127.0.0.1:1\n";
  CHECK_THROWS_WITH(kv::parse_ring_config(nodes + nodes, "r.yaml"), "r.yaml: nodes: given twice (say it once)");
  CHECK_THROWS_WITH(kv::parse_ring_config(nodes + "proxy:\n  admin: 127.0.0.1:1\n  admin: 127.0.0.1:2\n", "r.yaml"),
                    "r.yaml: proxy.admin: given twice (say it once)");
  CHECK_THROWS_WITH(kv::parse_ring_config("nodes:\n  - id: a\n    id: b\n    address: 127.0.0.1:1\n", "r.yaml"),
                    "r.yaml: nodes[0].id: given twice (say it once)");
}

TEST_CASE("an IPv6 address with a NUL inside is refused (found by fuzz_config)", "[config]") {
  CHECK_FALSE(kv::parse_host_port(std::string_view("[::1\0zz]:80", 11)));
  CHECK_FALSE(kv::parse_host_port(std::string_view("127.0.0.1\0:80", 13)));
  CHECK_FALSE(kv::parse_host_port(std::string_view("host\0name:80", 12)));
  CHECK(kv::parse_host_port("[::1]:80"));
}
