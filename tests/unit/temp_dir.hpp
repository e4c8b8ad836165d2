// A fresh directory under /tmp (kvring-test-XXXXXX) for one test, removed with everything in it when the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace kv::testing {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = "/tmp/kvring-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;  // never throw from a destructor; a leftover directory is only litter
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace kv::testing
