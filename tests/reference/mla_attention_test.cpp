#include "kernels/reference/mla_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

// Small MLA sizes: 2 heads, latent 16, rope 4 (nope and v are not used by the attention core).
constexpr MlaDims kDims{.n_heads = 2, .nope_dim = 8, .rope_dim = 4, .v_dim = 8, .latent_dim = 16};
constexpr int H = kDims.n_heads, C = kDims.latent_dim, R = kDims.rope_dim, QD = C + R;

struct Inputs {
  int64_t T, N;
  std::vector<float> q, c, k_pe;
  Inputs(int64_t t, int64_t n, uint32_t seed)
      : T(t),
        N(n),
        q(testing::random_floats(t * H * QD, seed)),
        c(testing::random_floats(n * C, seed + 1)),
        k_pe(testing::random_floats(n * R, seed + 2)) {}
};

struct Outputs {
  std::vector<float> o_lat, lse;
  Outputs(int64_t T) : o_lat(T * H * C), lse(T * H) {}
};

Outputs sparse(const Inputs& in, const std::vector<int32_t>& idx, int k, float scale) {
  Outputs out(in.T);
  sparse_mla_attention(in.q.data(), in.T, kDims, in.c.data(), in.k_pe.data(), in.N, idx.data(), k,
                       scale, out.o_lat.data(), out.lse.data());
  return out;
}

double dot_score(const Inputs& in, int64_t t, int h, int64_t s) {
  const float* q = &in.q[(t * H + h) * QD];
  double d = 0;
  for (int i = 0; i < C; ++i) d += double(q[i]) * in.c[s * C + i];
  for (int i = 0; i < R; ++i) d += double(q[C + i]) * in.k_pe[s * R + i];
  return d;
}

TEST(RefMlaAttention, SparseOverAllCausalKeysEqualsDense) {
  Inputs in(3, 12, 50);
  std::vector<int32_t> pos = {5, 9, 11};
  const int K = 16;
  // Each row lists its causal keys in a shuffled order, padded with -1 in between.
  std::mt19937 rng(51);
  std::vector<int32_t> idx(in.T * K, -1);
  for (int t = 0; t < in.T; ++t) {
    std::vector<int32_t> row(K, -1);
    for (int s = 0; s <= pos[t]; ++s) row[s] = s;
    std::shuffle(row.begin(), row.end(), rng);
    std::copy(row.begin(), row.end(), idx.begin() + t * K);
  }
  const float scale = 0.4f;
  Outputs sp = sparse(in, idx, K, scale);
  Outputs dn(in.T);
  dense_mla_attention(in.q.data(), in.T, kDims, in.c.data(), in.k_pe.data(), in.N, pos.data(),
                      scale, dn.o_lat.data(), dn.lse.data());
  for (size_t i = 0; i < sp.o_lat.size(); ++i) EXPECT_NEAR(sp.o_lat[i], dn.o_lat[i], 1e-6) << i;
  for (size_t i = 0; i < sp.lse.size(); ++i) EXPECT_NEAR(sp.lse[i], dn.lse[i], 1e-6) << i;
}

TEST(RefMlaAttention, MatchesDirectSoftmaxAndLogSumExp) {
  Inputs in(2, 9, 52);
  const int K = 5;
  std::vector<int32_t> idx = {8, 0, 3, -1, 5, /* token 1 */ 2, 4, 6, 7, 1};
  const float scale = 0.7f;
  Outputs out = sparse(in, idx, K, scale);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < H; ++h) {
      long double denom = 0;
      std::vector<long double> o(C, 0);
      for (int j = 0; j < K; ++j) {
        int s = idx[t * K + j];
        if (s < 0) continue;
        long double e = std::exp((long double)scale * dot_score(in, t, h, s));  // no max shift
        denom += e;
        for (int i = 0; i < C; ++i) o[i] += e * in.c[s * C + i];
      }
      EXPECT_NEAR(out.lse[t * H + h], double(std::log(denom)), 1e-6);
      for (int i = 0; i < C; ++i)
        EXPECT_NEAR(out.o_lat[(t * H + h) * C + i], double(o[i] / denom), 1e-6);
    }
}

TEST(RefMlaAttention, SingleKeyReturnsItsLatentAndScaledScore) {
  Inputs in(1, 6, 53);
  Outputs out = sparse(in, {-1, 3, -1}, 3, 0.25f);
  for (int h = 0; h < H; ++h) {
    for (int i = 0; i < C; ++i) EXPECT_EQ(out.o_lat[h * C + i], in.c[3 * C + i]);
    EXPECT_FLOAT_EQ(out.lse[h], float(0.25 * dot_score(in, 0, h, 3)));
  }
}

TEST(RefMlaAttention, AddingAConstantToAllScoresOnlyShiftsLse) {
  // With every k_pe equal, changing q_pe adds the same scale * dq_pe . k_pe to each score.
  Inputs in(1, 10, 54);
  std::vector<float> shared_pe = testing::random_floats(R, 55);
  for (int s = 0; s < in.N; ++s) std::copy(shared_pe.begin(), shared_pe.end(), &in.k_pe[s * R]);
  std::vector<int32_t> idx = {0, 2, 4, 6, 8, 9};
  const float scale = 0.5f;
  Outputs before = sparse(in, idx, 6, scale);
  std::vector<double> shift(H, 0);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < R; ++i) {
      in.q[h * QD + C + i] += 3.0f;
      shift[h] += scale * 3.0 * shared_pe[i];
    }
  Outputs after = sparse(in, idx, 6, scale);
  for (int h = 0; h < H; ++h) {
    ASSERT_GT(std::abs(shift[h]), 0.1);
    EXPECT_NEAR(after.lse[h], before.lse[h] + shift[h], 1e-5);
    for (int i = 0; i < C; ++i) EXPECT_NEAR(after.o_lat[h * C + i], before.o_lat[h * C + i], 1e-6);
  }
}

TEST(RefMlaAttention, RowWithoutValidIndexGivesZerosAndMinusInfLse) {
  Inputs in(2, 4, 56);
  Outputs out = sparse(in, {-1, -1, -1, 2, -1, 0}, 3, 1.0f);
  for (int h = 0; h < H; ++h) {
    EXPECT_EQ(out.lse[h], -INFINITY);
    for (int i = 0; i < C; ++i) EXPECT_EQ(out.o_lat[h * C + i], 0.0f);
    EXPECT_TRUE(std::isfinite(out.lse[H + h]));  // token 1 is unaffected
  }
}

TEST(RefMlaAttention, DuplicateIndicesCountPerOccurrence) {
  Inputs in(1, 3, 57);
  const float scale = 0.3f;
  Outputs out = sparse(in, {0, 1, 0}, 3, scale);
  for (int h = 0; h < H; ++h) {
    double e0 = std::exp(scale * dot_score(in, 0, h, 0)),
           e1 = std::exp(scale * dot_score(in, 0, h, 1));
    EXPECT_NEAR(out.lse[h], std::log(2 * e0 + e1), 1e-6);
    for (int i = 0; i < C; ++i)
      EXPECT_NEAR(out.o_lat[h * C + i], (2 * e0 * in.c[i] + e1 * in.c[C + i]) / (2 * e0 + e1),
                  1e-6);
  }
}

TEST(RefMlaAttention, LargeLogitsDoNotOverflow) {
  Inputs in(1, 2, 58);
  std::fill(in.q.begin(), in.q.end(), 0.0f);
  std::fill(in.k_pe.begin(), in.k_pe.end(), 0.0f);
  std::fill(in.c.begin(), in.c.end(), 0.0f);
  for (int h = 0; h < H; ++h) in.q[h * QD] = 1000;
  in.c[0] = 1, in.c[C] = 0.999f;  // scores 1000 and 999
  Outputs out = sparse(in, {0, 1}, 2, 1.0f);
  const double p0 = 1 / (1 + std::exp(-1.0));  // softmax weight of the score-1000 key
  for (int h = 0; h < H; ++h) {
    EXPECT_NEAR(out.lse[h], 1000 + std::log1p(std::exp(-1.0)), 1e-3);
    EXPECT_NEAR(out.o_lat[h * C], p0 * 1 + (1 - p0) * 0.999, 1e-4);
  }
}

TEST(RefMlaAttention, IndexBeyondTheCacheThrows) {
  Inputs in(1, 4, 59);
  EXPECT_THROW(sparse(in, {0, 4}, 2, 1.0f), std::out_of_range);
}

}  // namespace
}  // namespace dsinfer::ref
