#include "kernels/reference/fp8_quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "random_fill.h"

namespace dsinfer::ref {
namespace {

float decode(uint8_t bits) {
  return fp8_e4m3_to_f32(fp8_e4m3{bits});
}

TEST(RefFp8Quant, Ue8m0ScaleIsTheSmallestPowerOfTwoAtLeastAmaxOver448) {
  const int blocks = 40;
  std::vector<float> x(blocks * 128);
  for (int b = 0; b < blocks; ++b) {
    std::vector<float> r = testing::random_floats(128, 100 + b, -1, 1);
    float magnitude = std::ldexp(1.3f, b - 20);  // amax from ~1e-6 to ~1e6
    for (int j = 0; j < 128; ++j) x[b * 128 + j] = r[j] * magnitude;
  }
  std::vector<uint8_t> q(x.size());
  std::vector<float> scale(blocks);
  quantize_fp8_blocks(x.data(), blocks, true, q.data(), scale.data());
  for (int b = 0; b < blocks; ++b) {
    float amax = 0;
    for (int j = 0; j < 128; ++j) amax = std::max(amax, std::fabs(x[b * 128 + j]));
    double need = std::max(double(amax), 1e-4) / 448;
    int exp;
    EXPECT_EQ(std::frexp(scale[b], &exp), 0.5f) << "not a power of two: " << scale[b];
    EXPECT_GE(scale[b], need) << b;
    EXPECT_LT(scale[b], 2 * need) << b;
  }
}

TEST(RefFp8Quant, ExactValuesWithUnitScale) {
  // amax 448 gives scale 2^ceil(log2(1)) = 1, so representable values are kept exactly and the
  // others round to nearest even on the e4m3 grid.
  std::vector<float> x(128, 0.0f);
  x[0] = 448;
  x[1] = -224;
  x[2] = 1.0625f;   // halfway between 1 and 1.125: even mantissa -> 1
  x[3] = 1.1875f;   // halfway between 1.125 and 1.25 -> 1.25
  x[4] = -0.0025f;  // subnormal region: 0.0025 * 512 = 1.28 -> 1 * 2^-9
  x[5] = 300;       // between 288 and 320 -> 288 (nearer)
  std::vector<uint8_t> q(128);
  float scale;
  quantize_fp8_blocks(x.data(), 1, true, q.data(), &scale);
  EXPECT_EQ(scale, 1.0f);
  EXPECT_EQ(q[0], 0x7e);
  EXPECT_EQ(decode(q[1]), -224.0f);
  EXPECT_EQ(decode(q[2]), 1.0f);
  EXPECT_EQ(decode(q[3]), 1.25f);
  EXPECT_EQ(decode(q[4]), -1.0f / 512);
  EXPECT_EQ(decode(q[5]), 288.0f);
  for (int j = 6; j < 128; ++j) EXPECT_EQ(q[j], 0) << j;
}

TEST(RefFp8Quant, AmaxJustAbove448DoublesTheScale) {
  std::vector<float> x(128, 0.0f);
  x[7] = 449;
  x[8] = 3;
  std::vector<uint8_t> q(128);
  float scale;
  quantize_fp8_blocks(x.data(), 1, true, q.data(), &scale);
  EXPECT_EQ(scale, 2.0f);
  EXPECT_EQ(decode(q[7]), 224.0f);  // 224.5 rounds to the grid point 224
  EXPECT_EQ(decode(q[8]), 1.5f);
}

TEST(RefFp8Quant, AmaxFloorForZeroAndTinyBlocks) {
  std::vector<float> x(2 * 128, 0.0f);
  x[128 + 3] = 1e-9f;  // far below the floor: scaled as if amax were 1e-4
  std::vector<uint8_t> q(2 * 128);
  float scale[2];
  quantize_fp8_blocks(x.data(), 2, true, q.data(), scale);
  // 1e-4 / 448 = 2^-22.1, so the scale is 2^-22.
  EXPECT_EQ(scale[0], std::ldexp(1.0f, -22));
  EXPECT_EQ(scale[1], std::ldexp(1.0f, -22));
  // 1e-9 / 2^-22 = 0.0042 is about 2.1 subnormal steps of 2^-9: it survives as 2^-8.
  EXPECT_EQ(decode(q[128 + 3]), std::ldexp(1.0f, -8));
  for (int j = 0; j < 2 * 128; ++j)
    if (j != 128 + 3) {
      EXPECT_EQ(q[j], 0) << j;
    }

  quantize_fp8_blocks(x.data(), 2, false, q.data(), scale);
  EXPECT_EQ(scale[0], 1e-4f / 448.0f);
}

TEST(RefFp8Quant, PlainScaleMapsTheMaxToExactly448) {
  std::vector<float> x = testing::random_floats(3 * 128, 30, -5, 5);
  x[128 + 17] = -9.75f;
  std::vector<uint8_t> q(x.size());
  std::vector<float> scale(3);
  quantize_fp8_blocks(x.data(), 3, false, q.data(), scale.data());
  EXPECT_EQ(scale[1], 9.75f / 448.0f);
  EXPECT_EQ(decode(q[128 + 17]), -448.0f);
  for (int j = 0; j < 3 * 128; ++j) EXPECT_LE(std::fabs(decode(q[j])), 448.0f);
}

TEST(RefFp8Quant, DequantErrorWithinHalfAnE4m3Step) {
  for (bool ue8m0 : {true, false}) {
    const int blocks = 8;
    std::vector<float> x = testing::random_floats(blocks * 128, 31, -3, 3);
    for (int j = 0; j < 128; ++j) x[5 * 128 + j] *= 1e-3f;
    std::vector<uint8_t> q(x.size());
    std::vector<float> scale(blocks), y(x.size());
    quantize_fp8_blocks(x.data(), blocks, ue8m0, q.data(), scale.data());
    dequantize_fp8_blocks(q.data(), scale.data(), blocks, y.data());
    for (int i = 0; i < blocks * 128; ++i) {
      float s = scale[i / 128];
      // Normals keep 3 mantissa bits (relative error <= 2^-4); subnormals step by 2^-9 * scale.
      double bound = std::max(std::fabs(double(x[i])) / 16, double(s) / 1024);
      EXPECT_LE(std::fabs(double(y[i]) - x[i]), bound * (1 + 1e-6)) << i;
      EXPECT_EQ(y[i], decode(q[i]) * s);
    }
  }
}

TEST(RefFp8Quant, NanIsIgnoredByTheScaleAndStaysNan) {
  std::vector<float> x(128, 1.0f);
  x[9] = std::nanf("");
  x[10] = -4;
  std::vector<uint8_t> q(128);
  float scale;
  quantize_fp8_blocks(x.data(), 1, true, q.data(), &scale);
  EXPECT_EQ(scale, std::ldexp(1.0f, -6));  // 4 / 448 = 2^-6.8 -> 2^-6
  EXPECT_TRUE(std::isnan(decode(q[9])));
  EXPECT_EQ(decode(q[10]), -256.0f);
  EXPECT_EQ(decode(q[0]), 64.0f);
}

}  // namespace
}  // namespace dsinfer::ref
