// The Jinja chat templates of DeepSeek-V3 and DeepSeek-V3.1, rendered statement by statement.
// Their quirks are kept on purpose so that the text matches what Jinja produces: system
// prompts are hoisted to the front (joined by a blank line); in V3 the "first tool call" flag
// and the "first tool output" flag are never reset across turns, and only a second tool call
// closes the tool-call block; in V3.1 everything before </think> in a past answer is dropped.
#include <stdexcept>

#include "tokenizer/chat_renderers.h"
#include "tokenizer/python_json.h"

namespace dsinfer::tokenizer {
namespace {

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr std::string_view kOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr std::string_view kOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr std::string_view kOutputBegin = "<｜tool▁output▁begin｜>";
constexpr std::string_view kOutputEnd = "<｜tool▁output▁end｜>";

template <class... Parts>
void append(std::string& out, const Parts&... parts) {
  (out.append(parts), ...);
}

// Both templates start with BOS and every system message's content, in order.
std::string bos_and_system_prompt(std::span<const ChatMessage> messages,
                                  std::string_view bos_token) {
  std::string out(bos_token);
  bool first = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "system") continue;
    if (!first) out += "\n\n";
    out += required_content(messages[i], i);
    first = false;
  }
  return out;
}

// Request-level tools for V3.1 (and V3.2-Exp, which uses its format), as DeepSeek-V3.1's model
// card lays them out in the system prompt: each tool's name, description and JSON-schema
// parameters, then the call format the model was trained on.
std::string v31_tools_prompt(const nlohmann::ordered_json& tools) {
  check_chat_tools(tools, "tools");  // an array of {"function": {"name": ...}}
  auto text = [](const nlohmann::ordered_json& f, const char* key) {
    auto it = f.find(key);
    if (it == f.end() || it->is_null()) return std::string();
    return it->is_string() ? it->get<std::string>() : python_json_dumps(*it);
  };
  std::string out = "## Tools\nYou have access to the following tools:\n";
  for (const auto& tool : tools) {
    const auto& f = tool["function"];
    out += "\n### " + text(f, "name") + "\n";
    out += "Description: " + text(f, "description") + "\n";
    out +=
        "\nParameters: " + (f.contains("parameters") ? python_json_dumps(f["parameters"]) : "{}") +
        "\n";
  }
  out += "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n";
  out += std::string(kCallsBegin) + std::string(kCallBegin) + "tool_call_name" + std::string(kSep) +
         "tool_call_arguments" + std::string(kCallEnd) + "{{additional_tool_calls}}" +
         std::string(kCallsEnd) + "\n";
  out += "\nWhere:\n\n";
  out += "- `tool_call_name` must be an exact match to one of the available tools\n";
  out +=
      "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters "
      "Schema\n";
  out += "- For multiple tool calls, chain them directly without separators or spaces\n";
  return out;
}

void check_role(const ChatMessage& m, size_t i, std::string_view format) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool")
    unknown_role(m, i, format);
}

}  // namespace

std::string render_deepseek_v3(std::span<const ChatMessage> messages, const ChatOptions& options,
                               std::string_view bos_token) {
  if (options.thinking)
    throw std::invalid_argument("the v3 chat format has no thinking mode (use v3.1 or v3.2)");
  std::string out = bos_and_system_prompt(messages, bos_token);
  bool is_first = false, is_tool = false, is_output_first = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    check_role(m, i, "v3");
    if (m.role == "user") {
      is_tool = false;
      append(out, kUser, required_content(m, i));
    } else if (m.role == "assistant" && !m.content) {
      if (!m.tool_calls)
        throw std::invalid_argument("messages[" + std::to_string(i) +
                                    "] (assistant): needs content or tool_calls");
      is_tool = false;
      for (const ChatToolCall& call : *m.tool_calls) {
        if (!is_first) {
          append(out, kAssistant, kCallsBegin, kCallBegin, call.type, kSep, call.name,
                 "\n```json\n", call.arguments, "\n```", kCallEnd);
          is_first = true;
        } else {
          append(out, "\n", kCallBegin, call.type, kSep, call.name, "\n```json\n", call.arguments,
                 "\n```", kCallEnd, kCallsEnd, kEos);
        }
      }
    } else if (m.role == "assistant") {
      if (is_tool) {
        append(out, kOutputsEnd, *m.content, kEos);
        is_tool = false;
      } else {
        append(out, kAssistant, *m.content, kEos);
      }
    } else if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        append(out, kOutputsBegin, kOutputBegin, required_content(m, i), kOutputEnd);
        is_output_first = false;
      } else {
        append(out, "\n", kOutputBegin, required_content(m, i), kOutputEnd);
      }
    }
  }
  if (is_tool) out += kOutputsEnd;
  if (options.add_generation_prompt && !is_tool) out += kAssistant;
  return out;
}

std::string render_deepseek_v3_1(std::span<const ChatMessage> messages, const ChatOptions& options,
                                 std::string_view bos_token) {
  std::string out = bos_and_system_prompt(messages, bos_token);
  if (python_truthy(options.tools)) {
    if (out.size() > bos_token.size()) out += "\n\n";
    out += v31_tools_prompt(options.tools);
  }
  bool is_first = false, is_tool = false, is_last_user = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    check_role(m, i, "v3.1");
    if (m.role == "user") {
      is_tool = false;
      is_first = false;
      is_last_user = true;
      append(out, kUser, required_content(m, i));
    } else if (m.role == "assistant" && m.tool_calls) {
      if (is_last_user) append(out, kAssistant, "</think>");
      is_last_user = false;
      is_first = false;
      is_tool = false;
      for (const ChatToolCall& call : *m.tool_calls) {
        if (!is_first) {
          if (m.content) out += *m.content;
          append(out, kCallsBegin, kCallBegin, call.name, kSep, call.arguments, kCallEnd);
          is_first = true;
        } else {
          append(out, kCallBegin, call.name, kSep, call.arguments, kCallEnd);
        }
      }
      append(out, kCallsEnd, kEos);
    } else if (m.role == "assistant") {
      if (is_last_user) {
        out += kAssistant;
        out += m.prefix && options.thinking ? "<think>" : "</think>";
      }
      is_last_user = false;
      const std::string& content = required_content(m, i);
      if (is_tool) {
        append(out, content, kEos);
        is_tool = false;
      } else {
        // A past answer keeps only what follows its reasoning.
        size_t end_think = content.find("</think>");
        std::string_view answer = content;
        if (end_think != std::string::npos) answer.remove_prefix(end_think + 8);
        append(out, answer, kEos);
      }
    } else if (m.role == "tool") {
      is_last_user = false;
      is_tool = true;
      append(out, kOutputBegin, required_content(m, i), kOutputEnd);
    }
  }
  if (options.add_generation_prompt && is_last_user && !is_tool) {
    out += kAssistant;
    out += options.thinking ? "<think>" : "</think>";
  }
  return out;
}

}  // namespace dsinfer::tokenizer
