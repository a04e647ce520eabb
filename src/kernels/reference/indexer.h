// The lightning indexer (spec §3.2 head weights, §3.3 scores): how much query t wants key s.
#pragma once

#include <cstdint>

namespace dsinfer::ref {

inline constexpr int kIndexHeadDim = 128;  // DI, one FP8 block per head and per key

// How the indexer sums are accumulated.
enum class Accum {
  f32,  // the release's precision, in the fixed order documented on indexer_scores_f32
  f64,  // every sum in double, rounded to f32 once: the "exact" score, for error bounds
};

// w_out[t, h] = proj[t, h] * HI^-0.5 * q_scale[t, h] * 128^-0.5 (spec §3.2), in f32 left to right
// with the constants rounded to f32, as the release multiplies. q_scale == nullptr means unit
// scales (the unquantized indexer). proj, q_scale, w_out: [n_tokens, n_heads].
void indexer_head_weights(const float* proj, const float* q_scale, int64_t n_tokens, int n_heads,
                          float* w_out);

// Unquantized indexer scores (spec §3.3, "indexer unquantized"), scores: [n_tokens, n_keys]:
//   scores[t, s] = sum_h w[t, h] * ReLU(q[t, h] . k[s])  if positions == nullptr or
//                  s <= positions[t] (causal on absolute key positions; decode passes nullptr
//                  or its own position to see all cached keys), and -inf otherwise.
// q: [n_tokens, n_heads, 128]; w: [n_tokens, n_heads]; k: [n_keys, 128]; positions: [n_tokens].
// Accum::f32 order: for h = 0, 1, ...: dot = q[t,h,0]*k[s,0] + q[t,h,1]*k[s,1] + ... summed
// left to right in f32; acc = acc + w[t,h] * max(dot, 0) in f32 starting from acc = 0.
void indexer_scores_f32(const float* q, const float* w, int64_t n_tokens, int n_heads,
                        const float* k, int64_t n_keys, const int32_t* positions, float* scores,
                        Accum accum = Accum::f32);

// FP8 indexer scores (spec §3.3): I[t, s] = k_scale[s] * sum_h w[t, h] * ReLU(q8[t, h] . k8[s]),
// where w already has q_scale folded in (indexer_head_weights). Same masking and accumulation
// order as indexer_scores_f32 on the decoded e4m3 values (each e4m3 product is exact in f32),
// with the final sum multiplied by k_scale[s] in f32.
// q8: [n_tokens, n_heads, 128] and k8: [n_keys, 128] e4m3fn bits; k_scale: [n_keys].
void indexer_scores_fp8(const uint8_t* q8, const float* w, int64_t n_tokens, int n_heads,
                        const uint8_t* k8, const float* k_scale, int64_t n_keys,
                        const int32_t* positions, float* scores, Accum accum = Accum::f32);

}  // namespace dsinfer::ref
