// A chat completion request's conversation turned into the prompt the model sees: the messages,
// tools, tool_choice, response_format and thinking flag, rendered in the model's chat format.
// Shared by /v1/chat/completions and /tokenize.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/context.h"
#include "tokenizer/chat_format.h"

namespace dsinfer::server {

struct ChatPrompt {
  std::vector<int32_t> tokens;
  bool thinking = false;         // the output starts inside the reasoning
  nlohmann::ordered_json tools;  // for typing tool-call arguments (null: none)
  // Markup appended after the generation prompt to force a tool call (tool_choice "required" or
  // a named function); the output parser reads it first.
  std::string forced_prefix;
};

// Throws ApiError (400 naming the field) for anything the format cannot render.
ChatPrompt render_chat_request(const ServerContext& ctx, const nlohmann::ordered_json& body);

}  // namespace dsinfer::server
