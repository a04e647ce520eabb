// The chat formats: the V3 template goldens from ../shared, and V3 / V3.1 / V3.2 renderings
// whose expected text was produced by the reference implementations (Jinja2 with the models'
// templates, DeepSeek-V3.2's encoding_dsv32.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "shared_data.h"
#include "tiny_tokenizer.h"
#include "tokenizer/chat_format.h"

namespace dsinfer::testing {
namespace {

const std::string kBos = "<｜begin▁of▁sentence｜>";

std::string render(ChatFormat f, const std::string& messages_json, bool generation_prompt,
                   bool thinking = false) {
  return render_chat(f, parse_chat_messages(messages_json),
                     ChatOptions{.add_generation_prompt = generation_prompt, .thinking = thinking},
                     kBos);
}

std::string error_of(ChatFormat f, const std::string& messages_json, bool thinking = false) {
  try {
    render(f, messages_json, true, thinking);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatFormat, ReproducesTheV3TemplateGoldens) {
  DSINFER_REQUIRE_SHARED(kDeepSeekDir);
  DSINFER_REQUIRE_SHARED("data/chat-template-goldens.json");
  const Tokenizer& tok = deepseek_tokenizer();
  nlohmann::json goldens =
      nlohmann::json::parse(read_text(shared_path("data/chat-template-goldens.json")));
  ASSERT_FALSE(goldens.empty());
  for (const auto& g : goldens) {
    std::vector<ChatMessage> messages = chat_messages_from_json(g["messages"]);
    ChatOptions options{.add_generation_prompt = g["add_generation_prompt"].get<bool>()};
    EXPECT_EQ(render_chat(ChatFormat::deepseek_v3, messages, options, tok.bos_token()),
              g["text"].get<std::string>());
    EXPECT_EQ(encode_chat(tok, ChatFormat::deepseek_v3, messages, options),
              g["ids"].get<std::vector<int32_t>>())
        << g["text"];
  }
}

const char* kTwoToolCalls = R"([
  {"role": "user", "content": "w?"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"type": "function", "function": {"name": "a", "arguments": "{\"x\": 1}"}},
    {"type": "function", "function": {"name": "b", "arguments": "{}"}}]},
  {"role": "tool", "content": "r1"},
  {"role": "tool", "content": "r2"}])";

const char* kToolsOverTwoTurns = R"([
  {"role": "user", "content": "w?"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"type": "function", "function": {"name": "a", "arguments": "{\"x\": 1}"}}]},
  {"role": "tool", "content": "r1"},
  {"role": "user", "content": "more"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"type": "function", "function": {"name": "c", "arguments": "[]"}}]},
  {"role": "tool", "content": "r3"}])";

TEST(ChatFormat, V3ToolCallsKeepTheTemplateQuirks) {
  EXPECT_EQ(render(ChatFormat::deepseek_v3, kTwoToolCalls, true),
            kBos +
                "<｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<"
                "｜tool▁sep｜>a\n"
                "```json\n{\"x\": "
                "1}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n"
                "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><"
                "｜tool▁outputs▁begin｜>"
                "<｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>r2<"
                "｜tool▁output▁end｜>"
                "<｜tool▁outputs▁end｜>");
  // The template never resets its "first call" / "first output" flags.
  EXPECT_EQ(
      render(ChatFormat::deepseek_v3, kToolsOverTwoTurns, true),
      kBos +
          "<｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<"
          "｜tool▁sep｜>a\n"
          "```json\n{\"x\": "
          "1}\n```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1"
          "<｜tool▁output▁end｜><｜User｜>more\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>c\n```"
          "json\n[]\n```"
          "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>\n<｜tool▁output▁begin｜>r3"
          "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
}

TEST(ChatFormat, V3HoistsSystemPromptsAndKeepsPastReasoning) {
  EXPECT_EQ(render(ChatFormat::deepseek_v3,
                   R"([{"role": "user", "content": "u"}, {"role": "system", "content": "S1"},
                       {"role": "system", "content": "S2"}])",
                   false),
            kBos + "S1\n\nS2<｜User｜>u");
  EXPECT_EQ(render(ChatFormat::deepseek_v3,
                   R"([{"role": "user", "content": "q"},
                       {"role": "assistant", "content": "<think>r</think>ans"},
                       {"role": "user", "content": "q2"}])",
                   true),
            kBos +
                "<｜User｜>q<｜Assistant｜><think>r</"
                "think>ans<｜end▁of▁sentence｜><｜User｜>q2<｜Assistant｜>");
}

TEST(ChatFormat, V31ThinkingAndNonThinking) {
  const char* conv = R"([{"role": "user", "content": "q"},
                         {"role": "assistant", "content": "<think>r</think>ans"},
                         {"role": "user", "content": "q2"}])";
  std::string history =
      kBos + "<｜User｜>q<｜Assistant｜></think>ans<｜end▁of▁sentence｜><｜User｜>q2";
  EXPECT_EQ(render(ChatFormat::deepseek_v3_1, conv, true, false),
            history + "<｜Assistant｜></think>");
  EXPECT_EQ(render(ChatFormat::deepseek_v3_1, conv, true, true),
            history + "<｜Assistant｜><think>");
  EXPECT_EQ(render(ChatFormat::deepseek_v3_1, conv, false, true), history);
  // A prefix message in thinking mode continues an open <think>.
  EXPECT_EQ(render(ChatFormat::deepseek_v3_1,
                   R"([{"role": "user", "content": "continue"},
                       {"role": "assistant", "content": "partial", "prefix": true}])",
                   true, true),
            kBos + "<｜User｜>continue<｜Assistant｜><think>partial<｜end▁of▁sentence｜>");
}

TEST(ChatFormat, V31ToolCalls) {
  EXPECT_EQ(
      render(ChatFormat::deepseek_v3_1, kToolsOverTwoTurns, true),
      kBos +
          "<｜User｜>w?<｜Assistant｜></"
          "think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>a<｜tool▁sep｜>"
          "{\"x\": "
          "1}<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁output▁begin｜>r1"
          "<｜tool▁output▁end｜><｜User｜>more<｜Assistant｜></think><｜tool▁calls▁begin｜>"
          "<｜tool▁call▁begin｜>c<｜tool▁sep｜>[]<｜tool▁call▁end｜><｜tool▁calls▁end｜><"
          "｜end▁of▁sentence｜>"
          "<｜tool▁output▁begin｜>r3<｜tool▁output▁end｜>");
}

// Request-level tools in the V3.1 format (V3.2-Exp checkpoints): the system-prompt layout of
// DeepSeek-V3.1's model card, after the system messages.
TEST(ChatFormat, V31RequestLevelToolsFollowTheModelCard) {
  const std::vector<ChatMessage> m = parse_chat_messages(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "w?"}])");
  ChatOptions o;
  o.add_generation_prompt = true;
  o.tools = nlohmann::ordered_json::parse(
      R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const std::string text = render_chat(ChatFormat::deepseek_v3_1, m, o, kBos);
  EXPECT_EQ(
      text,
      kBos +
          "Be brief.\n\n## Tools\nYou have access to the following tools:\n\n### "
          "get_weather\nDescription: Weather\n\nParameters: {\"type\": \"object\", "
          "\"properties\": {\"city\": {\"type\": \"string\"}}}\n\nIMPORTANT: ALWAYS "
          "adhere to this exact format for tool use:\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜"
          ">tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>{{additional_"
          "tool_calls}}<｜tool▁calls▁end｜>\n\nWhere:\n\n- `tool_call_name` must be an exact "
          "match to one of the available tools\n- `tool_call_arguments` must be valid JSON "
          "that strictly follows the tool's Parameters Schema\n- For multiple tool calls, "
          "chain them directly without separators or spaces\n<｜User｜>w?<｜Assistant｜></think>");
  o.tools = nlohmann::ordered_json::parse(R"([{"type": "function"}])");
  EXPECT_THROW(render_chat(ChatFormat::deepseek_v3_1, m, o, kBos), std::invalid_argument);
}

TEST(ChatFormat, V32Encoding) {
  const char* conv = R"([{"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "Hello! I am DeepSeek.", "reasoning_content": "thinking..."},
    {"role": "user", "content": "1+1=?"}])";
  std::string history =
      kBos +
      "You are a helpful assistant.<｜User｜>hello<｜Assistant｜></think>Hello! I am "
      "DeepSeek.<｜end▁of▁sentence｜><｜User｜>1+1=?";
  EXPECT_EQ(render(ChatFormat::deepseek_v3_2, conv, true, false),
            history + "<｜Assistant｜></think>");
  EXPECT_EQ(render(ChatFormat::deepseek_v3_2, conv, true, true),
            history + "<｜Assistant｜><think>");
  EXPECT_EQ(render(ChatFormat::deepseek_v3_2, conv, false, true), history);
}

TEST(ChatFormat, V32ToolCallsInDsml) {
  const char* conv = R"([{"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "", "reasoning_content": "need tool", "tool_calls": [
      {"type": "function", "function": {"name": "get_weather",
       "arguments": "{\"city\": \"Paris\", \"days\": 3, \"units\": {\"t\": \"C\", \"v\": [1, 2.5, true, null]}, \"note\": \"x\\ny\"}"}},
      {"type": "function", "function": {"name": "now", "arguments": "{}"}}]},
    {"role": "tool", "content": "sunny"},
    {"role": "tool", "content": "12:00"}])";
  EXPECT_EQ(
      render(ChatFormat::deepseek_v3_2, conv, true, true),
      kBos +
          "<｜User｜>weather?<｜Assistant｜><think>need tool</think>\n\n<｜DSML｜function_calls>\n"
          "<｜DSML｜invoke name=\"get_weather\">\n"
          "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
          "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
          "<｜DSML｜parameter name=\"units\" string=\"false\">{\"t\": \"C\", \"v\": [1, 2.5, true, "
          "null]}"
          "</｜DSML｜parameter>\n"
          "<｜DSML｜parameter name=\"note\" string=\"true\">x\ny</｜DSML｜parameter>\n"
          "</｜DSML｜invoke>\n<｜DSML｜invoke "
          "name=\"now\">\n\n</｜DSML｜invoke>\n</｜DSML｜function_calls>"
          "<｜end▁of▁sentence｜>\n\n<function_results>\n<result>sunny</result>\n<result>12:00</"
          "result>\n"
          "</function_results>\n\n<think>");
  EXPECT_NE(error_of(ChatFormat::deepseek_v3_2,
                     R"([{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}])")
                .find("messages[1] (tool): a tool result must follow"),
            std::string::npos);
}

const char* kTools = R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Weather for a city", "parameters": {"type": "object",
    "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])";

std::string render_with(ChatFormat f, const std::string& messages_json, const char* tools,
                        const char* response_format, bool thinking = false) {
  ChatOptions options{.add_generation_prompt = true, .thinking = thinking};
  if (tools) options.tools = nlohmann::ordered_json::parse(tools);
  if (response_format) options.response_format = nlohmann::ordered_json::parse(response_format);
  return render_chat(f, parse_chat_messages(messages_json), options, kBos);
}

std::string error_with(ChatFormat f, const std::string& messages_json, const char* tools,
                       const char* response_format) {
  try {
    render_with(f, messages_json, tools, response_format);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatFormat, V32RequestLevelToolsAreTheFirstSystemMessages) {
  std::string tools = kTools, format = R"({"type": "json_object"})";
  // With a system message: as if they were on it (the first one).
  EXPECT_EQ(
      render_with(ChatFormat::deepseek_v3_2,
                  R"([{"role": "system", "content": "S"}, {"role": "system", "content": "T"},
                            {"role": "user", "content": "hi"}])",
                  kTools, format.c_str()),
      render(ChatFormat::deepseek_v3_2,
             R"([{"role": "system", "content": "S", "tools": )" + tools +
                 R"(, "response_format": )" + format +
                 R"(}, {"role": "system", "content": "T"}, {"role": "user", "content": "hi"}])",
             true));
  // Without one: as on a system message with empty content put first.
  std::string via_request = render_with(
      ChatFormat::deepseek_v3_2, R"([{"role": "user", "content": "hi"}])", kTools, nullptr, true);
  EXPECT_EQ(via_request, render(ChatFormat::deepseek_v3_2,
                                R"([{"role": "system", "content": "", "tools": )" + tools +
                                    R"(}, {"role": "user", "content": "hi"}])",
                                true, true));
  // The functions are listed as json.dumps writes them, keys in the client's order.
  EXPECT_NE(
      via_request.find("<functions>\n{\"name\": \"get_weather\", \"description\": \"Weather for a "
                       "city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
                       "{\"type\": \"string\"}}, \"required\": [\"city\"]}}\n</functions>\n"),
      std::string::npos);
  EXPECT_EQ(via_request.substr(0, kBos.size() + 11), kBos + "\n\n## Tools\n");
  // An empty tools array is no tools (Python's truth value, as the official encoder tests it).
  EXPECT_EQ(
      render_with(ChatFormat::deepseek_v3_2, R"([{"role": "user", "content": "hi"}])", "[]", "{}"),
      kBos + "<｜User｜>hi<｜Assistant｜></think>");
  // Developer messages carry theirs before the user's message.
  std::string tools_block =
      via_request.substr(kBos.size(), via_request.find("<｜User｜>") - kBos.size());
  EXPECT_EQ(
      render(ChatFormat::deepseek_v3_2,
             R"([{"role": "developer", "content": "hi", "tools": )" + tools + "}]", true),
      kBos + "<｜User｜>" + tools_block + "\n\n# The user's message is: hi<｜Assistant｜></think>");

  // Errors name the field.
  EXPECT_NE(
      error_with(ChatFormat::deepseek_v3_2,
                 R"([{"role": "system", "content": "S", "tools": )" + tools + "}]", kTools, nullptr)
          .find("tools: given both in the request and in messages[0] (system)"),
      std::string::npos);
  EXPECT_NE(error_with(ChatFormat::deepseek_v3_2, R"([{"role": "user", "content": "hi"}])",
                       R"([{"type": "function"}])", nullptr)
                .find("tools[0]: missing field \"function\""),
            std::string::npos);
  EXPECT_NE(error_with(ChatFormat::deepseek_v3_2, R"([{"role": "user", "content": "hi"}])",
                       R"({"name": "f"})", nullptr)
                .find("tools: expected an array"),
            std::string::npos);
  // The V3 template has no tool rendering; V3.1's comes from its model card.
  EXPECT_NE(
      error_with(ChatFormat::deepseek_v3, R"([{"role": "user", "content": "hi"}])", kTools, nullptr)
          .find("tools: the v3"),
      std::string::npos);
  for (ChatFormat f : {ChatFormat::deepseek_v3, ChatFormat::deepseek_v3_1}) {
    EXPECT_NE(error_with(f, R"([{"role": "user", "content": "hi"}])", nullptr, format.c_str())
                  .find("response_format: the v3"),
              std::string::npos);
    // Message-level ones are ignored, as by the Jinja templates.
    EXPECT_EQ(
        render(f,
               R"([{"role": "system", "content": "S", "tools": )" + tools +
                   R"(}, {"role": "user", "content": "hi"}])",
               true),
        render(f, R"([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])",
               true));
  }
}

TEST(ChatFormat, ErrorsNameTheMessage) {
  EXPECT_NE(error_of(ChatFormat::deepseek_v3, R"([{"role": "wizard", "content": "x"}])")
                .find("messages[0]: role \"wizard\""),
            std::string::npos);
  EXPECT_NE(error_of(ChatFormat::deepseek_v3_1, R"([{"role": "user"}])")
                .find("messages[0] (user): content is null or missing"),
            std::string::npos);
  EXPECT_NE(error_of(ChatFormat::deepseek_v3, R"([{"role": "user", "content": "x"}])", true)
                .find("no thinking mode"),
            std::string::npos);
  EXPECT_NE(
      error_of(ChatFormat::deepseek_v3_2,
               R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])", true)
          .find("needs reasoning_content or tool_calls"),
      std::string::npos);
  EXPECT_NE(error_of(ChatFormat::deepseek_v3_2,
                     R"([{"role": "user", "content": "s", "tools": [{"type": "function",
                         "function": {"name": "f"}}]}])")
                .find("messages[0] (user): \"tools\" is only rendered on system and developer"),
            std::string::npos);
}

TEST(ChatFormat, ParseErrorsNameTheField) {
  auto parse_error = [](const std::string& text) {
    try {
      parse_chat_messages(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(parse_error("{\"role\": \"user\"}").find("expected a JSON array"), std::string::npos);
  EXPECT_NE(parse_error("[{\"role\": \"user\", \"content\": 5}]").find("messages[0].content"),
            std::string::npos);
  EXPECT_NE(parse_error("[{\"content\": \"x\"}]").find("messages[0]: missing field \"role\""),
            std::string::npos);
  EXPECT_NE(
      parse_error(
          R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}])")
          .find("messages[0].tool_calls[0].function.arguments"),
      std::string::npos);
  EXPECT_NE(parse_error("[{").find("invalid JSON"), std::string::npos);
}

TEST(ChatFormat, NamesAndDefaults) {
  for (ChatFormat f :
       {ChatFormat::deepseek_v3, ChatFormat::deepseek_v3_1, ChatFormat::deepseek_v3_2})
    EXPECT_EQ(chat_format_from_name(chat_format_name(f)), f);
  EXPECT_EQ(chat_format_from_name("v4"), std::nullopt);

  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsinfer_chat_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_EQ(default_chat_format(dir.string()), ChatFormat::deepseek_v3);
  // R1's template strips "</think>" from past answers; that alone does not make it V3.1.
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": "{% set c = content.split('</think>')[-1] %}"})";
  EXPECT_EQ(default_chat_format(dir.string()), ChatFormat::deepseek_v3);
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"chat_template": "{{'<｜Assistant｜></think>'}}"})";
  EXPECT_EQ(default_chat_format(dir.string()), ChatFormat::deepseek_v3_1);
  std::ofstream(dir / "config.json") << R"({"architectures": ["DeepseekV32ForCausalLM"]})";
  EXPECT_EQ(default_chat_format(dir.string()), ChatFormat::deepseek_v3_2);
  std::ofstream(dir / "config.json") << "{oops";
  EXPECT_THROW(default_chat_format(dir.string()), std::invalid_argument);
  fs::remove_all(dir);
}

TEST(ChatFormat, ThinkTagsBecomeTokensOnlyWhenTheTokenizerHasThem) {
  const char* conv = R"([{"role": "user", "content": "hi"}])";
  ChatOptions options{.add_generation_prompt = true, .thinking = true};
  std::vector<ChatMessage> messages = parse_chat_messages(conv);
  nlohmann::json j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(300, "<｜begin▁of▁sentence｜>", true),
                       added_token(301, "<｜User｜>", false, true),
                       added_token(302, "<｜Assistant｜>", false, true)};
  const char* config = R"({"bos_token": "<｜begin▁of▁sentence｜>"})";
  std::vector<int32_t> as_text =
      encode_chat(tiny_tokenizer(j, config), ChatFormat::deepseek_v3_1, messages, options);
  std::vector<int32_t> want = {300, 301, 'h', 'i', 302};
  for (char c : std::string("<think>")) want.push_back(c);
  EXPECT_EQ(as_text, want);

  j["added_tokens"].push_back(added_token(303, "<think>", false, true));
  EXPECT_EQ(encode_chat(tiny_tokenizer(j, config), ChatFormat::deepseek_v3_1, messages, options),
            (std::vector<int32_t>{300, 301, 'h', 'i', 302, 303}));
}

}  // namespace
}  // namespace dsinfer::testing
