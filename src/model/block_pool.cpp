#include "model/block_pool.h"

#include <stdexcept>
#include <string>

namespace dsinfer {

BlockPool::BlockPool(int32_t n_blocks, int groups) {
  if (n_blocks < 1) throw std::invalid_argument("block pool: needs at least one block");
  if (groups < 1 || n_blocks % groups != 0)
    throw std::invalid_argument("block pool: " + std::to_string(n_blocks) +
                                " blocks do not split into " + std::to_string(groups) + " groups");
  refs_.assign(size_t(n_blocks), 0);
  gen_.assign(size_t(n_blocks), 0);
  keyed_.assign(size_t(n_blocks), false);
  keys_.resize(size_t(n_blocks));
  prev_.assign(size_t(n_blocks), -1);
  next_.assign(size_t(n_blocks), -1);
  free_.resize(size_t(groups));
  lru_head_.assign(size_t(groups), -1);
  lru_tail_.assign(size_t(groups), -1);
  n_free_.assign(size_t(groups), n_blocks / groups);
  n_cached_.assign(size_t(groups), 0);
  // Low ids first: allocation order is deterministic and touches memory front to back.
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_[size_t(group_of(b))].push_back(b);
}

void BlockPool::unlink(int32_t b) {
  const size_t g = size_t(group_of(b));
  const int32_t p = prev_[size_t(b)], n = next_[size_t(b)];
  (p >= 0 ? next_[size_t(p)] : lru_head_[g]) = n;
  (n >= 0 ? prev_[size_t(n)] : lru_tail_[g]) = p;
  prev_[size_t(b)] = next_[size_t(b)] = -1;
  --n_cached_[g];
}

void BlockPool::push_lru(int32_t b) {
  const size_t g = size_t(group_of(b));
  prev_[size_t(b)] = lru_tail_[g];
  next_[size_t(b)] = -1;
  (lru_tail_[g] >= 0 ? next_[size_t(lru_tail_[g])] : lru_head_[g]) = b;
  lru_tail_[g] = b;
  ++n_cached_[g];
}

void BlockPool::drop_contents(int32_t b) {
  if (keyed_[size_t(b)]) {
    auto it = by_hash_.find(keys_[size_t(b)].hash);
    if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
    keyed_[size_t(b)] = false;
  }
  ++gen_[size_t(b)];
}

int32_t BlockPool::allocate(int group) {
  if (group < 0 || group >= groups())
    throw std::out_of_range("block pool: no group " + std::to_string(group));
  const size_t g = size_t(group);
  int32_t b;
  if (!free_[g].empty()) {
    b = free_[g].back();
    free_[g].pop_back();
    --n_free_[g];
  } else if (lru_head_[g] >= 0) {
    b = lru_head_[g];
    unlink(b);
    ++stats_.evictions;
  } else {
    return -1;
  }
  drop_contents(b);
  refs_[size_t(b)] = 1;
  return b;
}

void BlockPool::incref(int32_t b) {
  if (b < 0 || b >= capacity())
    throw std::out_of_range("block pool: no block " + std::to_string(b));
  if (refs_[size_t(b)] == 0) {
    if (!keyed_[size_t(b)])
      throw std::logic_error("block pool: incref of free block " + std::to_string(b));
    unlink(b);
  }
  ++refs_[size_t(b)];
}

void BlockPool::decref(int32_t b) {
  if (b < 0 || b >= capacity())
    throw std::out_of_range("block pool: no block " + std::to_string(b));
  if (refs_[size_t(b)] <= 0)
    throw std::logic_error("block pool: decref of unreferenced block " + std::to_string(b));
  if (--refs_[size_t(b)] > 0) return;
  if (keyed_[size_t(b)]) {
    push_lru(b);
  } else {
    ++gen_[size_t(b)];
    free_[size_t(group_of(b))].push_back(b);
    ++n_free_[size_t(group_of(b))];
  }
}

int32_t BlockPool::lookup(const BlockKey& key) {
  ++stats_.lookups;
  auto it = by_hash_.find(key.hash);
  if (it == by_hash_.end() || !keys_[size_t(it->second)].same_content(key)) return -1;
  ++stats_.hits;
  return it->second;
}

void BlockPool::register_block(int32_t b, const BlockKey& key) {
  if (refs_.at(size_t(b)) <= 0)
    throw std::logic_error("block pool: registering unreferenced block " + std::to_string(b));
  if (keyed_[size_t(b)] || by_hash_.count(key.hash)) return;
  keys_[size_t(b)] = key;
  keyed_[size_t(b)] = true;
  by_hash_.emplace(key.hash, b);
}

void BlockPool::check_consistency() const {
  auto fail = [](const std::string& what) { throw std::logic_error("block pool: " + what); };
  int32_t zero_refs = 0, listed = 0;
  for (int32_t b = 0; b < capacity(); ++b) {
    if (refs_[size_t(b)] < 0) fail("negative ref count on block " + std::to_string(b));
    zero_refs += refs_[size_t(b)] == 0;
  }
  for (size_t g = 0; g < free_.size(); ++g) {
    int32_t in_group = 0;
    for (int32_t b = lru_head_[g], last = -1; b >= 0; last = b, b = next_[size_t(b)]) {
      if (prev_[size_t(b)] != last) fail("LRU list links broken at block " + std::to_string(b));
      if (refs_[size_t(b)] != 0 || !keyed_[size_t(b)])
        fail("block " + std::to_string(b) + " on the LRU list is referenced or unregistered");
      if (size_t(group_of(b)) != g) fail("block " + std::to_string(b) + " on another group's list");
      if (++listed > capacity()) fail("LRU list has a cycle");
      ++in_group;
    }
    if (in_group != n_cached_[g]) fail("cached count differs from the LRU list");
    if (int32_t(free_[g].size()) != n_free_[g]) fail("free count differs from the free list");
    for (int32_t b : free_[g])
      if (refs_[size_t(b)] != 0 || keyed_[size_t(b)] || size_t(group_of(b)) != g)
        fail("free block " + std::to_string(b) + " in use or in another group");
  }
  if (zero_refs != available())
    fail("unreferenced blocks (" + std::to_string(zero_refs) + ") != free + cached (" +
         std::to_string(available()) + ")");
  for (const auto& [h, b] : by_hash_)
    if (!keyed_[size_t(b)] || keys_[size_t(b)].hash != h) fail("hash map entry is stale");
}

}  // namespace dsinfer
