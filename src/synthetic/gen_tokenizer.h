// A small byte-level BPE tokenizer in the format of the real DeepSeek-V3 `tokenizer.json`, for
// generated test models (synthetic/gen_model.h): the same normalizer, pre-tokenizer (the three Split
// regexes and ByteLevel), decoder and special tokens, with merges learned from a built-in English
// text instead of 128K learned ones. Deterministic: the result depends on the vocabulary size only.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsinfer {

struct GenSpecialToken {
  std::string content;
  bool special = true;      // the tokenizer.json `special` flag (User/Assistant/... are false)
  bool normalized = false;  // the tokenizer.json `normalized` flag
};

struct GenTokenizer {
  // Token strings by id, byte-level encoded ("Ġthe"); ids [0, vocab_end) are the BPE vocabulary
  // (the three leading special tokens, the 256 bytes, the merges' results), ids
  // [vocab_end, size) exist only as added tokens (<｜User｜>, <think>, ...).
  std::vector<std::string> tokens;
  std::vector<GenSpecialToken> specials;  // in id order: ids 0, 1, 2, then vocab_end, ...
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  int vocab_end = 0;

  int size() const { return int(tokens.size()); }
  int bos_id() const { return 0; }
  int eos_id() const { return 1; }
  // The id of a special token's content, or -1.
  int special_id(std::string_view content) const;
  bool is_special_id(int id) const { return id < 3 || id >= vocab_end; }
};

// Learns merges from gen_tokenizer_corpus() until the tokenizer has exactly `vocab_size` tokens
// (vocabulary plus added tokens). Throws std::invalid_argument when the size is below the fixed
// tokens or above what the corpus supports (see gen_tokenizer_max_size()).
GenTokenizer build_gen_tokenizer(int vocab_size);
// The largest vocab_size build_gen_tokenizer accepts.
int gen_tokenizer_max_size();

// `tokenizer.json`, structured like the real DeepSeek-V3 file.
std::string gen_tokenizer_json(const GenTokenizer& tokenizer);
// `tokenizer_config.json` with bos/eos/pad and the DeepSeek-V3 chat template.
std::string gen_tokenizer_config_json(const GenTokenizer& tokenizer, int model_max_length);
// The DeepSeek-V3 `chat_template` (Jinja), verbatim from the released tokenizer_config.json.
const std::string& deepseek_v3_chat_template();

// The built-in English training text.
std::string_view gen_tokenizer_corpus();
// GPT-2's byte-to-unicode map as used by ByteLevel: every byte becomes one printable code point
// (UTF-8 encoded here); e.g. ' ' -> "Ġ", '\n' -> "Ċ".
std::string byte_level_char(unsigned char byte);
std::string byte_level_encode(std::string_view bytes);
// The chunks the real pre-tokenizer regexes cut ASCII text into ("Hello, world 123" ->
// "Hello" "," " world" " " "123"); non-ASCII bytes are kept with the letters next to them.
// Used for learning merges; exact for the ASCII corpus.
std::vector<std::string> gen_pre_tokenize(std::string_view text);

}  // namespace dsinfer
