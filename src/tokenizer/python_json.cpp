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
      out += python_json_string(it.key());
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
  } else if (v.is_string()) {
    out += python_json_string(v.get_ref<const std::string&>());
  } else {
    // Numbers, booleans, null: nlohmann prints floats in shortest round-trip form, as
    // Python's repr does.
    out += v.dump();
  }
}

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value) {
  std::string out;
  dump(value, out);
  return out;
}

void append_python_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
}

std::string python_json_string(std::string_view s) {
  std::string out = "\"";
  append_python_json_escaped(out, s);
  out += '"';
  return out;
}

bool python_truthy(const nlohmann::ordered_json& value) {
  if (value.is_null() || value.is_discarded()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0;
  if (value.is_string()) return !value.get_ref<const std::string&>().empty();
  if (value.is_array() || value.is_object()) return !value.empty();
  return true;
}

}  // namespace dsinfer::tokenizer
