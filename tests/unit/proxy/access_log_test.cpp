// proxy/access_log.hpp: the exact line for a request (HAProxy's httplog shape), the timestamp's
// form, and AccessLog appending one whole line per write to a file, or to stderr for "-".
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "proxy/access_log.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace kv::proxy;
namespace fs = std::filesystem;

namespace {

using kv::testing::TempDir;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// dd/Mon/yyyy:hh:mm:ss.mmm
const std::string kClf = R"(\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2}\.\d{3})";

// The seconds since the epoch of a clf_now() text (UTC), milliseconds dropped.
std::time_t seconds_of(const std::string& clf) {
  std::tm tm{};
  const char* end = ::strptime(clf.c_str(), "%d/%b/%Y:%H:%M:%S", &tm);
  REQUIRE(end != nullptr);
  REQUIRE(*end == '.');
  return ::timegm(&tm);
}

AccessEntry relayed() {
  AccessEntry e;
  e.peer = "10.0.0.7:51234";
  e.method = "GET";
  e.target = "/kv/a?x=1";
  e.node = "n2";
  e.status = 200;
  e.bytes = 17;
  e.read_ms = 0.1234;
  e.connect_ms = 0.25;
  e.first_byte_ms = 1.5;
  e.total_ms = 2.0006;
  return e;
}

}  // namespace

TEST_CASE("format_access_line: a relayed answer, word for word", "[access_log]") {
  CHECK(format_access_line(relayed(), "25/Nov/2026:08:22:15.813") ==
        "10.0.0.7:51234 [25/Nov/2026:08:22:15.813] GET /kv/a?x=1 n2 200 17 Tr=0.123 Tc=0.250 Tf=1.500 Tt=2.001\n");
}

TEST_CASE("format_access_line: a pooled connection's Tc is -1.000", "[access_log]") {
  AccessEntry e = relayed();
  e.connect_ms = -1;
  e.method = "PUT";
  e.status = 204;
  e.bytes = 0;
  e.read_ms = 12;
  e.first_byte_ms = 0.0004;
  e.total_ms = 1234.5678;
  CHECK(format_access_line(e, "01/Jan/2027:00:00:00.000") ==
        "10.0.0.7:51234 [01/Jan/2027:00:00:00.000] PUT /kv/a?x=1 n2 204 0 Tr=12.000 Tc=-1.000 Tf=0.000 Tt=1234.568\n");
}

TEST_CASE("format_access_line: an answer no node made names node \"-\", Tc and Tf -1.000", "[access_log]") {
  AccessEntry e;  // connect_ms and first_byte_ms default to -1: no node was asked
  e.peer = "192.168.1.20:40000";
  e.method = "GET";
  e.target = "/health";
  e.node = "-";
  e.status = 400;
  e.bytes = 52;
  e.read_ms = 0.05;
  e.total_ms = 0.0626;
  CHECK(format_access_line(e, "25/Nov/2026:08:22:15.813") ==
        "192.168.1.20:40000 [25/Nov/2026:08:22:15.813] GET /health - 400 52 Tr=0.050 Tc=-1.000 Tf=-1.000 Tt=0.063\n");
}

TEST_CASE("format_access_line: a 503 for a node that is down, and a large body", "[access_log]") {
  AccessEntry e = relayed();
  e.status = 503;
  e.bytes = 18'446'744'073'709'551'615ull;
  e.connect_ms = -1;
  e.first_byte_ms = -1;
  CHECK(format_access_line(e, "x") ==
        "10.0.0.7:51234 [x] GET /kv/a?x=1 n2 503 18446744073709551615 Tr=0.123 Tc=-1.000 Tf=-1.000 Tt=2.001\n");
}

TEST_CASE("format_access_line: a long target is written whole", "[access_log]") {
  AccessEntry e = relayed();
  const std::string target = "/kv/" + std::string(8000, 'k');
  e.target = target;
  const std::string line = format_access_line(e, "t");
  CHECK(line == "10.0.0.7:51234 [t] GET " + target + " n2 200 17 Tr=0.123 Tc=0.250 Tf=1.500 Tt=2.001\n");
}

TEST_CASE("clf_now: dd/Mon/yyyy:hh:mm:ss.mmm, UTC, now", "[access_log]") {
  // The same clock as clf_now: std::time() reads the kernel's coarse clock, which can still be in
  // the last second when system_clock is already in the next one.
  const auto now_seconds = [] { return std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()); };
  const std::time_t before = now_seconds();
  const std::string t = clf_now();
  const std::time_t after = now_seconds();
  CHECK(t.size() == 24);
  CHECK(std::regex_match(t, std::regex(kClf)));
  const std::time_t at = seconds_of(t);
  CHECK(at >= before);
  CHECK(at <= after);
}

TEST_CASE("AccessLog: one line per write, appended to the file", "[access_log]") {
  TempDir dir;
  const fs::path path = dir.path / "access.log";
  {
    std::ofstream(path) << "a line from before\n";
  }
  const std::regex line_re("10\\.0\\.0\\.7:51234 \\[" + kClf +
                           "\\] GET /kv/a\\?x=1 n2 200 17 Tr=0\\.123 Tc=0\\.250 Tf=1\\.500 Tt=2\\.001");
  {
    AccessLog log(path.string());
    log.write(relayed());
    auto lines = lines_of(read_all(path));
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "a line from before");  // opened for appending, not truncated
    CHECK(std::regex_match(lines[1], line_re));

    AccessEntry e = relayed();
    e.node = "-";
    e.status = 404;
    log.write(e);
    log.write(relayed());
    const std::string text = read_all(path);
    CHECK(text.back() == '\n');
    lines = lines_of(text);
    REQUIRE(lines.size() == 4);
    CHECK(lines[2].find(" GET /kv/a?x=1 - 404 17 ") != std::string::npos);
    CHECK(std::regex_match(lines[3], line_re));
  }
  SECTION("a second log on the same file appends after the first's lines") {
    AccessLog again(path.string());
    again.write(relayed());
    const auto lines = lines_of(read_all(path));
    REQUIRE(lines.size() == 5);
    CHECK(lines[0] == "a line from before");
    CHECK(std::regex_match(lines[4], line_re));
  }
}

TEST_CASE("AccessLog: a file that cannot be opened is a runtime_error naming it", "[access_log]") {
  TempDir dir;
  const std::string path = (dir.path / "no-such-dir" / "access.log").string();
  CHECK_THROWS_MATCHES(AccessLog(path), std::runtime_error,
                       Catch::Matchers::Message("cannot open access log " + path + ": No such file or directory"));
}

TEST_CASE("AccessLog \"-\": lines go to stderr, which it does not close", "[access_log]") {
  TempDir dir;
  const fs::path path = dir.path / "stderr";
  const int saved = ::dup(2);
  REQUIRE(saved >= 0);
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(file >= 0);
  REQUIRE(::dup2(file, 2) == 2);
  ::close(file);
  {
    AccessLog log("-");
    log.write(relayed());
  }
  const bool still_open = ::fcntl(2, F_GETFD) != -1;
  ::dup2(saved, 2);
  ::close(saved);
  CHECK(still_open);
  const auto lines = lines_of(read_all(path));
  REQUIRE(lines.size() == 1);
  CHECK(std::regex_match(lines[0], std::regex("10\\.0\\.0\\.7:51234 \\[" + kClf + "\\] GET /kv/a\\?x=1 n2 200 17 .*")));
}
