// AVX-512 (F/BW/DQ/VL) backend: 16 f32 lanes in a zmm register; with AVX512-BF16 the bf16 pair
// dot product is the native vdpbf16ps. One of the three files that may use intrinsics.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace dsinfer::DSINFER_ISA_NS::simd {

inline constexpr int kLanes = 16;
#ifdef __AVX512BF16__
inline constexpr bool kNativeBf16Dot = true;
#else
inline constexpr bool kNativeBf16Dot = false;
#endif

struct VF {
  __m512 v;
};
struct VB {  // 32 bf16 = 16 (even, odd) pairs
  __m512i v;
};

inline __mmask16 lane_mask(int n) {
  return __mmask16((1u << n) - 1u);
}

inline VF zero() {
  return {_mm512_setzero_ps()};
}
inline VF set1(float x) {
  return {_mm512_set1_ps(x)};
}
inline VF load(const float* p) {
  return {_mm512_loadu_ps(p)};
}
inline void store(float* p, VF a) {
  _mm512_storeu_ps(p, a.v);
}
inline VF load_n(const float* p, int n) {
  return {_mm512_maskz_loadu_ps(lane_mask(n), p)};
}
inline void store_n(float* p, VF a, int n) {
  _mm512_mask_storeu_ps(p, lane_mask(n), a.v);
}

inline VF add(VF a, VF b) {
  return {_mm512_add_ps(a.v, b.v)};
}
inline VF sub(VF a, VF b) {
  return {_mm512_sub_ps(a.v, b.v)};
}
inline VF mul(VF a, VF b) {
  return {_mm512_mul_ps(a.v, b.v)};
}
inline VF div(VF a, VF b) {
  return {_mm512_div_ps(a.v, b.v)};
}
inline VF max(VF a, VF b) {
  return {_mm512_max_ps(a.v, b.v)};
}
inline VF min(VF a, VF b) {
  return {_mm512_min_ps(a.v, b.v)};
}
inline VF fma(VF a, VF b, VF c) {
  return {_mm512_fmadd_ps(a.v, b.v, c.v)};
}
inline VF abs(VF a) {
  return {_mm512_abs_ps(a.v)};
}
inline VF sqrt(VF a) {
  return {_mm512_sqrt_ps(a.v)};
}
inline VF select_gt(VF x, VF y, VF a, VF b) {
  return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(x.v, y.v, _CMP_GT_OQ), b.v, a.v)};
}
inline float reduce_add(VF a) {
  return _mm512_reduce_add_ps(a.v);
}
inline float reduce_max(VF a) {
  return _mm512_reduce_max_ps(a.v);
}

inline VF exp(VF x) {
  const __m512 lo = _mm512_set1_ps(-87.33654f),
               hi = _mm512_set1_ps(89.0f);  // scalef overflows to +inf
  __mmask16 under = _mm512_cmp_ps_mask(x.v, lo, _CMP_LT_OQ);
  __m512 xc = _mm512_min_ps(_mm512_max_ps(x.v, lo), hi);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512 res = _mm512_scalef_ps(p, n);  // p * 2^n without exponent-field overflow
  return {_mm512_maskz_mov_ps(__mmask16(~under), res)};
}

// ---- conversions ------------------------------------------------------------------------------
inline VF load_bf16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
}
inline VF load_bf16_n(const uint16_t* p, int n) {
  __m256i h = _mm256_maskz_loadu_epi16(lane_mask(n), p);
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
}
inline __m256i f32_to_bf16_bits(VF a) {
  __m512i u = _mm512_castps_si512(a.v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  __mmask16 nan = _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}
inline void store_bf16(uint16_t* p, VF a) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), f32_to_bf16_bits(a));
}
inline void store_bf16_n(uint16_t* p, VF a, int n) {
  _mm256_mask_storeu_epi16(p, lane_mask(n), f32_to_bf16_bits(a));
}
inline VF load_f16(const uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
inline VF fp8_bits_to_f32(__m128i bytes16) {
  __m512i x = _mm512_cvtepu8_epi32(bytes16);
  __m512i sign = _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x80)), 24);
  __m512i mag = _mm512_and_si512(x, _mm512_set1_epi32(0x7f));
  __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(mag, 20)),
                           _mm512_set1_ps(1.329227995784916e36f));
  __mmask16 nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7f));
  v = _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
  return {_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), sign))};
}
inline VF load_fp8(const uint8_t* p) {
  return fp8_bits_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline VF load_fp8_n(const uint8_t* p, int n) {
  return fp8_bits_to_f32(_mm_maskz_loadu_epi8(lane_mask(n), p));
}
// kLanes fp8 codes as 2^-120 times their values (see backend_avx2.h).
inline VF load_fp8_raw(const uint8_t* p) {
  const __m512i x = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return {_mm512_castsi512_ps(
      _mm512_and_si512(_mm512_slli_epi32(x, 20), _mm512_set1_epi32(int(0x87f00000u))))};
}

// ---- bf16 pair dot products -------------------------------------------------------------------
inline VB load_pairs(const uint16_t* p) {
  return {_mm512_loadu_si512(p)};
}
inline VB broadcast_pair(const uint16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return {_mm512_set1_epi32(v)};
}
inline VF dot_pairs(VF acc, VB a, VB b) {
#ifdef __AVX512BF16__
  return {_mm512_dpbf16_ps(acc.v, (__m512bh)a.v, (__m512bh)b.v)};
#else
  const __m512i hi_mask = _mm512_set1_epi32(int(0xffff0000u));
  __m512 ae = _mm512_castsi512_ps(_mm512_slli_epi32(a.v, 16));
  __m512 be = _mm512_castsi512_ps(_mm512_slli_epi32(b.v, 16));
  __m512 ao = _mm512_castsi512_ps(_mm512_and_si512(a.v, hi_mask));
  __m512 bo = _mm512_castsi512_ps(_mm512_and_si512(b.v, hi_mask));
  return {_mm512_fmadd_ps(ao, bo, _mm512_fmadd_ps(ae, be, acc.v))};
#endif
}

inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}

}  // namespace dsinfer::DSINFER_ISA_NS::simd
