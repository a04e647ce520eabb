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

// Integer weight codes (compressed-tensors): the offset the stored codes carry (u4: 8, u8: 128,
// i8: 0), and kLanes codes along a storage row from p (for u4: a byte holding an even column) as
// the f32 of their stored values, exactly.
template <DType WT>
inline constexpr float kIntOffset = WT == DType::u4   ? 8.0f
                                    : WT == DType::u8 ? 128.0f
                                                      : 0.0f;
template <DType WT>
[[gnu::always_inline]] inline VF load_int_codes(const void* p) {
  if constexpr (WT == DType::u4) return load_u4(static_cast<const uint8_t*>(p));
  if constexpr (WT == DType::u8) return load_u8(static_cast<const uint8_t*>(p));
  return load_i8(static_cast<const int8_t*>(p));
}
// The pair form's integer operand: one step of kCols codes of a group along a storage row as kVecs
// bf16 pair vectors of their values minus `bias` (the offset plus the group's zero point): exact,
// those being integers of magnitude <= 256. 8-bit codes: 2 * kLanes columns in order. INT4: 4 *
// kLanes columns split, the even ones then the odd ones (split_columns), which is how nibbles
// unpack cheaply; x must be split the same way.
template <DType WT>
struct CodePairs {
  static constexpr bool kSplit = WT == DType::u4;
  static constexpr int kVecs = kSplit ? 2 : 1;
  static constexpr int kCols = kVecs * 2 * kLanes;
  static constexpr int kBytes = 2 * kLanes;  // per step, both widths
  VB table;                                  // u4: the value of each code
  VF bias;                                   // 8-bit codes
  CodePairs() = default;
  explicit CodePairs(float b) {
    if constexpr (kSplit)
      table = u4_table(b);
    else
      bias = set1(b);
  }
  [[gnu::always_inline]] void operator()(const uint8_t* p, VB (&out)[kVecs]) const {
    if constexpr (kSplit) {
      u4_pairs_split(p, table, out[0], out[1]);
    } else {
      out[0] = bf16_in_order(sub(load_int_codes<WT>(p), bias),
                             sub(load_int_codes<WT>(p + kLanes), bias));
    }
  }
  // The first n columns of a step (0 < n < kCols), zeros in the others; reads only the bytes
  // holding them.
  void first(const uint8_t* p, int n, VB (&out)[kVecs]) const {
    alignas(64) uint8_t bytes[kBytes] = {};
    std::memcpy(bytes, p, size_t(kSplit ? (n + 1) / 2 : n));
    (*this)(bytes, out);
    for (int v = 0; v < kVecs; ++v) {
      alignas(64) uint16_t words[2 * kLanes];
      store_pairs(words, out[v]);
      for (int i = 0; i < 2 * kLanes; ++i)
        if ((kSplit ? 2 * i + v : i) >= n) words[i] = 0;
      out[v] = load_pairs(words);
    }
  }
};
// Columns [0, n) of a row as CodePairs<WT> steps want x: per step of kCols columns (the last
// zero-padded), INT4's even columns then its odd ones; others in order. dst holds n rounded up to
// whole steps.
template <DType WT>
inline void split_columns(const uint16_t* src, int64_t n, uint16_t* dst) {
  constexpr int kCols = CodePairs<WT>::kCols;
  const int64_t padded = (n + kCols - 1) / kCols * kCols;
  if constexpr (!CodePairs<WT>::kSplit) {
    std::memcpy(dst, src, size_t(n) * 2);
    std::fill(dst + n, dst + padded, uint16_t(0));
  } else {
    for (int64_t c = 0; c < padded; c += kCols)
      for (int i = 0; i < kCols / 2; ++i) {
        const int64_t e = c + 2 * i, o = e + 1;
        dst[c + i] = e < n ? src[e] : uint16_t(0);
        dst[c + kCols / 2 + i] = o < n ? src[o] : uint16_t(0);
      }
  }
}
// f.template operator()<WT>() for the integer dtype dt (u4, u8 or i8).
template <class F>
inline void dispatch_int_dtype(DType dt, F f) {
  if (dt == DType::u4) return f.template operator()<DType::u4>();
  if (dt == DType::u8) return f.template operator()<DType::u8>();
  return f.template operator()<DType::i8>();
}

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
        if (w.dtype == DType::u4 && (c0 + k) % 2 != 0 && k < end)  // u4 vectors start on a byte
          out[k] = float(w.int_code_at(r, c0 + k) - z) * sc, ++k;
        dispatch_int_dtype(w.dtype, [&]<DType WT>() {
          const VF s = set1(sc), bias = set1(kIntOffset<WT> + float(z));
          for (; k + kLanes <= end; k += kLanes)
            store(out + k, mul(sub(load_int_codes<WT>(w.element_ptr(r, c0 + k)), bias), s));
        });
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
// Weights stored [K, N] (WeightView::kn; [N, K] weights take the dot form of
// kernels/gemm_rows.isa.cpp): pack_b_f32(dst, ldd, width, w, n0, cols, k0, kc): dst[k * ldd + j] =
// ŵ[n0 + j, k0 + k] for k < kc, j < cols, and 0 for cols <= j < width (width a multiple of
// kLanes). pack_b_pairs: the same in pairs, dst[(p * ldd + j) * 2 + h] = bf16(ŵ[n0 + j, k0 + 2p +
// h]), 0 past kc, ldd in pairs.
namespace detail {

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

}  // namespace detail

inline void pack_b_f32(float* dst, int64_t ldd, int width, const WeightRef& w, int64_t n0, int cols,
                       int64_t k0, int kc) {
  detail::pack_kn_f32(dst, ldd, width, w, n0, cols, k0, kc);
}

inline void pack_b_pairs(uint16_t* dst, int64_t ldd, int width, const WeightRef& w, int64_t n0,
                         int cols, int64_t k0, int kc) {
  // Storage rows are k: pair up consecutive storage rows.
  alignas(64) float row[2][kMaxSegment];
  for (int p = 0; p < (kc + 1) / 2; ++p) {
    const int n = std::min(2, kc - 2 * p);
    detail::pack_kn_f32(&row[0][0], kMaxSegment, width, w, n0, cols, k0 + 2 * p, n);
    if (n < 2)
      for (int j = 0; j < width; ++j) row[1][j] = 0.0f;
    for (int j = 0; j < width; j += kLanes)
      store_pairs(dst + (p * ldd + j) * 2, bf16_pairs(load(row[0] + j), load(row[1] + j)));
  }
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
