// Portable scalar backend: a "vector" of 8 f32 lanes held in an array; the loops are simple
// enough for the compiler to map onto SSE2. It is the reference for the other backends' ops.
#pragma once

#include <algorithm>
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
// (a1, a0, a3, a2, ...): the two floats of every pair swapped (RoPE's interleaved pairs).
inline VF swap_pairs(VF a) {
  DSINFER_LANEWISE(a.v[i ^ 1]);
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
// a in the lanes whose bit is set in `bits` (lane l: bit l), else b
inline VF select_bits(uint32_t bits, VF a, VF b) {
  DSINFER_LANEWISE((bits >> i) & 1u ? a.v[i] : b.v[i]);
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
// Lane i = reduce_add(v[i]), for kLanes vectors at once (the dot-form GEMM's per-output sums).
inline VF reduce_lanes(const VF (&v)[kLanes]) {
  DSINFER_LANEWISE(reduce_add(v[i]));
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
// kLanes values as e4m3fn codes (f32_to_fp8_e4m3).
inline void store_fp8(uint8_t* p, VF x) {
  for (int i = 0; i < kLanes; ++i) p[i] = f32_to_fp8_e4m3(x.v[i]).bits;
}
inline VF load_i8(const int8_t* p) {
  DSINFER_LANEWISE(float(p[i]));
}
inline VF load_i8_n(const int8_t* p, int n) {
  DSINFER_LANEWISE(i < n ? float(p[i]) : 0.0f);
}
// kLanes unsigned bytes as f32 (exact): 8-bit integer weight codes.
inline VF load_u8(const uint8_t* p) {
  DSINFER_LANEWISE(float(p[i]));
}
// kLanes 4-bit codes from kLanes / 2 bytes as f32 (exact): element 2j is byte j's low nibble,
// 2j + 1 its high one (INT4 weights packed along the row).
inline VF load_u4(const uint8_t* p) {
  DSINFER_LANEWISE(float(i % 2 ? p[i / 2] >> 4 : p[i / 2] & 15));
}
// ---- 8-bit integer dot products (W8A8 / W4A8) -------------------------------------------------
// VQ: 4 * kLanes bytes, one byte quad per int32 lane of a VI.
struct VQ {
  uint8_t b[4 * kLanes];
};
struct VI {
  int32_t v[kLanes];
};
inline VQ load_q(const void* p) {
  VQ r;
  std::memcpy(r.b, p, sizeof r.b);
  return r;
}
inline VQ low_nibbles(VQ a) {
  for (auto& x : a.b) x &= 15;
  return a;
}
inline VQ high_nibbles(VQ a) {
  for (auto& x : a.b) x = uint8_t(x >> 4);
  return a;
}
inline VQ flip_bytes(VQ a) {
  for (auto& x : a.b) x ^= 0x80;
  return a;
}
inline VI first_lane(int32_t x) {
  VI r{};
  r.v[0] = x;
  return r;
}
inline VI dot_u8s8(VI acc, VQ u, VQ s) {
  for (int l = 0; l < kLanes; ++l)
    for (int j = 0; j < 4; ++j) acc.v[l] += int32_t(u.b[4 * l + j]) * int8_t(s.b[4 * l + j]);
  return acc;
}
inline VF to_f32(VI a) {
  DSINFER_LANEWISE(float(a.v[i]));
}
inline VI add_i(VI a, VI b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] += b.v[l];
  return a;
}
inline VI load_i(const int32_t* p) {
  VI r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline VI mul_i(VI a, VI b) {  // the low 32 bits of each product
  for (int l = 0; l < kLanes; ++l) a.v[l] = int32_t(uint32_t(a.v[l]) * uint32_t(b.v[l]));
  return a;
}
inline VI set1_i(int32_t x) {
  VI r;
  for (int32_t& v : r.v) v = x;
  return r;
}
inline VQ broadcast_quad(const void* p) {
  VQ r;
  for (int l = 0; l < kLanes; ++l) std::memcpy(r.b + 4 * l, p, 4);
  return r;
}
// Lane i = the sum of v[i]'s lanes (exact, wrapping), for kLanes vectors at once.
inline VI reduce_lanes_i(const VI (&v)[kLanes]) {
  VI r;
  for (int i = 0; i < kLanes; ++i) {
    uint32_t s = 0;
    for (int l = 0; l < kLanes; ++l) s += uint32_t(v[i].v[l]);
    r.v[i] = int32_t(s);
  }
  return r;
}
inline VQ as_quads(VF words) {
  VQ r;
  std::memcpy(r.b, words.v, sizeof r.b);
  return r;
}
inline VF as_words(VQ q) {
  VF r;
  std::memcpy(r.v, q.b, sizeof r.v);
  return r;
}
inline void store_q(void* p, VQ a) {
  std::memcpy(p, a.b, sizeof a.b);
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

// (lo, hi) per lane as a bf16 pair, rounded as store_bf16 rounds.
inline VB bf16_pairs(VF lo, VF hi) {
  VB r;
  for (int i = 0; i < kLanes; ++i)
    r.v[2 * i] = f32_to_bf16(lo.v[i]).bits, r.v[2 * i + 1] = f32_to_bf16(hi.v[i]).bits;
  return r;
}
inline void store_pairs(uint16_t* p, VB a) {
  std::memcpy(p, a.v, sizeof a.v);
}
// Two rows a, b of 2 * kLanes bf16 zipped into pairs: lo = (a0, b0, a1, b1, ...) of the first
// kLanes columns, hi of the last kLanes (a pair along the other dimension: two keys' values).
inline void zip_pairs(VB a, VB b, VB& lo, VB& hi) {
  for (int i = 0; i < kLanes; ++i) {
    lo.v[2 * i] = a.v[i], lo.v[2 * i + 1] = b.v[i];
    hi.v[2 * i] = a.v[kLanes + i], hi.v[2 * i + 1] = b.v[kLanes + i];
  }
}

// ---- integer weight codes as bf16 (W4A16 / W8A16 in the pair form) -----------------------------
// 2 * kLanes bf16 in order, a's lanes then b's: each value's high 16 bits (exact for values bf16
// holds, such as integers of magnitude <= 256; others are truncated).
inline VB bf16_in_order(VF a, VF b) {
  VB r;
  for (int i = 0; i < kLanes; ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a.v[i], 4);
    std::memcpy(&y, &b.v[i], 4);
    r.v[i] = uint16_t(x >> 16), r.v[kLanes + i] = uint16_t(y >> 16);
  }
  return r;
}
// The table u4_pairs_split looks 4-bit codes up in: code i -> bf16 of (i - bias), which must be
// exact.
inline VB u4_table(float bias) {
  VB r;
  for (int i = 0; i < 16; ++i) r.v[i] = f32_to_bf16(float(i) - bias).bits;
  return r;
}
// 4 * kLanes 4-bit codes from 2 * kLanes bytes (column 2t: byte t's low nibble, 2t + 1 its high
// one) looked up in a u4_table: the even columns' values in order (pairs of columns 4j, 4j + 2)
// and the odd columns' (4j + 1, 4j + 3).
inline void u4_pairs_split(const uint8_t* p, VB table, VB& even, VB& odd) {
  for (int t = 0; t < 2 * kLanes; ++t)
    even.v[t] = table.v[p[t] & 15], odd.v[t] = table.v[p[t] >> 4];
}

// ---- raw 32-bit words (weight transposes; pure data moves, every bit pattern kept) -------------
inline VF load_words(const void* p) {
  VF r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
// The first `bytes` bytes at p (0 <= bytes <= 4 * kLanes), zeros after; reads nothing past them.
inline VF load_words_n(const void* p, int bytes) {
  VF r = zero();
  std::memcpy(r.v, p, size_t(bytes));
  return r;
}
inline VB as_pairs(VF words) {
  VB r;
  std::memcpy(r.v, words.v, sizeof r.v);
  return r;
}
// r[i] lane j <-> r[j] lane i, as bit patterns.
inline void transpose(VF (&r)[kLanes]) {
  uint32_t t[kLanes][kLanes];
  for (int i = 0; i < kLanes; ++i) std::memcpy(t[i], r[i].v, sizeof t[i]);
  for (int i = 0; i < kLanes; ++i)
    for (int j = 0; j < kLanes; ++j) std::memcpy(&r[i].v[j], &t[j][i], 4);
}
inline VF from_bits(const uint32_t (&b)[kLanes]) {
  VF r;
  std::memcpy(r.v, b, sizeof r.v);
  return r;
}

// 2 * kLanes consecutive fp8 codes times 2^(c - 120) (3 <= c <= 126) as bf16, in order (pair l
// = codes 2l, 2l + 1): exact, by integer ops, for every code but the subnormal ones; nonzero if
// there is one among them (then `out` is not that product).
inline uint32_t fp8_to_bf16_pow2(const uint8_t* p, int c, VB& out) {
  uint32_t subnormal = 0;
  for (int i = 0; i < 2 * kLanes; ++i) {
    const uint16_t e = uint16_t(((p[i] & 0x80) << 8) | ((p[i] & 0x7f) << 4));
    const bool normal = (e & 0x0780) != 0;
    subnormal |= !normal && (e & 0x0070) != 0;
    out.v[i] = normal ? uint16_t(e + (c << 7)) : e;
  }
  return subnormal;
}

// The same for codes that all have a nonzero exponent field (no zero, no subnormal: a block
// fp8_any_zero_exponent cleared).
inline VB fp8_to_bf16_normal(const uint8_t* p, int c) {
  VB out;
  for (int i = 0; i < 2 * kLanes; ++i)
    out.v[i] = uint16_t((((p[i] & 0x80) << 8) | ((p[i] & 0x7f) << 4)) + (c << 7));
  return out;
}
// Whether any of n fp8 codes has a zero exponent field (a zero or a subnormal code).
inline bool fp8_any_zero_exponent(const uint8_t* p, int n) {
  for (int i = 0; i < n; ++i)
    if ((p[i] & 0x78) == 0) return true;
  return false;
}

inline void prefetch(const void* p) {
  __builtin_prefetch(p);
}
// Into L2 only: for streams too wide to stage in L1 (many rows side by side). An asm statement:
// GCC deletes loops whose only effect is __builtin_prefetch (C++ forward-progress rule).
inline void prefetch_l2(const void* p) {
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
}

#undef DSINFER_LANEWISE

}  // namespace dsinfer::DSINFER_ISA_NS::simd
