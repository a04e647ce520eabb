// Chat messages in the OpenAI/HF shape the chat templates take:
// [{"role": "user", "content": "..."}, {"role": "assistant", "content": null,
//   "tool_calls": [{"type": "function", "function": {"name": ..., "arguments": "{...}"}}]}, ...]
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsinfer {

struct ChatToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, as the API carries it
};

struct ChatMessage {
  std::string role;                    // system, user, assistant, tool (V3.2 also: developer)
  std::optional<std::string> content;  // nullopt: null or absent
  std::optional<std::string> reasoning_content;         // "reasoning" or "reasoning_content"
  std::optional<std::vector<ChatToolCall>> tool_calls;  // nullopt: null or absent
  bool prefix = false;                                  // V3.1: an assistant turn to be continued
  // An OpenAI `tools` array ([{"type": "function", "function": {"name", "description",
  // "parameters"}}]) and a `response_format` carried by the message, as DeepSeek-V3.2's encoder
  // takes them on system and developer messages; null when absent. Their keys keep the order of
  // the input, since the V3.2 format writes them into the prompt as Python's json.dumps does.
  // The V3 and V3.1 formats ignore them, as their Jinja templates do.
  nlohmann::ordered_json tools = nullptr;
  nlohmann::ordered_json response_format = nullptr;
};

// Parses a JSON array of messages; throws std::invalid_argument naming the message and field
// ("messages[2].content: expected a string or null"). Parse the text with ordered_json (as
// parse_chat_messages does) to keep the key order of tools; a nlohmann::json argument has its
// object keys sorted already.
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::ordered_json& messages);
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& messages);
std::vector<ChatMessage> parse_chat_messages(std::string_view json_text);

// Checks an OpenAI `tools` array: an array of objects, each with a "function" object that has
// a string "name". Throws std::invalid_argument naming `where` and the element.
void check_chat_tools(const nlohmann::ordered_json& tools, const std::string& where);

}  // namespace dsinfer
