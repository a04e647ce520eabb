// Small tokenizer.json documents for unit tests: a byte-level BPE whose vocabulary is the 256
// byte tokens (id = byte value) plus one token per merge, in merge order (ids 256, 257, ...).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace dsinfer::testing {

// `merges` are written as the text they join, e.g. {"l", "o"}, {"lo", "w"}.
inline nlohmann::json tiny_tokenizer_json(
    const std::vector<std::pair<std::string, std::string>>& merges = {}) {
  using tokenizer::bytes_to_byte_level;
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, char(b)))] = b;
  nlohmann::json merge_list = nlohmann::json::array();
  for (const auto& [l, r] : merges) {
    std::string joined = bytes_to_byte_level(l + r);
    if (!vocab.contains(joined)) vocab[joined] = int(vocab.size());
    merge_list.push_back(bytes_to_byte_level(l) + " " + bytes_to_byte_level(r));
  }
  return {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}},
  };
}

inline Tokenizer tiny_tokenizer(const nlohmann::json& j, const std::string& config = {}) {
  return Tokenizer::from_json(j.dump(), config);
}

inline nlohmann::json added_token(int id, const std::string& content, bool special,
                                  bool normalized = false) {
  return {{"id", id},        {"content", content},       {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", normalized}, {"special", special}};
}

// The ids of `text` spelled byte by byte (what a tiny tokenizer without merges gives).
inline std::vector<int32_t> byte_ids(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

}  // namespace dsinfer::testing
