// DeepSeek's chat formats, rendered natively (no Jinja engine):
//  - deepseek_v3:   the chat_template of DeepSeek-V3's tokenizer_config.json;
//  - deepseek_v3_1: the DeepSeek-V3.1 template (also shipped by V3.1-Terminus, V3.2-Exp), with
//                   thinking (<｜Assistant｜><think>) and non-thinking (<｜Assistant｜></think>);
//  - deepseek_v3_2: DeepSeek-V3.2's encoding_dsv32.py (chat and thinking modes, DSML tool calls).
// The rendered text is tokenized with special tokens allowed, so <think> becomes one token when
// the tokenizer has it and ordinary text otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_message.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer {

enum class ChatFormat { deepseek_v3, deepseek_v3_1, deepseek_v3_2 };

struct ChatOptions {
  // End with the opening of the assistant's turn (the model's cue to answer).
  bool add_generation_prompt = false;
  // V3.1 / V3.2 thinking mode: the assistant turn opens with <think>.
  bool thinking = false;
  // The request's OpenAI `tools` array and `response_format` (null: none). The V3.2 format
  // renders them exactly as if they were attached to the first system message (one with empty
  // content is put first when there is none), which is how DeepSeek-V3.2's encoder takes them;
  // that message must not carry its own. Key order is rendered, so parse the request with
  // nlohmann::ordered_json (Python's json.dumps, which the model was trained on, keeps the
  // client's order; nlohmann::json would sort the keys). The V3 and V3.1 templates have no tool
  // or response-format rendering, so those formats reject them (naming the field).
  //
  // There is no tool_choice: the V3.2 encoding has no way to express it (no prompt text, no
  // marker). "none" can be honoured by leaving out `tools`; "required" or a named function would
  // need constrained decoding, which is not the prompt's business.
  nlohmann::ordered_json tools = nullptr;
  nlohmann::ordered_json response_format = nullptr;
};

// "v3", "v3.1", "v3.2".
std::string_view chat_format_name(ChatFormat format);
std::optional<ChatFormat> chat_format_from_name(std::string_view name);

// The format a model directory calls for: config.json's architectures naming
// DeepseekV32ForCausalLM -> V3.2; else a tokenizer_config.json chat_template that writes
// <｜Assistant｜></think> (V3.1's non-thinking opening; R1's template mentions </think> too, but
// not this) -> V3.1; else V3. Throws std::invalid_argument naming a file with bad JSON.
ChatFormat default_chat_format(const std::string& model_dir);

// The conversation as text. `bos_token` is the tokenizer's BOS text (the templates start with
// it). Throws std::invalid_argument naming the message for input the format cannot render
// (unknown role, missing content, thinking with the V3 format, ...).
std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages,
                        const ChatOptions& options, std::string_view bos_token);

// render_chat with the tokenizer's BOS, then encode with special tokens allowed.
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, ChatFormat format,
                                 std::span<const ChatMessage> messages, const ChatOptions& options);

}  // namespace dsinfer
