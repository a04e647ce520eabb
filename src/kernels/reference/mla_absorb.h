// The MLA up-projections around the absorbed attention (spec §3.4), and the non-absorbed
// full-width MHA it is equivalent to. kv_b is kv_b_proj.weight [H * (nope + v), C] viewed
// [H, nope + v, C]: rows [0, nope) of head h are W_UK[h], rows [nope, nope + v) are W_UV[h].
#pragma once

#include <cstdint>

#include "kernels/reference/mla_attention.h"

namespace dsinfer::ref {

// q_lat[t, h] = W_UK[h]^T q_nope[t, h] (width C), sums in double.
// q_nope (t, h) is the first nope_dim floats at q_nope + (t * H + h) * q_stride (e.g. q
// [T, H, nope + R] with q_stride = nope + R); q_lat (t, h) is written to the C floats at
// q_lat + (t * H + h) * q_lat_stride (e.g. an absorbed query [T, H, C + R], stride C + R).
void mla_absorb_q(const float* q_nope, int64_t q_stride, int64_t n_tokens, const MlaDims& dims,
                  const float* kv_b, float* q_lat, int64_t q_lat_stride);

// o[t, h] = W_UV[h] o_lat[t, h] (width v), sums in double.
// o_lat: [T, H, C]; o: [T, H, v] (the concatenation over h is the o_proj input).
void mla_project_o(const float* o_lat, int64_t n_tokens, const MlaDims& dims, const float* kv_b,
                   float* o);

// Non-absorbed multi-head attention with a -inf mask outside the selected keys, the form the
// absorbed path must equal (spec §3.4). Per head h, with k_nope[s] = W_UK[h] c[s] and
// v[s] = W_UV[h] c[s] (in double):
//   score[s] = scale * (q_nope[t,h] . k_nope[s] + q_pe[t,h] . k_pe[s])  if s is in idx[t, :],
//              -inf otherwise (for every s < n_keys);
//   o[t,h] = sum_s softmax(score)[s] * v[s];  lse[t,h] = ln(sum_s exp(score[s])).
// A key listed several times in idx[t, :] is still one key here (a mask cannot repeat it), so
// this matches sparse_mla_attention only for duplicate-free indices. Negative indices are
// padding; a row with none gives o = 0, lse = -inf.
// q: [T, H, nope + R] (q_nope then rotated q_pe); c: [n_keys, C]; k_pe: [n_keys, R];
// idx: [T, k]; o: [T, H, v]; lse: [T, H].
void mha_masked_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* kv_b,
                          const float* c, const float* k_pe, int64_t n_keys, const int32_t* idx,
                          int k, float scale, float* o, float* lse);

}  // namespace dsinfer::ref
