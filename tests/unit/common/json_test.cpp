#include <catch2/catch.hpp>

#include "common/json.hpp"
#include "common/metrics.hpp"

TEST_CASE("API bodies", "[json]") {
  CHECK(kv::json_success() == R"({"status":"success"})");
  CHECK(kv::json_value("V") == R"({"status":"success","value":"V"})");
  CHECK(kv::json_error("Key not found") == R"({"status":"error","detail":"Key not found"})");
  CHECK(kv::json_value("a\"b\\c\n\x01") == R"({"status":"success","value":"a\"b\\c\n\u0001"})");
  CHECK(kv::json_value("\xE2\x82\xAC") == "{\"status\":\"success\",\"value\":\"\xE2\x82\xAC\"}");
}

TEST_CASE("PUT bodies", "[json]") {
  std::string v, d;
  CHECK(kv::parse_put_body(R"({"value":"V"})", v, d));
  CHECK(v == "V");
  CHECK(kv::parse_put_body(R"({"value":"a\u00e9\n\"","other":1})", v, d));
  CHECK(v == "a\xC3\xA9\n\"");
  CHECK(kv::parse_put_body(R"({"value":"\ud83d\ude00"})", v, d));  // surrogate pair
  CHECK(v == "\xF0\x9F\x98\x80");
  CHECK(kv::parse_put_body(R"({"value":""})", v, d));
  CHECK(v.empty());

  CHECK_FALSE(kv::parse_put_body("", v, d));
  CHECK(d.rfind("Invalid JSON body", 0) == 0);
  CHECK_FALSE(kv::parse_put_body("{\"value\":\"x\"", v, d));
  CHECK(d.rfind("Invalid JSON body", 0) == 0);
  CHECK_FALSE(kv::parse_put_body("{\"value\":\"\xff\"}", v, d));  // invalid UTF-8
  CHECK(d.rfind("Invalid JSON body", 0) == 0);
  CHECK_FALSE(kv::parse_put_body(R"(["value"])", v, d));
  CHECK(d == "Body must be a JSON object with a string field 'value'");
  CHECK_FALSE(kv::parse_put_body(R"({"val":"x"})", v, d));
  CHECK(d == "Missing field 'value'");
  CHECK_FALSE(kv::parse_put_body(R"({"value":1})", v, d));
  CHECK(d == "Field 'value' must be a string");
  CHECK_FALSE(kv::parse_put_body(R"({"value":null})", v, d));
  CHECK(d == "Field 'value' must be a string");
  CHECK_FALSE(kv::parse_put_body(std::string(100, '[') + std::string(100, ']'), v, d));  // too deep
}

TEST_CASE("histogram renders cumulative Prometheus buckets", "[metrics]") {
  kv::metrics::Histogram h;
  h.observe_ns(30'000);       // 30 us: first bucket
  h.observe_ns(2'000'000);    // 2 ms: le=0.0025
  h.observe_ns(20'000'000'000ULL);  // 20 s: only +Inf
  std::string out;
  h.render(out, "x_seconds", "node=\"n1\"");
  CHECK(out.find("x_seconds_bucket{node=\"n1\",le=\"5e-05\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{node=\"n1\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{node=\"n1\",le=\"0.0025\"} 2\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{node=\"n1\",le=\"10\"} 2\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{node=\"n1\",le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_count{node=\"n1\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_sum{node=\"n1\"} 20.002") != std::string::npos);
  CHECK(h.quantile(0.5) == 0.0025);
  CHECK(kv::metrics::label_value("a\"b\\") == "a\\\"b\\\\");
}
