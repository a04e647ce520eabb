#include "tokenizer/merge_table.h"

namespace dsinfer::tokenizer {

void MergeTable::insert(int32_t left, int32_t right, Merge merge) {
  // Keep the load factor at or below one half so probe runs stay short.
  if (2 * (size_ + 1) > slots_.size()) grow();
  uint64_t k = key(left, right);
  for (size_t i = slot_of(k);; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == k) {
      s.merge = merge;
      return;
    }
    if (s.key == kEmpty) {
      s = {k, merge};
      ++size_;
      return;
    }
  }
}

void MergeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  size_t capacity = old.empty() ? 64 : old.size() * 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.merge);
}

}  // namespace dsinfer::tokenizer
