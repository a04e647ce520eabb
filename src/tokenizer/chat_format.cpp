#include "tokenizer/chat_format.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "tokenizer/chat_renderers.h"
#include "tokenizer/python_json.h"

namespace dsinfer {

namespace tokenizer {

const std::string& required_content(const ChatMessage& m, size_t index) {
  if (!m.content)
    throw std::invalid_argument("messages[" + std::to_string(index) + "] (" + m.role +
                                "): content is null or missing");
  return *m.content;
}

void unknown_role(const ChatMessage& m, size_t index, std::string_view format) {
  throw std::invalid_argument("messages[" + std::to_string(index) + "]: role \"" + m.role +
                              "\" is not supported by the " + std::string(format) + " chat format");
}

}  // namespace tokenizer

namespace {

std::optional<nlohmann::json> read_json_if_present(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  try {
    return nlohmann::json::parse(s.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw std::invalid_argument(path.string() + ": invalid JSON: " + e.what());
  }
}

}  // namespace

std::string_view chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::deepseek_v3:
      return "v3";
    case ChatFormat::deepseek_v3_1:
      return "v3.1";
    case ChatFormat::deepseek_v3_2:
      return "v3.2";
  }
  return "?";
}

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (ChatFormat f :
       {ChatFormat::deepseek_v3, ChatFormat::deepseek_v3_1, ChatFormat::deepseek_v3_2})
    if (chat_format_name(f) == name) return f;
  return std::nullopt;
}

ChatFormat default_chat_format(const std::string& model_dir) {
  std::filesystem::path dir(model_dir);
  if (auto config = read_json_if_present(dir / "config.json")) {
    auto it = config->find("architectures");
    if (it != config->end() && it->is_array())
      for (const auto& arch : *it)
        if (arch == "DeepseekV32ForCausalLM") return ChatFormat::deepseek_v3_2;
  }
  if (auto config = read_json_if_present(dir / "tokenizer_config.json")) {
    auto it = config->find("chat_template");
    if (it != config->end() && it->is_string() &&
        it->get_ref<const std::string&>().find("<｜Assistant｜></think>") != std::string::npos)
      return ChatFormat::deepseek_v3_1;
  }
  return ChatFormat::deepseek_v3;
}

std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages,
                        const ChatOptions& options, std::string_view bos_token) {
  if (format != ChatFormat::deepseek_v3_2) {
    // Neither Jinja template has a tools or response_format variable; V3.1's model card gives a
    // system-prompt format for tools (render_deepseek_v3_1 writes it).
    for (auto [field, value] : {std::pair{"tools", &options.tools},
                                std::pair{"response_format", &options.response_format}})
      if (tokenizer::python_truthy(*value) &&
          !(format == ChatFormat::deepseek_v3_1 && std::string_view(field) == "tools"))
        throw std::invalid_argument(std::string(field) + ": the " +
                                    std::string(chat_format_name(format)) +
                                    " chat format has no rendering for request-level " + field +
                                    " (its chat template ignores them); describe them in the "
                                    "system prompt");
  }
  switch (format) {
    case ChatFormat::deepseek_v3:
      return tokenizer::render_deepseek_v3(messages, options, bos_token);
    case ChatFormat::deepseek_v3_1:
      return tokenizer::render_deepseek_v3_1(messages, options, bos_token);
    case ChatFormat::deepseek_v3_2:
      return tokenizer::render_deepseek_v3_2(messages, options, bos_token);
  }
  throw std::invalid_argument("unknown chat format");
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, ChatFormat format,
                                 std::span<const ChatMessage> messages,
                                 const ChatOptions& options) {
  return tokenizer.encode(render_chat(format, messages, options, tokenizer.bos_token()),
                          /*allow_special=*/true);
}

}  // namespace dsinfer
