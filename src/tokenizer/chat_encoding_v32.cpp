// DeepSeek-V3.2's prompt encoding (encoding_dsv32.py, which replaces a Jinja template for
// that model): every user turn carries the opening of the assistant turn after it, with
// <think> after the last user turn in thinking mode and </think> everywhere else; reasoning is
// kept only for assistant turns after the last user turn; tool calls are written in DSML and
// tool results are gathered in a <function_results> block; the tools and response format of a
// system message are described after its content (of a developer message: before it).
//
// One deliberate difference: encoding_dsv32 always ends a conversation whose last message is
// a user turn (or the last tool result) with the next assistant turn's opening; here that
// ending is the generation prompt, written only with add_generation_prompt.
#include <stdexcept>

#include "tokenizer/chat_renderers.h"
#include "tokenizer/python_json.h"

namespace dsinfer::tokenizer {
namespace {

constexpr std::string_view kDsml = "｜DSML｜";

// The tool instructions of encoding_dsv32 (its TOOLS_SYSTEM_TEMPLATE with the DSML and thinking
// tokens filled in). The model was trained on this text, so it has to match byte for byte; the
// tools' function objects follow, one json.dumps line each, then "\n</functions>\n".
constexpr std::string_view kToolsPrompt =
    R"(## Tools
You have access to a set of tools you can use to answer the user's question.
You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
<｜DSML｜function_calls>
<｜DSML｜invoke name="$FUNCTION_NAME">
<｜DSML｜parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name="$FUNCTION_NAME2">
...
</｜DSML｜invoke>
</｜DSML｜function_calls>
String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).
If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:
<｜DSML｜function_calls>
...
</｜DSML｜function_calls>
<function_results>
...
</function_results>
<think>...thinking about results</think>
Here are the functions available in JSONSchema format:
<functions>
)";

constexpr std::string_view kResponseFormatPrompt =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

// "\n\n" + the tools block (when there are tools) + "\n\n" + the response format block (when
// there is one), as encoding_dsv32 appends them to a system message's content.
// `where` names the tools in errors ("tools", "messages[0].tools").
std::string tools_and_format(const nlohmann::ordered_json& tools,
                             const nlohmann::ordered_json& response_format,
                             const std::string& where) {
  std::string out;
  if (python_truthy(tools)) {
    check_chat_tools(tools, where);
    out += "\n\n";
    out += kToolsPrompt;
    for (size_t k = 0; k < tools.size(); ++k) {
      if (k) out += '\n';
      out += python_json_dumps(tools[k].at("function"));
    }
    out += "\n</functions>\n";
  }
  if (python_truthy(response_format)) {
    out += "\n\n";
    out += kResponseFormatPrompt;
    out += python_json_dumps(response_format);
  }
  return out;
}

std::string where(size_t i) {
  return "messages[" + std::to_string(i) + "]";
}

std::invalid_argument message_error(size_t i, const ChatMessage& m, const std::string& problem) {
  return std::invalid_argument("messages[" + std::to_string(i) + "] (" + m.role + "): " + problem);
}

// <｜DSML｜parameter name="k" string="true|false">v</｜DSML｜parameter> lines for each argument.
std::string dsml_parameters(const ChatToolCall& call, size_t i, size_t k) {
  nlohmann::ordered_json args;
  std::string where = "messages[" + std::to_string(i) + "].tool_calls[" + std::to_string(k) +
                      "].function.arguments";
  try {
    args = nlohmann::ordered_json::parse(call.arguments);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::invalid_argument(where + ": invalid JSON: " + e.what());
  }
  if (!args.is_object()) throw std::invalid_argument(where + ": expected a JSON object");
  std::string out;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (!out.empty()) out += '\n';
    bool is_string = it.value().is_string();
    out += "<";
    out += kDsml;
    out += "parameter name=\"" + it.key() + "\" string=\"" + (is_string ? "true" : "false") + "\">";
    out += is_string ? it.value().get<std::string>() : python_json_dumps(it.value());
    out += "</";
    out += kDsml;
    out += "parameter>";
  }
  return out;
}

std::string dsml_tool_calls(const std::vector<ChatToolCall>& calls, size_t i) {
  std::string out = "\n\n<" + std::string(kDsml) + "function_calls>\n";
  for (size_t k = 0; k < calls.size(); ++k) {
    if (k) out += '\n';
    out += "<" + std::string(kDsml) + "invoke name=\"" + calls[k].name + "\">\n";
    out += dsml_parameters(calls[k], i, k);
    out += "\n</" + std::string(kDsml) + "invoke>";
  }
  out += "\n</" + std::string(kDsml) + "function_calls>";
  return out;
}

}  // namespace

std::string render_deepseek_v3_2(std::span<const ChatMessage> messages, const ChatOptions& options,
                                 std::string_view bos_token) {
  long last_user = -1, first_system = -1;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "user" || messages[i].role == "developer") last_user = long(i);
    if (messages[i].role == "system" && first_system < 0) first_system = long(i);
  }
  auto mode_token = [&](bool open) { return open && options.thinking ? "<think>" : "</think>"; };

  // Request-level tools and response format belong to the first system message.
  bool request_tools = python_truthy(options.tools);
  bool request_format = python_truthy(options.response_format);
  if (first_system >= 0) {
    const ChatMessage& s = messages[size_t(first_system)];
    if (request_tools && python_truthy(s.tools))
      throw std::invalid_argument("tools: given both in the request and in messages[" +
                                  std::to_string(first_system) + "] (system)");
    if (request_format && python_truthy(s.response_format))
      throw std::invalid_argument("response_format: given both in the request and in messages[" +
                                  std::to_string(first_system) + "] (system)");
  }

  std::string out(bos_token);
  if (first_system < 0 && (request_tools || request_format))
    out += tools_and_format(options.tools, options.response_format, "tools");
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system" && m.role != "developer") {
      for (auto [field, value] :
           {std::pair{"tools", &m.tools}, std::pair{"response_format", &m.response_format}})
        if (python_truthy(*value))
          throw message_error(
              i, m,
              "\"" + std::string(field) + "\" is only rendered on system and developer messages");
    }
    // The opening of the next assistant turn is only omitted at the very end.
    bool open_next = i + 1 < messages.size() || options.add_generation_prompt;
    bool is_last_user = long(i) == last_user;
    if (m.role == "system") {
      out += m.content.value_or("");
      bool first = long(i) == first_system;
      out += tools_and_format(first && request_tools ? options.tools : m.tools,
                              first && request_format ? options.response_format : m.response_format,
                              first && request_tools ? "tools" : where(i) + ".tools");
    } else if (m.role == "user" || m.role == "developer") {
      const std::string& content = required_content(m, i);
      out += kUser;
      if (m.role == "developer") {
        if (content.empty()) throw message_error(i, m, "content is empty");
        out += tools_and_format(m.tools, m.response_format, where(i) + ".tools");
        out += "\n\n# The user's message is: ";
      }
      out += content;
      if (open_next) {
        out += kAssistant;
        out += mode_token(is_last_user);
      }
    } else if (m.role == "tool") {
      // The results answer the calls of the closest assistant turn before them, in order.
      long prev = long(i) - 1;
      while (prev >= 0 && messages[prev].role == "tool") --prev;
      if (prev < 0 || messages[prev].role != "assistant")
        throw message_error(i, m, "a tool result must follow an assistant turn with tool_calls");
      size_t order = i - size_t(prev);
      size_t calls = messages[prev].tool_calls ? messages[prev].tool_calls->size() : 0;
      if (calls < order)
        throw message_error(
            i, m, "more tool results than tool_calls in messages[" + std::to_string(prev) + "]");
      if (order == 1) out += "\n\n<function_results>";
      out += "\n<result>" + required_content(m, i) + "</result>";
      if (order == calls) {
        out += "\n</function_results>";
        if (open_next) {
          out += "\n\n";
          out += mode_token(long(i) >= last_user);
        }
      }
    } else if (m.role == "assistant") {
      bool has_calls = m.tool_calls && !m.tool_calls->empty();
      if (options.thinking && long(i) > last_user) {
        bool has_reasoning = m.reasoning_content && !m.reasoning_content->empty();
        if (!has_reasoning && !has_calls)
          throw message_error(i, m,
                              "in thinking mode an assistant turn after the last user "
                              "turn needs reasoning_content or tool_calls");
        out += m.reasoning_content.value_or("");
        out += "</think>";
      }
      out += m.content.value_or("");
      if (has_calls) out += dsml_tool_calls(*m.tool_calls, i);
      out += kEos;
    } else {
      unknown_role(m, i, "v3.2");
    }
  }
  return out;
}

}  // namespace dsinfer::tokenizer
