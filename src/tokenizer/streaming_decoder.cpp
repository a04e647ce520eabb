#include "tokenizer/streaming_decoder.h"

#include <stdexcept>

#include "tokenizer/utf8.h"

namespace dsinfer {

std::string StreamingDecoder::push(int32_t id) {
  auto bytes = tokenizer_.token_bytes(id);
  if (!bytes)
    throw std::out_of_range("token id " + std::to_string(id) + " is not in the vocabulary (size " +
                            std::to_string(tokenizer_.vocab_size()) + ")");
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  pending_ += *bytes;
  std::string out;
  size_t used = tokenizer::append_utf8_lossy(out, pending_, /*final=*/false);
  pending_.erase(0, used);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out;
  tokenizer::append_utf8_lossy(out, pending_, /*final=*/true);
  pending_.clear();
  return out;
}

}  // namespace dsinfer
