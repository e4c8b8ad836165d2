// The client API's JSON bodies. Values are strings of any UTF-8; Boost.JSON escapes them on output
// and refuses invalid UTF-8 on input.
#pragma once

#include <string>
#include <string_view>

namespace kv {

std::string json_success();                               // {"status":"success"}
std::string json_value(std::string_view value);           // {"status":"success","value":"..."}
std::string json_error(std::string_view detail);          // {"status":"error","detail":"..."}

// Parses a PUT body {"value": "V"}. On success returns true and sets `value`; otherwise sets
// `detail` to the reason (bad JSON, not an object, value missing, value not a string).
bool parse_put_body(std::string_view body, std::string& value, std::string& detail);

// A JSON string literal with quotes, for hand-built documents.
std::string json_quote(std::string_view s);

}  // namespace kv
