// The pre-tokenizer of tokenizer.json: splits text into the pieces BPE encodes separately.
// Supports HF's Sequence, Split (regex or string pattern, all five behaviors, invert) and
// ByteLevel, which must come last: its byte-to-character mapping is implicit here because the
// BPE model works on raw bytes.
#pragma once

#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace dsinfer::tokenizer {

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

// One Split step on its own, as HF's NormalizedString::split applies it to one piece:
// appends the non-empty resulting pieces of `text` to `out`.
void split_piece(std::string_view text, const Regex& regex, SplitBehavior behavior, bool invert,
                 std::vector<std::string_view>& out);

class PreTokenizer {
 public:
  // From tokenizer.json's "pre_tokenizer" value (null means none). `where` names it in errors.
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where);

  // Appends the pieces of `text` to `out`. They view `text`, or strings kept in `arena` when
  // a step had to make new text (ByteLevel's add_prefix_space).
  void split(std::string_view text, std::vector<std::string_view>& out,
             std::deque<std::string>& arena) const;

  // Whether the last step is ByteLevel, i.e. the pieces are meant for byte-level BPE.
  bool ends_with_byte_level() const { return !steps_.empty() && steps_.back().byte_level; }

 private:
  struct Step {
    bool byte_level = false;
    std::optional<Regex> regex;  // ByteLevel: only when use_regex
    SplitBehavior behavior = SplitBehavior::isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel only
  };
  void add_steps(const nlohmann::json& j, const std::string& where);
  std::vector<Step> steps_;
};

}  // namespace dsinfer::tokenizer
