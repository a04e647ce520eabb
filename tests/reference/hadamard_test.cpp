#include "kernels/reference/hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

TEST(RefHadamard, SylvesterOrdering) {
  // H_2 = [[1, 1], [1, -1]], H_4 = [[H_2, H_2], [H_2, -H_2]].
  const int h4[4][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(hadamard_sign(i, j), h4[i][j]) << i << "," << j;
  // The recursive block structure at the top level of H_128.
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j) {
      ASSERT_EQ(hadamard_sign(i, j + 64), hadamard_sign(i, j));
      ASSERT_EQ(hadamard_sign(i + 64, j), hadamard_sign(i, j));
      ASSERT_EQ(hadamard_sign(i + 64, j + 64), -hadamard_sign(i, j));
    }
}

TEST(RefHadamard, RowsAreOrthogonal) {
  for (int a = 0; a < kHadamardDim; ++a)
    for (int b = 0; b < kHadamardDim; ++b) {
      int dot = 0;
      for (int j = 0; j < kHadamardDim; ++j) dot += hadamard_sign(a, j) * hadamard_sign(b, j);
      ASSERT_EQ(dot, a == b ? kHadamardDim : 0) << a << "," << b;
    }
}

TEST(RefHadamard, KnownVectors) {
  const float inv_sqrt = float(1 / std::sqrt(128.0));
  std::vector<float> e0(128, 0.0f);
  e0[0] = 1;
  hadamard_128(e0.data(), 1);
  for (float v : e0) EXPECT_FLOAT_EQ(v, inv_sqrt);  // column 0 is all ones

  std::vector<float> ones(128, 1.0f);
  hadamard_128(ones.data(), 1);
  EXPECT_FLOAT_EQ(ones[0], float(std::sqrt(128.0)));  // only row 0 sums to nonzero
  for (int i = 1; i < 128; ++i) EXPECT_NEAR(ones[i], 0.0f, 1e-6f) << i;

  std::vector<float> e5(128, 0.0f);
  e5[5] = 2;
  hadamard_128(e5.data(), 1);
  for (int i = 0; i < 128; ++i) EXPECT_FLOAT_EQ(e5[i], 2 * inv_sqrt * hadamard_sign(i, 5)) << i;
}

TEST(RefHadamard, TwiceIsIdentityAndNormIsPreserved) {
  const int rows = 6;
  std::vector<float> x = testing::random_floats(rows * 128, 20, -4, 4), y = x;
  hadamard_128(y.data(), rows);
  EXPECT_NE(x, y);
  for (int r = 0; r < rows; ++r) {
    double nx = 0, ny = 0;
    for (int i = 0; i < 128; ++i) nx += double(x[r * 128 + i]) * x[r * 128 + i];
    for (int i = 0; i < 128; ++i) ny += double(y[r * 128 + i]) * y[r * 128 + i];
    EXPECT_NEAR(ny, nx, 1e-5 * nx) << r;
  }
  hadamard_128(y.data(), rows);
  for (int i = 0; i < rows * 128; ++i) EXPECT_NEAR(y[i], x[i], 2e-6f) << i;
}

TEST(RefHadamard, RowsAreTransformedIndependently) {
  std::vector<float> x = testing::random_floats(3 * 128, 21), one(x.begin() + 128, x.begin() + 256);
  hadamard_128(x.data(), 3);
  hadamard_128(one.data(), 1);
  for (int i = 0; i < 128; ++i) EXPECT_EQ(x[128 + i], one[i]);
}

}  // namespace
}  // namespace dsinfer::ref
