// ChatOutputParser: the V3.2 DSML details (escaping, raw values, schemas, reasoning), malformed
// and truncated output (never throws, never loses text), huge inputs, and the V3.1 / V3
// tool-call formats round-tripped through their renderers.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <random>

#include "chat_output_util.h"
#include "shared_data.h"
#include "tokenizer/chat_format.h"

namespace dsinfer::testing {
namespace {

using Json = nlohmann::ordered_json;
constexpr auto v32 = ChatFormat::deepseek_v3_2;
const std::string kBos = "<｜begin▁of▁sentence｜>";
const std::string kEos = "<｜end▁of▁sentence｜>";

std::string dsml_block(const std::string& invokes) {
  return "\n\n<｜DSML｜function_calls>\n" + invokes + "</｜DSML｜function_calls>";
}
std::string invoke(const std::string& name, const std::string& params) {
  return "<｜DSML｜invoke name=\"" + name + "\">\n" + params + "</｜DSML｜invoke>\n";
}
std::string param(const std::string& key, bool is_string, const std::string& value) {
  return "<｜DSML｜parameter name=\"" + key + "\" string=\"" + (is_string ? "true" : "false") +
         "\">" + value + "</｜DSML｜parameter>\n";
}

ParsedChatOutput message(std::string content, std::string reasoning = "",
                         std::vector<ParsedToolCall> calls = {}) {
  return {std::move(content), std::move(reasoning), std::move(calls)};
}

// One shot, then every way of streaming it, must give `want`.
void expect_parse(ChatFormat format, bool thinking, const std::string& text,
                  const ParsedChatOutput& want, const Json& tools = nullptr) {
  EXPECT_EQ(parse_chat_output(format, thinking, text, tools), want)
      << ::testing::PrintToString(text);
  expect_same_when_streamed(format, thinking, text, want, 5, tools);
}

TEST(ChatOutputParser, V32ContentReasoningAndEndOfSentence) {
  expect_parse(v32, false, "Hello" + kEos, message("Hello"));
  expect_parse(v32, true, "because</think>Hi" + kEos, message("Hi", "because"));
  expect_parse(v32, true, "still thinking", message("", "still thinking"));
  // The end marker is dropped wherever it is; partial markers are text.
  expect_parse(v32, false, "a" + kEos + "b<｜end▁of", message("ab<｜end▁of"));
  expect_parse(v32, false, "x\n\n<｜DSML｜func", message("x\n\n<｜DSML｜func"));
  // In chat mode </think> is just text; a lone "\n" or "\n\n" is content once decided.
  expect_parse(v32, false, "a</think>b\n\nc\n", message("a</think>b\n\nc\n"));
}

TEST(ChatOutputParser, V32ArgumentsAsThePythonParserWritesThem) {
  std::string text = "ok" +
                     dsml_block(invoke("f", param("s", true, "a \"q\" \\ 東京\n\t\x01 </b>") +
                                                param("n", false, "-1.5e3") +
                                                param("o", false, "{\"a\":[1, {\"b\":null}]}") +
                                                param("bad", false, "Paris") +
                                                param("t", false, "True") + param("e", true, "")) +
                                invoke("now", "")) +
                     kEos;
  expect_parse(v32, false, text,
               message("ok", "",
                       {{"f",
                         "{\"s\": \"a \\\"q\\\" \\\\ 東京\\n\\t\\u0001 </b>\", \"n\": -1.5e3, "
                         "\"o\": {\"a\":[1, {\"b\":null}]}, \"bad\": \"Paris\", \"t\": "
                         "\"True\", \"e\": \"\"}"},
                        {"now", "{}"}}));
  // With the tool's schema, Python literals become JSON ones where the type allows them.
  Json tools = Json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {
      "type": "object", "properties": {"t": {"type": "boolean"}, "z": {"type": ["null", "string"]},
      "bad": {"type": "string"}}}}}])");
  expect_parse(v32, false,
               dsml_block(invoke("f", param("t", false, " True ") + param("z", false, "None") +
                                          param("bad", false, "Paris"))),
               message("", "", {{"f", "{\"t\": true, \"z\": null, \"bad\": \"Paris\"}"}}), tools);
  // A value runs to the first closing parameter tag, whatever else is in it.
  expect_parse(
      v32, false,
      dsml_block(invoke("f", param("v", true, "<｜DSML｜invoke name=\"x\">\n</｜DSML｜para"))),
      message("", "", {{"f", "{\"v\": \"<｜DSML｜invoke name=\\\"x\\\">\\n</｜DSML｜para\"}"}}));
}

TEST(ChatOutputParser, V32ToolCallsInTheReasoning) {
  // A block in the reasoning ends it (the model forgot </think>).
  expect_parse(v32, true, "hmm" + dsml_block(invoke("f", param("a", false, "1"))) + kEos,
               message("", "hmm", {{"f", "{\"a\": 1}"}}));
  // A false start that produces no call goes back to the reasoning.
  expect_parse(v32, true, "hmm\n\n<｜DSML｜function_calls>oops</think>ans",
               message("ans", "hmm\n\n<｜DSML｜function_calls>oops"));
  // Text after a block is content again, and another block continues the indices.
  expect_parse(v32, false,
               "a" + dsml_block(invoke("f", "")) + "b" + dsml_block(invoke("g", "")) + "\n",
               message("ab\n", "", {{"f", "{}"}, {"g", "{}"}}));
  // An empty block is markup only.
  expect_parse(v32, false, "a" + dsml_block(""), message("a"));
}

TEST(ChatOutputParser, V32MalformedBlocks) {
  const std::string start = "\n\n<｜DSML｜function_calls>\n";
  // Junk before any call: the whole block is content.
  expect_parse(v32, false, "A" + start + "junk" + kEos, message("A" + start + "junk"));
  // A bad parameter tag: the call stays (closed), the rest is content.
  std::string bad =
      "<｜DSML｜parameter name=\"b\" strin=\"true\">x</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n</｜DSML｜function_calls>";
  expect_parse(v32, false,
               "Hi" + start + "<｜DSML｜invoke name=\"f\">\n" + param("a", true, "1") + bad,
               message("Hi" + bad, "", {{"f", "{\"a\": \"1\"}"}}));
  // Junk between calls.
  expect_parse(v32, false, start + invoke("f", "") + "xyz" + invoke("g", ""),
               message("xyz" + invoke("g", ""), "", {{"f", "{}"}}));
  // A nested block start inside an invoke closes the call and starts a new block.
  expect_parse(v32, false, start + "<｜DSML｜invoke name=\"f\">\n" + dsml_block(invoke("g", "")),
               message("", "", {{"f", "{}"}, {"g", "{}"}}));
  // Names with newlines or longer than 512 bytes are not names.
  std::string long_name(600, 'n');
  expect_parse(v32, false, start + invoke(long_name, ""), message(start + invoke(long_name, "")));
  expect_parse(v32, false, start + invoke("a\nb", ""), message(start + invoke("a\nb", "")));
  // Truncated: inside a string value, a raw value, a parameter tag, an invoke tag.
  const std::string open_f = start + "<｜DSML｜invoke name=\"f\">\n";
  expect_parse(v32, false, open_f + "<｜DSML｜parameter name=\"a\" string=\"true\">hel</｜DSML｜",
               message("", "", {{"f", "{\"a\": \"hel</｜DSML｜\"}"}}));
  expect_parse(v32, false, open_f + "<｜DSML｜parameter name=\"a\" string=\"false\">[1, 2",
               message("", "", {{"f", "{\"a\": \"[1, 2\"}"}}));
  expect_parse(v32, false, open_f + "<｜DSML｜parameter name=\"a\" str",
               message("<｜DSML｜parameter name=\"a\" str", "", {{"f", "{}"}}));
  expect_parse(v32, false, "Q" + start + "<｜DSML｜invoke name=\"f",
               message("Q" + start + "<｜DSML｜invoke name=\"f"));
}

TEST(ChatOutputParser, Utf8IsHeldBackOrReplaced) {
  // A character split across pushes arrives whole.
  ChatOutputParser parser(v32, false);
  std::string sea = "海";
  EXPECT_TRUE(parser.push(sea.substr(0, 1)).empty());
  std::vector<ChatOutputDelta> got = parser.push(sea.substr(1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, sea);
  // Ill-formed bytes become U+FFFD, a truncated character at the end too.
  EXPECT_EQ(parse_chat_output(v32, false,
                              "a\xff"
                              "b\xe6\xb5")
                .content,
            "a\uFFFDb\uFFFD");
}

TEST(ChatOutputParser, MisuseIsAnError) {
  EXPECT_THROW(ChatOutputParser(ChatFormat::deepseek_v3, true), std::invalid_argument);
  ChatOutputParser parser(v32, false);
  parser.finish();
  EXPECT_THROW(parser.push("x"), std::logic_error);
  EXPECT_THROW(parser.finish(), std::logic_error);
}

// ---- robustness: truncation, junk, huge inputs ----------------------------------------------

// Bytes of `input` outside markup and white space, each of which must appear in the parsed
// content, reasoning, names or arguments at least as often (escaping only adds bytes).
bool accounts_for_every_byte(const std::string& raw_input, const ParsedChatOutput& parsed) {
  static const std::vector<std::string> markup = [] {
    std::vector<std::string> m = {"</think>",
                                  "<｜DSML｜function_calls>",
                                  "</｜DSML｜function_calls>",
                                  "<｜DSML｜invoke name=\"",
                                  "\">",
                                  "</｜DSML｜invoke>",
                                  "<｜DSML｜parameter name=\"",
                                  "\" string=\"true\">",
                                  "\" string=\"false\">",
                                  "</｜DSML｜parameter>",
                                  "<｜tool▁calls▁begin｜>",
                                  "<｜tool▁calls▁end｜>",
                                  "<｜tool▁call▁begin｜>",
                                  "<｜tool▁call▁end｜>",
                                  "<｜tool▁sep｜>",
                                  "```json",
                                  "```"};
    std::sort(m.begin(), m.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
    return m;
  }();
  // The end-of-sentence marker is dropped before anything else (it may split another marker).
  std::string input;
  for (size_t at = 0, p; at <= raw_input.size(); at = p + kEos.size()) {
    p = std::min(raw_input.find(kEos, at), raw_input.size());
    input += raw_input.substr(at, p - at);
  }
  std::array<size_t, 256> need{}, have{};
  for (size_t i = 0; i < input.size();) {
    auto is_markup = [&](const std::string& m) { return input.compare(i, m.size(), m) == 0; };
    auto m = std::find_if(markup.begin(), markup.end(), is_markup);
    if (m != markup.end()) {
      i += m->size();
    } else {
      if (static_cast<unsigned char>(input[i]) > ' ') ++need[static_cast<unsigned char>(input[i])];
      ++i;
    }
  }
  std::string out = parsed.content + parsed.reasoning_content;
  for (const auto& call : parsed.tool_calls) out += call.name + call.arguments;
  for (unsigned char c : out) ++have[c];
  for (size_t c = 0; c < 256; ++c)
    if (have[c] < need[c]) {
      ADD_FAILURE() << "byte " << c << " ('" << char(c) << "'): " << need[c] << " in the input, "
                    << have[c] << " parsed, from " << ::testing::PrintToString(raw_input);
      return false;
    }
  return true;
}

// Parses without throwing, accounts for every byte, gives V3.2 arguments that are JSON, and
// streams byte by byte to the same result.
void check_robust(ChatFormat format, bool thinking, const std::string& text, bool stream = true) {
  ParsedChatOutput parsed;
  try {
    parsed = parse_chat_output(format, thinking, text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what() << " on " << ::testing::PrintToString(text);
    return;
  }
  accounts_for_every_byte(text, parsed);
  if (format == v32) {
    for (const auto& call : parsed.tool_calls)
      EXPECT_TRUE(nlohmann::json::accept(call.arguments)) << call.arguments;
  }
  if (stream) {
    std::vector<size_t> bytes;
    for (size_t k = 1; k < text.size(); ++k) bytes.push_back(k);
    EXPECT_EQ(parse_in_pieces(format, thinking, text, bytes), parsed);
  }
}

std::vector<std::string> golden_tool_completions() {
  std::vector<std::string> out;
  if (!std::filesystem::exists(shared_path("data/chat-v32-goldens.json"))) return out;
  Json g = Json::parse(read_text(shared_path("data/chat-v32-goldens.json")));
  for (const Json& c : g["parse"])
    if (!c["tool_calls"].empty()) out.push_back(c["completion"]);
  return out;
}

TEST(ChatOutputParser, TruncatedAtEveryCharacterOfAGoldenToolCall) {
  DSINFER_REQUIRE_SHARED("data/chat-v32-goldens.json");
  std::vector<std::string> completions = golden_tool_completions();
  ASSERT_GT(completions.size(), 5u);
  for (size_t c = 0; c < completions.size(); ++c) {
    const std::string& text = completions[c];
    for (size_t k = 0; k <= text.size(); ++k) {
      if (k < text.size() && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) continue;
      for (bool thinking : {false, true}) check_robust(v32, thinking, text.substr(0, k), c < 2);
    }
  }
}

TEST(ChatOutputParser, RandomJunkAndNestedMarkers) {
  std::vector<std::string> bases = golden_tool_completions();
  bases.push_back("plain" +
                  dsml_block(invoke("f", param("a", true, "x") + param("b", false, "[1]"))));
  const std::vector<std::string> pieces = {"<｜DSML｜",
                                           "invoke name=\"",
                                           "\">",
                                           "</｜DSML｜parameter>",
                                           "string=\"false\">",
                                           "</think>",
                                           "\n\n<｜DSML｜function_calls>",
                                           "</｜DSML｜function_calls>",
                                           kEos,
                                           "<｜DSML｜parameter name=\"k\" string=\"true\">",
                                           "</｜DSML｜invoke>",
                                           "\"",
                                           "{",
                                           "\n",
                                           "大海",
                                           "x",
                                           "<",
                                           "｜",
                                           "<｜tool▁call▁begin｜>"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    std::string text = bases[rng() % bases.size()];
    for (int edits = 1 + int(rng() % 4); edits > 0; --edits) {
      // Edit at a character boundary: insert a piece, delete a range or repeat one.
      size_t at = rng() % (text.size() + 1);
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      size_t len = std::min(text.size() - at, size_t(rng() % 40));
      while (at + len < text.size() && (static_cast<unsigned char>(text[at + len]) & 0xC0) == 0x80)
        ++len;
      switch (rng() % 3) {
        case 0:
          text.insert(at, pieces[rng() % pieces.size()]);
          break;
        case 1:
          text.erase(at, len);
          break;
        default:
          text.insert(at, text.substr(at, len));
      }
    }
    for (ChatFormat f : {v32, ChatFormat::deepseek_v3_1, ChatFormat::deepseek_v3})
      check_robust(f, trial % 2 == 1 && f != ChatFormat::deepseek_v3, text, trial % 4 == 0);
  }
}

TEST(ChatOutputParser, HugeInputs) {
  auto started = std::chrono::steady_clock::now();
  std::string big_text(1 << 21, 'a');
  for (size_t i = 0; i < big_text.size(); i += 97) big_text[i] = '\n';
  for (size_t i = 50; i < big_text.size(); i += 1013) big_text[i] = '<';
  std::string big_value(1 << 20, 'v');
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string many;
  for (int i = 0; i < 20000; ++i)
    many += invoke("f" + std::to_string(i), param("i", false, std::to_string(i)));
  const std::vector<std::string> inputs = {
      big_text,
      dsml_block(invoke("f", param("s", true, big_value) + param("r", false, big_value))),
      dsml_block(invoke("f", param("deep", false, deep))),
      dsml_block(many),
      std::string(1 << 20, '\n'),
      std::string(1 << 20, '<'),
      "\n\n<｜DSML｜function_calls>" + std::string(1 << 20, ' ') + "x",
  };
  for (const std::string& text : inputs) {
    check_robust(v32, false, text, /*stream=*/false);
    // In 4 KB pieces, as a server would see long generations.
    std::vector<size_t> cuts;
    for (size_t k = 4096; k < text.size(); k += 4096) cuts.push_back(k);
    EXPECT_EQ(parse_in_pieces(v32, false, text, cuts), parse_chat_output(v32, false, text));
  }
  ParsedChatOutput many_calls = parse_chat_output(v32, false, dsml_block(many));
  ASSERT_EQ(many_calls.tool_calls.size(), 20000u);
  EXPECT_EQ(many_calls.tool_calls[19999].arguments, "{\"i\": 19999}");
  EXPECT_EQ(parse_chat_output(v32, false, dsml_block(invoke("f", param("deep", false, deep))))
                .tool_calls[0]
                .arguments,
            "{\"deep\": " + deep + "}");
  // A long string value byte by byte.
  std::string text = dsml_block(invoke("f", param("s", true, std::string(200000, 'z'))));
  std::vector<size_t> bytes;
  for (size_t k = 1; k < text.size(); ++k) bytes.push_back(k);
  EXPECT_EQ(parse_in_pieces(v32, false, text, bytes).tool_calls[0].arguments.size(), 200000u + 9);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

// ---- V3.1 and V3 --------------------------------------------------------------------------

// What the renderer writes for the assistant turn after the generation prompt, i.e. what the
// model is trained to generate there.
std::string rendered_answer(ChatFormat format, const std::string& assistant_json) {
  std::string user = R"({"role": "user", "content": "q"})";
  std::string prompt = render_chat(format, parse_chat_messages("[" + user + "]"),
                                   ChatOptions{.add_generation_prompt = true}, kBos);
  std::string full = render_chat(
      format, parse_chat_messages("[" + user + ", " + assistant_json + "]"), ChatOptions{}, kBos);
  EXPECT_EQ(full.substr(0, prompt.size()), prompt);
  return full.substr(prompt.size());
}

TEST(ChatOutputParser, V31RoundTripsTheRenderersToolCalls) {
  constexpr auto v31 = ChatFormat::deepseek_v3_1;
  std::string two = rendered_answer(v31, R"({"role": "assistant", "content": "Let me check.",
      "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"東京\"}"}},
        {"type": "function", "function": {"name": "calc", "arguments": "{\"expr\": \"1<2\"}"}}]})");
  EXPECT_EQ(
      two,
      "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": "
      "\"東京\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>calc<｜tool▁sep｜>{\"expr\": \"1<2\"}"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>" +
          kEos);
  expect_parse(v31, false, two,
               message("Let me check.", "",
                       {{"get_weather", "{\"city\": \"東京\"}"}, {"calc", "{\"expr\": \"1<2\"}"}}));
  std::string one = rendered_answer(v31, R"({"role": "assistant", "content": null,
      "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]})");
  expect_parse(v31, false, one, message("", "", {{"f", "{}"}}));
  // Thinking mode: the reasoning first.
  expect_parse(v31, true, "hmm</think>ok" + one, message("ok", "hmm", {{"f", "{}"}}));
  // Malformed: junk in the block is content, a truncated call keeps its arguments.
  expect_parse(v31, false, "a<｜tool▁calls▁begin｜>junk", message("a<｜tool▁calls▁begin｜>junk"));
  expect_parse(v31, false,
               "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"a\": 1}<｜tool▁call▁e",
               message("", "", {{"f", "{\"a\": 1}<｜tool▁call▁e"}}));
}

TEST(ChatOutputParser, V3RoundTripsTheTemplatesToolCalls) {
  constexpr auto v3 = ChatFormat::deepseek_v3;
  std::string two = rendered_answer(v3, R"({"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"type": "function", "function": {"name": "now", "arguments": "{}"}}]})");
  EXPECT_EQ(
      two,
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
      "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>"
      "now\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>" +
          kEos);
  expect_parse(v3, false, two,
               message("", "", {{"get_weather", "{\"city\": \"Paris\"}"}, {"now", "{}"}}));
  // The template leaves a single call's block open; that parses too.
  std::string one = rendered_answer(v3, R"({"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "[1]"}}]})");
  expect_parse(v3, false, one, message("", "", {{"f", "[1]"}}));
  expect_parse(v3, false, "Sure." + kEos, message("Sure."));
}

}  // namespace
}  // namespace dsinfer::testing
