// A byte-level BPE tokenizer read from a model directory's tokenizer.json (plus
// tokenizer_config.json for the BOS/EOS tokens) that encodes and decodes exactly as HF
// tokenizers does for the components DeepSeek's tokenizers use. See docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsinfer {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. Throws
  // std::runtime_error for a missing directory or file and std::invalid_argument naming the
  // file and field for bad JSON or unsupported components.
  static Tokenizer load(const std::string& model_dir);
  // The same from file contents; `source` names the tokenizer.json text in errors.
  static Tokenizer from_json(std::string_view tokenizer_json,
                             std::string_view tokenizer_config_json = {},
                             const std::string& source = "tokenizer.json");

  // Token ids of `text` (well-formed UTF-8, else std::invalid_argument with the byte offset).
  // No BOS is added. Added tokens are recognised in the text, except that those marked
  // special (BOS, EOS, ...) are only when `allow_special`; otherwise their text is encoded
  // as ordinary text. Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;

  // The UTF-8 text of `ids`; byte sequences that are not valid UTF-8 become U+FFFD.
  // `skip_special` leaves out special tokens. Throws std::out_of_range for an unknown id.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The id of a token as tokenizer.json spells it (added-token content, or the byte-level
  // vocabulary spelling such as "Ġthe"), or -1.
  int32_t token_id(std::string_view token) const;
  // The spelling of `id` (inverse of token_id), or nullopt for an unknown id.
  std::optional<std::string> token_text(int32_t id) const;
  // The bytes `id` decodes to (not necessarily whole UTF-8 characters), or nullopt.
  std::optional<std::string> token_bytes(int32_t id) const;
  // Whether `id` is an added token marked special.
  bool is_special(int32_t id) const;

  // From tokenizer_config.json; -1 / "" when it names none.
  int32_t bos_id() const;
  int32_t eos_id() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;

  // One past the largest token id.
  size_t vocab_size() const;

  // How many words the BPE cache keeps (0 disables it; for benchmarks). Not thread-safe.
  void set_cache_capacity(size_t words);

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace dsinfer
