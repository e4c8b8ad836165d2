// The lines ring-rebalance apply writes while it works, each opening "ring-rebalance: ". The stream
// is a parameter so that tests read what an operator would see; the default is stderr, leaving
// stdout to the --json summary.
#pragma once

#include <iostream>
#include <string_view>

namespace kv::tools {

class Log {
 public:
  Log() : out_(&std::cerr) {}
  explicit Log(std::ostream& out) : out_(&out) {}

  // Flushed at once: the operator watches a long copy, and a killed run should have said how far it got.
  void line(std::string_view text) const { *out_ << "ring-rebalance: " << text << std::endl; }
  void step(std::string_view what) const { *out_ << "ring-rebalance: step: " << what << std::endl; }
  std::ostream& stream() const { return *out_; }

 private:
  std::ostream* out_;  // not owned; outlives the Log
};

}  // namespace kv::tools
