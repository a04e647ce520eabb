// JSON text as Python's json.dumps(value, ensure_ascii=False) writes it (", " and ": "
// separators, keys in their original order), which DeepSeek-V3.2's encoder embeds in prompts
// and its output parser writes tool-call arguments with.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dsinfer::tokenizer {

std::string python_json_dumps(const nlohmann::ordered_json& value);

// Appends the characters of `s` escaped as inside a JSON string by json.dumps with
// ensure_ascii=False: '"', '\\' and control characters below U+0020 (\n, \t, ... or \u00xx);
// everything else, non-ASCII included, is copied as is. No quotes are added.
void append_python_json_escaped(std::string& out, std::string_view s);

// `s` as a quoted JSON string, escaped as above.
std::string python_json_string(std::string_view s);

// Python's truth value of the JSON value: false for null, false, 0, "", [] and {}.
bool python_truthy(const nlohmann::ordered_json& value);

}  // namespace dsinfer::tokenizer
