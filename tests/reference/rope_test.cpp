#include "kernels/reference/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

// The 671B rope_scaling (spec §1).
constexpr int kRopeDim = 64;
constexpr double kTheta = 10000, kFactor = 40, kBetaFast = 32, kBetaSlow = 1;
constexpr int kOriginalMaxPos = 4096;

std::vector<float> yarn_671b() {
  return yarn_inv_freq(kRopeDim, kTheta, kFactor, kOriginalMaxPos, kBetaFast, kBetaSlow);
}

double squared_norm(const float* v, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += double(v[i]) * v[i];
  return s;
}

TEST(RefRopeFreq, PlainTableIsThetaPowers) {
  std::vector<float> f = rope_inv_freq(kRopeDim, kTheta);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], float(std::pow(10000.0, -2.0 / 64)));
  EXPECT_FLOAT_EQ(f[16], 0.01f);  // theta^(-32/64)
}

TEST(RefRopeFreq, YarnMatchesSpecTextComputedIndependently) {
  // §3.1 written out with the 671B numbers.
  const double low =
      std::floor(64 * std::log(4096 / (32 * 2 * std::numbers::pi)) / (2 * std::log(10000.0)));
  const double high =
      std::ceil(64 * std::log(4096 / (1 * 2 * std::numbers::pi)) / (2 * std::log(10000.0)));
  ASSERT_EQ(low, 10);
  ASSERT_EQ(high, 23);
  std::vector<float> f = yarn_671b();
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    double fi = std::pow(10000.0, -2.0 * i / 64);
    double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
    double expect = fi / 40 * ramp + fi * (1 - ramp);
    EXPECT_FLOAT_EQ(f[i], float(expect)) << "i = " << i;
  }
  // Below the ramp the frequency is untouched, above it fully divided by the factor.
  EXPECT_EQ(f[3], rope_inv_freq(kRopeDim, kTheta)[3]);
  EXPECT_FLOAT_EQ(f[30], rope_inv_freq(kRopeDim, kTheta)[30] / 40);
}

TEST(RefRopeFreq, YarnWithEqualBoundsDoesNotDivideByZero) {
  // A beta putting the correction dim at -0.37 for both bounds: low = max(floor, 0) = 0 and
  // high = ceil = 0 coincide, and the spec nudges high to 0.001, a step right after i = 0.
  const double beta = kOriginalMaxPos / (2 * std::numbers::pi * 0.9);
  std::vector<float> f = yarn_inv_freq(kRopeDim, kTheta, 4, kOriginalMaxPos, beta, beta);
  std::vector<float> plain = rope_inv_freq(kRopeDim, kTheta);
  EXPECT_EQ(f[0], plain[0]);
  for (int i = 1; i < 32; ++i) EXPECT_FLOAT_EQ(f[i], plain[i] / 4) << i;
}

TEST(RefYarnScale, MscaleFor671B) {
  EXPECT_NEAR(yarn_mscale(40, 1), 1.3689, 1e-4);
  EXPECT_DOUBLE_EQ(yarn_mscale(40, 1), 0.1 * std::log(40.0) + 1);
  EXPECT_DOUBLE_EQ(yarn_mscale(1, 1), 1.0);
  const double m = 0.1 * std::log(40.0) + 1;
  EXPECT_DOUBLE_EQ(yarn_softmax_scale(192, 40, 1), m * m / std::sqrt(192.0));
  EXPECT_DOUBLE_EQ(yarn_softmax_scale(192, 1, 1), 1 / std::sqrt(192.0));
}

TEST(RefRopeCosSin, AngleIsTheF32Product) {
  std::vector<float> f = yarn_671b();
  std::vector<float> c(32), s(32);
  bool some_angle_rounds = false;
  for (int32_t pos : {1, 777, 4095, 100003, 163839}) {
    rope_cos_sin(f.data(), 32, pos, c.data(), s.data());
    for (int i = 0; i < 32; ++i) {
      float angle = float(pos) * f[i];
      EXPECT_EQ(c[i], float(std::cos(double(angle)))) << pos << " " << i;
      EXPECT_EQ(s[i], float(std::sin(double(angle)))) << pos << " " << i;
      if (float(std::sin(double(pos) * f[i])) != s[i]) some_angle_rounds = true;
    }
  }
  // The positions above do exercise the difference from a double-precision angle.
  EXPECT_TRUE(some_angle_rounds);
}

TEST(RefRope, PositionZeroIsIdentity) {
  std::vector<float> f = yarn_671b();
  std::vector<float> x = testing::random_floats(3 * 64, 10), y = x;
  std::vector<int32_t> pos = {0, 0, 0};
  rope_interleaved(y.data(), 3, 1, 64, 64, pos.data(), f.data());
  EXPECT_EQ(x, y);
  rope_halves(y.data(), 3, 1, 64, 64, pos.data(), f.data());
  EXPECT_EQ(x, y);
}

TEST(RefRope, InterleavedIsComplexMultiplication) {
  std::vector<float> f = yarn_671b();
  const int T = 4, H = 3;
  std::vector<int32_t> pos = {1, 17, 4096, 90000};
  std::vector<float> x = testing::random_floats(T * H * 64, 11), y = x;
  rope_interleaved(y.data(), T, H, 64, 64, pos.data(), f.data());
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < 32; ++i) {
        const float* xv = &x[(t * H + h) * 64];
        const float* yv = &y[(t * H + h) * 64];
        double angle = float(pos[t]) * f[i];
        std::complex<double> z =
            std::complex<double>(xv[2 * i], xv[2 * i + 1]) * std::polar(1.0, angle);
        EXPECT_NEAR(yv[2 * i], z.real(), 1e-6) << t << " " << h << " " << i;
        EXPECT_NEAR(yv[2 * i + 1], z.imag(), 1e-6) << t << " " << h << " " << i;
      }
}

TEST(RefRope, BothLayoutsPreserveNorms) {
  std::vector<float> f = yarn_671b();
  const int T = 5, H = 2;
  std::vector<int32_t> pos = {3, 100, 2047, 5000, 163000};
  std::vector<float> x = testing::random_floats(T * H * 64, 12);
  for (bool halves : {false, true}) {
    std::vector<float> y = x;
    if (halves)
      rope_halves(y.data(), T, H, 64, 64, pos.data(), f.data());
    else
      rope_interleaved(y.data(), T, H, 64, 64, pos.data(), f.data());
    EXPECT_NE(x, y);
    for (int v = 0; v < T * H; ++v)
      EXPECT_NEAR(squared_norm(&y[v * 64], 64), squared_norm(&x[v * 64], 64), 1e-5);
  }
}

TEST(RefRope, HalvesAndInterleavedPairDifferentDims) {
  // A unit vector on dim 0 rotates into dim 1 (interleaved) or dim rope_dim/2 (halves).
  std::vector<float> f = {0.5f, 0.25f};
  std::vector<int32_t> pos = {2};
  std::vector<float> a = {1, 0, 0, 0}, b = a;
  rope_interleaved(a.data(), 1, 1, 4, 4, pos.data(), f.data());
  rope_halves(b.data(), 1, 1, 4, 4, pos.data(), f.data());
  const float c = std::cos(1.0f), s = std::sin(1.0f);
  EXPECT_FLOAT_EQ(a[0], c);
  EXPECT_FLOAT_EQ(a[1], s);
  EXPECT_EQ(a[2], 0.0f);
  EXPECT_EQ(a[3], 0.0f);
  EXPECT_FLOAT_EQ(b[0], c);
  EXPECT_EQ(b[1], 0.0f);
  EXPECT_FLOAT_EQ(b[2], s);
  EXPECT_EQ(b[3], 0.0f);
  // In the halves layout dim 1 pairs with dim 3 at frequency f[1] (interleaved, it is dim 0's
  // partner at f[0]).
  std::vector<float> e1 = {0, 1, 0, 0};
  rope_halves(e1.data(), 1, 1, 4, 4, pos.data(), f.data());
  EXPECT_FLOAT_EQ(e1[1], std::cos(0.5f));
  EXPECT_FLOAT_EQ(e1[3], std::sin(0.5f));
}

TEST(RefRope, RotatesOnlyTheRequestedSubRangeWithPerTokenPositions) {
  // MLA-style q [T, H, 8]: the rope part is the last 4 dims; heads of one token share a position.
  std::vector<float> f = {0.3f, 0.05f};
  const int T = 2, H = 2, D = 8;
  std::vector<int32_t> pos = {0, 5};
  std::vector<float> x = testing::random_floats(T * H * D, 13), y = x;
  rope_interleaved(y.data() + 4, T, H, D, 4, pos.data(), f.data());
  for (int v = 0; v < T * H; ++v)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(y[v * D + i], x[v * D + i]);  // nope part untouched
  for (int i = 4; i < 8; ++i) EXPECT_EQ(y[i], x[i]);                    // token 0: position 0
  for (int h = 0; h < H; ++h) {
    const float* xv = &x[(1 * H + h) * D + 4];
    const float* yv = &y[(1 * H + h) * D + 4];
    float a = 5 * f[0];
    EXPECT_NEAR(yv[0], xv[0] * std::cos(a) - xv[1] * std::sin(a), 1e-6);
    EXPECT_NEAR(yv[1], xv[1] * std::cos(a) + xv[0] * std::sin(a), 1e-6);
  }
}

TEST(RefRope, DotProductDependsOnlyOnRelativePosition) {
  std::vector<float> f = yarn_671b();
  std::vector<float> q = testing::random_floats(64, 14), k = testing::random_floats(64, 15);
  for (bool halves : {false, true}) {
    auto rotated_dot = [&](int32_t pq, int32_t pk) {
      std::vector<float> a = q, b = k;
      auto rope = halves ? rope_halves : rope_interleaved;
      rope(a.data(), 1, 1, 64, 64, &pq, f.data());
      rope(b.data(), 1, 1, 64, 64, &pk, f.data());
      double d = 0;
      for (int i = 0; i < 64; ++i) d += double(a[i]) * b[i];
      return d;
    };
    EXPECT_NEAR(rotated_dot(10, 3), rotated_dot(107, 100), 1e-5);
    EXPECT_NEAR(rotated_dot(10, 3), rotated_dot(7, 0), 1e-5);
    EXPECT_GT(std::abs(rotated_dot(10, 3) - rotated_dot(10, 4)), 1e-4);
  }
}

}  // namespace
}  // namespace dsinfer::ref
