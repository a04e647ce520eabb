// Incremental detokenization for generation: feed token ids one at a time and get text as
// soon as it is complete UTF-8. Bytes of a character split across tokens are held back until
// the character is whole, so nothing is ever printed as garbage; the concatenated output
// equals Tokenizer::decode of all the ids.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace dsinfer {

class StreamingDecoder {
 public:
  explicit StreamingDecoder(Tokenizer tokenizer, bool skip_special = false)
      : tokenizer_(std::move(tokenizer)), skip_special_(skip_special) {}

  // The text that `id` completes (may be empty). Throws std::out_of_range for an unknown id.
  std::string push(int32_t id);
  // Whatever is still held back (an incomplete character becomes U+FFFD); starts afresh.
  std::string flush();
  // Bytes held back waiting for the rest of a character.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  Tokenizer tokenizer_;  // shares the loaded tokenizer
  bool skip_special_;
  std::string pending_;
};

}  // namespace dsinfer
