// The cache's blocks (64 token positions of every layer each): reference counts, a free list,
// and the prefix cache's registry. A block is in one of three states:
//   referenced  - held by one or more sequences (ref count > 0);
//   cached      - unreferenced but holding the rows of a registered key (a full block of some
//                 token prefix), kept for reuse and evicted least-recently-freed first;
//   free        - unreferenced and holding nothing anyone can find.
// allocate() takes a free block first and evicts the least recently used cached one only when no
// free block is left, so cached prefixes live as long as the budget allows.
//
// The blocks may be cut into equal groups (data-parallel attention: group g's blocks live on the
// ranks of attention group g, src/dist/layout.h): allocation, eviction and the counts are then
// per group, while ids, keys and lookups stay global.
//
// A registered key is verified on lookup, not just hashed: the 64 tokens, a flags word (what
// else decided the rows, e.g. the attention form) and the parent block with its generation (a
// block's generation changes whenever its contents are dropped, so a child whose parent was
// evicted and reused can never match again). A hash collision can only cost a miss.
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kernels/kv_cache_view.h"

namespace dsinfer {

struct BlockKey {
  uint64_t hash = 0;        // chained: hash(parent's hash, tokens, flags)
  int32_t parent = -1;      // block holding the previous 64 positions (-1: first block)
  uint32_t parent_gen = 0;  // that block's generation when this one was registered
  uint32_t flags = 0;
  std::array<int32_t, kKvBlockTokens> tokens{};
  // The token after the block, when the top bit of flags makes it part of the key.
  int32_t next = 0;

  bool same_content(const BlockKey& o) const {
    return hash == o.hash && parent == o.parent && parent_gen == o.parent_gen && flags == o.flags &&
           tokens == o.tokens && (!(flags >> 31) || next == o.next);
  }
};

struct BlockPoolStats {
  int64_t lookups = 0, hits = 0;  // lookup() calls and how many found a block
  int64_t evictions = 0;          // cached blocks dropped to make room
};

class BlockPool {
 public:
  // n_blocks must be a multiple of groups.
  explicit BlockPool(int32_t n_blocks, int groups = 1);

  int32_t capacity() const { return int32_t(refs_.size()); }
  int groups() const { return int(free_.size()); }
  int32_t group_capacity() const { return capacity() / groups(); }
  int group_of(int32_t block) const { return int(block / group_capacity()); }
  // Unreferenced blocks (free + cached): what allocate() can still hand out.
  int32_t available() const { return total(n_free_) + total(n_cached_); }
  int32_t available(int group) const { return n_free_[size_t(group)] + n_cached_[size_t(group)]; }
  int32_t cached() const { return total(n_cached_); }
  int32_t referenced() const { return capacity() - available(); }

  // An unreferenced block of `group` with one reference, its contents dropped; -1 when every block
  // of the group is held.
  int32_t allocate(int group = 0);
  void incref(int32_t block);  // a cached block found by lookup() leaves the LRU list
  void decref(int32_t block);  // at zero: cached (most recent) if registered, else free
  int32_t refs(int32_t block) const { return refs_.at(size_t(block)); }
  uint32_t generation(int32_t block) const { return gen_.at(size_t(block)); }

  // The block registered under exactly this key (any state), or -1. Counts a lookup / hit.
  int32_t lookup(const BlockKey& key);
  // Registers a referenced, fully written block under `key` (ignored when another block already
  // holds that key: the first one stays findable).
  void register_block(int32_t block, const BlockKey& key);
  bool is_registered(int32_t block) const { return keyed_.at(size_t(block)); }
  const BlockKey& key(int32_t block) const { return keys_.at(size_t(block)); }

  const BlockPoolStats& stats() const { return stats_; }
  // Checks the invariants (counts, lists, map); throws std::logic_error naming the broken one.
  void check_consistency() const;

 private:
  void unlink(int32_t b);         // from the LRU list
  void push_lru(int32_t b);       // as the most recently freed
  void drop_contents(int32_t b);  // unregister, bump the generation

  std::vector<int32_t> refs_;
  std::vector<uint32_t> gen_;
  std::vector<bool> keyed_;
  std::vector<BlockKey> keys_;
  static int32_t total(const std::vector<int32_t>& v) {
    int32_t s = 0;
    for (int32_t x : v) s += x;
    return s;
  }
  // Per group:
  std::vector<std::vector<int32_t>> free_;    // free (never-cached) blocks, a stack
  std::vector<int32_t> prev_, next_;          // LRU lists of cached blocks (links per block)
  std::vector<int32_t> lru_head_, lru_tail_;  // head: least recently freed
  std::vector<int32_t> n_free_, n_cached_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  BlockPoolStats stats_;
};

}  // namespace dsinfer
