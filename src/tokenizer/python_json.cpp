#include "tokenizer/python_json.h"

namespace dsinfer::tokenizer {
namespace {

void dump(const nlohmann::ordered_json& v, std::string& out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += nlohmann::ordered_json(it.key()).dump();
      out += ": ";
      dump(it.value(), out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      dump(v[i], out);
    }
    out += ']';
  } else {
    // Scalars: nlohmann escapes strings as Python does with ensure_ascii=False (only '"',
    // '\\' and control characters) and prints floats in shortest round-trip form.
    out += v.dump();
  }
}

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value) {
  std::string out;
  dump(value, out);
  return out;
}

}  // namespace dsinfer::tokenizer
