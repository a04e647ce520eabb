// The BPE merge loop on small vocabularies: rank order, leftmost ties, both merge paths,
// missing bytes, unknown tokens, ignore_merges and load errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tiny_tokenizer.h"
#include "tokenizer/bpe_model.h"

namespace dsinfer::testing {
namespace {

TEST(Bpe, AppliesMergesInRankOrder) {
  Tokenizer tok =
      tiny_tokenizer(tiny_tokenizer_json({{"e", "r"}, {"l", "o"}, {"lo", "w"}, {"low", "er"}}));
  EXPECT_EQ(tok.encode("lower", false), (std::vector<int32_t>{259}));
  EXPECT_EQ(tok.encode("lowe", false), (std::vector<int32_t>{258, 'e'}));
  EXPECT_EQ(tok.token_text(259), "lower");
}

TEST(Bpe, LowerRankWinsOverPosition) {
  Tokenizer bc_first = tiny_tokenizer(tiny_tokenizer_json({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(bc_first.encode("abc", false), (std::vector<int32_t>{'a', 256}));
  Tokenizer ab_first = tiny_tokenizer(tiny_tokenizer_json({{"a", "b"}, {"b", "c"}}));
  EXPECT_EQ(ab_first.encode("abc", false), (std::vector<int32_t>{256, 'c'}));
}

TEST(Bpe, EqualPairsMergeLeftmostFirst) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json({{"a", "a"}}));
  EXPECT_EQ(tok.encode("aaa", false), (std::vector<int32_t>{256, 'a'}));
  EXPECT_EQ(tok.encode("aaaaa", false), (std::vector<int32_t>{256, 256, 'a'}));
}

TEST(Bpe, LongWordsTakeTheHeapPathAndAgree) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json({{"a", "b"}, {"ab", "ab"}}));
  std::string word;
  for (int i = 0; i < 301; ++i) word += "ab";  // 602 bytes: well past the linear limit
  std::vector<int32_t> want(150, 257);
  want.push_back(256);
  EXPECT_EQ(tok.encode(word, false), want);
}

TEST(Bpe, LinearAndHeapMergesAgreeOnRandomWords) {
  // Every pair over a 3-letter alphabet up to length 4, ranked at random.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> tokens = {"a", "b", "c"};
  for (size_t i = 0; i < tokens.size(); ++i)
    for (size_t j = 0; j < tokens.size(); ++j)
      if (tokens[i].size() + tokens[j].size() <= 4) {
        merges.push_back({tokens[i], tokens[j]});
        std::string joined = tokens[i] + tokens[j];
        if (std::find(tokens.begin(), tokens.end(), joined) == tokens.end())
          tokens.push_back(joined);
      }
  std::mt19937 rng(7);
  std::shuffle(merges.begin(), merges.end(), rng);
  nlohmann::json j = tiny_tokenizer_json(merges);
  auto bpe = tokenizer::BpeModel::from_json(j["model"], "model");
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids;
    for (int k = 0, n = 1 + int(rng() % 40); k < n; ++k) ids.push_back('a' + int(rng() % 3));
    std::vector<int32_t> linear = ids, heap = ids;
    bpe.merge(linear, false);
    bpe.merge(heap, true);
    ASSERT_EQ(linear, heap) << "trial " << trial;
  }
}

TEST(Bpe, BytesWithoutATokenAreDroppedOrBecomeUnknown) {
  nlohmann::json j = tiny_tokenizer_json();
  j["model"]["vocab"].erase("z");
  Tokenizer drop = tiny_tokenizer(j);
  EXPECT_EQ(drop.encode("azzb", false), (std::vector<int32_t>{'a', 'b'}));
  j["model"]["vocab"]["<unk>"] = 300;
  j["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(tiny_tokenizer(j).encode("azzb", false), (std::vector<int32_t>{'a', 300, 300, 'b'}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(tiny_tokenizer(j).encode("azzb", false), (std::vector<int32_t>{'a', 300, 'b'}));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  nlohmann::json j = tiny_tokenizer_json();
  j["model"]["vocab"]["abc"] = 256;
  EXPECT_EQ(tiny_tokenizer(j).encode("abc", false), (std::vector<int32_t>{'a', 'b', 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(tiny_tokenizer(j).encode("abc", false), (std::vector<int32_t>{256}));
}

TEST(Bpe, CacheDoesNotChangeResults) {
  Tokenizer tok = tiny_tokenizer(tiny_tokenizer_json({{"a", "b"}, {"ab", "c"}}));
  std::vector<int32_t> first = tok.encode("abcab", false);
  EXPECT_EQ(tok.encode("abcab", false), first);
  tok.set_cache_capacity(0);
  EXPECT_EQ(tok.encode("abcab", false), first);
  tok.set_cache_capacity(1);  // evicts on every new word
  EXPECT_EQ(tok.encode("abcab", false), first);
  EXPECT_EQ(tok.encode("abcab", false), first);
}

TEST(Bpe, MergesAsPairsOfStrings) {
  nlohmann::json j = tiny_tokenizer_json({{"a", "b"}});
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"})});
  EXPECT_EQ(tiny_tokenizer(j).encode("ab", false), (std::vector<int32_t>{256}));
}

void expect_load_error(const nlohmann::json& j, const std::vector<std::string>& parts) {
  try {
    tiny_tokenizer(j);
    ADD_FAILURE() << "loaded without error";
  } catch (const std::invalid_argument& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(Bpe, LoadErrorsNameTheField) {
  nlohmann::json j = tiny_tokenizer_json({{"a", "b"}});
  j["model"]["merges"][0] = "a b c";
  expect_load_error(j, {"model.merges[0]", "exactly one space"});
  j["model"]["merges"][0] = "a q\u00e9";
  expect_load_error(j, {"model.merges[0]", "q\u00e9", "not in the vocabulary"});
  j["model"]["merges"][0] = 5;
  expect_load_error(j, {"model.merges[0]"});
  j = tiny_tokenizer_json();
  j["model"]["vocab"]["x"] = -3;
  expect_load_error(j, {"model.vocab[\"x\"]", "non-negative"});
  j = tiny_tokenizer_json();
  j["model"]["type"] = "WordPiece";
  expect_load_error(j, {"model.type", "WordPiece"});
  j = tiny_tokenizer_json();
  j["model"]["dropout"] = 0.1;
  expect_load_error(j, {"model.dropout"});
  j = tiny_tokenizer_json();
  j["model"]["byte_fallback"] = true;
  expect_load_error(j, {"model.byte_fallback"});
  j = tiny_tokenizer_json();
  j["model"].erase("merges");
  expect_load_error(j, {"tokenizer.json: model", "merges"});
}

}  // namespace
}  // namespace dsinfer::testing
