// Helpers for the ChatOutputParser tests: feeding a completion in chunks, and checks that hold
// for every stream (valid UTF-8 deltas, well-ordered tool-call deltas).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_output_parser.h"
#include "tokenizer/utf8.h"

namespace dsinfer {

// How GoogleTest prints a parsed message (found by argument-dependent lookup).
inline void PrintTo(const ParsedChatOutput& p, std::ostream* os) {
  nlohmann::json calls = nlohmann::json::array();
  for (const auto& c : p.tool_calls)
    calls.push_back({{"name", c.name}, {"arguments", c.arguments}});
  *os << nlohmann::json{{"content", p.content},
                        {"reasoning_content", p.reasoning_content},
                        {"tool_calls", calls}}
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dsinfer

namespace dsinfer::testing {

// Checks one stream's deltas as a client would see them; returns the folded message.
class DeltaChecker {
 public:
  void add(const std::vector<ChatOutputDelta>& deltas) {
    for (const ChatOutputDelta& d : deltas) {
      EXPECT_EQ(tokenizer::find_invalid_utf8(d.text), tokenizer::kValidUtf8)
          << "invalid UTF-8 in a delta: " << ::testing::PrintToString(d.text);
      switch (d.kind) {
        case ChatOutputDelta::Kind::reasoning:
        case ChatOutputDelta::Kind::content:
          EXPECT_FALSE(d.text.empty());
          break;
        case ChatOutputDelta::Kind::tool_call_start:
          EXPECT_EQ(d.tool_index, started_) << "tool calls start in order";
          ++started_;
          break;
        case ChatOutputDelta::Kind::tool_call_arguments:
          EXPECT_FALSE(d.text.empty());
          EXPECT_EQ(d.tool_index, started_ - 1) << "arguments belong to the latest call";
          break;
      }
      message.add(d);
    }
  }
  ParsedChatOutput message;

 private:
  int started_ = 0;
};

// Feeds `text` cut at the given offsets (increasing); `deltas` gets every delta.
inline ParsedChatOutput parse_in_pieces(ChatFormat format, bool thinking, std::string_view text,
                                        const std::vector<size_t>& cuts,
                                        const nlohmann::ordered_json& tools = nullptr) {
  ChatOutputParser parser(format, thinking, tools);
  DeltaChecker checker;
  size_t at = 0;
  for (size_t cut : cuts) {
    checker.add(parser.push(text.substr(at, cut - at)));
    at = cut;
  }
  checker.add(parser.push(text.substr(at)));
  checker.add(parser.finish());
  return checker.message;
}

inline std::vector<size_t> random_cuts(size_t size, std::mt19937& rng) {
  std::vector<size_t> cuts;
  if (size == 0) return cuts;
  size_t at = 0;
  std::uniform_int_distribution<size_t> step(1, 1 + rng() % 24);
  while ((at += step(rng)) < size) cuts.push_back(at);
  return cuts;
}

// Every way of feeding `text` the tests use: each split point k (two pieces), byte by byte, and
// random chunkings; each must give `want`.
inline void expect_same_when_streamed(ChatFormat format, bool thinking, std::string_view text,
                                      const ParsedChatOutput& want, int random_chunkings = 20,
                                      const nlohmann::ordered_json& tools = nullptr) {
  for (size_t k = 0; k <= text.size(); ++k)
    ASSERT_EQ(parse_in_pieces(format, thinking, text, {k}, tools), want)
        << "split at " << k << " of " << ::testing::PrintToString(std::string(text));
  std::vector<size_t> bytes;
  for (size_t k = 1; k < text.size(); ++k) bytes.push_back(k);
  ASSERT_EQ(parse_in_pieces(format, thinking, text, bytes, tools), want) << "byte by byte";
  std::mt19937 rng(uint32_t(text.size()));
  for (int r = 0; r < random_chunkings; ++r) {
    std::vector<size_t> cuts = random_cuts(text.size(), rng);
    ASSERT_EQ(parse_in_pieces(format, thinking, text, cuts, tools), want) << "chunking " << r;
  }
}

}  // namespace dsinfer::testing
