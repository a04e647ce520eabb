// The byte-level BPE model of tokenizer.json: vocabulary, ranked merges, and the merge loop
// that turns one pre-tokenized piece into token ids. It works on raw bytes (each byte starts
// as the token of its byte-level character), which is what HF's ByteLevel + BPE amount to.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/merge_table.h"

namespace dsinfer::tokenizer {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // From tokenizer.json's "model" object; `where` names it in errors.
  static BpeModel from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of `piece` (raw bytes). Thread-safe.
  void encode(std::string_view piece, std::vector<int32_t>& out) const;

  // Token spellings as tokenizer.json writes them (byte-level characters) -> id.
  const StringMap<int32_t>& vocab() const { return vocab_; }

  // Words up to this many bytes are cached (0 turns the cache off). Not thread-safe.
  void set_cache_capacity(size_t entries);

  // Applies the merges to `ids` in place: always the lowest-ranked adjacent pair, leftmost
  // first (HF's order). Short words use a linear scan, long ones a heap; `force_heap` lets
  // tests check that both agree.
  void merge(std::vector<int32_t>& ids, bool force_heap = false) const;

 private:
  void merge_linear(std::vector<int32_t>& ids) const;
  void merge_heap(std::vector<int32_t>& ids) const;
  void encode_uncached(std::string_view piece, std::vector<int32_t>& out) const;

  StringMap<int32_t> vocab_;
  StringMap<int32_t> bytes_vocab_;      // raw bytes -> id, for ignore_merges
  std::array<int32_t, 256> byte_id_{};  // id of each single-byte token, -1 if missing
  MergeTable merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  struct Cache {
    std::mutex mu;
    StringMap<std::vector<int32_t>> words;
    size_t capacity = 1 << 16;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace dsinfer::tokenizer
