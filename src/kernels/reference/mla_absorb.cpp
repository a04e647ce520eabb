#include "kernels/reference/mla_absorb.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace dsinfer::ref {
namespace {

// Row r of head h's block of kv_b ([nope + v, C]).
const float* kv_b_row(const float* kv_b, const MlaDims& d, int h, int r) {
  return kv_b + (int64_t(h) * (d.nope_dim + d.v_dim) + r) * d.latent_dim;
}

}  // namespace

void mla_absorb_q(const float* q_nope, int64_t q_stride, int64_t n_tokens, const MlaDims& dims,
                  const float* kv_b, float* q_lat, int64_t q_lat_stride) {
  const int H = dims.n_heads, C = dims.latent_dim;
  std::vector<double> acc(C);
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < H; ++h) {
      const float* qn = q_nope + (t * H + h) * q_stride;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int r = 0; r < dims.nope_dim; ++r) {
        const float* w_uk = kv_b_row(kv_b, dims, h, r);
        for (int i = 0; i < C; ++i) acc[i] += double(qn[r]) * w_uk[i];
      }
      float* out = q_lat + (t * H + h) * q_lat_stride;
      for (int i = 0; i < C; ++i) out[i] = float(acc[i]);
    }
}

void mla_project_o(const float* o_lat, int64_t n_tokens, const MlaDims& dims, const float* kv_b,
                   float* o) {
  const int H = dims.n_heads, C = dims.latent_dim, V = dims.v_dim;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < H; ++h) {
      const float* ol = o_lat + (t * H + h) * C;
      for (int r = 0; r < V; ++r) {
        const float* w_uv = kv_b_row(kv_b, dims, h, dims.nope_dim + r);
        double acc = 0;
        for (int i = 0; i < C; ++i) acc += double(w_uv[i]) * ol[i];
        o[(t * H + h) * V + r] = float(acc);
      }
    }
}

void mha_masked_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* kv_b,
                          const float* c, const float* k_pe, int64_t n_keys, const int32_t* idx,
                          int k, float scale, float* o, float* lse) {
  const int H = dims.n_heads, C = dims.latent_dim, NOPE = dims.nope_dim, R = dims.rope_dim,
            V = dims.v_dim, QD = NOPE + R;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  // Head by head, so only one head's decompressed keys and values are held at a time.
  std::vector<double> k_nope(n_keys * NOPE), v(n_keys * V), score(n_keys);
  std::vector<char> selected(n_keys);
  for (int h = 0; h < H; ++h) {
    for (int64_t s = 0; s < n_keys; ++s)
      for (int r = 0; r < NOPE + V; ++r) {
        const float* w = kv_b_row(kv_b, dims, h, r);
        double acc = 0;
        for (int i = 0; i < C; ++i) acc += double(w[i]) * c[s * C + i];
        (r < NOPE ? k_nope[s * NOPE + r] : v[s * V + (r - NOPE)]) = acc;
      }
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::fill(selected.begin(), selected.end(), 0);
      for (int j = 0; j < k; ++j) {
        int32_t s = idx[t * k + j];
        if (s >= n_keys) throw std::out_of_range("mha_masked_attention: index >= n_keys");
        if (s >= 0) selected[s] = 1;
      }
      const float* q_th = q + (t * H + h) * QD;
      double max_score = neg_inf;
      for (int64_t s = 0; s < n_keys; ++s) {
        double dot = 0;
        for (int r = 0; r < NOPE; ++r) dot += double(q_th[r]) * k_nope[s * NOPE + r];
        for (int r = 0; r < R; ++r) dot += double(q_th[NOPE + r]) * k_pe[s * R + r];
        score[s] = selected[s] ? scale * dot : neg_inf;
        max_score = std::max(max_score, score[s]);
      }
      float* o_th = o + (t * H + h) * V;
      if (max_score == neg_inf) {
        std::fill(o_th, o_th + V, 0.0f);
        lse[t * H + h] = -std::numeric_limits<float>::infinity();
        continue;
      }
      std::vector<double> acc(V, 0.0);
      double denom = 0;
      for (int64_t s = 0; s < n_keys; ++s) {
        double p = std::exp(score[s] - max_score);  // exp(-inf) = 0 masks the key out
        denom += p;
        for (int r = 0; r < V; ++r) acc[r] += p * v[s * V + r];
      }
      for (int r = 0; r < V; ++r) o_th[r] = float(acc[r] / denom);
      lse[t * H + h] = float(max_score + std::log(denom));
    }
  }
}

}  // namespace dsinfer::ref
