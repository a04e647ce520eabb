// Scalar element types and their exact conversions: bf16, f16, fp8 e4m3fn, ue8m0.
// These are the reference conversions; the tile backends vectorize the same bit rules.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace dsinfer {

// u4: unsigned 4-bit codes, two per byte, the low nibble first (the compressed-tensors INT4
// packing seen byte by byte); it exists only in weight views, never as a tensor's dtype.
enum class DType : uint8_t { f32, bf16, f16, fp8_e4m3, ue8m0, i8, i32, i64, u8, u4 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::bf16:
    case DType::f16:
      return 2;
    case DType::fp8_e4m3:
    case DType::ue8m0:
    case DType::i8:
    case DType::u8:
      return 1;
    case DType::i64:
      return 8;
    case DType::u4:
      return 0;  // not a whole byte: use dtype_bits
  }
  return 0;
}
constexpr int dtype_bits(DType t) {
  return t == DType::u4 ? 4 : int(8 * dtype_size(t));
}
std::string_view dtype_name(DType t);
// Parses safetensors names ("F32", "BF16", "F8_E4M3", ...); returns false when unknown.
bool dtype_from_safetensors(std::string_view name, DType* out);

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- bf16: the top 16 bits of an f32 -------------------------------------------------------
struct bf16 {
  uint16_t bits;
};
inline float bf16_to_f32(bf16 v) {
  return f32_from_bits(uint32_t(v.bits) << 16);
}
// Round to nearest even; NaN stays NaN (quiet), infinities and overflow to inf as IEEE says.
inline bf16 f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}
// (lo, hi) rounded to bf16 as one 32-bit word, lo in the low half: a bf16 pair in memory order.
inline uint32_t f32_to_bf16_pair(float lo, float hi) {
  return uint32_t(f32_to_bf16(lo).bits) | uint32_t(f32_to_bf16(hi).bits) << 16;
}

// ---- f16 (IEEE binary16) --------------------------------------------------------------------
struct f16 {
  uint16_t bits;
};
inline float f16_to_f32(f16 v) {
  uint32_t sign = uint32_t(v.bits & 0x8000u) << 16;
  uint32_t exp = (v.bits >> 10) & 0x1f, mant = v.bits & 0x3ffu;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in f32
    float m = float(mant) * 5.9604644775390625e-8f;
    return sign ? -m : m;
  }
  return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}
f16 f32_to_f16(float f);  // round to nearest even, overflow to inf

// ---- fp8 e4m3fn: bias 7, no infinities, S.1111.111 = NaN, max finite 448 ----------------------
struct fp8_e4m3 {
  uint8_t bits;
};
inline constexpr float kFp8E4m3Max = 448.0f;
inline float fp8_e4m3_to_f32(fp8_e4m3 v) {
  uint32_t sign = uint32_t(v.bits & 0x80u) << 24;
  uint32_t mag = v.bits & 0x7fu;
  if (mag == 0x7f) return f32_from_bits(sign | 0x7fc00000u);
  // Placing exponent and mantissa into the f32 field and scaling by 2^120 handles normals and
  // subnormals alike (the f32 subnormal 2^-126 * m/8 times 2^120 is the e4m3 subnormal 2^-6 * m/8).
  float v_abs = f32_from_bits(mag << 20) * 1.329227995784916e36f;  // 2^120
  return f32_from_bits(f32_bits(v_abs) | sign);
}
// Round to nearest even; |x| beyond the largest finite value saturates to +-448; NaN -> NaN.
fp8_e4m3 f32_to_fp8_e4m3(float f);

// The index of the first FP8 e4m3fn NaN code (0x7f or 0xff) among n bytes, or -1.
int64_t find_fp8_nan(const uint8_t* codes, int64_t n);

// ---- ue8m0: unsigned power-of-two scale 2^(e-127); 0xff = NaN --------------------------------
struct ue8m0 {
  uint8_t bits;
};
inline float ue8m0_to_f32(ue8m0 v) {
  if (v.bits == 0xff) return f32_from_bits(0x7fc00000u);
  if (v.bits == 0) return f32_from_bits(0x00400000u);  // 2^-127 is an f32 subnormal
  return f32_from_bits(uint32_t(v.bits) << 23);
}
// The power of two 2^ceil(log2(x)) for x > 0, as a ue8m0 code (the FP8 scale rule of the spec).
ue8m0 ue8m0_ceil_pow2(float x);

// The FP8 activation scale of a block with largest magnitude amax (spec §3.2 / the release's
// act_quant): a = max(amax, 1e-4), a / 448, rounded up to a power of two when ue8m0_scale.
inline float fp8_block_scale(float amax, bool ue8m0_scale) {
  const float ratio = (amax >= 1e-4f ? amax : 1e-4f) / kFp8E4m3Max;
  return ue8m0_scale ? ue8m0_to_f32(ue8m0_ceil_pow2(ratio)) : ratio;
}

}  // namespace dsinfer
