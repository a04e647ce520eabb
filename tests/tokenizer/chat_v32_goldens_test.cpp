// DeepSeek-V3.2's chat format against ../shared/data/chat-v32-goldens.json, produced by
// DeepSeek's own encoding_dsv32.py: every "encode" case's prompt text exactly, and every
// "parse" case's completion parsed (one shot and streamed every way) into exactly its content,
// reasoning and tool calls.
//
// How the golden texts end: the official encoder always writes the next assistant opening after
// a final user turn (<｜Assistant｜><think> or <｜Assistant｜></think>) or after the last tool
// result of a final tool turn ("\n\n<think>" or "\n\n</think>"); here that opening is the
// generation prompt. Every golden conversation ends with a user or tool message and every text
// ends with that opening, so each is rendered with add_generation_prompt, and without it the
// text is the golden one minus the opening.
#include <gtest/gtest.h>

#include "chat_output_util.h"
#include "shared_data.h"
#include "tokenizer/chat_format.h"

namespace dsinfer::testing {
namespace {

using Json = nlohmann::ordered_json;

const char* kGoldens = "data/chat-v32-goldens.json";
const std::string kBos = "<｜begin▁of▁sentence｜>";

// Ordered, so that the tools' keys keep the order the official encoder saw.
const Json& goldens() {
  static const Json j = Json::parse(read_text(shared_path(kGoldens)));
  return j;
}

bool ends_with(std::string_view s, std::string_view end) {
  return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

std::string render(const std::vector<ChatMessage>& messages, bool thinking, bool generation_prompt,
                   const Json& tools = nullptr, const Json& response_format = nullptr) {
  ChatOptions options{.add_generation_prompt = generation_prompt, .thinking = thinking};
  options.tools = tools;
  options.response_format = response_format;
  return render_chat(ChatFormat::deepseek_v3_2, messages, options, kBos);
}

// The assistant opening the official encoder writes after the last message ("" after an
// assistant message).
std::string final_opening(const ChatMessage& last, bool thinking) {
  std::string mode = thinking ? "<think>" : "</think>";
  if (last.role == "user" || last.role == "developer") return "<｜Assistant｜>" + mode;
  if (last.role == "tool") return "\n\n" + mode;
  return "";
}

TEST(ChatV32Goldens, EncodesEveryConversationExactly) {
  DSINFER_REQUIRE_SHARED(kGoldens);
  const Json& cases = goldens()["encode"];
  ASSERT_EQ(cases.size(), 41u);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Json& g = cases[c];
    std::vector<ChatMessage> messages = chat_messages_from_json(g["messages"]);
    bool thinking = g["thinking_mode"] == "thinking";
    const std::string& want = g["text"].get_ref<const std::string&>();
    std::string opening = final_opening(messages.back(), thinking);
    ASSERT_FALSE(opening.empty()) << "case " << c << " ends with an assistant message";
    ASSERT_TRUE(ends_with(want, opening)) << "case " << c;
    EXPECT_EQ(render(messages, thinking, true), want) << "case " << c;
    EXPECT_EQ(render(messages, thinking, false), want.substr(0, want.size() - opening.size()))
        << "case " << c;
  }
}

// The same conversations with the first system message's tools and response_format moved to
// the request (ChatOptions) render the same text; without a system message, request-level
// tools render as a system message with empty content would.
TEST(ChatV32Goldens, RequestLevelToolsRenderAsOnTheSystemMessage) {
  DSINFER_REQUIRE_SHARED(kGoldens);
  int moved = 0;
  for (const Json& g : goldens()["encode"]) {
    std::vector<ChatMessage> messages = chat_messages_from_json(g["messages"]);
    bool thinking = g["thinking_mode"] == "thinking";
    const std::string& want = g["text"].get_ref<const std::string&>();
    auto system = std::find_if(messages.begin(), messages.end(),
                               [](const ChatMessage& m) { return m.role == "system"; });
    if (system == messages.end() || system->tools.is_null()) continue;
    Json tools = std::exchange(system->tools, nullptr);
    Json format = std::exchange(system->response_format, nullptr);
    EXPECT_EQ(render(messages, thinking, true, tools, format), want);
    ++moved;
    // No system message at all: the request's tools make one with empty content.
    if (system->content.value_or("").empty()) {
      messages.erase(system);
      EXPECT_EQ(render(messages, thinking, true, tools, format), want);
    }
  }
  EXPECT_GT(moved, 20);
}

ParsedChatOutput golden_message(const Json& g) {
  ParsedChatOutput want;
  want.content = g["content"];
  want.reasoning_content = g["reasoning_content"];
  for (const Json& call : g["tool_calls"])
    want.tool_calls.push_back({call["function"]["name"], call["function"]["arguments"]});
  return want;
}

TEST(ChatV32Goldens, ParsesEveryCompletionExactly) {
  DSINFER_REQUIRE_SHARED(kGoldens);
  const Json& cases = goldens()["parse"];
  ASSERT_EQ(cases.size(), 40u);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Json& g = cases[c];
    bool thinking = g["thinking_mode"] == "thinking";
    EXPECT_EQ(parse_chat_output(ChatFormat::deepseek_v3_2, thinking,
                                g["completion"].get_ref<const std::string&>()),
              golden_message(g))
        << "case " << c;
  }
}

// Each completion fed in two pieces at every byte, byte by byte, and in random chunks gives
// the one-shot result, with valid UTF-8 deltas and no markup in the text deltas.
TEST(ChatV32Goldens, StreamingGivesTheSameAtEverySplit) {
  DSINFER_REQUIRE_SHARED(kGoldens);
  for (const Json& g : goldens()["parse"]) {
    bool thinking = g["thinking_mode"] == "thinking";
    const std::string& completion = g["completion"].get_ref<const std::string&>();
    expect_same_when_streamed(ChatFormat::deepseek_v3_2, thinking, completion, golden_message(g));
    // No marker ever reaches the text, even in part.
    ChatOutputParser parser(ChatFormat::deepseek_v3_2, thinking);
    std::vector<ChatOutputDelta> deltas;
    for (char ch : completion)
      for (ChatOutputDelta& d : parser.push(std::string_view(&ch, 1))) deltas.push_back(d);
    for (ChatOutputDelta& d : parser.finish()) deltas.push_back(d);
    for (const ChatOutputDelta& d : deltas) {
      if (d.kind != ChatOutputDelta::Kind::content && d.kind != ChatOutputDelta::Kind::reasoning)
        continue;
      for (const char* markup : {"DSML", "<｜", "</", "\n\n<"})
        EXPECT_EQ(d.text.find(markup), std::string::npos) << d.text;
    }
  }
}

// The arguments of a string parameter arrive while its value is being generated.
TEST(ChatV32Goldens, StringArgumentsStreamAsGenerated) {
  DSINFER_REQUIRE_SHARED(kGoldens);
  int checked = 0;
  for (const Json& g : goldens()["parse"]) {
    const std::string& completion = g["completion"].get_ref<const std::string&>();
    std::string open = "string=\"true\">";
    size_t at = completion.find(open);
    if (at == std::string::npos) continue;
    size_t value = at + open.size();
    size_t value_end = completion.find("</", value);
    // Everything but the value's last character (which may be several bytes).
    size_t cut = value_end - 1;
    while (cut > value && (static_cast<unsigned char>(completion[cut]) & 0xC0) == 0x80) --cut;
    ASSERT_GT(cut, value);
    ChatOutputParser parser(ChatFormat::deepseek_v3_2, g["thinking_mode"] == "thinking");
    ParsedChatOutput so_far;
    so_far.add(parser.push(completion.substr(0, cut)));
    ASSERT_FALSE(so_far.tool_calls.empty());
    std::string partial = completion.substr(value, cut - value);
    EXPECT_TRUE(ends_with(so_far.tool_calls.back().arguments, ": \"" + partial))
        << so_far.tool_calls.back().arguments;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

}  // namespace
}  // namespace dsinfer::testing
