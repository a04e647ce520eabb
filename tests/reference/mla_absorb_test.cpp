#include "kernels/reference/mla_absorb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

TEST(RefMlaAbsorb, HandComputedPerHeadProjections) {
  const MlaDims d{.n_heads = 2, .nope_dim = 2, .rope_dim = 2, .v_dim = 1, .latent_dim = 3};
  // kv_b [H, nope + v, C]: per head the W_UK rows, then the W_UV row.
  std::vector<float> kv_b = {1, 2, 3, 4, 5, 6, 1, 0, -1,  // head 0
                             0, 1, 0, 2, 0, 0, 0, 0, 2};  // head 1
  std::vector<float> q = {1, 1, 9, 9, 3, -1, 8, 8};       // [T=1, H, nope + R]
  std::vector<float> q_abs(2 * 5, 77.0f);                 // [T, H, C + R]
  mla_absorb_q(q.data(), 4, 1, d, kv_b.data(), q_abs.data(), 5);
  EXPECT_EQ(q_abs, (std::vector<float>{5, 7, 9, 77, 77, -2, 3, 0, 77, 77}));

  std::vector<float> o_lat = {2, 3, 4, 1, 1, 1}, o(2);
  mla_project_o(o_lat.data(), 1, d, kv_b.data(), o.data());
  EXPECT_EQ(o, (std::vector<float>{-2, 2}));
}

// The absorbed path (W_UK folded into the query, attention over the latent, W_UV applied after)
// must equal plain multi-head attention over decompressed keys and values with a -inf mask.
TEST(RefMlaAbsorb, AbsorbedSparseAttentionEqualsMaskedMha) {
  const MlaDims d{.n_heads = 3, .nope_dim = 8, .rope_dim = 4, .v_dim = 6, .latent_dim = 10};
  const int T = 4, N = 20, K = 7, QD = d.nope_dim + d.rope_dim, AD = d.absorbed_q_dim();
  std::vector<float> q = testing::random_floats(T * d.n_heads * QD, 60);
  std::vector<float> kv_b =
      testing::random_floats(d.n_heads * (d.nope_dim + d.v_dim) * d.latent_dim, 61);
  std::vector<float> c = testing::random_floats(N * d.latent_dim, 62);
  std::vector<float> k_pe = testing::random_floats(N * d.rope_dim, 63);
  // Distinct causal keys per token, fewer than K for the early ones; token 2 selects nothing.
  std::vector<int32_t> pos = {3, 12, 15, 19}, idx(T * K, -1);
  std::mt19937 rng(64);
  for (int t = 0; t < T; ++t) {
    if (t == 2) continue;
    std::vector<int32_t> keys(pos[t] + 1);
    std::iota(keys.begin(), keys.end(), 0);
    std::shuffle(keys.begin(), keys.end(), rng);
    std::copy_n(keys.begin(), std::min<int>(K, int(keys.size())), idx.begin() + t * K);
  }
  const float scale = 0.35f;

  std::vector<float> q_abs(T * d.n_heads * AD);
  mla_absorb_q(q.data(), QD, T, d, kv_b.data(), q_abs.data(), AD);
  for (int v = 0; v < T * d.n_heads; ++v)
    std::copy_n(&q[v * QD + d.nope_dim], d.rope_dim, &q_abs[v * AD + d.latent_dim]);
  std::vector<float> o_lat(T * d.n_heads * d.latent_dim), lse_abs(T * d.n_heads);
  sparse_mla_attention(q_abs.data(), T, d, c.data(), k_pe.data(), N, idx.data(), K, scale,
                       o_lat.data(), lse_abs.data());
  std::vector<float> o_abs(T * d.n_heads * d.v_dim);
  mla_project_o(o_lat.data(), T, d, kv_b.data(), o_abs.data());

  std::vector<float> o_mha(o_abs.size()), lse_mha(lse_abs.size());
  mha_masked_attention(q.data(), T, d, kv_b.data(), c.data(), k_pe.data(), N, idx.data(), K, scale,
                       o_mha.data(), lse_mha.data());

  for (size_t i = 0; i < o_abs.size(); ++i) EXPECT_NEAR(o_abs[i], o_mha[i], 1e-5) << i;
  for (size_t i = 0; i < lse_abs.size(); ++i) {
    if (i / d.n_heads == 2) {
      EXPECT_EQ(lse_abs[i], -INFINITY);
      EXPECT_EQ(lse_mha[i], -INFINITY);
    } else {
      EXPECT_NEAR(lse_abs[i], lse_mha[i], 1e-5) << i;
    }
  }
  for (int i = 0; i < d.v_dim; ++i) EXPECT_EQ(o_mha[2 * d.n_heads * d.v_dim + i], 0.0f);
}

TEST(RefMlaAbsorb, MhaMaskExcludesUnselectedKeys) {
  // Two keys; selecting only key 1 must return exactly key 1's value W_UV c[1].
  const MlaDims d{.n_heads = 1, .nope_dim = 2, .rope_dim = 2, .v_dim = 2, .latent_dim = 2};
  std::vector<float> kv_b = {1, 0, 0, 1, 2, 0, 0, 3};  // W_UK = I, W_UV = diag(2, 3)
  std::vector<float> q = {5, 5, 0, 0}, c = {10, 10, 1, -1}, k_pe = {0, 0, 0, 0};
  std::vector<int32_t> idx = {1, -1};
  std::vector<float> o(2), lse(1);
  mha_masked_attention(q.data(), 1, d, kv_b.data(), c.data(), k_pe.data(), 2, idx.data(), 2, 1.0f,
                       o.data(), lse.data());
  EXPECT_EQ(o, (std::vector<float>{2, -3}));
  EXPECT_EQ(lse[0], 0.0f);  // the one score is 5*1 + 5*(-1) = 0
}

}  // namespace
}  // namespace dsinfer::ref
