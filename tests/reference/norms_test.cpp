#include "kernels/reference/norms.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

TEST(RefRmsNorm, HandComputedRow) {
  // mean(3^2, 4^2) = 12.5, so y = x / sqrt(12.5) * w.
  std::vector<float> x = {3, 4}, w = {1, 2}, y(2);
  rms_norm(x.data(), 1, 2, w.data(), 0.0f, y.data());
  EXPECT_FLOAT_EQ(y[0], 3 / std::sqrt(12.5f));
  EXPECT_FLOAT_EQ(y[1], 8 / std::sqrt(12.5f));
}

TEST(RefRmsNorm, EpsIsAddedToTheMeanSquareNotTheRoot) {
  // mean square 1e-4 with eps 3e-4: rsqrt(4e-4) = 50; adding eps after the sqrt would give
  // 1 / (0.01 + 3e-4) ~ 97.
  std::vector<float> x = {0.01f, -0.01f}, w = {1, 1}, y(2);
  rms_norm(x.data(), 1, 2, w.data(), 3e-4f, y.data());
  EXPECT_NEAR(y[0], 0.5f, 1e-6f);
  EXPECT_NEAR(y[1], -0.5f, 1e-6f);
}

TEST(RefRmsNorm, UnitWeightsGiveUnitMeanSquarePerRow) {
  const int rows = 5, dim = 64;
  std::vector<float> x = testing::random_floats(rows * dim, 1, -3, 3), w(dim, 1.0f);
  for (int i = 0; i < dim; ++i) x[i] *= 100;  // rows are normalized independently
  std::vector<float> y(rows * dim);
  rms_norm(x.data(), rows, dim, w.data(), 0.0f, y.data());
  for (int r = 0; r < rows; ++r) {
    double ms = 0;
    for (int i = 0; i < dim; ++i) ms += double(y[r * dim + i]) * y[r * dim + i];
    EXPECT_NEAR(ms / dim, 1.0, 1e-6) << "row " << r;
  }
}

TEST(RefRmsNorm, InPlaceEqualsOutOfPlace) {
  const int rows = 3, dim = 16;
  std::vector<float> x = testing::random_floats(rows * dim, 2);
  std::vector<float> w = testing::random_floats(dim, 3), y(rows * dim), z = x;
  rms_norm(x.data(), rows, dim, w.data(), 1e-6f, y.data());
  rms_norm(z.data(), rows, dim, w.data(), 1e-6f, z.data());
  EXPECT_EQ(y, z);
}

TEST(RefLayerNorm, UsesBiasedVariance) {
  // x = 1..4: mean 2.5, biased variance 1.25 (the unbiased one would be 5/3).
  std::vector<float> x = {1, 2, 3, 4}, w = {1, 1, 2, 1}, b = {0, 0, 0, 10}, y(4);
  layer_norm(x.data(), 1, 4, w.data(), b.data(), 0.0f, y.data());
  const float inv_std = 1 / std::sqrt(1.25f);
  EXPECT_FLOAT_EQ(y[0], -1.5f * inv_std);
  EXPECT_FLOAT_EQ(y[1], -0.5f * inv_std);
  EXPECT_FLOAT_EQ(y[2], 2 * 0.5f * inv_std);
  EXPECT_FLOAT_EQ(y[3], 1.5f * inv_std + 10);
}

TEST(RefLayerNorm, UnitWeightZeroBiasGivesZeroMeanUnitVariance) {
  const int rows = 4, dim = 128;
  std::vector<float> x = testing::random_floats(rows * dim, 4, 5, 9);  // far-from-zero mean
  std::vector<float> w(dim, 1.0f), b(dim, 0.0f), y(rows * dim);
  layer_norm(x.data(), rows, dim, w.data(), b.data(), 0.0f, y.data());
  for (int r = 0; r < rows; ++r) {
    double sum = 0, sum_sq = 0;
    for (int i = 0; i < dim; ++i)
      sum += y[r * dim + i], sum_sq += double(y[r * dim + i]) * y[r * dim + i];
    EXPECT_NEAR(sum / dim, 0.0, 1e-6);
    EXPECT_NEAR(sum_sq / dim, 1.0, 1e-5);
  }
}

TEST(RefLayerNorm, ConstantRowGivesBiasThanksToEps) {
  std::vector<float> x(8, 7.0f), w(8, 3.0f), b(8, 0.25f), y(8);
  layer_norm(x.data(), 1, 8, w.data(), b.data(), 1e-6f, y.data());
  for (float v : y) EXPECT_FLOAT_EQ(v, 0.25f);
}

}  // namespace
}  // namespace dsinfer::ref
