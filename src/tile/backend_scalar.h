// Portable scalar backend: a "vector" of 8 f32 lanes held in an array; the loops are simple
// enough for the compiler to map onto SSE2. It is the reference for the other backends' ops.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace dsinfer::DSINFER_ISA_NS::simd {

inline constexpr int kLanes = 8;
inline constexpr bool kNativeBf16Dot = false;

struct VF {
  float v[kLanes];
};
struct VB {
  uint16_t v[2 * kLanes];
};

#define DSINFER_LANEWISE(expr)                      \
  VF r;                                             \
  for (int i = 0; i < kLanes; ++i) r.v[i] = (expr); \
  return r

inline VF zero() {
  DSINFER_LANEWISE(0.0f);
}
inline VF set1(float x) {
  DSINFER_LANEWISE(x);
}
inline VF load(const float* p) {
  DSINFER_LANEWISE(p[i]);
}
inline void store(float* p, VF a) {
  std::memcpy(p, a.v, sizeof a.v);
}
inline VF load_n(const float* p, int n) {
  DSINFER_LANEWISE(i < n ? p[i] : 0.0f);
}
inline void store_n(float* p, VF a, int n) {
  for (int i = 0; i < n; ++i) p[i] = a.v[i];
}
inline VF add(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] + b.v[i]);
}
inline VF sub(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] - b.v[i]);
}
inline VF mul(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] * b.v[i]);
}
inline VF div(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] / b.v[i]);
}
inline VF max(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] > b.v[i] ? a.v[i] : b.v[i]);
}
inline VF min(VF a, VF b) {
  DSINFER_LANEWISE(a.v[i] < b.v[i] ? a.v[i] : b.v[i]);
}
// Not fused: baseline x86-64 has no FMA instruction and std::fma would be a libm call.
inline VF fma(VF a, VF b, VF c) {
  DSINFER_LANEWISE(a.v[i] * b.v[i] + c.v[i]);
}
inline VF abs(VF a) {
  DSINFER_LANEWISE(std::fabs(a.v[i]));
}
inline VF sqrt(VF a) {
  DSINFER_LANEWISE(std::sqrt(a.v[i]));
}
inline VF select_gt(VF x, VF y, VF a, VF b) {
  DSINFER_LANEWISE(x.v[i] > y.v[i] ? a.v[i] : b.v[i]);
}
inline float reduce_add(VF a) {
  // Pairwise, in the same tree order as the SIMD backends.
  float s[kLanes];
  std::memcpy(s, a.v, sizeof s);
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) s[i] += s[i + w];
  return s[0];
}
inline float reduce_max(VF a) {
  float m = a.v[0];
  for (int i = 1; i < kLanes; ++i) m = a.v[i] > m ? a.v[i] : m;
  return m;
}
inline VF exp(VF x) {
  DSINFER_LANEWISE(x.v[i] < -87.33654f ? 0.0f : std::exp(x.v[i]));
}

inline VF load_bf16(const uint16_t* p) {
  DSINFER_LANEWISE(bf16_to_f32(bf16{p[i]}));
}
inline VF load_bf16_n(const uint16_t* p, int n) {
  DSINFER_LANEWISE(i < n ? bf16_to_f32(bf16{p[i]}) : 0.0f);
}
inline void store_bf16(uint16_t* p, VF a) {
  for (int i = 0; i < kLanes; ++i) p[i] = f32_to_bf16(a.v[i]).bits;
}
inline void store_bf16_n(uint16_t* p, VF a, int n) {
  for (int i = 0; i < n; ++i) p[i] = f32_to_bf16(a.v[i]).bits;
}
inline VF load_f16(const uint16_t* p) {
  DSINFER_LANEWISE(f16_to_f32(f16{p[i]}));
}
inline VF load_fp8(const uint8_t* p) {
  DSINFER_LANEWISE(fp8_e4m3_to_f32(fp8_e4m3{p[i]}));
}
inline VF load_fp8_n(const uint8_t* p, int n) {
  DSINFER_LANEWISE(i < n ? fp8_e4m3_to_f32(fp8_e4m3{p[i]}) : 0.0f);
}
// kLanes fp8 codes as 2^-120 times their values: the code's exponent and mantissa bits placed
// in f32's (see backend_avx2.h). Exact, subnormal codes included; NaN codes are not special.
inline VF load_fp8_raw(const uint8_t* p) {
  VF r;
  for (int i = 0; i < kLanes; ++i) {
    const uint32_t bits = (uint32_t(p[i] & 0x80) << 24) | (uint32_t(p[i] & 0x7f) << 20);
    std::memcpy(&r.v[i], &bits, 4);
  }
  return r;
}

inline VB load_pairs(const uint16_t* p) {
  VB r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline VB broadcast_pair(const uint16_t* p) {
  VB r;
  for (int i = 0; i < kLanes; ++i) r.v[2 * i] = p[0], r.v[2 * i + 1] = p[1];
  return r;
}
inline VF dot_pairs(VF acc, VB a, VB b) {
  DSINFER_LANEWISE(
      std::fma(bf16_to_f32(bf16{a.v[2 * i + 1]}), bf16_to_f32(bf16{b.v[2 * i + 1]}),
               std::fma(bf16_to_f32(bf16{a.v[2 * i]}), bf16_to_f32(bf16{b.v[2 * i]}), acc.v[i])));
}

inline void prefetch(const void* p) {
  __builtin_prefetch(p);
}

#undef DSINFER_LANEWISE

}  // namespace dsinfer::DSINFER_ISA_NS::simd
