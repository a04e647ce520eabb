#include "model/block_pool.h"

#include <gtest/gtest.h>

#include <random>

namespace dsinfer {
namespace {

BlockKey key_of(uint64_t hash, int32_t parent = -1, uint32_t gen = 0, int first_token = 0) {
  BlockKey k;
  k.hash = hash;
  k.parent = parent;
  k.parent_gen = gen;
  for (int i = 0; i < kKvBlockTokens; ++i) k.tokens[size_t(i)] = first_token + i;
  return k;
}

TEST(BlockPool, AllocatesLowIdsFirstAndRunsOutCleanly) {
  BlockPool pool(3);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.available(), 0);
  pool.decref(1);
  EXPECT_EQ(pool.available(), 1);
  EXPECT_EQ(pool.allocate(), 1);
  pool.check_consistency();
  EXPECT_THROW(BlockPool(0), std::invalid_argument);
}

TEST(BlockPool, RegisteredBlocksStayCachedAndAreEvictedLeastRecentlyFreedFirst) {
  BlockPool pool(3);
  const int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
  pool.register_block(a, key_of(11));
  pool.register_block(b, key_of(22));
  pool.decref(b);  // freed first: evicted first
  pool.decref(a);
  pool.decref(c);  // unregistered: plainly free
  EXPECT_EQ(pool.cached(), 2);
  EXPECT_EQ(pool.available(), 3);
  EXPECT_EQ(pool.lookup(key_of(22)), b);
  // Free blocks go before cached ones; then the least recently freed cached block.
  EXPECT_EQ(pool.allocate(), c);
  EXPECT_EQ(pool.allocate(), b);
  EXPECT_EQ(pool.stats().evictions, 1);
  EXPECT_EQ(pool.lookup(key_of(22)), -1);  // its contents are gone
  EXPECT_EQ(pool.lookup(key_of(11)), a);
  pool.incref(a);  // revived from the cache
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_EQ(pool.allocate(), -1);
  pool.check_consistency();
}

TEST(BlockPool, LookupVerifiesTheWholeKeyNotJustItsHash) {
  BlockPool pool(4);
  const int32_t p = pool.allocate(), a = pool.allocate();
  pool.register_block(a, key_of(7, p, pool.generation(p), 100));
  EXPECT_EQ(pool.lookup(key_of(7, p, pool.generation(p), 100)), a);
  EXPECT_EQ(pool.lookup(key_of(7, p, pool.generation(p), 101)), -1);      // other tokens
  EXPECT_EQ(pool.lookup(key_of(7, p, pool.generation(p) + 1, 100)), -1);  // parent was reused
  BlockKey flags = key_of(7, p, pool.generation(p), 100);
  flags.flags = 1;
  EXPECT_EQ(pool.lookup(flags), -1);
  // The parent's generation changes when it is freed: children registered under it go stale.
  const uint32_t g = pool.generation(p);
  pool.decref(p);
  EXPECT_NE(pool.generation(p), g);
  // A second block with an existing key is not registered (the first stays findable).
  const int32_t dup = pool.allocate();
  pool.register_block(dup, key_of(7, p, g, 100));
  EXPECT_FALSE(pool.is_registered(dup));
  EXPECT_EQ(pool.stats().lookups, 4);
  EXPECT_EQ(pool.stats().hits, 1);
}

TEST(BlockPool, MisuseIsAnError) {
  BlockPool pool(2);
  EXPECT_THROW(pool.decref(0), std::logic_error);
  EXPECT_THROW(pool.incref(1), std::logic_error);  // free and unregistered
  EXPECT_THROW(pool.incref(5), std::out_of_range);
  EXPECT_THROW(pool.register_block(0, key_of(1)), std::logic_error);
}

// 20,000 random allocate / decref / register / lookup operations on groups of `per_group` blocks;
// the invariants hold throughout and every block comes back.
void random_operations(int groups, int32_t per_group, uint32_t seed) {
  BlockPool pool(groups * per_group, groups);
  std::mt19937 rng(seed);
  std::vector<int32_t> held;
  uint64_t next_hash = 1;
  for (int step = 0; step < 20000; ++step) {
    const int op = int(rng() % 4), g = int(rng() % uint32_t(groups));
    if (op == 0) {
      const int32_t b = pool.allocate(g);
      if (b >= 0) {
        EXPECT_EQ(pool.group_of(b), g);
        held.push_back(b);
      } else {
        EXPECT_EQ(pool.available(g), 0);
      }
    } else if (op == 1 && !held.empty()) {
      const size_t i = rng() % held.size();
      pool.decref(held[i]);
      held.erase(held.begin() + long(i));
    } else if (op == 2 && !held.empty()) {
      pool.register_block(held[rng() % held.size()], key_of(next_hash++));
    } else if (op == 3) {
      const int32_t b = pool.lookup(key_of(1 + rng() % next_hash));
      if (b >= 0) pool.incref(b), held.push_back(b);
    }
    if (step % 1000 == 0) pool.check_consistency();
  }
  for (int32_t b : held) pool.decref(b);
  pool.check_consistency();
  for (int g = 0; g < groups; ++g) EXPECT_EQ(pool.available(g), per_group);
}

TEST(BlockPool, RandomOperationsKeepTheInvariants) {
  random_operations(1, 16, 5);
}

// Data-parallel attention: groups allocate, cache and evict only their own blocks.
TEST(BlockPool, GroupsAllocateAndEvictOnlyTheirOwnBlocks) {
  BlockPool pool(12, 3);
  EXPECT_EQ(pool.groups(), 3);
  EXPECT_EQ(pool.group_capacity(), 4);
  EXPECT_THROW(BlockPool(10, 3), std::invalid_argument);
  EXPECT_THROW(pool.allocate(3), std::out_of_range);
  std::vector<int32_t> g1;
  for (int i = 0; i < 4; ++i) g1.push_back(pool.allocate(1));
  EXPECT_EQ(g1, (std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(pool.allocate(1), -1);  // group 1 is full while the others are empty
  EXPECT_EQ(pool.available(1), 0);
  EXPECT_EQ(pool.available(0), 4);
  EXPECT_EQ(pool.available(), 8);
  EXPECT_EQ(pool.allocate(2), 8);
  // A cached block of group 1 is evicted only by group 1's allocations.
  pool.register_block(5, key_of(77));
  pool.decref(5);
  EXPECT_EQ(pool.cached(), 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.group_of(pool.allocate(0)), 0);
  EXPECT_EQ(pool.lookup(key_of(77)), 5);
  EXPECT_EQ(pool.allocate(1), 5);  // the LRU block of its group
  EXPECT_EQ(pool.stats().evictions, 1);
  EXPECT_EQ(pool.lookup(key_of(77)), -1);
  pool.check_consistency();
}

TEST(BlockPool, RandomOperationsOnGroupsKeepTheInvariants) {
  random_operations(4, 6, 9);
}

}  // namespace
}  // namespace dsinfer
