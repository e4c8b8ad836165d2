#include "tools/summary.hpp"

#include <boost/json.hpp>

#include "tools/progress.hpp"

namespace kv::tools {
namespace {

namespace json = boost::json;

std::uint64_t written(const CopyResult& c) {
  std::uint64_t w = 0;
  for (const auto& f : c.flows) w += f.written;
  return w;
}

// The copy's numbers for flow i; zero when this run did not copy.
FlowCopy flow_copy(const ApplySummary& s, std::size_t i) { return i < s.copy.flows.size() ? s.copy.flows[i] : FlowCopy{}; }

}  // namespace

std::string summary_line(const ApplySummary& s) {
  const std::uint64_t w = written(s.copy);
  return "done: ring " + s.to_fingerprint + " on " + std::to_string(s.proxies) + " proxies; " +
         (s.copied_before ? std::string("the copy had finished in an earlier run")
                          : std::to_string(s.copy.keys) + " keys (" + human_bytes(static_cast<double>(s.copy.bytes)) +
                                ") copied in " + std::to_string(s.copy.seconds).substr(0, 5) + " s, " +
                                std::to_string(w) + " written, " + std::to_string(s.copy.keys - w) +
                                " already there or deleted meanwhile");
}

std::string summary_json(const ApplySummary& s) {
  json::object o;
  o["status"] = "success";
  o["from"] = s.from_fingerprint;
  o["to"] = s.to_fingerprint;
  o["moved_share"] = s.moved;
  o["ideal_share"] = s.ideal_moved;
  o["copied"] = !s.copied_before;
  o["keys_copied"] = s.copy.keys;
  o["keys_written"] = written(s.copy);
  o["bytes_copied"] = s.copy.bytes;
  o["copy_seconds"] = s.copy.seconds;
  json::array flows;
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    const Flow& f = s.flows[i];
    const FlowCopy c = flow_copy(s, i);
    json::object fo;
    fo["from"] = f.from_id;
    fo["to"] = f.to_id;
    fo["ranges"] = f.ranges.size();
    fo["keys"] = c.keys;
    fo["written"] = c.written;
    flows.push_back(std::move(fo));
  }
  o["flows"] = std::move(flows);
  return json::serialize(o);
}

}  // namespace kv::tools
