#include "kernels/reference/indexer.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/dtype.h"

namespace dsinfer::ref {
namespace {

// The score sum in accumulator type Acc, in the documented order. k_scale may be null (= 1).
template <class Acc>
float score_one(const float* q_t, const float* w_t, int n_heads, const float* k_s,
                const float* k_scale_s) {
  Acc acc = 0;
  for (int h = 0; h < n_heads; ++h) {
    const float* q_h = q_t + int64_t(h) * kIndexHeadDim;
    Acc dot = 0;
    for (int d = 0; d < kIndexHeadDim; ++d) dot += Acc(q_h[d]) * Acc(k_s[d]);
    acc += Acc(w_t[h]) * (dot > 0 ? dot : Acc(0));
  }
  if (k_scale_s) acc *= Acc(*k_scale_s);
  return float(acc);
}

void indexer_scores(const float* q, const float* w, int64_t n_tokens, int n_heads, const float* k,
                    const float* k_scale, int64_t n_keys, const int32_t* positions, float* scores,
                    Accum accum) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* q_t = q + t * n_heads * kIndexHeadDim;
    const float* w_t = w + t * n_heads;
    for (int64_t s = 0; s < n_keys; ++s) {
      float& out = scores[t * n_keys + s];
      if (positions && s > positions[t]) {
        out = neg_inf;
        continue;
      }
      const float* k_s = k + s * kIndexHeadDim;
      const float* ks = k_scale ? k_scale + s : nullptr;
      out = accum == Accum::f32 ? score_one<float>(q_t, w_t, n_heads, k_s, ks)
                                : score_one<double>(q_t, w_t, n_heads, k_s, ks);
    }
  }
}

std::vector<float> decode_e4m3(const uint8_t* bits, int64_t n) {
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = fp8_e4m3_to_f32(fp8_e4m3{bits[i]});
  return out;
}

}  // namespace

void indexer_head_weights(const float* proj, const float* q_scale, int64_t n_tokens, int n_heads,
                          float* w_out) {
  const float head_norm = float(1.0 / std::sqrt(double(n_heads)));
  const float dim_norm = float(1.0 / std::sqrt(double(kIndexHeadDim)));
  for (int64_t i = 0; i < n_tokens * n_heads; ++i) {
    float v = proj[i] * head_norm;
    if (q_scale) v = v * q_scale[i];
    w_out[i] = v * dim_norm;
  }
}

void indexer_scores_f32(const float* q, const float* w, int64_t n_tokens, int n_heads,
                        const float* k, int64_t n_keys, const int32_t* positions, float* scores,
                        Accum accum) {
  indexer_scores(q, w, n_tokens, n_heads, k, nullptr, n_keys, positions, scores, accum);
}

void indexer_scores_fp8(const uint8_t* q8, const float* w, int64_t n_tokens, int n_heads,
                        const uint8_t* k8, const float* k_scale, int64_t n_keys,
                        const int32_t* positions, float* scores, Accum accum) {
  std::vector<float> q = decode_e4m3(q8, n_tokens * n_heads * kIndexHeadDim);
  std::vector<float> k = decode_e4m3(k8, n_keys * kIndexHeadDim);
  indexer_scores(q.data(), w, n_tokens, n_heads, k.data(), k_scale, n_keys, positions, scores,
                 accum);
}

}  // namespace dsinfer::ref
