#include "kernels/reference/mla_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "kernels/reference/topk.h"

namespace dsinfer::ref {
namespace {

// Softmax-weighted latent sum of one query vector over the listed keys.
// q_th: [C + R]; o: [C]; keys: [n_sel], each in [0, n_keys).
void attend_one(const float* q_th, const MlaDims& d, const float* c, const float* k_pe,
                const int32_t* keys, int64_t n_sel, double scale, float* o, float* lse) {
  const int C = d.latent_dim, R = d.rope_dim;
  std::vector<double> score(n_sel);
  double max_score = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n_sel; ++j) {
    const float* c_s = c + int64_t(keys[j]) * C;
    const float* pe_s = k_pe + int64_t(keys[j]) * R;
    double dot = 0;
    for (int i = 0; i < C; ++i) dot += double(q_th[i]) * c_s[i];
    for (int i = 0; i < R; ++i) dot += double(q_th[C + i]) * pe_s[i];
    score[j] = scale * dot;
    max_score = std::max(max_score, score[j]);
  }
  if (max_score == -std::numeric_limits<double>::infinity()) {  // nothing to attend to
    std::fill(o, o + C, 0.0f);
    *lse = -std::numeric_limits<float>::infinity();
    return;
  }
  std::vector<double> acc(C, 0.0);
  double denom = 0;
  for (int64_t j = 0; j < n_sel; ++j) {
    double p = std::exp(score[j] - max_score);  // shifted so the largest term is exp(0) = 1
    denom += p;
    const float* c_s = c + int64_t(keys[j]) * C;
    for (int i = 0; i < C; ++i) acc[i] += p * c_s[i];
  }
  for (int i = 0; i < C; ++i) o[i] = float(acc[i] / denom);
  *lse = float(max_score + std::log(denom));
}

}  // namespace

void sparse_mla_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* c,
                          const float* k_pe, int64_t n_keys, const int32_t* idx, int k, float scale,
                          float* o_lat, float* lse) {
  const int H = dims.n_heads, C = dims.latent_dim, QD = dims.absorbed_q_dim();
  std::vector<int32_t> keys;
  for (int64_t t = 0; t < n_tokens; ++t) {
    keys.clear();
    for (int j = 0; j < k; ++j) {
      int32_t s = idx[t * k + j];
      if (s < 0) continue;
      if (s >= n_keys) throw std::out_of_range("sparse_mla_attention: index >= n_keys");
      keys.push_back(s);
    }
    for (int h = 0; h < H; ++h) {
      int64_t th = t * H + h;
      attend_one(q + th * QD, dims, c, k_pe, keys.data(), int64_t(keys.size()), scale,
                 o_lat + th * C, lse + th);
    }
  }
}

void dense_mla_attention(const float* q, int64_t n_tokens, const MlaDims& dims, const float* c,
                         const float* k_pe, int64_t n_keys, const int32_t* positions, float scale,
                         float* o_lat, float* lse) {
  const int H = dims.n_heads, C = dims.latent_dim, QD = dims.absorbed_q_dim();
  std::vector<int32_t> keys;
  for (int64_t t = 0; t < n_tokens; ++t) {
    keys.resize(causal_valid_length(positions[t], n_keys));
    std::iota(keys.begin(), keys.end(), 0);
    for (int h = 0; h < H; ++h) {
      int64_t th = t * H + h;
      attend_one(q + th * QD, dims, c, k_pe, keys.data(), int64_t(keys.size()), scale,
                 o_lat + th * C, lse + th);
    }
  }
}

}  // namespace dsinfer::ref
