// Typed access to tokenizer.json fields with errors that name the file and the field
// ("tokenizer.json: model.merges[12]: expected a string").
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace dsinfer::tokenizer {

// `where` is the path of `obj`, e.g. "tokenizer.json: model".
[[noreturn]] void json_error(const std::string& where, const std::string& problem);

// obj[key], which must exist. Throws naming where.key.
const nlohmann::json& json_required(const nlohmann::json& obj, const char* key,
                                    const std::string& where);
std::string json_string(const nlohmann::json& obj, const char* key, const std::string& where);
// obj[key] as a bool; `fallback` when the key is absent or null.
bool json_bool(const nlohmann::json& obj, const char* key, const std::string& where, bool fallback);

}  // namespace dsinfer::tokenizer
