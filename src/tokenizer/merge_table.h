// BPE merge rules keyed by the pair of token ids they join: an open-addressing hash table,
// because the merge loop looks a pair up for every adjacent pair it (re)considers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsinfer::tokenizer {

struct Merge {
  int32_t rank;    // position in the merges list: lower merges first
  int32_t result;  // id of the joined token
};

class MergeTable {
 public:
  // Inserts or overwrites (a later duplicate of a pair wins, as in HF's merge map).
  void insert(int32_t left, int32_t right, Merge merge);
  // The merge of (left, right), or nullptr.
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t k = key(left, right);
    for (size_t i = slot_of(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static uint64_t key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  size_t slot_of(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
  int shift_ = 64;
};

}  // namespace dsinfer::tokenizer
