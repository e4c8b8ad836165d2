// Command-line parsing with the project's exit-code contract, for every kvring binary:
// --help and --version print and exit 0; any usage error prints "NAME: reason" and exits 2.
// Header-only, so kv_common itself does not depend on CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>

namespace kv {

// Returns an exit code when the program should stop now, nullopt to go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": " << e.what() << "\nRun with --help for usage." << std::endl;
    return 2;
  }
  return std::nullopt;
}

}  // namespace kv
