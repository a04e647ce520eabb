// The Split behaviors and the Sequence / ByteLevel pre-tokenizers, HF's semantics.
#include <gtest/gtest.h>

#include "tokenizer/pre_tokenizer.h"

namespace dsinfer::tokenizer {
namespace {

using Pieces = std::vector<std::string>;

Pieces split(std::string_view text, SplitBehavior behavior, bool invert = false) {
  std::vector<std::string_view> out;
  split_piece(text, Regex::literal("-"), behavior, invert, out);
  return {out.begin(), out.end()};
}

Pieces pre_tokenize(const nlohmann::json& j, std::string_view text) {
  PreTokenizer pt = PreTokenizer::from_json(j, "pre_tokenizer");
  std::vector<std::string_view> out;
  std::deque<std::string> arena;
  pt.split(text, out, arena);
  return {out.begin(), out.end()};
}

nlohmann::json split_step(const std::string& regex, const char* behavior = "Isolated") {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", behavior},
          {"invert", false}};
}

nlohmann::json byte_level(bool prefix = false, bool regex = false) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"use_regex", regex}};
}

// HF's documented example: "the-final--countdown" split on "-".
TEST(SplitPiece, AllBehaviors) {
  const char* text = "the-final--countdown";
  EXPECT_EQ(split(text, SplitBehavior::removed), (Pieces{"the", "final", "countdown"}));
  EXPECT_EQ(split(text, SplitBehavior::isolated),
            (Pieces{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(text, SplitBehavior::merged_with_previous),
            (Pieces{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(text, SplitBehavior::merged_with_next),
            (Pieces{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(text, SplitBehavior::contiguous),
            (Pieces{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split(text, SplitBehavior::removed, /*invert=*/true), (Pieces{"-", "-", "-"}));
}

TEST(SplitPiece, EdgesAndEmptyText) {
  EXPECT_EQ(split("-a-", SplitBehavior::merged_with_previous), (Pieces{"-", "a-"}));
  EXPECT_EQ(split("-a-", SplitBehavior::merged_with_next), (Pieces{"-a", "-"}));
  EXPECT_EQ(split("", SplitBehavior::isolated), Pieces{});
}

TEST(PreTokenizer, SequenceAppliesEachSplitToEachPiece) {
  nlohmann::json j = {
      {"type", "Sequence"},
      {"pretokenizers",
       {split_step("\\p{N}{1,3}"), split_step("[\\p{L}]+|\\s+(?!\\S)|\\s+"), byte_level()}}};
  // The digit split runs first, so the space before "123" ends its own piece.
  EXPECT_EQ(pre_tokenize(j, "a 1234 b"), (Pieces{"a", " ", "123", "4", " ", "b"}));
}

TEST(PreTokenizer, ByteLevelRegexAndPrefixSpace) {
  EXPECT_EQ(pre_tokenize(byte_level(false, true), "Hello world's 42!"),
            (Pieces{"Hello", " world", "'s", " 42", "!"}));
  // HF adds the prefix space to every piece that lacks one.
  nlohmann::json j = {{"type", "Sequence"},
                      {"pretokenizers", {split_step("\\d+"), byte_level(true, false)}}};
  EXPECT_EQ(pre_tokenize(j, "ab12"), (Pieces{" ab", " 12"}));
  EXPECT_FALSE(PreTokenizer::from_json(nullptr, "p").ends_with_byte_level());
  EXPECT_TRUE(PreTokenizer::from_json(j, "p").ends_with_byte_level());
}

void expect_error(const nlohmann::json& j, const std::vector<std::string>& parts) {
  try {
    PreTokenizer::from_json(j, "tokenizer.json: pre_tokenizer");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const std::invalid_argument& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(PreTokenizer, ErrorsNameTheField) {
  expect_error({{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}}}}},
               {"pre_tokenizer.pretokenizers[0].type", "Digits"});
  expect_error(split_step("a(b"), {"pre_tokenizer.pattern", "offset"});
  expect_error(split_step("a", "Sideways"), {"pre_tokenizer.behavior", "Sideways"});
  expect_error({{"type", "Split"}, {"pattern", "a"}, {"behavior", "Isolated"}},
               {"pre_tokenizer.pattern"});
  expect_error({{"type", "Sequence"}, {"pretokenizers", {byte_level(), split_step("a")}}},
               {"ByteLevel must be the last"});
  expect_error({{"kind", "Split"}}, {"missing field \"type\""});
}

}  // namespace
}  // namespace dsinfer::tokenizer
