// Absorbed MLA flash attention over the latent cache (spec §3.4), f32 softmax, threaded:
//   score[h, s] = scale * (q[t, h, :C] . c[s] + q[t, h, C:] . k_pe[s])
//   o_lat[t, h] = sum_s softmax_s(score)[s] * c[s];   lse[t, h] = ln sum_s exp(score[s])
// over the keys s of query t: its top-k index list (sparse; -1 is padding) or every s <=
// positions[t] (dense causal). One KV head is shared by all H heads. A query with no key gets
// o_lat = 0 and lse = -inf (never NaN).
//
// Layouts: q [T, H, C + R] f32 (q_lat then q_pe); o_lat [T, H, C] f32; lse [T, H] f32. Each query
// reads the cache cache_of_query[t] of `caches` (null: all queries use caches[0]) so one call can
// decode several sequences.
#pragma once

#include <cstdint>

#include "kernels/kv_cache_view.h"

namespace dsinfer {

struct MlaAttnArgs {
  const float* q = nullptr;
  int64_t n_queries = 0;  // T
  int n_heads = 0;        // H, 1..128 (any positive value works)
  int latent_dim = 512;   // C
  int rope_dim = 64;      // R
  float scale = 1.0f;
  // The products may round to bf16 (--precision bf16): with a bf16 cache, on a native and
  // preferred bf16 dot, the scores take the scaled query rounded to bf16 and P . V takes P
  // rounded to bf16 (as FlashMLA does; the softmax sums stay f32). false: f32 products.
  bool bf16_products = false;
  const MlaCacheView* caches = nullptr;
  const int32_t* cache_of_query = nullptr;  // [T] indices into caches, or null
  float* o_lat = nullptr;
  float* lse = nullptr;
};

// Sparse attention over idx[T, k] (int32, -1 = padding; an index >= the cache's n_tokens throws
// std::out_of_range).
void sparse_mla_attention(const MlaAttnArgs& a, const int32_t* idx, int k);

// Dense causal attention: query t sees keys 0 .. min(positions[t], n_tokens - 1).
void dense_mla_attention(const MlaAttnArgs& a, const int32_t* positions);

}  // namespace dsinfer
