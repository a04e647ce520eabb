// AVX2 + FMA + F16C backend: 8 f32 lanes in a ymm register. One of the three files in the
// project that may use intrinsics (with backend_avx512.h and backend_scalar.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace dsinfer::DSINFER_ISA_NS::simd {

inline constexpr int kLanes = 8;               // f32 lanes per vector
inline constexpr bool kNativeBf16Dot = false;  // bf16 pairs are widened to f32 before FMAs

struct VF {
  __m256 v;
};
struct VB {  // 16 bf16 values = 8 (even, odd) pairs, one pair per f32 lane
  __m256i v;
};

inline VF zero() {
  return {_mm256_setzero_ps()};
}
inline VF set1(float x) {
  return {_mm256_set1_ps(x)};
}
inline VF load(const float* p) {
  return {_mm256_loadu_ps(p)};
}
inline void store(float* p, VF a) {
  _mm256_storeu_ps(p, a.v);
}
inline __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// The first n lanes (0 <= n <= kLanes); the rest are 0. Never touches memory past p[n-1].
inline VF load_n(const float* p, int n) {
  return {_mm256_maskload_ps(p, lane_mask(n))};
}
inline void store_n(float* p, VF a, int n) {
  _mm256_maskstore_ps(p, lane_mask(n), a.v);
}

inline VF add(VF a, VF b) {
  return {_mm256_add_ps(a.v, b.v)};
}
inline VF sub(VF a, VF b) {
  return {_mm256_sub_ps(a.v, b.v)};
}
inline VF mul(VF a, VF b) {
  return {_mm256_mul_ps(a.v, b.v)};
}
inline VF div(VF a, VF b) {
  return {_mm256_div_ps(a.v, b.v)};
}
inline VF max(VF a, VF b) {
  return {_mm256_max_ps(a.v, b.v)};
}
inline VF min(VF a, VF b) {
  return {_mm256_min_ps(a.v, b.v)};
}
inline VF fma(VF a, VF b, VF c) {
  return {_mm256_fmadd_ps(a.v, b.v, c.v)};
}  // a*b + c
// (a1, a0, a3, a2, ...): the two floats of every pair swapped (RoPE's interleaved pairs).
inline VF swap_pairs(VF a) {
  return {_mm256_permute_ps(a.v, 0xB1)};
}
inline VF abs(VF a) {
  return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)};
}
inline VF sqrt(VF a) {
  return {_mm256_sqrt_ps(a.v)};
}
// a where mask lanes of (x > y), else b
inline VF select_gt(VF x, VF y, VF a, VF b) {
  return {_mm256_blendv_ps(b.v, a.v, _mm256_cmp_ps(x.v, y.v, _CMP_GT_OQ))};
}
// a in the lanes whose bit is set in `bits` (lane l: bit l), else b
inline VF select_bits(uint32_t bits, VF a, VF b) {
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i on =
      _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), lane_bit), lane_bit);
  return {_mm256_blendv_ps(b.v, a.v, _mm256_castsi256_ps(on))};
}

inline float reduce_add(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float reduce_max(VF a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// Lane i = reduce_add(v[i]), the same halving tree (lanes l + 4, l + 2, l + 1), for kLanes
// vectors at once: the dot-form GEMM's per-output sums.
inline VF reduce_lanes(const VF (&v)[kLanes]) {
  __m256 t[4], u[2];
  for (int i = 0; i < 4; ++i)  // [v2i lo + hi | v2i+1 lo + hi]
    t[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i].v, v[2 * i + 1].v, 0x20),
                         _mm256_permute2f128_ps(v[2 * i].v, v[2 * i + 1].v, 0x31));
  for (int j = 0; j < 2; ++j) {  // half h: inputs 4j + h (lanes 0, 1) and 4j + 2 + h
    const __m256d a = _mm256_castps_pd(t[2 * j]), b = _mm256_castps_pd(t[2 * j + 1]);
    u[j] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                         _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
  }
  // Lane 4h + k holds input 2k + h.
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return {_mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))};
}

// e^x for f32, ~1 ulp over the normal range; exactly 0 below -87.3 (so exp(-inf) = 0) and
// +inf past the f32 overflow threshold.
inline VF exp(VF x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283935546875f);
  __m256 under = _mm256_cmp_ps(x.v, lo, _CMP_LT_OQ);
  __m256 over = _mm256_cmp_ps(x.v, hi, _CMP_GT_OQ);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x.v, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n split in two factors so n = 128 (x near the top) does not overflow the exponent field.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  res = _mm256_blendv_ps(res, _mm256_set1_ps(__builtin_inff()), over);
  return {_mm256_andnot_ps(under, res)};
}

// ---- conversions ------------------------------------------------------------------------------
inline VF bf16_bits_to_f32(__m128i h) {
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
}
inline VF load_bf16(const uint16_t* p) {
  return bf16_bits_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline VF load_bf16_n(const uint16_t* p, int n) {
  alignas(16) uint16_t tmp[8] = {};
  for (int i = 0; i < n; ++i) tmp[i] = p[i];
  return load_bf16(tmp);
}
// f32 bits rounded (to nearest even; NaN made quiet) so that the top 16 bits are the bf16.
inline __m256i bf16_rounded(VF a) {
  __m256i u = _mm256_castps_si256(a.v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  __m256 nan = _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q);
  __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));  // quiet NaN keeps NaN-ness
  return _mm256_blendv_epi8(r, q, _mm256_castps_si256(nan));
}
inline __m128i f32_to_bf16_bits(VF a) {
  __m256i r = _mm256_srli_epi32(bf16_rounded(a), 16);
  __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
  return _mm_packus_epi32(lo, hi);
}
inline void store_bf16(uint16_t* p, VF a) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), f32_to_bf16_bits(a));
}
inline void store_bf16_n(uint16_t* p, VF a, int n) {
  alignas(16) uint16_t tmp[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(tmp), f32_to_bf16_bits(a));
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
inline VF load_f16(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
// fp8 e4m3fn -> f32, exact, including subnormals and NaN (0x7f / 0xff).
inline VF fp8_bits_to_f32(__m128i bytes8) {
  __m256i x = _mm256_cvtepu8_epi32(bytes8);
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x80)), 24);
  __m256i mag = _mm256_and_si256(x, _mm256_set1_epi32(0x7f));
  __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(mag, 20)),
                           _mm256_set1_ps(1.329227995784916e36f));  // 2^120
  __m256i nan = _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7f));
  v = _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), _mm256_castsi256_ps(nan));
  return {_mm256_or_ps(v, _mm256_castsi256_ps(sign))};
}
inline VF load_fp8(const uint8_t* p) {
  return fp8_bits_to_f32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline VF load_fp8_n(const uint8_t* p, int n) {
  alignas(16) uint8_t tmp[16] = {};
  for (int i = 0; i < n; ++i) tmp[i] = p[i];
  return load_fp8(tmp);
}
// kLanes values as e4m3fn codes, bit for bit f32_to_fp8_e4m3: round to nearest even, saturate
// to +-448 (inf included), NaN to the NaN code, subnormals by nearbyint(|x| * 2^9).
inline void store_fp8(uint8_t* p, VF x) {
  const __m256i u = _mm256_castps_si256(x.v);
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  const __m256 af = _mm256_castsi256_ps(a);
  // Normal: round at bit 20; the top 12 bits then hold (exponent, 3 mantissa bits) = code + 960.
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1));
  const __m256i r = _mm256_add_epi32(a, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7ffff)));
  __m256i code = _mm256_min_epi32(
      _mm256_sub_epi32(_mm256_srli_epi32(r, 20), _mm256_set1_epi32(960)), _mm256_set1_epi32(0x7e));
  const __m256 sub = _mm256_cmp_ps(af, _mm256_set1_ps(0.015625f), _CMP_LT_OQ);
  code = _mm256_blendv_epi8(code, _mm256_cvtps_epi32(_mm256_mul_ps(af, _mm256_set1_ps(512.0f))),
                            _mm256_castps_si256(sub));
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(0x7f), nan);
  code = _mm256_or_si256(code, sign);
  // 8 int32 (each < 256) to 8 bytes.
  const __m128i w =
      _mm_packus_epi32(_mm256_castsi256_si128(code), _mm256_extracti128_si256(code, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
}
// kLanes int8 codes as f32 (exact).
inline VF load_i8(const int8_t* p) {
  return {_mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))};
}
// kLanes unsigned bytes as f32 (exact): 8-bit integer weight codes.
inline VF load_u8(const uint8_t* p) {
  return {_mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))};
}
// kLanes 4-bit codes from kLanes / 2 bytes as f32 (exact): element 2j is byte j's low nibble,
// 2j + 1 its high one (INT4 weights packed along the row).
inline VF load_u4(const uint8_t* p) {
  int32_t w;
  __builtin_memcpy(&w, p, 4);
  const __m128i b = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(w));
  const __m128i codes =
      _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x0f)), _mm_slli_epi16(_mm_srli_epi16(b, 4), 8));
  return {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes))};
}
inline VF load_i8_n(const int8_t* p, int n) {
  alignas(16) int8_t tmp[16] = {};
  for (int i = 0; i < n; ++i) tmp[i] = p[i];
  return load_i8(tmp);
}
// Fast fp8 -> f32 for streamed weights: kLanes codes, each as 2^-120 times its value (the caller
// folds 2^120 into what it multiplies by). The code's exponent and mantissa bits land in f32's
// (sign-extend, shift left 20, keep sign + 7 bits): exact for every code including subnormals,
// which become f32 denormals. NaN codes are not special: checkpoints hold no NaN weights.
inline VF load_fp8_raw(const uint8_t* p) {
  const __m256i x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return {_mm256_castsi256_ps(
      _mm256_and_si256(_mm256_slli_epi32(x, 20), _mm256_set1_epi32(int(0x87f00000u))))};
}

// ---- bf16 pair dot products (emulated: widen to f32, two FMAs) ---------------------------------
inline VB load_pairs(const uint16_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
}
inline VB broadcast_pair(const uint16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return {_mm256_set1_epi32(v)};
}
// acc[i] += a[2i] * b[2i] + a[2i+1] * b[2i+1]
inline VF dot_pairs(VF acc, VB a, VB b) {
  const __m256i hi_mask = _mm256_set1_epi32(int(0xffff0000u));
  __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(a.v, 16));
  __m256 be = _mm256_castsi256_ps(_mm256_slli_epi32(b.v, 16));
  __m256 ao = _mm256_castsi256_ps(_mm256_and_si256(a.v, hi_mask));
  __m256 bo = _mm256_castsi256_ps(_mm256_and_si256(b.v, hi_mask));
  return {_mm256_fmadd_ps(ao, bo, _mm256_fmadd_ps(ae, be, acc.v))};
}

// (lo, hi) per lane as a bf16 pair, rounded as store_bf16 rounds.
inline VB bf16_pairs(VF lo, VF hi) {
  return {_mm256_or_si256(_mm256_srli_epi32(bf16_rounded(lo), 16),
                          _mm256_and_si256(bf16_rounded(hi), _mm256_set1_epi32(int(0xffff0000u))))};
}
inline void store_pairs(uint16_t* p, VB a) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a.v);
}
// Two rows a, b of 2 * kLanes bf16 zipped into pairs: lo = (a0, b0, a1, b1, ...) of the first
// kLanes columns, hi of the last kLanes (a pair along the other dimension: two keys' values).
inline void zip_pairs(VB a, VB b, VB& lo, VB& hi) {
  const __m256i l = _mm256_unpacklo_epi16(a.v, b.v);  // columns 0-3 | 8-11
  const __m256i h = _mm256_unpackhi_epi16(a.v, b.v);  // columns 4-7 | 12-15
  lo.v = _mm256_permute2x128_si256(l, h, 0x20);
  hi.v = _mm256_permute2x128_si256(l, h, 0x31);
}

// ---- integer weight codes as bf16 (W4A16 / W8A16 in the pair form) -----------------------------
// 2 * kLanes bf16 in order, a's lanes then b's: each value's high 16 bits (exact for values bf16
// holds, such as integers of magnitude <= 256; others are truncated).
inline VB bf16_in_order(VF a, VF b) {
  const __m256i w = _mm256_packus_epi32(_mm256_srli_epi32(_mm256_castps_si256(a.v), 16),
                                        _mm256_srli_epi32(_mm256_castps_si256(b.v), 16));
  return {_mm256_permute4x64_epi64(w, 0xd8)};  // a0-3 b0-3 | a4-7 b4-7 -> a0-7 | b0-7
}
// The table u4_pairs_split looks 4-bit codes up in: code i -> bf16 of (i - bias), which must be
// exact. Here: the values' low bytes (128-bit lane 0) and high bytes (lane 1), for byte shuffles.
inline VB u4_table(float bias) {
  const __m256 b = _mm256_set1_ps(bias);
  const VB w = bf16_in_order({_mm256_sub_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), b)},
                             {_mm256_sub_ps(_mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15), b)});
  const __m256i split = _mm256_shuffle_epi8(
      w.v, _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10,
                            12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  return {_mm256_permute4x64_epi64(split, 0xd8)};  // low bytes 0-15 | high bytes 0-15
}
// 4 * kLanes 4-bit codes from 2 * kLanes bytes (column 2t: byte t's low nibble, 2t + 1 its high
// one) looked up in a u4_table: the even columns' values in order (pairs of columns 4j, 4j + 2)
// and the odd columns' (4j + 1, 4j + 3).
inline void u4_pairs_split(const uint8_t* p, VB table, VB& even, VB& odd) {
  const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i lo_t = _mm256_permute2x128_si256(table.v, table.v, 0x00);
  const __m256i hi_t = _mm256_permute2x128_si256(table.v, table.v, 0x11);
  const __m256i nib = _mm256_set1_epi16(0x0f), low_byte = _mm256_set1_epi16(0x00ff);
  auto lookup = [&](__m256i codes) {  // words 0..15 -> their table words
    const __m256i idx = _mm256_or_si256(codes, _mm256_slli_epi16(codes, 8));
    return _mm256_blendv_epi8(_mm256_shuffle_epi8(hi_t, idx), _mm256_shuffle_epi8(lo_t, idx),
                              low_byte);
  };
  even.v = lookup(_mm256_and_si256(w, nib));
  odd.v = lookup(_mm256_srli_epi16(w, 4));
}

// ---- 8-bit integer dot products (W8A8 / W4A8) -------------------------------------------------
// VQ: 4 * kLanes bytes, one byte quad per int32 lane of a VI.
struct VQ {
  __m256i v;
};
struct VI {
  __m256i v;
};
inline VQ load_q(const void* p) {
  return {_mm256_loadu_si256(static_cast<const __m256i*>(p))};
}
inline VQ low_nibbles(VQ a) {
  return {_mm256_and_si256(a.v, _mm256_set1_epi8(0x0f))};
}
inline VQ high_nibbles(VQ a) {
  return {_mm256_and_si256(_mm256_srli_epi16(a.v, 4), _mm256_set1_epi8(0x0f))};
}
inline VQ flip_bytes(VQ a) {
  return {_mm256_xor_si256(a.v, _mm256_set1_epi8(char(0x80)))};
}
inline VI first_lane(int32_t x) {
  return {_mm256_setr_epi32(x, 0, 0, 0, 0, 0, 0, 0)};
}
// acc[l] += sum_{j < 4} u[4l + j] * s[4l + j] (unsigned u, signed s), exact: the even and odd
// bytes of each 16-bit half widened in place (vpmaddubsw's saturating 16-bit pair sums can
// overflow for u up to 255), so lane l keeps bytes 4l .. 4l + 3, then vpmaddwd.
inline VI dot_u8s8(VI acc, VQ u, VQ s) {
  const __m256i lo8 = _mm256_set1_epi16(0x00ff);
  const __m256i ue = _mm256_and_si256(u.v, lo8), uo = _mm256_srli_epi16(u.v, 8);
  const __m256i se = _mm256_srai_epi16(_mm256_slli_epi16(s.v, 8), 8),
                so = _mm256_srai_epi16(s.v, 8);
  return {_mm256_add_epi32(acc.v,
                           _mm256_add_epi32(_mm256_madd_epi16(ue, se), _mm256_madd_epi16(uo, so)))};
}
inline VF to_f32(VI a) {
  return {_mm256_cvtepi32_ps(a.v)};
}
inline VI add_i(VI a, VI b) {
  return {_mm256_add_epi32(a.v, b.v)};
}
inline VI load_i(const int32_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
}
inline VI mul_i(VI a, VI b) {  // the low 32 bits of each product
  return {_mm256_mullo_epi32(a.v, b.v)};
}
inline VI set1_i(int32_t x) {
  return {_mm256_set1_epi32(x)};
}
inline VQ broadcast_quad(const void* p) {
  int32_t w;
  __builtin_memcpy(&w, p, 4);
  return {_mm256_set1_epi32(w)};
}
// Lane i = the sum of v[i]'s lanes (exact, wrapping), for kLanes vectors at once (the row-dot
// int8 GEMV's per-row group sums: reduce_lanes' tree on integers).
inline VI reduce_lanes_i(const VI (&v)[kLanes]) {
  __m256i t[4], u[2];
  for (int i = 0; i < 4; ++i)
    t[i] = _mm256_add_epi32(_mm256_permute2x128_si256(v[2 * i].v, v[2 * i + 1].v, 0x20),
                            _mm256_permute2x128_si256(v[2 * i].v, v[2 * i + 1].v, 0x31));
  for (int j = 0; j < 2; ++j)
    u[j] = _mm256_add_epi32(_mm256_unpacklo_epi64(t[2 * j], t[2 * j + 1]),
                            _mm256_unpackhi_epi64(t[2 * j], t[2 * j + 1]));
  const __m256 u0 = _mm256_castsi256_ps(u[0]), u1 = _mm256_castsi256_ps(u[1]);
  const __m256i r =
      _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0))),
                       _mm256_castps_si256(_mm256_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1))));
  return {_mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))};
}
inline VQ as_quads(VF words) {
  return {_mm256_castps_si256(words.v)};
}
inline VF as_words(VQ q) {
  return {_mm256_castsi256_ps(q.v)};
}
inline void store_q(void* p, VQ a) {
  _mm256_storeu_si256(static_cast<__m256i*>(p), a.v);
}

// ---- raw 32-bit words (weight transposes; pure data moves, every bit pattern kept) -------------
inline VF load_words(const void* p) {
  return {_mm256_loadu_ps(static_cast<const float*>(p))};
}
// The first `bytes` bytes at p (0 <= bytes <= 4 * kLanes), zeros after; reads nothing past them.
inline VF load_words_n(const void* p, int bytes) {
  alignas(32) uint8_t tmp[32] = {};
  __builtin_memcpy(tmp, p, size_t(bytes));
  return {_mm256_load_ps(reinterpret_cast<const float*>(tmp))};
}
inline VB as_pairs(VF words) {
  return {_mm256_castps_si256(words.v)};
}
// r[i] lane j <-> r[j] lane i (8 x 8 words).
[[gnu::always_inline]] inline void transpose(VF (&r)[kLanes]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i].v, r[i + 1].v);
    t[i + 1] = _mm256_unpackhi_ps(r[i].v, r[i + 1].v);
  }
  // u[4i + j]: word 4L + j of rows 4i .. 4i + 3 in 128-bit lane L.
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int j = 0; j < 4; ++j) {
    r[j].v = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j].v = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// 2 * kLanes consecutive fp8 codes times 2^(c - 120) (3 <= c <= 126) as bf16, in order (pair l
// = codes 2l, 2l + 1): exact, by integer ops, for every code but the subnormal ones; nonzero if
// there is one among them (then `out` is not that product).
inline uint32_t fp8_to_bf16_pow2(const uint8_t* p, int c, VB& out) {
  const __m256i x = _mm256_slli_epi16(
      _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 8);
  const __m256i e = _mm256_and_si256(_mm256_srai_epi16(x, 4), _mm256_set1_epi16(int16_t(0x87f0)));
  const __m256i zero_exp =
      _mm256_cmpeq_epi16(_mm256_and_si256(e, _mm256_set1_epi16(0x0780)), _mm256_setzero_si256());
  const __m256i zero_mant =
      _mm256_cmpeq_epi16(_mm256_and_si256(e, _mm256_set1_epi16(0x0070)), _mm256_setzero_si256());
  out.v = _mm256_add_epi16(e, _mm256_andnot_si256(zero_exp, _mm256_set1_epi16(int16_t(c << 7))));
  return uint32_t(_mm256_movemask_epi8(_mm256_andnot_si256(zero_mant, zero_exp)));
}

// The same for codes that all have a nonzero exponent field (no zero, no subnormal: a block
// fp8_any_zero_exponent cleared): four integer ops, the sign-extended code shifted into place.
inline VB fp8_to_bf16_normal(const uint8_t* p, int c) {
  const __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i e = _mm256_and_si256(_mm256_slli_epi16(x, 4), _mm256_set1_epi16(int16_t(0x87f0)));
  return {_mm256_add_epi16(e, _mm256_set1_epi16(int16_t(c << 7)))};
}
// Whether any of n fp8 codes (n a multiple of 32) has a zero exponent field (a zero or a
// subnormal code): 32 codes per test.
inline bool fp8_any_zero_exponent(const uint8_t* p, int n) {
  const __m256i e = _mm256_set1_epi8(0x78), zero = _mm256_setzero_si256();
  __m256i any = zero;
  for (int i = 0; i < n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    any = _mm256_or_si256(any, _mm256_cmpeq_epi8(_mm256_and_si256(v, e), zero));
  }
  return !_mm256_testz_si256(any, any);
}

// Hints.
inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}
// Into L2 only: for streams too wide to stage in L1 (many rows side by side). An asm statement:
// GCC deletes loops whose only effect is __builtin_prefetch (C++ forward-progress rule).
inline void prefetch_l2(const void* p) {
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
}

}  // namespace dsinfer::DSINFER_ISA_NS::simd
