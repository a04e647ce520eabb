// Added tokens: matched before pre-tokenization, leftmost-longest, raw pass before the
// normalized pass, special ones only when allowed, lstrip/rstrip, and decoding.
#include <gtest/gtest.h>

#include "tiny_tokenizer.h"

namespace dsinfer::testing {
namespace {

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Tokenizer with_added(const nlohmann::json& added) {
  nlohmann::json j = tiny_tokenizer_json();
  j["added_tokens"] = added;
  return tiny_tokenizer(j);
}

TEST(AddedTokens, LeftmostThenLongest) {
  Tokenizer tok =
      with_added({added_token(300, "<a>", false, true), added_token(301, "<a><b>", false, true),
                  added_token(302, "b>x", false, true)});
  EXPECT_EQ(tok.encode("x<a><b>xx", false), concat({byte_ids("x"), {301}, byte_ids("xx")}));
  EXPECT_EQ(tok.encode("<a>b>x", false), (std::vector<int32_t>{300, 302}));
  EXPECT_EQ(tok.encode("zb>x<a>", false), (std::vector<int32_t>{'z', 302, 300}));
}

TEST(AddedTokens, RawTokensAreFoundBeforeNormalizedOnes) {
  // HF splits on normalized=false tokens first, then looks for the others in what is left.
  Tokenizer tok =
      with_added({added_token(300, "bc", true, false), added_token(301, "abcd", false, true)});
  EXPECT_EQ(tok.encode("abcd", true), (std::vector<int32_t>{'a', 300, 'd'}));
  EXPECT_EQ(tok.encode("abcd", false), (std::vector<int32_t>{301}));
}

TEST(AddedTokens, SpecialTokensOnlyWhenAllowed) {
  Tokenizer tok = with_added({added_token(300, "<s>", true), added_token(301, "<u>", false, true)});
  EXPECT_EQ(tok.encode("<s>hi<u>", true), concat({{300}, byte_ids("hi"), {301}}));
  EXPECT_EQ(tok.encode("<s>hi<u>", false), concat({byte_ids("<s>hi"), {301}}));
  EXPECT_TRUE(tok.is_special(300));
  EXPECT_FALSE(tok.is_special(301));
  EXPECT_FALSE(tok.is_special('a'));
}

TEST(AddedTokens, TheyCutThePreTokenizerContext) {
  // The pre-tokenizer sees the text on each side of an added token separately: the space
  // before "|" cannot join the word after it.
  nlohmann::json j = tiny_tokenizer_json({{" ", "b"}});
  j["pre_tokenizer"]["use_regex"] = true;
  j["added_tokens"] = nlohmann::json::array({added_token(300, "|", false, true)});
  Tokenizer tok = tiny_tokenizer(j);
  EXPECT_EQ(tok.encode("a b", false), (std::vector<int32_t>{'a', 256}));
  EXPECT_EQ(tok.encode("a  b", false), (std::vector<int32_t>{'a', ' ', 256}));
  EXPECT_EQ(tok.encode("a |b", false), (std::vector<int32_t>{'a', ' ', 300, 'b'}));
}

TEST(AddedTokens, StripOptionsSwallowWhiteSpace) {
  nlohmann::json t = added_token(300, "<m>", false, true);
  t["lstrip"] = true;
  t["rstrip"] = true;
  Tokenizer tok = with_added(nlohmann::json::array({t}));
  EXPECT_EQ(tok.encode("a \u3000<m>\t\n b", false), (std::vector<int32_t>{'a', 300, 'b'}));
  t["rstrip"] = false;
  EXPECT_EQ(with_added(nlohmann::json::array({t})).encode("a <m> b", false),
            (std::vector<int32_t>{'a', 300, ' ', 'b'}));
}

TEST(AddedTokens, DecodeGivesTheirContentAndSkipsSpecials) {
  Tokenizer tok =
      with_added({added_token(300, "<｜s｜>", true), added_token(301, "<u>", false, true)});
  std::vector<int32_t> ids = tok.encode("<｜s｜>hé<u>", true);
  EXPECT_EQ(ids.front(), 300);
  EXPECT_EQ(tok.decode(ids), "<｜s｜>hé<u>");
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "hé<u>");
  EXPECT_EQ(tok.token_id("<｜s｜>"), 300);
  EXPECT_EQ(tok.token_text(300), "<｜s｜>");
  EXPECT_EQ(tok.vocab_size(), 302u);
}

TEST(AddedTokens, LoadErrorsNameTheEntry) {
  nlohmann::json t = added_token(300, "<m>", false);
  t["single_word"] = true;
  nlohmann::json j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(299, "<x>", false), t};
  try {
    tiny_tokenizer(j);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("added_tokens[1].single_word"), std::string::npos)
        << e.what();
  }
  j["added_tokens"] = nlohmann::json::array({{{"id", 5}}});
  EXPECT_THROW(tiny_tokenizer(j), std::invalid_argument);
  j["added_tokens"] = nlohmann::json::array({added_token(-1, "<x>", false)});
  EXPECT_THROW(tiny_tokenizer(j), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer::testing
