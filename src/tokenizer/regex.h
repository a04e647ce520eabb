// Regular expressions for pre-tokenizer patterns: PCRE2 in UTF + UCP mode, JIT-compiled when
// the library supports it. Patterns in tokenizer.json are written for Oniguruma (what HF
// tokenizers runs); the few escapes whose meaning differs in PCRE2 are translated.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dsinfer::tokenizer {

class Regex {
 public:
  // Throws std::invalid_argument naming the pattern, PCRE2's message and the offset.
  static Regex compile(std::string_view oniguruma_pattern);
  // Matches `text` literally.
  static Regex literal(std::string_view text);

  // Finds the leftmost match starting at or after `start`. `subject` must be well-formed
  // UTF-8 (checked by the caller) and `start` a character boundary.
  bool find(std::string_view subject, size_t start, size_t& match_begin, size_t& match_end) const;

  // Calls on_match(begin, end) for each match, left to right, with Oniguruma's iteration
  // rule: an empty match right where the previous match ended is skipped.
  template <class OnMatch>
  void for_each_match(std::string_view subject, OnMatch&& on_match) const;

  const std::string& pattern() const { return pattern_; }

  struct Code;  // the compiled PCRE2 pattern (opaque)

 private:
  Regex(std::shared_ptr<const Code> code, std::string pattern)
      : code_(std::move(code)), pattern_(std::move(pattern)) {}
  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

// The pattern rewritten for PCRE2, whose class escapes mean something else: \s becomes
// ECMAScript's white space, as transformers.js (which produced the reference encodings) has
// it (PCRE2's lacks U+FEFF and has U+0085 and U+180E; HF's Oniguruma has U+0085, not U+FEFF);
// \w becomes Oniguruma's letters, marks, decimal digits and connector punctuation (PCRE2's is
// letters, all numbers and '_'); \h becomes Oniguruma's hex digit (PCRE2's is horizontal
// space). Throws std::invalid_argument for a negated class escape inside [...], which has no
// PCRE2 spelling.
std::string oniguruma_to_pcre2(std::string_view pattern);

template <class OnMatch>
void Regex::for_each_match(std::string_view subject, OnMatch&& on_match) const {
  size_t pos = 0, begin = 0, end = 0;
  std::optional<size_t> last_match_end;
  while (pos <= subject.size() && find(subject, pos, begin, end)) {
    if (begin == end && last_match_end == end) {
      if (pos == subject.size()) break;
      // Step over one whole character.
      ++pos;
      while (pos < subject.size() && (static_cast<unsigned char>(subject[pos]) & 0xC0) == 0x80)
        ++pos;
      continue;
    }
    on_match(begin, end);
    pos = end;
    last_match_end = end;
  }
}

}  // namespace dsinfer::tokenizer
