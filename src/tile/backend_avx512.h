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
// (a1, a0, a3, a2, ...): the two floats of every pair swapped (RoPE's interleaved pairs).
inline VF swap_pairs(VF a) {
  return {_mm512_permute_ps(a.v, 0xB1)};
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
// a in the lanes whose bit is set in `bits` (lane l: bit l), else b
inline VF select_bits(uint32_t bits, VF a, VF b) {
  return {_mm512_mask_blend_ps(__mmask16(bits), b.v, a.v)};
}
inline float reduce_add(VF a) {
  return _mm512_reduce_add_ps(a.v);
}
inline float reduce_max(VF a) {
  return _mm512_reduce_max_ps(a.v);
}
// Lane i = reduce_add(v[i]), the same halving tree (lanes l + 8, l + 4, l + 2, l + 1), for
// kLanes vectors at once: the dot-form GEMM's per-output sums (4 rounds of shuffles and adds).
inline VF reduce_lanes(const VF (&v)[kLanes]) {
  __m512 t[8], u[4], w[2];
  for (int i = 0; i < 8; ++i)  // [v2i lo256 + hi256 | v2i+1 lo256 + hi256]
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i].v, v[2 * i + 1].v, 0x44),
                         _mm512_shuffle_f32x4(v[2 * i].v, v[2 * i + 1].v, 0xee));
  for (int i = 0; i < 4; ++i)  // quarter q: input 4i + q, lanes l + 4 folded
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0xdd));
  for (int j = 0; j < 2; ++j) {  // quarter q: inputs 8j + q (lanes 0, 1) and 8j + 4 + q
    const __m512d a = _mm512_castps_pd(u[2 * j]), b = _mm512_castps_pd(u[2 * j + 1]);
    w[j] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // Lane 4q + k holds input 4k + q.
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return {_mm512_permutexvar_ps(idx, r)};
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
// f32 bits rounded (to nearest even; NaN made quiet) so that the top 16 bits are the bf16.
inline __m512i bf16_rounded(VF a) {
  __m512i u = _mm512_castps_si512(a.v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  __mmask16 nan = _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q);
  return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
}
inline __m256i f32_to_bf16_bits(VF a) {
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bf16_rounded(a), 16));
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
// kLanes values as e4m3fn codes, bit for bit f32_to_fp8_e4m3: round to nearest even, saturate
// to +-448 (inf included), NaN to the NaN code, subnormals by nearbyint(|x| * 2^9).
inline void store_fp8(uint8_t* p, VF x) {
  const __m512i u = _mm512_castps_si512(x.v);
  const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
  const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __m512 af = _mm512_castsi512_ps(a);
  // Normal: round at bit 20; the top 12 bits then hold (exponent, 3 mantissa bits) = code + 960.
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, 20), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(a, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7ffff)));
  __m512i code = _mm512_min_epi32(
      _mm512_sub_epi32(_mm512_srli_epi32(r, 20), _mm512_set1_epi32(960)), _mm512_set1_epi32(0x7e));
  const __mmask16 sub = _mm512_cmp_ps_mask(af, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
  code = _mm512_mask_mov_epi32(code, sub,
                               _mm512_cvtps_epi32(_mm512_mul_ps(af, _mm512_set1_ps(512.0f))));
  const __mmask16 nan = _mm512_cmp_epi32_mask(a, _mm512_set1_epi32(0x7f800000), _MM_CMPINT_NLE);
  code = _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32(0x7f));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm512_cvtepi32_epi8(_mm512_or_si512(code, sign)));
}
// kLanes int8 codes as f32 (exact).
inline VF load_i8(const int8_t* p) {
  return {_mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))))};
}
inline VF load_i8_n(const int8_t* p, int n) {
  return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(lane_mask(n), p)))};
}
// kLanes unsigned bytes as f32 (exact): 8-bit integer weight codes.
inline VF load_u8(const uint8_t* p) {
  return {_mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))))};
}
// kLanes 4-bit codes from kLanes / 2 bytes as f32 (exact): element 2j is byte j's low nibble,
// 2j + 1 its high one (INT4 weights packed along the row).
inline VF load_u4(const uint8_t* p) {
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m128i codes =
      _mm_or_si128(_mm_and_si128(b, _mm_set1_epi16(0x0f)), _mm_slli_epi16(_mm_srli_epi16(b, 4), 8));
  return {_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes))};
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

// (lo, hi) per lane as a bf16 pair, rounded as store_bf16 rounds.
inline VB bf16_pairs(VF lo, VF hi) {
  return {_mm512_or_si512(_mm512_srli_epi32(bf16_rounded(lo), 16),
                          _mm512_and_si512(bf16_rounded(hi), _mm512_set1_epi32(int(0xffff0000u))))};
}
inline void store_pairs(uint16_t* p, VB a) {
  _mm512_storeu_si512(p, a.v);
}
// Two rows a, b of 2 * kLanes bf16 zipped into pairs: lo = (a0, b0, a1, b1, ...) of the first
// kLanes columns, hi of the last kLanes (a pair along the other dimension: two keys' values).
inline void zip_pairs(VB a, VB b, VB& lo, VB& hi) {
  alignas(64) static constexpr uint16_t kLo[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,
                                                   37, 6,  38, 7,  39, 8,  40, 9,  41, 10, 42,
                                                   11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i lo_idx = _mm512_load_si512(kLo);
  const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
  lo.v = _mm512_permutex2var_epi16(a.v, lo_idx, b.v);
  hi.v = _mm512_permutex2var_epi16(a.v, hi_idx, b.v);
}

// ---- integer weight codes as bf16 (W4A16 / W8A16 in the pair form) -----------------------------
// 2 * kLanes bf16 in order, a's lanes then b's: each value's high 16 bits (exact for values bf16
// holds, such as integers of magnitude <= 256; others are truncated).
inline VB bf16_in_order(VF a, VF b) {
  alignas(64) static constexpr uint16_t kHigh[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                                     23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                                     45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  return {_mm512_permutex2var_epi16(_mm512_castps_si512(a.v), _mm512_load_si512(kHigh),
                                    _mm512_castps_si512(b.v))};
}
// The table u4_pairs_split looks 4-bit codes up in: code i -> bf16 of (i - bias), which must be
// exact. Here: the 16 values twice (vpermw reads 5 index bits).
inline VB u4_table(float bias) {
  const __m512 v = _mm512_sub_ps(
      _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_ps(bias));
  alignas(64) static constexpr uint16_t kHigh[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                                     23, 25, 27, 29, 31, 1,  3,  5,  7,  9,  11,
                                                     13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
  return {_mm512_permutexvar_epi16(_mm512_load_si512(kHigh), _mm512_castps_si512(v))};
}
// 4 * kLanes 4-bit codes from 2 * kLanes bytes (column 2t: byte t's low nibble, 2t + 1 its high
// one) looked up in a u4_table: the even columns' values in order (pairs of columns 4j, 4j + 2)
// and the odd columns' (4j + 1, 4j + 3). Each byte becomes a word whose low 5 bits index its low
// nibble (the table repeats) and, shifted right by 4, its high one: no lane crossing but the
// widening.
inline void u4_pairs_split(const uint8_t* p, VB table, VB& even, VB& odd) {
  const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  even.v = _mm512_permutexvar_epi16(w, table.v);
  odd.v = _mm512_permutexvar_epi16(_mm512_srli_epi16(w, 4), table.v);
}

// ---- raw 32-bit words (weight transposes; pure data moves, every bit pattern kept) -------------
inline VF load_words(const void* p) {
  return {_mm512_loadu_ps(p)};
}
// The first `bytes` bytes at p (0 <= bytes <= 4 * kLanes), zeros after; reads nothing past them.
inline VF load_words_n(const void* p, int bytes) {
  const __mmask64 m = bytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1;
  return {_mm512_castsi512_ps(_mm512_maskz_loadu_epi8(m, p))};
}
inline VB as_pairs(VF words) {
  return {_mm512_castps_si512(words.v)};
}
// ---- 8-bit integer dot products (W8A8 / W4A8) -------------------------------------------------
// VQ: 4 * kLanes bytes, one byte quad per int32 lane of a VI.
struct VQ {
  __m512i v;
};
struct VI {
  __m512i v;
};
inline VQ load_q(const void* p) {
  return {_mm512_loadu_si512(p)};
}
inline VQ low_nibbles(VQ a) {  // each byte's low 4 bits (INT4 codes: even columns)
  return {_mm512_and_si512(a.v, _mm512_set1_epi8(0x0f))};
}
inline VQ high_nibbles(VQ a) {  // each byte's high 4 bits (odd columns)
  return {_mm512_and_si512(_mm512_srli_epi16(a.v, 4), _mm512_set1_epi8(0x0f))};
}
inline VQ flip_bytes(VQ a) {  // xor 0x80: a signed byte becomes its value + 128, unsigned
  return {_mm512_xor_si512(a.v, _mm512_set1_epi8(char(0x80)))};
}
inline VI first_lane(int32_t x) {  // (x, 0, ..., 0)
  return {_mm512_maskz_set1_epi32(1, x)};
}
// acc[l] += sum_{j < 4} u[4l + j] * s[4l + j], u unsigned and s signed bytes: exact.
inline VI dot_u8s8(VI acc, VQ u, VQ s) {
#ifdef __AVX512VNNI__
  // Inline asm ties the accumulator to its register: with the intrinsic, GCC 12 copies every
  // accumulator of a loop-carried tile twice per iteration (a move per dot product).
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc.v) : "v"(u.v), "v"(s.v));
  return acc;
#else
  // The even and odd bytes of each 16-bit half widened in place (vpmaddubsw's saturating 16-bit
  // pair sums can overflow for u up to 255), so lane l keeps bytes 4l .. 4l + 3.
  const __m512i lo8 = _mm512_set1_epi16(0x00ff);
  const __m512i ue = _mm512_and_si512(u.v, lo8), uo = _mm512_srli_epi16(u.v, 8);
  const __m512i se = _mm512_srai_epi16(_mm512_slli_epi16(s.v, 8), 8),
                so = _mm512_srai_epi16(s.v, 8);
  return {_mm512_add_epi32(acc.v,
                           _mm512_add_epi32(_mm512_madd_epi16(ue, se), _mm512_madd_epi16(uo, so)))};
#endif
}
inline VF to_f32(VI a) {
  return {_mm512_cvtepi32_ps(a.v)};
}
inline VI add_i(VI a, VI b) {
  return {_mm512_add_epi32(a.v, b.v)};
}
inline VI set1_i(int32_t x) {
  return {_mm512_set1_epi32(x)};
}
inline VI load_i(const int32_t* p) {
  return {_mm512_loadu_si512(p)};
}
inline VI mul_i(VI a, VI b) {  // the low 32 bits of each product
  return {_mm512_mullo_epi32(a.v, b.v)};
}
inline VQ broadcast_quad(const void* p) {  // 4 bytes repeated in every lane
  int32_t w;
  __builtin_memcpy(&w, p, 4);
  return {_mm512_set1_epi32(w)};
}
// Lane i = the sum of v[i]'s lanes (exact, wrapping: any order gives the same bits), for kLanes
// vectors at once: the row-dot int8 GEMV's per-row group sums (reduce_lanes' tree on integers).
inline VI reduce_lanes_i(const VI (&v)[kLanes]) {
  __m512i t[8], u[4], w[2];
  for (int i = 0; i < 8; ++i)
    t[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(v[2 * i].v, v[2 * i + 1].v, 0x44),
                            _mm512_shuffle_i32x4(v[2 * i].v, v[2 * i + 1].v, 0xee));
  for (int i = 0; i < 4; ++i)
    u[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(t[2 * i], t[2 * i + 1], 0x88),
                            _mm512_shuffle_i32x4(t[2 * i], t[2 * i + 1], 0xdd));
  for (int j = 0; j < 2; ++j)
    w[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2 * j], u[2 * j + 1]),
                            _mm512_unpackhi_epi64(u[2 * j], u[2 * j + 1]));
  const __m512 w0 = _mm512_castsi512_ps(w[0]), w1 = _mm512_castsi512_ps(w[1]);
  const __m512i r =
      _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(w0, w1, _MM_SHUFFLE(2, 0, 2, 0))),
                       _mm512_castps_si512(_mm512_shuffle_ps(w0, w1, _MM_SHUFFLE(3, 1, 3, 1))));
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return {_mm512_permutexvar_epi32(idx, r)};
}
inline VQ as_quads(VF words) {  // the same bits: each f32 lane's 4 bytes
  return {_mm512_castps_si512(words.v)};
}
inline VF as_words(VQ q) {
  return {_mm512_castsi512_ps(q.v)};
}
inline void store_q(void* p, VQ a) {
  _mm512_storeu_si512(p, a.v);
}

// r[i] lane j <-> r[j] lane i (16 x 16 words: 4 rounds of 16 shuffles).
[[gnu::always_inline]] inline void transpose(VF (&r)[kLanes]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i].v, r[i + 1].v);
    t[i + 1] = _mm512_unpackhi_ps(r[i].v, r[i + 1].v);
  }
  // u[4i + j]: words 4L + j of rows 4i .. 4i + 3 in 128-bit lane L.
  __m512 u[16];
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);  // lanes 0, 2 of rows 0-7
    const __m512 b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);  // lanes 1, 3
    const __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
    r[j].v = _mm512_shuffle_f32x4(a, c, 0x88);
    r[8 + j].v = _mm512_shuffle_f32x4(a, c, 0xdd);
    r[4 + j].v = _mm512_shuffle_f32x4(b, d, 0x88);
    r[12 + j].v = _mm512_shuffle_f32x4(b, d, 0xdd);
  }
}

// 2 * kLanes consecutive fp8 codes times 2^(c - 120) (3 <= c <= 126) as bf16, in order (pair l
// = codes 2l, 2l + 1): exact, by integer ops, for every code but the subnormal ones; nonzero if
// there is one among them (then `out` is not that product).
inline uint32_t fp8_to_bf16_pow2(const uint8_t* p, int c, VB& out) {
  const __m512i x = _mm512_slli_epi16(
      _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 8);
  const __m512i e = _mm512_and_si512(_mm512_srai_epi16(x, 4), _mm512_set1_epi16(int16_t(0x87f0)));
  const __mmask32 normal = _mm512_test_epi16_mask(e, _mm512_set1_epi16(0x0780));
  const __mmask32 nonzero = _mm512_test_epi16_mask(e, _mm512_set1_epi16(0x07f0));
  out.v = _mm512_mask_add_epi16(e, normal, e, _mm512_set1_epi16(int16_t(c << 7)));
  return normal ^ nonzero;
}

// The same for codes that all have a nonzero exponent field (no zero, no subnormal: a block
// fp8_any_zero_exponent cleared): four integer ops, the sign-extended code shifted into place.
inline VB fp8_to_bf16_normal(const uint8_t* p, int c) {
  const __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __m512i e = _mm512_and_si512(_mm512_slli_epi16(x, 4), _mm512_set1_epi16(int16_t(0x87f0)));
  return {_mm512_add_epi16(e, _mm512_set1_epi16(int16_t(c << 7)))};
}
// Whether any of n fp8 codes (n a multiple of 32) has a zero exponent field (a zero or a
// subnormal code): 64 codes per test.
inline bool fp8_any_zero_exponent(const uint8_t* p, int n) {
  const __m512i e64 = _mm512_set1_epi8(0x78);
  __mmask64 m = 0;
  int i = 0;
  for (; i + 64 <= n; i += 64) m |= _mm512_testn_epi8_mask(_mm512_loadu_si512(p + i), e64);
  if (i < n)
    m |= _mm256_testn_epi8_mask(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)),
                                _mm256_set1_epi8(0x78));
  return m != 0;
}

inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}
// Into L2 only: for streams too wide to stage in L1 (many rows side by side). An asm statement:
// GCC deletes loops whose only effect is __builtin_prefetch (C++ forward-progress rule).
inline void prefetch_l2(const void* p) {
  asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
}

}  // namespace dsinfer::DSINFER_ISA_NS::simd
