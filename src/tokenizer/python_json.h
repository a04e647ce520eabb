// JSON text as Python's json.dumps(value, ensure_ascii=False) writes it (", " and ": "
// separators, keys in their original order), which DeepSeek-V3.2's encoder embeds in prompts.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dsinfer::tokenizer {

std::string python_json_dumps(const nlohmann::ordered_json& value);

}  // namespace dsinfer::tokenizer
