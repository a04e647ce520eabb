// Randomly damaged tokenizer.json documents and chat message lists: every one either works or
// is rejected with std::invalid_argument (a message naming the field), never another exception
// or a crash.
#include <gtest/gtest.h>

#include <random>

#include "tiny_tokenizer.h"
#include "tokenizer/chat_format.h"

namespace dsinfer::testing {
namespace {

using nlohmann::json;

json random_value(std::mt19937& rng) {
  switch (rng() % 7) {
    case 0:
      return nullptr;
    case 1:
      return int(rng() % 600) - 5;
    case 2:
      return "Ġ";
    case 3:
      return json::array({"a b", 1});
    case 4:
      return json::object({{"type", "Split"}});
    case 5:
      return true;
    default:
      return 1.5;
  }
}

// Replaces, removes or descends into one random member.
void damage(json& j, std::mt19937& rng, int depth) {
  if (j.empty() || !(j.is_object() || j.is_array())) return;
  size_t i = rng() % j.size();
  json& child = j.is_object() ? std::next(j.begin(), long(i)).value() : j[i];
  if (depth > 0 && rng() % 2) {
    damage(child, rng, depth - 1);
  } else if (j.is_object() && rng() % 4 == 0) {
    j.erase(std::next(j.begin(), long(i)));
  } else {
    child = random_value(rng);
  }
}

TEST(MalformedInput, TokenizerJson) {
  json base = tiny_tokenizer_json({{"a", "b"}, {"ab", "c"}});
  base["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern", {{"Regex", "\\s+"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}})}};
  base["added_tokens"] = json::array({added_token(300, "<s>", true)});
  std::mt19937 rng(11);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    json j = base;
    for (int k = 0, n = 1 + int(rng() % 3); k < n; ++k) damage(j, rng, 4);
    try {
      Tokenizer tok = tiny_tokenizer(j);
      tok.decode(tok.encode("abc <s> def", true));
      ++loaded;
    } catch (const std::invalid_argument&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "trial " << trial << ": " << e.what() << "\n" << j.dump();
    }
  }
  EXPECT_GT(loaded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(MalformedInput, ChatMessages) {
  json base = json::parse(R"([
    {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
    {"role": "tool", "content": "r"},
    {"role": "assistant", "content": "x", "reasoning_content": "y"}])");
  std::mt19937 rng(12);
  for (int trial = 0; trial < 1500; ++trial) {
    json j = base;
    for (int k = 0, n = 1 + int(rng() % 3); k < n; ++k) damage(j, rng, 4);
    for (ChatFormat f :
         {ChatFormat::deepseek_v3, ChatFormat::deepseek_v3_1, ChatFormat::deepseek_v3_2}) {
      try {
        render_chat(f, chat_messages_from_json(j), {true, trial % 2 == 0}, "<s>");
      } catch (const std::invalid_argument&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << "trial " << trial << ": " << e.what() << "\n" << j.dump();
      }
    }
  }
}

// Chat messages with every field the formats read (tools, response_format, developer and tool
// roles, reasoning, tool calls), randomly damaged (members replaced by other types, removed,
// roles changed to unknown ones), and request-level tools damaged too: each either renders or
// is rejected with std::invalid_argument whose message starts with the field it is about.
TEST(MalformedInput, ChatMessagesWithToolsAndRoles) {
  json base = json::parse(R"([
    {"role": "system", "content": "s", "response_format": {"type": "json_object"},
     "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]},
    {"role": "developer", "content": "dev", "tools": [{"type": "function", "function": {"name": "g"}}]},
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": null, "reasoning_content": "r", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{\"a\": \"x\", \"b\": [1]}"}},
      {"type": "function", "function": {"name": "g", "arguments": "{}"}}]},
    {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
    {"role": "assistant", "content": "x", "reasoning": "y"}])");
  json request_tools = base[0]["tools"];
  const std::vector<json> roles = {"wizard", "", "USER", "function", "tool", "developer", 7};
  std::mt19937 rng(13);
  int rendered = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    json j = base;
    for (int k = 0, n = 1 + int(rng() % 3); k < n; ++k) {
      json& m = j[rng() % j.size()];
      if (rng() % 4 == 0 && m.is_object()) {
        m["role"] = roles[rng() % roles.size()];
      } else {
        damage(j, rng, 5);
      }
    }
    ChatOptions options{.add_generation_prompt = rng() % 2 == 0, .thinking = rng() % 2 == 0};
    if (rng() % 3 == 0) {
      json t = request_tools;
      if (rng() % 2) damage(t, rng, 4);
      options.tools = t;
    }
    if (rng() % 5 == 0) options.response_format = random_value(rng);
    for (ChatFormat f :
         {ChatFormat::deepseek_v3, ChatFormat::deepseek_v3_1, ChatFormat::deepseek_v3_2}) {
      try {
        render_chat(f, chat_messages_from_json(nlohmann::ordered_json(j)), options, "<s>");
        ++rendered;
      } catch (const std::invalid_argument& e) {
        ++rejected;
        std::string what = e.what();
        bool names_field = what.rfind("messages", 0) == 0 || what.rfind("tools", 0) == 0 ||
                           what.rfind("response_format", 0) == 0 ||
                           what.find("no thinking mode") != std::string::npos;
        EXPECT_TRUE(names_field) << what;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "trial " << trial << ": " << e.what() << "\n" << j.dump();
      }
    }
  }
  EXPECT_GT(rendered, 100);
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace dsinfer::testing
