// PCRE2 patterns with the Oniguruma/ECMAScript escape meanings tokenizer.json expects.
#include <gtest/gtest.h>

#include "tokenizer/regex.h"

namespace dsinfer::tokenizer {
namespace {

std::vector<std::pair<size_t, size_t>> matches(const Regex& re, std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  re.for_each_match(s, [&](size_t b, size_t e) { out.emplace_back(b, e); });
  return out;
}

TEST(Regex, WhiteSpaceEscapeFollowsEcmaScript) {
  Regex space = Regex::compile("\\s+");
  for (std::string_view s : {" ", "\t", "\u3000", "\u00a0", "\u2028", "\ufeff"})
    EXPECT_EQ(matches(space, s).size(), 1u) << s;
  // PCRE2 would count these as space; ECMAScript (transformers.js) does not.
  for (std::string_view s : {"\u0085", "\u180e", "\u200b", "x"})
    EXPECT_TRUE(matches(space, s).empty()) << s;
  Regex not_space = Regex::compile("\\S+");
  EXPECT_EQ(matches(not_space, "a\u180eb c"),
            (std::vector<std::pair<size_t, size_t>>{{0, 5}, {6, 7}}));
}

TEST(Regex, TranslatesClassEscapesInsideAndOutsideBrackets) {
  EXPECT_EQ(oniguruma_to_pcre2("a\\sb"), "a[\\t\\n\\x0B\\f\\r\\x{FEFF}\\p{Z}]b");
  EXPECT_EQ(oniguruma_to_pcre2("[^\\s\\p{L}]"), "[^\\t\\n\\x0B\\f\\r\\x{FEFF}\\p{Z}\\p{L}]");
  EXPECT_EQ(oniguruma_to_pcre2("\\\\s"), "\\\\s");  // an escaped backslash, then 's'
  EXPECT_EQ(oniguruma_to_pcre2("[]\\s]"), "[]\\t\\n\\x0B\\f\\r\\x{FEFF}\\p{Z}]");
  EXPECT_EQ(oniguruma_to_pcre2("[[:alpha:]\\d]"), "[[:alpha:]\\d]");
  EXPECT_THROW(oniguruma_to_pcre2("[\\S]"), std::invalid_argument);
  Regex hex = Regex::compile("\\h+");  // Oniguruma: a hex digit
  EXPECT_EQ(matches(hex, "zz0fAz"), (std::vector<std::pair<size_t, size_t>>{{2, 5}}));
  Regex word = Regex::compile("\\w+");  // Oniguruma: letters, marks, digits, connectors
  EXPECT_EQ(matches(word, "e\u0301_9 ½"), (std::vector<std::pair<size_t, size_t>>{{0, 5}}));
}

TEST(Regex, UnicodePropertiesAndLookahead) {
  Regex letters = Regex::compile("\\p{L}+");
  EXPECT_EQ(matches(letters, "héllo, 世界"),
            (std::vector<std::pair<size_t, size_t>>{{0, 6}, {8, 14}}));
  Regex trailing = Regex::compile("\\s+(?!\\S)");
  // Leaves the last space of a run for the word after it.
  EXPECT_EQ(matches(trailing, "a   b"), (std::vector<std::pair<size_t, size_t>>{{1, 3}}));
  EXPECT_EQ(matches(trailing, "a   "), (std::vector<std::pair<size_t, size_t>>{{1, 4}}));
}

TEST(Regex, EmptyMatchesIterateLikeOniguruma) {
  Regex re = Regex::compile("x*");
  EXPECT_EQ(matches(re, "axb"), (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 2}, {3, 3}}));
  // Stepping over an empty match moves a whole character.
  EXPECT_EQ(matches(re, "é"), (std::vector<std::pair<size_t, size_t>>{{0, 0}, {2, 2}}));
}

TEST(Regex, LiteralPatterns) {
  Regex re = Regex::literal("a.b");
  EXPECT_EQ(matches(re, "axb a.b"), (std::vector<std::pair<size_t, size_t>>{{4, 7}}));
}

TEST(Regex, BadPatternNamesThePatternAndOffset) {
  try {
    Regex::compile("ab(c");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("ab(c"), std::string::npos) << what;
    EXPECT_NE(what.find("offset 4"), std::string::npos) << what;
  }
}

TEST(Regex, LongRunsDoNotExhaustTheMatcher) {
  Regex re = Regex::compile("\\s+(?!\\S)|\\s+");
  std::string spaces(1 << 20, ' ');
  spaces += "x";
  auto m = matches(re, spaces);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{0, (1u << 20) - 1}));
}

}  // namespace
}  // namespace dsinfer::tokenizer
