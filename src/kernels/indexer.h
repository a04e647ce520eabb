// The lightning indexer with fused top-k (spec §3.3):
//   I[t, s] = k_scale[s] * sum_h w[t, h] * ReLU(q[t, h] . k[s]),   s < n_valid[t]
//   TopK(t) = the min(K, n_valid[t]) keys with the largest I[t, s], sorted by score descending then
//             position ascending (ties go to the smaller position); unused slots are -1.
// The [T, N] score matrix is never materialized: keys are scored a block at a time for a group of
// queries (a tile mma with keys as rows and all heads of the group as columns, ReLU and the head
// weighting fused into its epilogue) and each block's scores go straight into a per-query
// running top-k. Threaded over query groups and, when there are few queries (decode), over key
// chunks whose partial top-k lists are merged.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

inline constexpr int kIndexerDim = 128;         // DI: one FP8 block per head and per key
inline constexpr int kIndexerPageTokens = 64;   // tokens per page of the paged key cache
inline constexpr int kIndexerTokenBytes = 132;  // per cached token: 128 e4m3 codes + f32 scale
inline constexpr int64_t kIndexerPageBytes = int64_t(kIndexerPageTokens) * kIndexerTokenBytes;

// Queries: q [n_tokens, n_heads, 128], fp8_e4m3 codes or f32; w [n_tokens, n_heads] the folded
// head weights (w already includes q_scale for fp8, see spec §3.2). n_heads in [1, 64].
struct IndexerQueries {
  DType dtype = DType::fp8_e4m3;  // fp8_e4m3 or f32
  const void* q = nullptr;
  const float* w = nullptr;
  int64_t n_tokens = 0;
  int n_heads = 0;
};

// Keys, one of three layouts:
//  - contiguous fp8: k [n_keys, 128] e4m3 codes, k_scale [n_keys]            (prefill)
//  - contiguous f32: k [n_keys, 128] f32, k_scale unused (unit scales)        (unquantized)
//  - paged fp8 (k == nullptr, pages != nullptr): key s lives in page block_table[s / 64] at
//    pages + page * kIndexerPageBytes + (s % 64) * 132: 128 codes then its f32 scale (decode)
struct IndexerKeys {
  DType dtype = DType::fp8_e4m3;  // fp8_e4m3 or f32 (f32 only contiguous)
  int64_t n_keys = 0;
  const void* k = nullptr;
  const float* k_scale = nullptr;
  const uint8_t* pages = nullptr;
  const int32_t* block_table = nullptr;
};

// The order of each query's selected keys in idx_out (and score_out).
enum class TopKOrder {
  by_score,     // score descending, then position ascending (ties to the smaller position)
  by_position,  // position ascending: the same set without sorting it (a few percent of a long
                // prefill's indexer), for callers that take the set as a mask or attend over it
                // in any fixed order
};

// n_valid: [n_tokens], query t sees keys s < n_valid[t] (causal prefill: position + 1); nullptr
// = all n_keys (decode). k in [1, 4096]. idx_out: [n_tokens, k] int32; score_out: [n_tokens, k]
// or nullptr (the selected I[t, s]; -inf in unused slots). Q and K dtypes must match.
// Throws std::invalid_argument on bad arguments.
void indexer_topk(const IndexerQueries& q, const IndexerKeys& keys, const int64_t* n_valid, int k,
                  int32_t* idx_out, float* score_out, TopKOrder order = TopKOrder::by_score);

// Address of token s's 132 bytes in a paged key cache.
inline uint8_t* indexer_page_token(uint8_t* pages, const int32_t* block_table, int64_t s) {
  return pages + int64_t(block_table[s / kIndexerPageTokens]) * kIndexerPageBytes +
         (s % kIndexerPageTokens) * kIndexerTokenBytes;
}
inline const uint8_t* indexer_page_token(const uint8_t* pages, const int32_t* block_table,
                                         int64_t s) {
  return indexer_page_token(const_cast<uint8_t*>(pages), block_table, s);
}

}  // namespace dsinfer
