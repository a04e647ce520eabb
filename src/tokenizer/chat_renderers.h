// The renderer of each chat format (internal to chat_format.cpp's dispatch).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "tokenizer/chat_format.h"

namespace dsinfer::tokenizer {

// The DeepSeek chat markers every format writes (full-width bars, as in the tokenizer).
inline constexpr std::string_view kUser = "<｜User｜>";
inline constexpr std::string_view kAssistant = "<｜Assistant｜>";
inline constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";

std::string render_deepseek_v3(std::span<const ChatMessage> messages, const ChatOptions& options,
                               std::string_view bos_token);
std::string render_deepseek_v3_1(std::span<const ChatMessage> messages, const ChatOptions& options,
                                 std::string_view bos_token);
std::string render_deepseek_v3_2(std::span<const ChatMessage> messages, const ChatOptions& options,
                                 std::string_view bos_token);

// Shared checks, with errors naming the message: "messages[3] (user): content is null or missing".
const std::string& required_content(const ChatMessage& m, size_t index);
[[noreturn]] void unknown_role(const ChatMessage& m, size_t index, std::string_view format);

}  // namespace dsinfer::tokenizer
