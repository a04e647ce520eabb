// Added tokens of tokenizer.json ("<｜User｜>", "<｜end▁of▁sentence｜>", ...): they are found in
// the text before pre-tokenization, as HF's AddedVocabulary does: first the tokens with
// normalized=false, then (in the text left over) those with normalized=true, each pass taking
// the leftmost, then longest, match.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace dsinfer::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;     // skipped by decode(skip_special) and not matched unless allowed
  bool normalized = false;  // matched after normalization (the second pass)
  bool lstrip = false;      // the match swallows whitespace on its left
  bool rstrip = false;      // ... and on its right
};

// A stretch of the input: a matched added token (id >= 0) or plain text (id == -1).
struct Segment {
  size_t begin, end;
  int32_t id;
};

class AddedTokens {
 public:
  // From tokenizer.json's "added_tokens" array (null means none).
  static AddedTokens from_json(const nlohmann::json& list, const std::string& where);

  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Splits `text` into segments covering it in order. Tokens with special=true are matched
  // only when `allow_special` (HF's default; false is HF's split_special_tokens): otherwise
  // the text they cover stays plain text.
  std::vector<Segment> split(std::string_view text, bool allow_special) const;

 private:
  // Token indices of one pass, bucketed by first byte, longest first.
  struct Pass {
    std::array<std::vector<uint32_t>, 256> by_first_byte;
    bool empty = true;
  };
  // Splits text[begin, end) with one pass's tokens, appending to `out`.
  void split_pass(const Pass& pass, std::string_view text, size_t begin, size_t end,
                  bool allow_special, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  Pass raw_, normalized_;
};

}  // namespace dsinfer::tokenizer
