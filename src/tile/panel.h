// GEMM operand panels: A and B packed, per cache block, into the layout the ISA's mma wants, so
// the micro-kernel streams both with unit stride and every B element is converted exactly once
// per block (FP8 block dequantization happens here, never for the whole weight).
//
// Two layouts, chosen by the ISA and the input dtypes:
//   f32   : A [kc][MR] f32, B [kc][NR] f32                  -> broadcast a, FMA with b vectors
//   pairs : A [kc/2][MR][2] bf16, B [kc/2][NR][2] bf16       -> vdpbf16ps on (k, k+1) pairs
// (pairs only where the ISA has a native bf16 dot product and both operands are bf16 / fp8.)
//
// The B packers define the weight value ŵ[n, k] that every gemm path multiplies by (see
// gemm.isa.cpp: the packed GEMM and the small-M kernel both pack B with them, so their products
// are the same bits). ŵ is f32 exactly as weight_row_f32 gives it; pairs round it to bf16.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/weight_view.h"
#include "tile/mma.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS::tile {

// Register micro-tile of C: MR rows x NR columns of f32 accumulators.
#if defined(__AVX512F__)
inline constexpr int kPanelMR = 14, kPanelNR = 32;
#elif defined(__AVX2__)
inline constexpr int kPanelMR = 6, kPanelNR = 16;
#else
inline constexpr int kPanelMR = 4, kPanelNR = 16;
#endif
inline constexpr int kPanelNV = kPanelNR / kLanes;

using WeightRef = WeightView;

// The fast fp8 decode (load_fp8_raw) yields 2^-120 of each value; this factor restores it.
inline constexpr float kFp8RawScale = 0x1p120f;
// Below this |scale| the fast decode times scale * 2^120 cannot overflow: ŵ = code * scale with
// one rounding either way. At or above it the exact decode is used (the results only differ for
// the NaN codes, which checkpoints do not hold, but they never depend on a weight's position).
inline constexpr float kFp8RawMaxScale = 0x1p7f;

// One storage row segment data[r, c0 : c0 + len) as f32 (scaled for FP8), len <= kMaxSegment.
// For the usual [N, K] storage that is W[n = r, k0 = c0 ...]; for [K, N] it is W^T[k = r, n0 = c0
// ...]. This is the definition of ŵ.
inline constexpr int kMaxSegment = 512;
inline void weight_row_f32(const WeightRef& w, int64_t r, int64_t c0, int len, float* out) {
  switch (w.dtype) {
    case DType::f32: {
      const float* p = static_cast<const float*>(w.data) + r * w.ld + c0;
      for (int k = 0; k < len; ++k) out[k] = p[k];
      break;
    }
    case DType::bf16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * w.ld + c0;
      int k = 0;
      for (; k + kLanes <= len; k += kLanes) store(out + k, load_bf16(p + k));
      if (k < len) store_n(out + k, load_bf16_n(p + k, len - k), len - k);
      break;
    }
    case DType::f16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * w.ld + c0;
      int k = 0;
      for (; k + kLanes <= len; k += kLanes) store(out + k, load_f16(p + k));
      for (; k < len; ++k) out[k] = f16_to_f32(f16{p[k]});
      break;
    }
    case DType::u4:
    case DType::u8:
    case DType::i8: {  // integer codes with group scales; a segment may cross groups
      int k = 0;
      while (k < len) {
        const int64_t c = w.col0 + c0 + k;
        const int end = int(std::min<int64_t>(len, k + (w.group - c % w.group)));
        const float sc = w.qscale_at(r, c0 + k);
        const int z = w.zero_at(r, c0 + k);  // (code - z) is exact in f32, then one product
        // Whole vectors of codes: the stored code minus (offset + z), exact, times the scale.
        const VF s = set1(sc);
        if (w.dtype == DType::u4) {
          if ((c0 + k) % 2 != 0 && k < end) out[k] = float(w.int_code_at(r, c0 + k) - z) * sc, ++k;
          const VF bias = set1(float(8 + z));
          for (; k + kLanes <= end; k += kLanes)
            store(
                out + k,
                mul(sub(load_u4(reinterpret_cast<const uint8_t*>(w.element_ptr(r, c0 + k))), bias),
                    s));
        } else {
          const uint8_t* p = reinterpret_cast<const uint8_t*>(w.element_ptr(r, c0));
          if (w.dtype == DType::u8) {
            const VF bias = set1(float(128 + z));
            for (; k + kLanes <= end; k += kLanes)
              store(out + k, mul(sub(load_u8(p + k), bias), s));
          } else {
            const VF bias = set1(float(z));
            for (; k + kLanes <= end; k += kLanes)
              store(out + k, mul(sub(load_i8(reinterpret_cast<const int8_t*>(p) + k), bias), s));
          }
        }
        for (; k < end; ++k) out[k] = float(w.int_code_at(r, c0 + k) - z) * sc;
      }
      break;
    }
    default: {  // fp8 e4m3 with 128 x 128 block scales; a segment may cross 128-column blocks
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + r * w.ld + c0;
      int k = 0;
      while (k < len) {
        const int end = int(scale_block_end(k, len, w.col0 + c0));
        const float sc = w.scale_at(r, c0 + k);
        if (std::fabs(sc) < kFp8RawMaxScale) {
          const VF s_raw = set1(sc * kFp8RawScale);
          for (; k + kLanes <= end; k += kLanes) store(out + k, mul(load_fp8_raw(p + k), s_raw));
          if (k < end) {  // the same decode for the segment's tail, from a zero-padded copy
            alignas(64) uint8_t tail[kLanes] = {};
            std::memcpy(tail, p + k, size_t(end - k));
            store_n(out + k, mul(load_fp8_raw(tail), s_raw), end - k), k = end;
          }
        } else {
          const VF s = set1(sc);
          for (; k + kLanes <= end; k += kLanes) store(out + k, mul(load_fp8(p + k), s));
          if (k < end) store_n(out + k, mul(load_fp8_n(p + k, end - k), s), end - k), k = end;
        }
      }
      break;
    }
  }
}

// ---- A panels ---------------------------------------------------------------------------------
// A panel from rows [m0, m0 + rows) of x (f32 or bf16), columns [k0, k0 + kc): dst[k][i].
template <class T>
inline void pack_a_f32(float* dst, const T* x, int64_t ldx, int rows, int64_t k0, int kc) {
  alignas(64) float row[kMaxSegment + 16];
#pragma GCC unroll 16
  for (int i = 0; i < kPanelMR; ++i) {
    if (i < rows) {
      convert_row<kMaxSegment>(row, x + i * ldx + k0, kc);
    } else {
      for (int k = 0; k < kc; ++k) row[k] = 0.0f;
    }
    for (int k = 0; k < kc; ++k) dst[k * kPanelMR + i] = row[k];
  }
}
// A: dst[kp][i][2] = x[m0 + i][k0 + 2kp + {0, 1}] (zero past rows / past kc).
inline void pack_a_pairs(uint16_t* dst, const bf16* x, int64_t ldx, int rows, int64_t k0, int kc) {
  const int kp = (kc + 1) / 2;
#pragma GCC unroll 16
  for (int i = 0; i < kPanelMR; ++i) {
    const uint16_t* src = reinterpret_cast<const uint16_t*>(x + i * ldx + k0);
    for (int p = 0; p < kp; ++p) {
      const int k = 2 * p;
      dst[(p * kPanelMR + i) * 2] = i < rows ? src[k] : 0;
      dst[(p * kPanelMR + i) * 2 + 1] = (i < rows && k + 1 < kc) ? src[k + 1] : 0;
    }
  }
}

// ---- B panels ---------------------------------------------------------------------------------
// pack_b_f32(dst, ldd, width, w, n0, cols, k0, kc): dst[k * ldd + j] = ŵ[n0 + j, k0 + k] for
// k < kc, j < cols, and 0 for cols <= j < width (width a multiple of kLanes). Rows up to kc
// rounded up to a whole block (see below) may be written too. pack_b_pairs: the same in pairs,
// dst[(p * ldd + j) * 2 + h] = bf16(ŵ[n0 + j, k0 + 2p + h]), 0 past kc, ldd in pairs.
//
// [N, K] storage is transposed kLanes rows x kLanes 32-bit words at a time in registers: a block
// is kLanes rows x kWordElems * kLanes elements (AVX-512: 16 f32, 32 bf16, 64 fp8 or int8, 128
// int4 columns), and a word holds 1 f32, 2 bf16 (already a pair), 4 fp8 / int8 codes or 8 int4
// codes, decoded after the transpose.
template <DType WT>
inline constexpr int kWordElems = 32 / dtype_bits(WT);
inline constexpr int kMaxBlockK = 4 * kLanes;      // the fp8 block
inline constexpr int kMaxWordBlockK = 8 * kLanes;  // the int4 block, the largest

namespace detail {

// rows [n, n + rows) of W (the rest zero), `len` elements from column k each, as words: r[i] =
// row n + i. transpose(r) then gives r[j] lane i = word j of row n + i.
template <DType WT>
[[gnu::always_inline]] inline void load_rows(VF (&r)[kLanes], const WeightRef& w, int64_t n,
                                             int rows, int64_t k, int len) {
  constexpr int bits = dtype_bits(WT);
  const char* p = w.element_ptr(n, k);  // k: a whole byte (even for int4)
  const int64_t ld = w.ld * bits / 8;
  const int bytes = (len * bits + 7) / 8;
  if (rows == kLanes && bytes == 4 * kLanes) {
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) r[i] = load_words(p + i * ld);
  } else {
    for (int i = 0; i < kLanes; ++i) r[i] = i < rows ? load_words_n(p + i * ld, bytes) : zero();
  }
}
template <DType WT>
[[gnu::always_inline]] inline void load_transposed(VF (&r)[kLanes], const WeightRef& w, int64_t n,
                                                   int rows, int64_t k, int len) {
  load_rows<WT>(r, w, n, rows, k, len);
  transpose(r);
}

// The per-lane fp8 scales of rows [n, n + rows) for columns [k, k + len) (len <= kMaxBlockK < 128:
// at most two scale blocks, the second from column k + split). fast: every |scale| allows the fast
// decode; exact: every scale is 0 or +-2^e with 2^-117 <= 2^e < 2^7, so code * scale is exactly a
// bf16 for every code (no rounding to do for pairs); pow2: every scale is such a +2^e and there is
// one scale block, so fp8_pairs_pow2 can make the pairs with integer ops.
struct Fp8LaneScales {
  VF s_raw[2];  // scale * 2^120 per lane
  VF add7;      // pow2: (e + 120) << 7 in both 16-bit halves of each lane
  int split;
  bool fast = true, exact = true, pow2 = true;
  uint32_t check(float sc) {
    const uint32_t bits = f32_bits(sc), mag = bits & 0x7fffffffu;
    const bool p2 = (mag & 0x7fffffu) == 0 && mag >= (10u << 23) && mag < (134u << 23);
    fast &= std::fabs(sc) < kFp8RawMaxScale;
    exact &= mag == 0 || p2;
    pow2 &= p2 && bits == mag;
    const uint32_t c = (mag >> 23) - 7;  // e + 120 (pow2 only)
    return (c << 7) | (c << 23);
  }
};
inline void fp8_lane_scales(Fp8LaneScales& f, const WeightRef& w, int64_t n, int rows, int64_t k,
                            int len) {
  f.split = int(scale_block_end(k, k + len, w.col0) - k);
  f.pow2 = f.split >= len;
  // Usually all rows share one 128-row block of scales: one scale per column block.
  const bool one = (w.row0 + n) / kFp8BlockSize == (w.row0 + n + rows - 1) / kFp8BlockSize;
  for (int b = 0; b < (f.split < len ? 2 : 1); ++b) {
    if (one) {
      const float sc = w.scale_at(n, k + b * f.split);
      f.add7 = set1(f32_from_bits(f.check(sc)));
      f.s_raw[b] = set1(sc * kFp8RawScale);  // rows past `rows` are zero: any scale will do
      continue;
    }
    alignas(64) float s[kLanes] = {}, a[kLanes] = {};
    for (int i = 0; i < kLanes; ++i) {
      const float sc = w.scale_at(n + std::min(i, rows - 1), k + b * f.split);
      a[i] = f32_from_bits(f.check(sc));
      s[i] = sc * kFp8RawScale;
    }
    f.s_raw[b] = load(s), f.add7 = load(a);
  }
}

// The 4 codes of word vector r (columns 4j .. 4j + 3 of a block) as ŵ: the first `split` with
// scale s0, the rest with s1 (s = scale * 2^120: the same product as weight_row_f32's).
[[gnu::always_inline]] inline void fp8_decode(VF (&v)[4], VF r, VF s0, VF s1, int split) {
  v[0] = mul(fp8_raw_byte<0>(r), split > 0 ? s0 : s1);
  v[1] = mul(fp8_raw_byte<1>(r), split > 1 ? s0 : s1);
  v[2] = mul(fp8_raw_byte<2>(r), split > 2 ? s0 : s1);
  v[3] = mul(fp8_raw_byte<3>(r), split > 3 ? s0 : s1);
}

// Any dtype through weight_row_f32, row by row, then transposed: dst[kk * ldd + i] for kk < len
// (and zero up to the next multiple of kLanes). The general path (f16, fp8 with large scales).
inline void transpose_rows_f32(float* dst, int64_t ldd, const WeightRef& w, int64_t n, int rows,
                               int64_t k, int len) {
  alignas(64) float buf[kLanes][kMaxWordBlockK];
  for (int i = 0; i < kLanes; ++i) {
    int j = i < rows ? len : 0;
    if (i < rows) weight_row_f32(w, n + i, k, len, buf[i]);
    for (; j < kMaxWordBlockK; ++j) buf[i][j] = 0.0f;
  }
  for (int c = 0; c < len; c += kLanes) {
    VF r[kLanes];
#pragma GCC unroll 16
    for (int i = 0; i < kLanes; ++i) r[i] = load(buf[i] + c);
    transpose(r);
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) store(dst + (c + j) * ldd, r[j]);
  }
}

// Integer codes (u4, u8, i8): lanes are weight rows, each with its own group scale.
// The scales of rows [n, n + rows) for storage column k (zero past rows).
inline VF int_lane_scales(const WeightRef& w, int64_t n, int rows, int64_t k) {
  alignas(64) float s[kLanes] = {};
  for (int i = 0; i < rows; ++i) s[i] = w.qscale_at(n + i, k);
  return load(s);
}
// The E codes of each word of `word` as ŵ = (code - offset - zero) * s: field + 2^23 minus
// bias = 2^23 + offset + zero is exact, and so is the product for bf16 / f16 scales (the same
// value weight_row_f32 makes).
template <DType WT, int E = kWordElems<WT>>
[[gnu::always_inline]] inline void int_decode(VF (&v)[E], VF word, VF bias, VF s) {
  if constexpr (WT == DType::i8) word = xor_words(word, 0x80808080u);  // signed -> offset 128
  [&]<int... J>(std::integer_sequence<int, J...>) {
    ((v[J] = mul(sub(uint_field_plus_2p23<dtype_bits(WT), J>(word), bias), s)), ...);
  }
  (std::make_integer_sequence<int, E>{});
}
// The bias per lane (row) for storage column k: 2^23 + the code offset + the row's zero point.
template <DType WT>
inline VF int_lane_bias(const WeightRef& w, int64_t n, int rows, int64_t k) {
  constexpr float base = 8388608.0f + (WT == DType::u4 ? 8.0f : 128.0f);
  if (!w.qzero) return set1(base);
  alignas(64) float b[kLanes];
  for (int i = 0; i < kLanes; ++i) b[i] = base + float(i < rows ? w.zero_at(n + i, k) : 0);
  return load(b);
}
// Whether an integer block starting at column k decodes in registers: a word's codes must share
// one scale (groups of whole words, starting on a word).
template <DType WT>
inline bool int_block_fast(const WeightRef& w, int64_t k) {
  constexpr int E = kWordElems<WT>;
  return (w.col0 + k) % E == 0 && w.group % E == 0;
}

// The words of such a block, decoded: use(j, v) gets ŵ of columns k + E * j .. + E - 1 (v[q]: one
// lane per row) for every word j that starts before len.
template <DType WT, class Use>
[[gnu::always_inline]] inline void for_each_int_word(const WeightRef& w, int64_t n, int rows,
                                                     int64_t k, int len, Use use) {
  constexpr int E = kWordElems<WT>;
  VF r[kLanes];
  load_transposed<WT>(r, w, n, rows, k, len);
  VF bias = int_lane_bias<WT>(w, n, rows, k);
  int64_t group = (w.col0 + k) / w.group;
  VF s = int_lane_scales(w, n, rows, k);
  VF v[E];
  for (int j = 0; E * j < len; ++j) {
    if (const int64_t g = (w.col0 + k + E * j) / w.group; g != group) {
      group = g, s = int_lane_scales(w, n, rows, k + E * j);
      if (w.qzero) bias = int_lane_bias<WT>(w, n, rows, k + E * j);
    }
    int_decode<WT>(v, r[j], bias, s);
    use(j, v);
  }
}

// A block of integer codes into f32 panel rows dst[kk * ldd], as pack_block_f32.
template <DType WT>
inline void pack_block_int(float* dst, int64_t ldd, const WeightRef& w, int64_t n, int rows,
                           int64_t k, int len) {
  constexpr int E = kWordElems<WT>;
  if (!int_block_fast<WT>(w, k)) return transpose_rows_f32(dst, ldd, w, n, rows, k, len);
  for_each_int_word<WT>(
      w, n, rows, k, len, [&](int j, const VF(&v)[E]) __attribute__((always_inline)) {
#pragma GCC unroll 8
        for (int q = 0; q < E; ++q) store(dst + (E * j + q) * ldd, v[q]);
      });
}

// One row of x against an integer block pack_block_int decodes in registers (int_block_fast),
// without a panel (decode, M = 1): acc += x[kk] * ŵ[n + lane, k + kk] for kk < len in order --
// the products pack_block_int makes and the FMA chain mma_outer runs on them, so the same bits.
template <DType WT>
[[gnu::always_inline]] inline void mma_int_block_row(VF& acc, const WeightRef& w, int64_t n,
                                                     int rows, int64_t k, int len, const float* x) {
  constexpr int E = kWordElems<WT>;
  for_each_int_word<WT>(
      w, n, rows, k, len, [&](int j, const VF(&v)[E]) __attribute__((always_inline)) {
        if (E * (j + 1) <= len) {
#pragma GCC unroll 8
          for (int q = 0; q < E; ++q) acc = fma(set1(x[E * j + q]), v[q], acc);
        } else {
          for (int q = 0; q < len - E * j; ++q) acc = fma(set1(x[E * j + q]), v[q], acc);
        }
      });
}

// One block of [N, K] storage (rows [n, n + rows), columns [k, k + len), len <= kWordElems *
// kLanes) into f32 panel rows dst[kk * ldd], kLanes lanes.
template <DType WT>
inline void pack_block_f32(float* dst, int64_t ldd, const WeightRef& w, int64_t n, int rows,
                           int64_t k, int len) {
  VF r[kLanes];
  if constexpr (WT == DType::f32) {
    load_transposed<WT>(r, w, n, rows, k, len);
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) store(dst + j * ldd, r[j]);
  } else if constexpr (WT == DType::bf16) {
    load_transposed<WT>(r, w, n, rows, k, len);
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j)
      store(dst + 2 * j * ldd, bf16_lo(r[j])), store(dst + (2 * j + 1) * ldd, bf16_hi(r[j]));
  } else if constexpr (WT == DType::fp8_e4m3) {
    // The usual case first, with its one scale in a register: every row in one 128-row block of
    // scales, every column in one column block, the scale small enough for the raw decode. (The
    // same products as below; kept apart because going through Fp8LaneScales in memory cost a
    // third of the small-M kernel's time.)
    if (scale_block_end(k, k + len, w.col0) >= k + len &&
        (w.row0 + n) / kFp8BlockSize == (w.row0 + n + rows - 1) / kFp8BlockSize) {
      const float sc = w.scale_at(n, k);
      if (std::fabs(sc) < kFp8RawMaxScale) {
        load_transposed<WT>(r, w, n, rows, k, len);
        const VF s = set1(sc * kFp8RawScale);
        VF v[4];
#pragma GCC unroll 16
        for (int j = 0; j < kLanes; ++j) {
          fp8_decode(v, r[j], s, s, 4);
          for (int q = 0; q < 4; ++q) store(dst + (4 * j + q) * ldd, v[q]);
        }
        return;
      }
    }
    Fp8LaneScales f;
    fp8_lane_scales(f, w, n, rows, k, len);
    if (!f.fast) return transpose_rows_f32(dst, ldd, w, n, rows, k, len);
    load_transposed<WT>(r, w, n, rows, k, len);
    VF v[4];
    if (f.split >= len) {  // one scale block (the usual case): no per-column choice
#pragma GCC unroll 16
      for (int j = 0; j < kLanes; ++j) {
        fp8_decode(v, r[j], f.s_raw[0], f.s_raw[0], 4);
        for (int q = 0; q < 4; ++q) store(dst + (4 * j + q) * ldd, v[q]);
      }
    } else {
      for (int j = 0; j < kLanes; ++j) {
        fp8_decode(v, r[j], f.s_raw[0], f.s_raw[1], f.split - 4 * j);
        for (int q = 0; q < 4; ++q) store(dst + (4 * j + q) * ldd, v[q]);
      }
    }
  } else if constexpr (WeightRef::is_int_dtype(WT)) {
    pack_block_int<WT>(dst, ldd, w, n, rows, k, len);
  } else {
    transpose_rows_f32(dst, ldd, w, n, rows, k, len);
  }
}

// The usual fp8 block, as pack_block_f32 takes its first branch: every row in one 128-row block of
// scales, every column in one column block, the scale small enough for the raw decode.
inline bool fp8_block_fast(const WeightRef& w, int64_t n, int rows, int64_t k, int len) {
  return scale_block_end(k, k + len, w.col0) >= k + len &&
         (w.row0 + n) / kFp8BlockSize == (w.row0 + n + rows - 1) / kFp8BlockSize &&
         std::fabs(w.scale_at(n, k)) < kFp8RawMaxScale;
}

// One row of x against such a block, from registers, without a panel (decode, M = 1):
// acc += x[kk] * ŵ[n + lane, k + kk] for kk < len in order -- the products pack_block_f32 makes
// and the FMA chain mma_outer runs on them, so the same bits.
[[gnu::always_inline]] inline void mma_fp8_block_row(VF& acc, const WeightRef& w, int64_t n,
                                                     int rows, int64_t k, int len, const float* x) {
  VF r[kLanes];
  load_transposed<DType::fp8_e4m3>(r, w, n, rows, k, len);
  const VF s = set1(w.scale_at(n, k) * kFp8RawScale);
  VF v[4];
  if (len == kMaxBlockK) {
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) {
      fp8_decode(v, r[j], s, s, 4);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) acc = fma(set1(x[4 * j + q]), v[q], acc);
    }
    return;
  }
  for (int j = 0; 4 * j < len; ++j) {
    fp8_decode(v, r[j], s, s, 4);
    for (int q = 0; q < std::min(4, len - 4 * j); ++q) acc = fma(set1(x[4 * j + q]), v[q], acc);
  }
}

// The same block as bf16 pairs: dst[(p * ldd + i) * 2 + h], p < (len + 1) / 2, 0 past len.
template <DType WT>
inline void pack_block_pairs(uint16_t* dst, int64_t ldd, const WeightRef& w, int64_t n, int rows,
                             int64_t k, int len) {
  VF r[kLanes];
  if constexpr (WT == DType::bf16) {  // words are pairs already (masked loads zero past len)
    load_transposed<WT>(r, w, n, rows, k, len);
#pragma GCC unroll 16
    for (int j = 0; j < kLanes; ++j) store_pairs(dst + j * ldd * 2, as_pairs(r[j]));
    return;
  }
  Fp8LaneScales f;
  if constexpr (WT == DType::fp8_e4m3) fp8_lane_scales(f, w, n, rows, k, len);
  if (WT == DType::fp8_e4m3 && f.fast) {
    load_rows<WT>(r, w, n, rows, k, len);
    // Power-of-two scales (ue8m0 checkpoints): integer ops, unless a subnormal code needs the
    // float path. (Codes past len load as 0.)
    const int zeros = f.pow2 ? fp8_exponent_zeros(r) : 2;
    transpose(r);
    if (zeros < 2) {
      VB p01, p23;
#pragma GCC unroll 16
      for (int j = 0; j < kLanes; ++j) {
        if (zeros)
          fp8_pairs_pow2<true>(r[j], f.add7, p01, p23);
        else
          fp8_pairs_pow2<false>(r[j], f.add7, p01, p23);
        store_pairs(dst + 2 * j * ldd * 2, p01), store_pairs(dst + (2 * j + 1) * ldd * 2, p23);
      }
      return;
    }
    VF v[4];
    auto put = [&](int j) {
      if (4 * j + 4 > len)  // past the block: +0 (a negative scale would give -0)
        for (int q = 0; q < 4; ++q) v[q] = 4 * j + q < len ? v[q] : zero();
      uint16_t* d = dst + 2 * j * ldd * 2;
      store_pairs(d, f.exact ? bf16_pairs_exact(v[0], v[1]) : bf16_pairs(v[0], v[1]));
      store_pairs(d + ldd * 2, f.exact ? bf16_pairs_exact(v[2], v[3]) : bf16_pairs(v[2], v[3]));
    };
    if (f.split >= len) {
#pragma GCC unroll 16
      for (int j = 0; j < kLanes; ++j) fp8_decode(v, r[j], f.s_raw[0], f.s_raw[0], 4), put(j);
    } else {
      for (int j = 0; j < kLanes; ++j)
        fp8_decode(v, r[j], f.s_raw[0], f.s_raw[1], f.split - 4 * j), put(j);
    }
    return;
  }
  alignas(64) float tmp[kMaxWordBlockK + 1][kLanes];  // ŵ as f32, zero past len
  transpose_rows_f32(&tmp[0][0], kLanes, w, n, rows, k, len);
  store(tmp[len], zero());  // an odd len's last pair
  for (int p = 0; 2 * p < len; ++p)
    store_pairs(dst + p * ldd * 2, bf16_pairs(load(tmp[2 * p]), load(tmp[2 * p + 1])));
}

// [K, N] storage: panel rows are storage rows k0 .. k0 + kc, columns n0 .. n0 + cols (zero up to
// width). Whole vectors of bf16, or of fp8 inside one scale block, are converted in place (the
// same products as weight_row_f32's); anything else goes through weight_row_f32.
inline void pack_kn_f32(float* dst, int64_t ldd, int width, const WeightRef& w, int64_t n0,
                        int cols, int64_t k0, int kc) {
  const bool whole = cols == width && width % kLanes == 0;
  if (whole && w.dtype == DType::bf16) {
    const uint16_t* p = static_cast<const uint16_t*>(w.data) + k0 * w.ld + n0;
    for (int k = 0; k < kc; ++k)
      for (int j = 0; j < width; j += kLanes) store(dst + k * ldd + j, load_bf16(p + k * w.ld + j));
    return;
  }
  if (whole && w.dtype == DType::fp8_e4m3 && scale_block_end(n0, n0 + cols, w.col0) == n0 + cols) {
    const uint8_t* p = static_cast<const uint8_t*>(w.data) + n0;
    for (int k = 0, kend; k < kc; k = kend) {
      kend = int(scale_block_end(k0 + k, k0 + kc, w.row0) - k0);
      const float sc = w.scale_at(k0 + k, n0);
      if (std::fabs(sc) >= kFp8RawMaxScale) {
        for (; k < kend; ++k) weight_row_f32(w, k0 + k, n0, cols, dst + k * ldd);
        continue;
      }
      const VF s = set1(sc * kFp8RawScale);
      for (; k < kend; ++k)
        for (int j = 0; j < width; j += kLanes)
          store(dst + k * ldd + j, mul(load_fp8_raw(p + (k0 + k) * w.ld + j), s));
    }
    return;
  }
  for (int k = 0; k < kc; ++k) {
    weight_row_f32(w, k0 + k, n0, cols, dst + k * ldd);
    for (int j = cols; j < width; ++j) dst[k * ldd + j] = 0.0f;
  }
}

template <class F>
inline void dispatch_dtype(DType dt, F f) {
  switch (dt) {
    case DType::f32:
      return f.template operator()<DType::f32>();
    case DType::bf16:
      return f.template operator()<DType::bf16>();
    case DType::f16:
      return f.template operator()<DType::f16>();
    case DType::u4:
      return f.template operator()<DType::u4>();
    case DType::u8:
      return f.template operator()<DType::u8>();
    case DType::i8:
      return f.template operator()<DType::i8>();
    default:
      return f.template operator()<DType::fp8_e4m3>();
  }
}

}  // namespace detail

inline void pack_b_f32(float* dst, int64_t ldd, int width, const WeightRef& w, int64_t n0, int cols,
                       int64_t k0, int kc) {
  if (w.kn) return detail::pack_kn_f32(dst, ldd, width, w, n0, cols, k0, kc);
  detail::dispatch_dtype(w.dtype, [&]<DType WT>() {
    constexpr int bk = kWordElems<WT> * kLanes;
    for (int v = 0; v < width; v += kLanes) {
      const int rows = std::clamp(cols - v, 0, kLanes);
      for (int k = 0; k < kc; k += bk) {
        float* d = dst + k * ldd + v;
        if (rows == 0) {
          for (int kk = 0; kk < std::min(bk, kc - k); ++kk) store(d + kk * ldd, zero());
        } else {
          detail::pack_block_f32<WT>(d, ldd, w, n0 + v, rows, k0 + k, std::min(bk, kc - k));
        }
      }
    }
  });
}

inline void pack_b_pairs(uint16_t* dst, int64_t ldd, int width, const WeightRef& w, int64_t n0,
                         int cols, int64_t k0, int kc) {
  const int kp = (kc + 1) / 2;
  if (w.kn) {  // storage rows are k: pair up consecutive storage rows
    alignas(64) float row[2][kMaxSegment];
    for (int p = 0; p < kp; ++p) {
      const int n = std::min(2, kc - 2 * p);
      detail::pack_kn_f32(&row[0][0], kMaxSegment, width, w, n0, cols, k0 + 2 * p, n);
      if (n < 2)
        for (int j = 0; j < width; ++j) row[1][j] = 0.0f;
      for (int j = 0; j < width; j += kLanes)
        store_pairs(dst + (p * ldd + j) * 2, bf16_pairs(load(row[0] + j), load(row[1] + j)));
    }
    return;
  }
  detail::dispatch_dtype(w.dtype, [&]<DType WT>() {
    constexpr int bk = kWordElems<WT> * kLanes;
    for (int v = 0; v < width; v += kLanes) {
      const int rows = std::clamp(cols - v, 0, kLanes);
      for (int k = 0; k < kc; k += bk) {
        uint16_t* d = dst + (k / 2 * ldd + v) * 2;
        if (rows == 0) {
          for (int p = 0; p < (std::min(bk, kc - k) + 1) / 2; ++p)
            store_pairs(d + p * ldd * 2, as_pairs(zero()));
        } else {
          detail::pack_block_pairs<WT>(d, ldd, w, n0 + v, rows, k0 + k, std::min(bk, kc - k));
        }
      }
    }
  });
}

// ---- the register micro-kernels over packed panels ---------------------------------------------
// Writes (or adds) the valid rows x cols of the micro-tile accumulators to C.
inline void store_accumulators(const VF (&acc)[kPanelMR][kPanelNV], float* c, int64_t ldc, int rows,
                               int cols, bool accumulate) {
  for (int i = 0; i < rows; ++i) {
    float* crow = c + i * ldc;
#pragma GCC unroll 16
    for (int v = 0; v < kPanelNV; ++v) {
      const int n = cols - v * kLanes;
      if (n <= 0) break;
      VF r = acc[i][v];
      if (n >= kLanes) {
        if (accumulate) r = add(r, load(crow + v * kLanes));
        store(crow + v * kLanes, r);
      } else {
        if (accumulate) r = add(r, load_n(crow + v * kLanes, n));
        store_n(crow + v * kLanes, r, n);
      }
    }
  }
}

// C[rows, cols] (+)= A panel . B panel over kc: the micro-kernel. c has row stride ldc.
inline void mma_panel_f32(int kc, const float* a, const float* b, float* c, int64_t ldc, int rows,
                          int cols, bool accumulate) {
  // C is read back at the end (accumulate): start fetching it now, behind the FMAs.
  if (accumulate)
    for (int i = 0; i < rows; ++i) prefetch(c + i * ldc), prefetch(c + i * ldc + kPanelNR - 1);
  VF acc[kPanelMR][kPanelNV];
  clear(acc);
  mma_outer(acc, kc, a, 1, kPanelMR, b, kPanelNR);
  store_accumulators(acc, c, ldc, rows, cols, accumulate);
}
inline void mma_panel_pairs(int kc, const uint16_t* a, const uint16_t* b, float* c, int64_t ldc,
                            int rows, int cols, bool accumulate) {
  if (accumulate)
    for (int i = 0; i < rows; ++i) prefetch(c + i * ldc), prefetch(c + i * ldc + kPanelNR - 1);
  VF acc[kPanelMR][kPanelNV];
  clear(acc);
  mma_pairs(acc, (kc + 1) / 2, a, 2, kPanelMR * 2, b, kPanelNR * 2);
  store_accumulators(acc, c, ldc, rows, cols, accumulate);
}

}  // namespace dsinfer::DSINFER_ISA_NS::tile
