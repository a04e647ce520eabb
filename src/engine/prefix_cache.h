// Prefix caching over the cache's BlockPool: a full 64-token block is found by its content, the
// key chaining the hash of everything up to and including the block (its parent's hash, its
// tokens, and the attention form its tokens were computed in, which also decides the rows).
// Shared blocks hold every layer's cache rows (MLA latent and rope keys, indexer keys, the MTP
// layer), so a cached prefix gives bitwise the results of computing it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace dsinfer {

// With speculative decoding (`next_token`), a key also covers the token after the block: the MTP
// layer's row at a block's last position depends on it (MTP position p reads token p + 1).

// The key of full block j of `tokens` (whose blocks before j are `table`, already written).
BlockKey block_key(const Model& model, const KvCache& cache, const std::vector<int32_t>& table,
                   const std::vector<int32_t>& tokens, int64_t prompt_len, int64_t j,
                   bool next_token);

// The longest run of cached blocks that holds a prefix of tokens[0, limit) (whole blocks only).
std::vector<int32_t> match_prefix(const Model& model, KvCache& cache,
                                  const std::vector<int32_t>& tokens, int64_t prompt_len,
                                  int64_t limit, bool next_token);

// Registers the full blocks of `seq` (holding tokens[0, written)) from block `from` on; returns
// the number of full blocks now registered.
int64_t register_full_blocks(const Model& model, KvCache& cache, int seq,
                             const std::vector<int32_t>& tokens, int64_t prompt_len,
                             int64_t written, int64_t from, bool next_token);

}  // namespace dsinfer
