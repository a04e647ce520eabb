// UTF-8 validation, lossy conversion (maximal ill-formed subparts) and the byte-level table.
#include <gtest/gtest.h>

#include <set>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dsinfer::tokenizer {
namespace {

std::string lossy(std::string_view s) {
  std::string out;
  append_utf8_lossy(out, s, true);
  return out;
}

TEST(Utf8, FindsTheFirstIllFormedByte) {
  EXPECT_EQ(find_invalid_utf8("plain ascii text, long enough for the fast path"), kValidUtf8);
  EXPECT_EQ(find_invalid_utf8("héllo 你好 🙂"), kValidUtf8);
  EXPECT_EQ(find_invalid_utf8("\xC0\x80"), 0u);                 // overlong
  EXPECT_EQ(find_invalid_utf8("ab\xE2\x82"), 2u);               // cut off at the end
  EXPECT_EQ(find_invalid_utf8("abcdefghij\xED\xA0\x80"), 10u);  // a UTF-16 surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);         // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("ok\x80"), 2u);                   // stray continuation
}

TEST(Utf8, LossyReplacesEachMaximalSubpartOnce) {
  EXPECT_EQ(lossy("a\xF0\x9F\x99\x82z"), "a🙂z");
  EXPECT_EQ(lossy("a\xF0\x9F\x98"), "a\uFFFD");  // one truncated sequence, one U+FFFD
  EXPECT_EQ(lossy("\xF0\x9F\x41"),
            "\uFFFD"
            "A");                                // F0 9F is one subpart
  EXPECT_EQ(lossy("\xE0\x80"), "\uFFFD\uFFFD");  // 80 cannot follow E0
  EXPECT_EQ(lossy("\xFF\xFE"), "\uFFFD\uFFFD");
}

TEST(Utf8, LossyHoldsBackAnIncompleteTailUnlessFinal) {
  std::string out;
  EXPECT_EQ(append_utf8_lossy(out, "ab\xE4\xBD", false), 2u);
  EXPECT_EQ(out, "ab");
  // An ill-formed tail is not held back: no later byte could repair it.
  out.clear();
  EXPECT_EQ(append_utf8_lossy(out, "ab\xE4\x41", false), 4u);
  EXPECT_EQ(out,
            "ab\uFFFD"
            "A");
}

TEST(Utf8, CodePointsRoundTrip) {
  for (char32_t cp : {U'a', U'\u00e9', U'\u4f60', U'\U0001F642', U'\U0010FFFF'}) {
    std::string s;
    append_utf8(s, cp);
    size_t i = 0;
    EXPECT_EQ(next_code_point(s, i), cp);
    EXPECT_EQ(i, s.size());
    size_t start = 99;
    EXPECT_EQ(previous_code_point(s, s.size(), start), cp);
    EXPECT_EQ(start, 0u);
  }
}

TEST(Utf8, WhiteSpaceIsTheUnicodeProperty) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\u0085', U'\u00a0', U'\u2009', U'\u3000'})
    EXPECT_TRUE(is_white_space(c)) << uint32_t(c);
  for (char32_t c : {U'a', U'\u200b', U'\ufeff', U'\u180e'}) EXPECT_FALSE(is_white_space(c));
}

TEST(ByteLevel, MapsEveryByteToADistinctCharacterAndBack) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    char32_t c = byte_to_char(uint8_t(b));
    EXPECT_TRUE(seen.insert(c).second);
    EXPECT_EQ(char_to_byte(c), b);
  }
  EXPECT_EQ(byte_to_char(' '), U'\u0120');   // 'Ġ'
  EXPECT_EQ(byte_to_char('\n'), U'\u010A');  // 'Ċ'
  EXPECT_EQ(byte_to_char('a'), U'a');
  EXPECT_EQ(char_to_byte(U'\u4f60'), -1);
}

TEST(ByteLevel, SpellingsAndTheDecoderFallback) {
  std::string bytes = std::string("\x00 hi\xE4\xBD\xA0", 7);
  EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(bytes)), bytes);
  EXPECT_EQ(byte_level_to_bytes("Ġhello"), " hello");
  EXPECT_EQ(byte_level_to_bytes("<｜User｜>"), std::nullopt);
  // HF's ByteLevel decoder keeps a token with unmapped characters as it is.
  EXPECT_EQ(byte_level_decode_token("<｜User｜>"), "<｜User｜>");
  EXPECT_EQ(byte_level_decode_token("ĠĠx"), "  x");
}

}  // namespace
}  // namespace dsinfer::tokenizer
