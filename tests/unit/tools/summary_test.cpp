#include <catch2/catch.hpp>

#include "tools/summary.hpp"

using namespace kv;
using namespace kv::tools;

namespace {

const std::vector<Flow> kFlows{{"n1", "n4", {"127.0.0.1", 8081}, {"127.0.0.1", 8084}, {{0, 9}, {20, 29}}},
                               {"n2", "n4", {"127.0.0.1", 8082}, {"127.0.0.1", 8084}, {{10, 19}}}};

ApplySummary copied_now() {
  ApplySummary s{"0123456789abcdef", "fedcba9876543210", 0.25, 0.25, 2, kFlows, {}, false};
  s.copy.flows = {{100, 90}, {50, 50}};
  s.copy.keys = 152;
  s.copy.bytes = 3 << 20;
  s.copy.seconds = 1.23456;
  return s;
}

}  // namespace

TEST_CASE("summary after a copy in this run", "[summary]") {
  const ApplySummary s = copied_now();
  CHECK(summary_line(s) ==
        "done: ring fedcba9876543210 on 2 proxies; 152 keys (3.0 MiB) copied in 1.234 s, 140 written, "
        "12 already there or deleted meanwhile");
  CHECK(summary_json(s) ==
        R"({"status":"success","from":"0123456789abcdef","to":"fedcba9876543210","moved_share":2.5E-1,)"
        R"("ideal_share":2.5E-1,"copied":true,"keys_copied":152,"keys_written":140,"bytes_copied":3145728,)"
        R"("copy_seconds":1.23456E0,"flows":[{"from":"n1","to":"n4","ranges":2,"keys":100,"written":90},)"
        R"({"from":"n2","to":"n4","ranges":1,"keys":50,"written":50}]})");
}

TEST_CASE("summary when an earlier run had finished the copy", "[summary]") {
  ApplySummary s{"0123456789abcdef", "fedcba9876543210", 0.25, 0.25, 1, kFlows, {}, true};
  CHECK(summary_line(s) == "done: ring fedcba9876543210 on 1 proxies; the copy had finished in an earlier run");
  CHECK(summary_json(s) ==
        R"({"status":"success","from":"0123456789abcdef","to":"fedcba9876543210","moved_share":2.5E-1,)"
        R"("ideal_share":2.5E-1,"copied":false,"keys_copied":0,"keys_written":0,"bytes_copied":0,)"
        R"("copy_seconds":0E0,"flows":[{"from":"n1","to":"n4","ranges":2,"keys":0,"written":0},)"
        R"({"from":"n2","to":"n4","ranges":1,"keys":0,"written":0}]})");
}
