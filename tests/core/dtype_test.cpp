#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace dsinfer {
namespace {

TEST(Fp8E4m3, DecodesAll256CodesExactly) {
  for (int code = 0; code < 256; ++code) {
    float v = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(code)});
    int sign = code >> 7, exp = (code >> 3) & 15, mant = code & 7;
    if (exp == 15 && mant == 7) {
      EXPECT_TRUE(std::isnan(v)) << code;
      continue;
    }
    double expect = exp == 0 ? std::ldexp(mant / 8.0, -6) : std::ldexp(1.0 + mant / 8.0, exp - 7);
    if (sign) expect = -expect;
    EXPECT_EQ(double(v), expect) << "code " << code;
    EXPECT_EQ(std::signbit(v), bool(sign)) << code;
  }
}

TEST(Fp8E4m3, EncodeRoundTripsEveryFiniteCode) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;
    float v = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(code)});
    EXPECT_EQ(f32_to_fp8_e4m3(v).bits, code) << v;
  }
}

TEST(Fp8E4m3, EncodeRoundsToNearestEvenAtEveryMidpoint) {
  // Between consecutive positive codes c and c+1, the exact midpoint goes to the even code and
  // anything a hair away goes to the nearer one.
  for (int c = 0; c < 0x7e; ++c) {
    float lo = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(c)});
    float hi = fp8_e4m3_to_f32(fp8_e4m3{uint8_t(c + 1)});
    float mid = (lo + hi) / 2;  // exact in f32
    int even = (c % 2 == 0) ? c : c + 1;
    EXPECT_EQ(f32_to_fp8_e4m3(mid).bits, even) << "between " << lo << " and " << hi;
    EXPECT_EQ(f32_to_fp8_e4m3(-mid).bits, even | 0x80);
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 0.f)).bits, c);
    EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(mid, 1e9f)).bits, c + 1);
  }
}

TEST(Fp8E4m3, SaturatesAndKeepsNaN) {
  EXPECT_EQ(f32_to_fp8_e4m3(448.f).bits, 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(463.99f).bits, 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(1e30f).bits, 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(std::numeric_limits<float>::infinity()).bits, 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(-std::numeric_limits<float>::infinity()).bits, 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nanf("")).bits & 0x7f, 0x7f);
  EXPECT_EQ(f32_to_fp8_e4m3(1e-30f).bits, 0x00);  // underflows to zero
  EXPECT_EQ(f32_to_fp8_e4m3(-0.0f).bits, 0x80);
}

TEST(Bf16, DecodesAndRoundTripsAll65536Codes) {
  for (uint32_t code = 0; code < 65536; ++code) {
    float v = bf16_to_f32(bf16{uint16_t(code)});
    EXPECT_EQ(f32_bits(v), code << 16);
    bf16 back = f32_to_bf16(v);
    if (std::isnan(v))
      EXPECT_TRUE(std::isnan(bf16_to_f32(back)));
    else
      EXPECT_EQ(back.bits, code);
  }
}

TEST(Bf16, RoundsToNearestEven) {
  for (uint32_t code = 0; code < 0x7f7f; ++code) {  // positive finite codes below the largest
    uint32_t mid = (code << 16) | 0x8000u;           // exact midpoint to code+1
    uint32_t even = (code & 1) ? code + 1 : code;
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid)).bits, even);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid - 1)).bits, code);
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid + 1)).bits, code + 1);
  }
}

TEST(F16, RoundTripsAllFiniteCodesAndRoundsMidpoints) {
  for (uint32_t code = 0; code < 65536; ++code) {
    f16 h{uint16_t(code)};
    float v = f16_to_f32(h);
    if (std::isnan(v)) continue;
    EXPECT_EQ(f32_to_f16(v).bits, code) << v;
  }
  for (uint32_t code = 0; code < 0x7bff; ++code) {  // positive finite, midpoint to code+1
    float lo = f16_to_f32(f16{uint16_t(code)}), hi = f16_to_f32(f16{uint16_t(code + 1)});
    float mid = (lo + hi) / 2;
    uint32_t even = (code & 1) ? code + 1 : code;
    EXPECT_EQ(f32_to_f16(mid).bits, even) << lo;
  }
  EXPECT_EQ(f32_to_f16(70000.f).bits, 0x7c00);
}

TEST(Ue8m0, CeilPowerOfTwo) {
  EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(1.0f)), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(1.0001f)), 2.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(0.75f)), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(0.5f)), 0.5f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(1e-4f / 448.f)), std::ldexp(1.0f, -22));
  for (int e = -120; e < 120; ++e) {
    float p = std::ldexp(1.0f, e);
    EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(p)), p);
    EXPECT_EQ(ue8m0_to_f32(ue8m0_ceil_pow2(p * 1.5f)), p * 2);
  }
  EXPECT_TRUE(std::isnan(ue8m0_to_f32(ue8m0{0xff})));
}

TEST(DType, SafetensorsNames) {
  DType t;
  ASSERT_TRUE(dtype_from_safetensors("F8_E4M3", &t));
  EXPECT_EQ(t, DType::fp8_e4m3);
  ASSERT_TRUE(dtype_from_safetensors("BF16", &t));
  EXPECT_EQ(t, DType::bf16);
  EXPECT_FALSE(dtype_from_safetensors("F8_E5M2", &t));
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
}

}  // namespace
}  // namespace dsinfer
