#include "tokenizer/json_fields.h"

namespace dsinfer::tokenizer {

void json_error(const std::string& where, const std::string& problem) {
  throw std::invalid_argument(where + ": " + problem);
}

const nlohmann::json& json_required(const nlohmann::json& obj, const char* key,
                                    const std::string& where) {
  if (!obj.is_object()) json_error(where, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) json_error(where, std::string("missing field \"") + key + "\"");
  return *it;
}

std::string json_string(const nlohmann::json& obj, const char* key, const std::string& where) {
  const nlohmann::json& v = json_required(obj, key, where);
  if (!v.is_string()) json_error(where + "." + key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

bool json_bool(const nlohmann::json& obj, const char* key, const std::string& where,
               bool fallback) {
  if (!obj.is_object()) json_error(where, "expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) json_error(where + "." + key, "expected true or false, got " + it->dump());
  return it->get<bool>();
}

}  // namespace dsinfer::tokenizer
