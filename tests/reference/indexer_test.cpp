#include "kernels/reference/indexer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/reference/fp8_quant.h"
#include "kernels/reference/hadamard.h"
#include "random_fill.h"

namespace dsinfer::ref {
namespace {

constexpr int D = kIndexHeadDim;
const float kNegInf = -INFINITY;

std::vector<uint8_t> encode_e4m3(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_fp8_e4m3(v[i]).bits;
  return out;
}

// One query with 2 heads and 3 keys, few nonzeros, scores worked out by hand:
//   q[h0] = e0 + e1, q[h1] = 2 e2, w = [0.5, -1]
//   k0 = 3 e0 + e2        dots (3, 2)   -> 0.5*3 - 1*2      = -0.5
//   k1 = -2 e0 + e1 - e2  dots (-1, -2) -> ReLU kills both  =  0
//   k2 = 4 e1 + 0.5 e2    dots (4, 1)   -> 0.5*4 - 1*1      =  1
struct TinyCase {
  std::vector<float> q = std::vector<float>(2 * D, 0.0f), k = std::vector<float>(3 * D, 0.0f);
  std::vector<float> w = {0.5f, -1.0f};
  TinyCase() {
    q[0] = 1, q[1] = 1, q[D + 2] = 2;
    k[0] = 3, k[2] = 1;
    k[D + 0] = -2, k[D + 1] = 1, k[D + 2] = -1;
    k[2 * D + 1] = 4, k[2 * D + 2] = 0.5f;
  }
};

TEST(RefIndexer, HeadWeightsFoldAllFactors) {
  std::vector<float> proj = {2, -3, 1, 8}, q_scale = {0.5f, 0.25f, 1, 2}, w(4);
  indexer_head_weights(proj.data(), q_scale.data(), 1, 4, w.data());  // HI = 4: HI^-0.5 = 0.5
  const double d = 1 / std::sqrt(128.0);
  EXPECT_FLOAT_EQ(w[0], float(2 * 0.5 * 0.5 * d));
  EXPECT_FLOAT_EQ(w[1], float(-3 * 0.5 * 0.25 * d));
  EXPECT_FLOAT_EQ(w[3], float(8 * 0.5 * 2 * d));
  indexer_head_weights(proj.data(), nullptr, 2, 2, w.data());  // HI = 2, unit scales
  EXPECT_FLOAT_EQ(w[1], float(-3 / std::sqrt(2.0) * d));
  EXPECT_FLOAT_EQ(w[2], float(1 / std::sqrt(2.0) * d));
}

TEST(RefIndexer, HandComputedScoresF32) {
  TinyCase c;
  for (Accum acc : {Accum::f32, Accum::f64}) {
    std::vector<float> s(3);
    indexer_scores_f32(c.q.data(), c.w.data(), 1, 2, c.k.data(), 3, nullptr, s.data(), acc);
    EXPECT_EQ(s, (std::vector<float>{-0.5f, 0.0f, 1.0f}));
  }
}

TEST(RefIndexer, HandComputedScoresFp8MultiplyByKeyScale) {
  TinyCase c;  // every value is exact in e4m3
  std::vector<uint8_t> q8 = encode_e4m3(c.q), k8 = encode_e4m3(c.k);
  std::vector<float> k_scale = {2, 1, 0.25f}, s(3);
  indexer_scores_fp8(q8.data(), c.w.data(), 1, 2, k8.data(), k_scale.data(), 3, nullptr, s.data());
  EXPECT_EQ(s, (std::vector<float>{-1.0f, 0.0f, 0.25f}));
}

TEST(RefIndexer, CausalMaskOnAbsolutePositions) {
  const int T = 2, HI = 3, N = 5;
  std::vector<float> q = testing::random_floats(T * HI * D, 40);
  std::vector<float> k = testing::random_floats(N * D, 41), w = testing::random_floats(T * HI, 42);
  std::vector<int32_t> pos = {0, 2};
  std::vector<float> masked(T * N), all(T * N);
  indexer_scores_f32(q.data(), w.data(), T, HI, k.data(), N, pos.data(), masked.data());
  indexer_scores_f32(q.data(), w.data(), T, HI, k.data(), N, nullptr, all.data());
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < N; ++s) {
      if (s <= pos[t])
        EXPECT_EQ(masked[t * N + s], all[t * N + s]) << t << "," << s;
      else
        EXPECT_EQ(masked[t * N + s], kNegInf) << t << "," << s;
      EXPECT_TRUE(std::isfinite(all[t * N + s]));
    }
}

TEST(RefIndexer, F32AccumulationStaysCloseToDouble) {
  const int T = 3, HI = 16, N = 40;
  std::vector<float> q = testing::random_floats(T * HI * D, 43, -2, 2);
  std::vector<float> k = testing::random_floats(N * D, 44, -2, 2);
  std::vector<float> w = testing::random_floats(T * HI, 45);
  std::vector<float> s32(T * N), s64(T * N);
  indexer_scores_f32(q.data(), w.data(), T, HI, k.data(), N, nullptr, s32.data(), Accum::f32);
  indexer_scores_f32(q.data(), w.data(), T, HI, k.data(), N, nullptr, s64.data(), Accum::f64);
  int differ = 0;
  for (int i = 0; i < T * N; ++i) {
    EXPECT_NEAR(s32[i], s64[i], 1e-4) << i;  // |terms| sum to ~ HI * 128 * 1.3 ~ 3e3
    differ += s32[i] != s64[i];
  }
  EXPECT_GT(differ, 0);  // the two modes are really different computations
}

// The whole quantized prolog (Hadamard, FP8 blocks, q_scale folded into w, k_scale applied)
// must approximate the unquantized indexer; forgetting either scale is off by ~100x.
TEST(RefIndexer, Fp8PipelineApproximatesUnquantizedScores) {
  const int T = 4, HI = 8, N = 64;
  std::vector<float> q = testing::random_floats(T * HI * D, 46, -3, 3);
  std::vector<float> k = testing::random_floats(N * D, 47, -1, 1);
  std::vector<float> proj = testing::random_floats(T * HI, 48);
  hadamard_128(q.data(), T * HI);
  hadamard_128(k.data(), N);

  std::vector<float> w(T * HI), exact(T * N);
  indexer_head_weights(proj.data(), nullptr, T, HI, w.data());
  indexer_scores_f32(q.data(), w.data(), T, HI, k.data(), N, nullptr, exact.data(), Accum::f64);

  std::vector<uint8_t> q8(q.size()), k8(k.size());
  std::vector<float> q_scale(T * HI), k_scale(N), w8(T * HI), approx(T * N);
  quantize_fp8_blocks(q.data(), T * HI, true, q8.data(), q_scale.data());
  quantize_fp8_blocks(k.data(), N, true, k8.data(), k_scale.data());
  indexer_head_weights(proj.data(), q_scale.data(), T, HI, w8.data());
  indexer_scores_fp8(q8.data(), w8.data(), T, HI, k8.data(), k_scale.data(), N, nullptr,
                     approx.data());

  float max_abs = 0;
  for (float v : exact) max_abs = std::max(max_abs, std::fabs(v));
  ASSERT_GT(max_abs, 0.1f);
  for (int i = 0; i < T * N; ++i) EXPECT_NEAR(approx[i], exact[i], 0.03f * max_abs) << i;
}

}  // namespace
}  // namespace dsinfer::ref
