#include "engine/prefix_cache.h"

#include <algorithm>

#include "core/rng.h"

namespace dsinfer {

namespace {

// The attention form of block j's tokens (the same for the whole block).
uint32_t block_flags(const Model& model, const std::vector<int32_t>& tokens, int64_t prompt_len,
                     int64_t j) {
  (void)tokens;
  return model.uses_mha(j * kKvBlockTokens, prompt_len) ? 1u : 0u;
}

BlockKey make_key(uint64_t parent_hash, int32_t parent, uint32_t parent_gen, uint32_t flags,
                  const int32_t* tokens, const int32_t* next) {
  BlockKey k;
  k.parent = parent;
  k.parent_gen = parent_gen;
  k.flags = flags;
  std::copy(tokens, tokens + kKvBlockTokens, k.tokens.begin());
  uint64_t h = parent_hash ^ (uint64_t(flags) << 32), st = h;
  h = splitmix64(st);
  for (int32_t t : k.tokens) {
    st = h ^ uint64_t(uint32_t(t));
    h = splitmix64(st);
  }
  if (next) {  // the token after the block, in the hash and (verified) in the flags' high bits
    k.flags |= 0x80000000u;
    k.next = *next;
    st = h ^ (uint64_t(uint32_t(*next)) << 1) ^ 0x9e37ull;
    h = splitmix64(st);
  }
  k.hash = h;
  return k;
}

}  // namespace

BlockKey block_key(const Model& model, const KvCache& cache, const std::vector<int32_t>& table,
                   const std::vector<int32_t>& tokens, int64_t prompt_len, int64_t j,
                   bool next_token) {
  const BlockPool& pool = cache.pool();
  const int32_t parent = j > 0 ? table[size_t(j - 1)] : -1;
  // The parent's own key is registered (a block is registered only after its parent).
  const uint64_t parent_hash = 0x5eedull + (parent >= 0 ? pool.key(parent).hash : 0);
  return make_key(parent_hash, parent, parent >= 0 ? pool.generation(parent) : 0,
                  block_flags(model, tokens, prompt_len, j), tokens.data() + j * kKvBlockTokens,
                  next_token ? tokens.data() + (j + 1) * kKvBlockTokens : nullptr);
}

std::vector<int32_t> match_prefix(const Model& model, KvCache& cache,
                                  const std::vector<int32_t>& tokens, int64_t prompt_len,
                                  int64_t limit, bool next_token) {
  std::vector<int32_t> found;
  for (int64_t j = 0; (j + 1) * kKvBlockTokens <= limit &&
                      (!next_token || (j + 1) * kKvBlockTokens < int64_t(tokens.size()));
       ++j) {
    const int32_t b =
        cache.pool().lookup(block_key(model, cache, found, tokens, prompt_len, j, next_token));
    if (b < 0) break;
    found.push_back(b);
  }
  return found;
}

int64_t register_full_blocks(const Model& model, KvCache& cache, int seq,
                             const std::vector<int32_t>& tokens, int64_t prompt_len,
                             int64_t written, int64_t from, bool next_token) {
  const std::vector<int32_t>& table = cache.block_table(seq);
  int64_t full = std::min<int64_t>(written / kKvBlockTokens, int64_t(table.size()));
  // With the next token in the key, a block waits until that token is known and its MTP rows
  // are written (the MTP layer trails by one position).
  if (next_token)
    full = std::min<int64_t>(
        full,
        std::min<int64_t>(int64_t(tokens.size()) - 1, cache.mtp_length(seq)) / kKvBlockTokens);
  for (int64_t j = from; j < full; ++j) {
    const int32_t b = table[size_t(j)];
    if (cache.pool().is_registered(b)) continue;  // a shared block found by lookup
    // A parent that lost its registration (another block held its key) ends the chain.
    if (j > 0 && !cache.pool().is_registered(table[size_t(j - 1)])) return j;
    cache.pool().register_block(b,
                                block_key(model, cache, table, tokens, prompt_len, j, next_token));
  }
  return std::max(from, full);
}

}  // namespace dsinfer
