// AVX2 + FMA + F16C backend: 8 f32 lanes in a ymm register. One of the three files in the
// project that may use intrinsics (with backend_avx512.h and backend_scalar.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace dsinfer::DSINFER_ISA_NS::simd {

inline constexpr int kLanes = 8;               // f32 lanes per vector
inline constexpr bool kNativeBf16Dot = false;  // bf16 pairs are widened to f32 before FMAs

struct VF {
  __m256 v;
};
struct VI {  // 8 x int32
  __m256i v;
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
inline __m128i f32_to_bf16_bits(VF a) {
  __m256i u = _mm256_castps_si256(a.v);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  __m256 nan = _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q);
  __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));  // quiet NaN keeps NaN-ness
  r = _mm256_blendv_epi8(r, q, _mm256_castps_si256(nan));
  r = _mm256_srli_epi32(r, 16);
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

// Hints.
inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}

}  // namespace dsinfer::DSINFER_ISA_NS::simd
