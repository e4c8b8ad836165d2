#include <catch2/catch.hpp>

#include "common/key.hpp"
#include "common/storage_key.hpp"

using kv::extract_key;
using kv::KeyError;

TEST_CASE("key extraction: the first key parameter, percent-decoded", "[key]") {
  CHECK(extract_key("/get?key=abc").key == "abc");
  CHECK(extract_key("/get?x=1&key=abc&y=2").key == "abc");
  CHECK(extract_key("/get?key=first&key=second").key == "first");
  CHECK(extract_key("/get?key=a%2Fb").key == "a/b");
  CHECK(extract_key("/get?key=a%2fb").key == "a/b");
  CHECK(extract_key("/get?key=a+b").key == "a b");
  CHECK(extract_key("/get?key=a%2Bb").key == "a+b");
  CHECK(extract_key("/get?key=%E2%82%AC").key == "\xE2\x82\xAC");  // the euro sign, as UTF-8
  CHECK(extract_key("/get?key=a=b").key == "a=b");                 // only the first '=' splits
  CHECK(extract_key("/get?k%65y=v").key == "v");                   // names are decoded too
  CHECK(extract_key("/get?key=v#frag").key == "v");
  CHECK(extract_key("/get?keys=1&mykey=2&key=3").key == "3");      // whole-name match only
  CHECK(extract_key("/get?key=v;w").key == "v;w");
}

TEST_CASE("key extraction: distinct errors", "[key]") {
  CHECK(extract_key("/get").error == KeyError::missing);
  CHECK(extract_key("/get?").error == KeyError::missing);
  CHECK(extract_key("/get?other=1").error == KeyError::missing);
  CHECK(extract_key("/get?key").error == KeyError::empty);
  CHECK(extract_key("/get?key=").error == KeyError::empty);
  CHECK(extract_key("/get?key=&key=x").error == KeyError::empty);  // the first wins, even empty
  CHECK(extract_key("/get?key=%").error == KeyError::bad_encoding);
  CHECK(extract_key("/get?key=%4").error == KeyError::bad_encoding);
  CHECK(extract_key("/get?key=%zz").error == KeyError::bad_encoding);
  CHECK(extract_key("/get?key=a%g1").error == KeyError::bad_encoding);
  CHECK(extract_key("/get?key=a%00b").error == KeyError::control_char);
  CHECK(extract_key("/get?key=a%0Ab").error == KeyError::control_char);
  CHECK(extract_key("/get?key=a%7F").error == KeyError::control_char);
  CHECK(extract_key("/get?key=" + std::string(10, 'x'), 10).error == KeyError::none);
  CHECK(extract_key("/get?key=" + std::string(11, 'x'), 10).error == KeyError::too_long);
  CHECK(extract_key("/get?key=" + std::string(31, '%'), 10).error == KeyError::too_long);  // before decoding
  CHECK(extract_key("/get?key=%41%41%41", 3).key == "AAA");  // the limit is on the decoded key
  CHECK(extract_key("/get?key=%").key.empty());
  CHECK(kv::key_error_detail(KeyError::missing) == "Missing key parameter");
}

TEST_CASE("key extraction at every split of the query is consistent", "[key]") {
  // Whatever precedes the key parameter, the answer depends only on the parameter itself.
  const std::string tail = "key=%E2%82%AC+x%2F";
  for (std::size_t pad = 0; pad < 40; ++pad) {
    const std::string target = "/get?" + std::string(pad, 'p') + "=1&" + tail;
    REQUIRE(extract_key(target).key == "\xE2\x82\xAC x/");
  }
}

TEST_CASE("target path", "[key]") {
  CHECK(kv::target_path("/get?key=1") == "/get");
  CHECK(kv::target_path("/get") == "/get");
  CHECK(kv::target_path("/a#b") == "/a");
}

TEST_CASE("storage keys sort in ring order", "[key]") {
  const std::string a = kv::storage_key("k", 0x0100000000000000ULL);
  const std::string b = kv::storage_key("a", 0x0200000000000000ULL);
  CHECK(a < b);  // the hash decides, not the key bytes
  CHECK(a.size() == 9);
  CHECK(kv::read_be64(a) == 0x0100000000000000ULL);
  CHECK(kv::user_key(a) == "k");
  CHECK(kv::read_be64(kv::storage_key("hello")) == kv::hash_key("hello"));
}

TEST_CASE("query_value returns the raw value of the first parameter with that name", "[key]") {
  CHECK(kv::query_value("/admin/scan?limit=10&after=00ff", "after") == "00ff");
  CHECK(kv::query_value("/admin/scan?limit=10&limit=20", "limit") == "10");
  CHECK(kv::query_value("/admin/scan?limits=10", "limit").empty());
  CHECK(kv::query_value("/admin/scan", "limit").empty());
  CHECK(kv::query_value("/x?a=1#frag", "a") == "1");
  CHECK(kv::query_value("/x?flag&a=%41", "a") == "%41");
}
