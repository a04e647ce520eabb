// `dsinfer tokenize`: text (or a chat conversation) to token ids, and ids back to text, with a
// model directory's tokenizer.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "command.h"
#include "tokenizer/chat_format.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::cli {
namespace {

struct TokenizeArgs {
  std::string model_dir;
  std::string prompt, file, chat, decode, format;
  bool have_prompt = false;
  bool special = false, generation_prompt = false, think = false, render = false,
       skip_special = false;
};

std::string read_input(const std::string& path) {
  if (path == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "1,2, 3" -> ids; names the offending entry otherwise.
std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  size_t start = 0, n = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    ++n;
    char* end = nullptr;
    errno = 0;
    long long v = item.empty() ? -1 : std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
      throw std::invalid_argument("--decode: entry " + std::to_string(n) + " ('" + item +
                                  "') is not a token id");
    ids.push_back(int32_t(v));
    start = comma + 1;
  }
  return ids;
}

void print_ids(const std::vector<int32_t>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ',';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

int run(const TokenizeArgs& a) {
  int inputs = a.have_prompt + !a.file.empty() + !a.chat.empty() + !a.decode.empty();
  if (inputs != 1) throw std::invalid_argument("give exactly one of -p, -f, --chat, --decode");
  if ((a.generation_prompt || a.think || a.render || !a.format.empty()) && a.chat.empty())
    throw std::invalid_argument("--generation-prompt, --think, --format and --render need --chat");
  Tokenizer tok = Tokenizer::load(a.model_dir);

  if (!a.decode.empty()) {
    std::string text = tok.decode(parse_ids(a.decode), a.skip_special) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  if (!a.chat.empty()) {
    ChatFormat format = default_chat_format(a.model_dir);
    if (!a.format.empty()) {
      auto f = chat_format_from_name(a.format);
      if (!f)
        throw std::invalid_argument("--format: unknown chat format '" + a.format +
                                    "' (known: v3, v3.1, v3.2)");
      format = *f;
    }
    std::vector<ChatMessage> messages;
    try {
      messages = parse_chat_messages(read_input(a.chat));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(a.chat + ": " + e.what());
    }
    ChatOptions options{.add_generation_prompt = a.generation_prompt, .thinking = a.think};
    std::string text = render_chat(format, messages, options, tok.bos_token());
    if (a.render) {
      text += '\n';
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      print_ids(tok.encode(text, /*allow_special=*/true));
    }
    return 0;
  }
  std::string text = a.have_prompt ? a.prompt : read_input(a.file);
  print_ids(tok.encode(text, a.special));
  return 0;
}

CommandRegistrar tokenize_cmd(
    {"tokenize", "Text or a chat to token ids, or ids back to text", [](CLI::App& app) {
       auto a = std::make_shared<TokenizeArgs>();
       app.add_option("-m,--model", a->model_dir, "Model directory with tokenizer.json")
           ->required();
       app.add_option_function<std::string>(
           "-p,--prompt",
           [a](const std::string& s) {
             a->prompt = s;
             a->have_prompt = true;
           },
           "Text to tokenize");
       app.add_option("-f,--file", a->file, "File to tokenize ('-' reads stdin)");
       app.add_option("--chat", a->chat,
                      "JSON file with a messages array [{\"role\", \"content\"}] to render with "
                      "the model's chat format and tokenize");
       app.add_option("--decode", a->decode, "Comma-separated token ids to turn back into text");
       app.add_flag("--special", a->special,
                    "Let special-token strings in the text (-p/-f) become special tokens");
       app.add_flag("--generation-prompt", a->generation_prompt,
                    "--chat: end with the opening of the assistant's turn");
       app.add_flag("--think", a->think, "--chat: thinking mode (v3.1, v3.2 formats)");
       app.add_option("--format", a->format,
                      "--chat: chat format v3, v3.1 or v3.2 (default: from the model directory)");
       app.add_flag("--render", a->render, "--chat: print the rendered text instead of ids");
       app.add_flag("--skip-special", a->skip_special, "--decode: leave out special tokens");
       return std::function<int()>([a] { return run(*a); });
     }});

}  // namespace
}  // namespace dsinfer::cli
