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
  std::optional<std::string> reasoning_content;         // "reasoning_content" or "reasoning"
  std::optional<std::vector<ChatToolCall>> tool_calls;  // nullopt: null or absent
  bool prefix = false;                                  // V3.1: an assistant turn to be continued
  // Fields present in the JSON that only V3.2's encoder would render ("tools",
  // "response_format"); not implemented, so the V3.2 format rejects them.
  std::vector<std::string> unrendered_fields;
};

// Parses a JSON array of messages; throws std::invalid_argument naming the message and field
// ("messages[2].content: expected a string or null").
std::vector<ChatMessage> chat_messages_from_json(const nlohmann::json& messages);
std::vector<ChatMessage> parse_chat_messages(std::string_view json_text);

}  // namespace dsinfer
