// Absorbed MLA attention over the latent cache (spec §3.4): sparse over the indexer's top-k keys,
// and dense causal (the V3 graph without indexer, and the sparse one's ground truth when t < K).
#pragma once

#include <cstdint>

namespace dsinfer::ref {

// MLA head sizes (671B: 128 heads, nope 128, rope 64, v 128, latent 512); test models are small.
struct MlaDims {
  int n_heads;                                                  // H
  int nope_dim;                                                 // qk_nope_head_dim
  int rope_dim;                                                 // qk_rope_head_dim, even
  int v_dim;                                                    // v_head_dim
  int latent_dim;                                               // kv_lora_rank, C
  int absorbed_q_dim() const { return latent_dim + rope_dim; }  // 576
};

// Sparse absorbed attention. For each token t and head h, over the keys s = idx[t, j] >= 0:
//   score[s] = scale * (q[t,h,:C] . c[s] + q[t,h,C:] . k_pe[s])
//   o_lat[t,h] = sum_s softmax(score)[s] * c[s];  lse[t,h] = ln(sum_s exp(score[s]))
// so lse includes the scale. Negative indices are padding and skipped; an index >= n_keys
// throws. Duplicated indices count once per occurrence (the indexer never emits duplicates). A
// row with no valid index gives o_lat = 0 and lse = -inf (never NaN). Scores, softmax and the
// weighted sum are in double, rounded to f32 once.
// q: [T, H, C + R] (latent part q_lat first, then the rotated q_pe); c: [n_keys, C];
// k_pe: [n_keys, R] (rotated); idx: [T, k] int32; o_lat: [T, H, C]; lse: [T, H].
void sparse_mla_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* c,
                          const float* k_pe, int64_t n_keys, const int32_t* idx, int k, float scale,
                          float* o_lat, float* lse);

// Dense causal absorbed attention: the same as sparse_mla_attention with, for token t, every key
// s <= positions[t] (and s < n_keys) selected once. positions: [T] absolute positions.
void dense_mla_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* c,
                         const float* k_pe, int64_t n_keys, const int32_t* positions, float scale,
                         float* o_lat, float* lse);

}  // namespace dsinfer::ref
