// Typed access to JSON fields with errors that name the file and the field
// ("tokenizer.json: model.merges[12]: expected a string"). Templates over nlohmann's json and
// ordered_json (chat messages keep their key order: it is rendered into prompts).
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace dsinfer::tokenizer {

// `where` is the path of `obj`, e.g. "tokenizer.json: model".
[[noreturn]] void json_error(const std::string& where, const std::string& problem);

// obj[key], which must exist. Throws naming where.key.
template <class Json>
const Json& json_required(const Json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) json_error(where, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) json_error(where, std::string("missing field \"") + key + "\"");
  return *it;
}

template <class Json>
std::string json_string(const Json& obj, const char* key, const std::string& where) {
  const Json& v = json_required(obj, key, where);
  if (!v.is_string()) json_error(where + "." + key, "expected a string, got " + v.dump());
  return v.template get<std::string>();
}

// obj[key] as a bool; `fallback` when the key is absent or null.
template <class Json>
bool json_bool(const Json& obj, const char* key, const std::string& where, bool fallback) {
  if (!obj.is_object()) json_error(where, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) json_error(where + "." + key, "expected true or false, got " + it->dump());
  return it->template get<bool>();
}

}  // namespace dsinfer::tokenizer
