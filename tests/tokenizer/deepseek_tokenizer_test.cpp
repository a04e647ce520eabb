// The real DeepSeek-V3 tokenizer (from ../shared): its special tokens, round trips of
// arbitrary text, long inputs, streaming decode and concurrent use.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "shared_data.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/utf8.h"

namespace dsinfer::testing {
namespace {

class DeepSeekTokenizer : public ::testing::Test {
 protected:
  void SetUp() override { DSINFER_REQUIRE_SHARED(kDeepSeekDir); }
  const Tokenizer& tok() { return deepseek_tokenizer(); }
};

TEST_F(DeepSeekTokenizer, VocabularyAndSpecialTokens) {
  EXPECT_EQ(tok().vocab_size(), 128815u);
  EXPECT_EQ(tok().bos_id(), 0);
  EXPECT_EQ(tok().eos_id(), 1);
  EXPECT_EQ(tok().bos_token(), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(tok().token_id("<｜User｜>"), 128803);
  EXPECT_EQ(tok().token_id("<｜Assistant｜>"), 128804);
  EXPECT_EQ(tok().token_text(128804), "<｜Assistant｜>");
  EXPECT_EQ(tok().token_id("Hello"), 19923);
  EXPECT_TRUE(tok().is_special(0));
  EXPECT_FALSE(tok().is_special(128803));  // <｜User｜> is an added token, not a special one
}

TEST_F(DeepSeekTokenizer, SpecialTokenTextNeedsAllowSpecial) {
  const std::string eos = "<｜end▁of▁sentence｜>";
  EXPECT_EQ(tok().encode(eos, true), (std::vector<int32_t>{1}));
  std::vector<int32_t> plain = tok().encode(eos, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tok().decode(plain), eos);
  // Non-special added tokens are always recognised, as in HF.
  EXPECT_EQ(tok().encode("<｜User｜>", false), (std::vector<int32_t>{128803}));
  EXPECT_EQ(tok().decode(std::vector<int32_t>{0, 19923, 1}, /*skip_special=*/true), "Hello");
}

TEST_F(DeepSeekTokenizer, ArbitraryTextRoundTrips) {
  std::mt19937 rng(1234);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0x24F},     {0x300, 0x36F},   {0x370, 0x4FF},
      {0x600, 0x6FF},   {0x900, 0x97F},   {0x2000, 0x206F},  {0x3000, 0x30FF}, {0x4E00, 0x9FFF},
      {0xAC00, 0xD7A3}, {0xFF00, 0xFFEF}, {0x1F300, 0x1FAFF}};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    for (int k = 0, n = int(rng() % 60); k < n; ++k) {
      auto [lo, hi] = ranges[rng() % ranges.size()];
      tokenizer::append_utf8(text, lo + char32_t(rng() % (hi - lo + 1)));
    }
    std::vector<int32_t> ids = tok().encode(text, false);
    ASSERT_EQ(tok().decode(ids), text) << "trial " << trial;
  }
}

TEST_F(DeepSeekTokenizer, LongInputsWithoutBreaks) {
  std::string letters(200000, 'a');
  std::vector<int32_t> ids = tok().encode(letters, false);
  EXPECT_LT(ids.size(), letters.size() / 4);
  EXPECT_EQ(tok().decode(ids), letters);
  std::string spaces = std::string(100000, ' ') + "x" + std::string(100000, '\n');
  EXPECT_EQ(tok().decode(tok().encode(spaces, false)), spaces);
}

TEST_F(DeepSeekTokenizer, StreamingHoldsBackSplitCharacters) {
  std::vector<int32_t> ids = tok().encode("🙂", false);
  ASSERT_EQ(ids.size(), 2u);  // the emoji's four bytes span two tokens
  StreamingDecoder stream(tok());
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_GT(stream.pending_bytes(), 0u);
  EXPECT_EQ(stream.push(ids[1]), "🙂");
  EXPECT_EQ(stream.pending_bytes(), 0u);
  // Cut off mid-character: flush turns what is held back into one U+FFFD.
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.flush(), "\uFFFD");
  EXPECT_EQ(stream.flush(), "");
  EXPECT_THROW(stream.push(-5), std::out_of_range);
}

TEST_F(DeepSeekTokenizer, StreamingSkipsSpecialsAndMatchesDecode) {
  std::vector<int32_t> ids = tok().encode(
      "<｜begin▁of▁sentence｜>👩‍👩‍👧 é 你好<｜end▁of▁sentence｜>", true);
  for (bool skip : {false, true}) {
    StreamingDecoder stream(tok(), skip);
    std::string text;
    for (int32_t id : ids) text += stream.push(id);
    text += stream.flush();
    EXPECT_EQ(text, tok().decode(ids, skip));
  }
}

TEST_F(DeepSeekTokenizer, ConcurrentEncodesAgree) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "Thread " + std::to_string(i) + " says héllo to 世界. ";
  std::vector<int32_t> want = tok().encode(text, false);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got)
    threads.emplace_back([&] {
      for (int r = 0; r < 5; ++r) g = tok().encode(text, false);
    });
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

}  // namespace
}  // namespace dsinfer::testing
