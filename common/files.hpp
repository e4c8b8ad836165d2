// Whole files: read, and written so that a reader never sees a part (ring files, the rebalance state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kv {

// A whole file; nullopt when it cannot be opened, with errno saying why.
std::optional<std::string> read_file(const std::string& path);
// The file's bytes; nullopt when it does not exist. Throws std::runtime_error on other errors.
std::optional<std::string> read_file_if_exists(const std::string& path);
// Writes `text` to `path` through a temporary file, fsync and rename: readers see the old file or
// the new one, never a part. Throws std::runtime_error("cannot write PATH: reason").
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace kv
