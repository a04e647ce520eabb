#include "tokenizer/chat_message.h"

#include <stdexcept>

#include "tokenizer/json_fields.h"

namespace dsinfer {

using tokenizer::json_error;
using tokenizer::json_required;
using tokenizer::json_string;
using Json = nlohmann::ordered_json;

namespace {

std::optional<std::string> optional_string(const Json& obj, const char* key,
                                           const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    json_error(where + "." + key, "expected a string or null, got " + it->dump());
  return it->get<std::string>();
}

// "content": a string, null, or an array of text parts ({"type": "text", "text": "..."}), which
// are joined with newlines as vLLM does for text-only models.
std::optional<std::string> content_of(const Json& m, const std::string& where) {
  auto it = m.find("content");
  if (it == m.end() || !it->is_array()) return optional_string(m, "content", where);
  std::string out;
  for (size_t k = 0; k < it->size(); ++k) {
    const std::string at = where + ".content[" + std::to_string(k) + "]";
    const Json& part = (*it)[k];
    if (part.is_string()) {  // tolerated: a bare string part
      out += (k ? "\n" : "") + part.get<std::string>();
      continue;
    }
    if (!part.is_object()) json_error(at, "expected a {\"type\": \"text\", \"text\": ...} part");
    const std::string type = json_string(part, "type", at);
    if (type != "text")
      json_error(at + ".type", "\"" + type + "\" parts are not supported (text only)");
    out += (k ? "\n" : "") + json_string(part, "text", at);
  }
  return out;
}

ChatToolCall parse_tool_call(const Json& t, const std::string& where) {
  if (!t.is_object()) json_error(where, "expected an object");
  ChatToolCall call;
  if (auto type = optional_string(t, "type", where)) call.type = *type;
  const Json& fn = json_required(t, "function", where);
  call.name = json_string(fn, "name", where + ".function");
  call.arguments = json_string(fn, "arguments", where + ".function");
  return call;
}

}  // namespace

void check_chat_tools(const Json& tools, const std::string& where) {
  if (!tools.is_array())
    json_error(where, "expected an array of {\"type\": \"function\", \"function\": {...}}, got " +
                          tools.dump());
  for (size_t k = 0; k < tools.size(); ++k) {
    std::string at = where + "[" + std::to_string(k) + "]";
    const Json& fn = json_required(tools[k], "function", at);
    if (!fn.is_object()) json_error(at + ".function", "expected an object, got " + fn.dump());
    json_string(fn, "name", at + ".function");
  }
}

std::vector<ChatMessage> chat_messages_from_json(const Json& messages) {
  if (!messages.is_array())
    throw std::invalid_argument(
        "messages: expected a JSON array of {\"role\", \"content\"} objects");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string where = "messages[" + std::to_string(i) + "]";
    const Json& m = messages[i];
    if (!m.is_object()) json_error(where, "expected an object, got " + m.dump());
    ChatMessage msg;
    msg.role = json_string(m, "role", where);
    msg.content = content_of(m, where);
    // V3.2's encoder reads "reasoning" first and falls back to "reasoning_content".
    msg.reasoning_content = optional_string(m, "reasoning", where);
    if (!msg.reasoning_content || msg.reasoning_content->empty())
      msg.reasoning_content = optional_string(m, "reasoning_content", where);
    if (auto it = m.find("tool_calls"); it != m.end() && !it->is_null()) {
      if (!it->is_array()) json_error(where + ".tool_calls", "expected an array or null");
      msg.tool_calls.emplace();
      for (size_t k = 0; k < it->size(); ++k)
        msg.tool_calls->push_back(
            parse_tool_call((*it)[k], where + ".tool_calls[" + std::to_string(k) + "]"));
    }
    msg.prefix = tokenizer::json_bool(m, "prefix", where, false);
    if (auto it = m.find("tools"); it != m.end() && !it->is_null()) {
      check_chat_tools(*it, where + ".tools");
      msg.tools = *it;
    }
    if (auto it = m.find("response_format"); it != m.end()) msg.response_format = *it;
    out.push_back(std::move(msg));
  }
  return out;
}

std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& messages) {
  return chat_messages_from_json(Json(messages));
}

std::vector<ChatMessage> parse_chat_messages(std::string_view json_text) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::invalid_argument(std::string("messages: invalid JSON: ") + e.what());
  }
  return chat_messages_from_json(j);
}

}  // namespace dsinfer
