// GEMM operand panels: A and B packed, per cache block, into the layout the ISA's mma wants, so
// the micro-kernel streams both with unit stride and every B element is converted exactly once
// per block (FP8 block dequantization happens here, into an L2-resident panel, never for the
// whole weight).
//
// Two layouts, chosen by the ISA and the input dtypes:
//   f32   : A [kc][MR] f32, B [kc][NR] f32                  -> broadcast a, FMA with b vectors
//   pairs : A [kc/2][MR][2] bf16, B [kc/2][NR][2] bf16       -> vdpbf16ps on (k, k+1) pairs
// (pairs only where the ISA has a native bf16 dot product and both operands are bf16 / fp8.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

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

// One storage row segment data[r, c0 : c0 + len) as f32 (scaled for FP8), len <= kMaxSegment.
// For the usual [N, K] storage that is W[n = r, k0 = c0 ...]; for [K, N] it is W^T[k = r, n0 = c0
// ...].
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
    default: {  // fp8 e4m3 with 128 x 128 block scales; a segment may cross 128-column blocks
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + r * w.ld + c0;
      int k = 0;
      while (k < len) {
        const int end = int(scale_block_end(k, len, w.col0 + c0));
        const float sc = w.scale_at(r, c0 + k);
        const VF s = set1(sc);
        // The fast decode (2^-120 of each value, see load_fp8_raw) where the scale can carry
        // 2^120 without overflowing: one rounding of value * scale either way, same result.
        if (std::fabs(sc) < 0x1p7f) {
          const VF s_raw = set1(sc * kFp8RawScale);
          for (; k + kLanes <= end; k += kLanes) store(out + k, mul(load_fp8_raw(p + k), s_raw));
        }
        for (; k + kLanes <= end; k += kLanes) store(out + k, mul(load_fp8(p + k), s));
        if (k < end) store_n(out + k, mul(load_fp8_n(p + k, end - k), s), end - k), k = end;
      }
      break;
    }
  }
}

// ---- f32 panels -------------------------------------------------------------------------------
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
// B panel from rows [n0, n0 + cols) of W, columns [k0, k0 + kc): dst[k][j] (zero past cols).
inline void pack_b_f32(float* dst, const WeightRef& w, int64_t n0, int cols, int64_t k0, int kc) {
  alignas(64) float row[kMaxSegment + 16];
  if (w.kn) {  // storage rows are k: each panel row is one contiguous storage segment
    for (int k = 0; k < kc; ++k) {
      weight_row_f32(w, k0 + k, n0, cols, row);
      for (int j = 0; j < kPanelNR; ++j) dst[k * kPanelNR + j] = j < cols ? row[j] : 0.0f;
    }
    return;
  }
  for (int j = 0; j < kPanelNR; ++j) {
    if (j < cols) {
      weight_row_f32(w, n0 + j, k0, kc, row);
    } else {
      for (int k = 0; k < kc; ++k) row[k] = 0.0f;
    }
    for (int k = 0; k < kc; ++k) dst[k * kPanelNR + j] = row[k];
  }
}

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

// ---- bf16 pair panels (native bf16 dot product ISAs) -------------------------------------------
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
inline void pack_b_pairs(uint16_t* dst, const WeightRef& w, int64_t n0, int cols, int64_t k0,
                         int kc) {
  const int kp = (kc + 1) / 2;
  alignas(64) float row[kMaxSegment + 16];
  alignas(64) uint16_t row16[kMaxSegment + 16];
  auto to_bf16 = [&](int len) {  // row[0, len) -> row16 (fp8 * ue8m0 scale is exact in bf16)
    int k = 0;
    for (; k + kLanes <= len; k += kLanes) store_bf16(row16 + k, load(row + k));
    if (k < len) store_bf16_n(row16 + k, load_n(row + k, len - k), len - k);
  };
  if (w.kn) {  // storage rows are k: pair up consecutive storage rows
    for (int p = 0; p < kp; ++p)
      for (int h = 0; h < 2; ++h) {
        const int k = 2 * p + h;
        if (k < kc) weight_row_f32(w, k0 + k, n0, cols, row), to_bf16(cols);
        for (int j = 0; j < kPanelNR; ++j)
          dst[(p * kPanelNR + j) * 2 + h] = (k < kc && j < cols) ? row16[j] : 0;
      }
    return;
  }
  for (int j = 0; j < kPanelNR; ++j) {
    if (j < cols && w.dtype == DType::bf16) {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + (n0 + j) * w.ld + k0;
      for (int k = 0; k < kc; ++k) row16[k] = src[k];
    } else if (j < cols) {
      weight_row_f32(w, n0 + j, k0, kc, row);
      to_bf16(kc);
    } else {
      for (int k = 0; k < kc; ++k) row16[k] = 0;
    }
    row16[kc] = 0;  // odd kc: the pair's second half
    for (int p = 0; p < kp; ++p) {
      dst[(p * kPanelNR + j) * 2] = row16[2 * p];
      dst[(p * kPanelNR + j) * 2 + 1] = row16[2 * p + 1];
    }
  }
}
inline void mma_panel_pairs(int kc, const uint16_t* a, const uint16_t* b, float* c, int64_t ldc,
                            int rows, int cols, bool accumulate) {
  if (accumulate)
    for (int i = 0; i < rows; ++i) prefetch(c + i * ldc), prefetch(c + i * ldc + kPanelNR - 1);
  VF acc[kPanelMR][kPanelNV];
#pragma GCC unroll 16
  for (int i = 0; i < kPanelMR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < kPanelNV; ++v) acc[i][v] = zero();
  const int kp = (kc + 1) / 2;
  for (int p = 0; p < kp; ++p) {
    VB bv[kPanelNV];
#pragma GCC unroll 16
    for (int v = 0; v < kPanelNV; ++v) bv[v] = load_pairs(b + (p * kPanelNR + v * kLanes) * 2);
#pragma GCC unroll 16
    for (int i = 0; i < kPanelMR; ++i) {
      const VB av = broadcast_pair(a + (p * kPanelMR + i) * 2);
#pragma GCC unroll 16
      for (int v = 0; v < kPanelNV; ++v) acc[i][v] = dot_pairs(acc[i][v], av, bv[v]);
    }
  }
  store_accumulators(acc, c, ldc, rows, cols, accumulate);
}

}  // namespace dsinfer::DSINFER_ISA_NS::tile

namespace dsinfer::DSINFER_ISA_NS::tile {

// ---- weight streaming (GEMV: each weight is read once, converted in registers) -----------------
// kLanes consecutive weights of one row from element k as f32. f32 / bf16 / f16 are exact; fp8
// uses the fast decode (load_fp8_raw), which yields 2^-120 times each value: the caller multiplies
// x by kFp8RawScale (and the block scale) instead.
template <DType WT>
inline VF load_weights_raw(const void* row, int64_t k) {
  if constexpr (WT == DType::f32)
    return load(static_cast<const float*>(row) + k);
  else if constexpr (WT == DType::f16)
    return load_f16(static_cast<const uint16_t*>(row) + k);
  else if constexpr (WT == DType::bf16)
    return load_bf16(static_cast<const uint16_t*>(row) + k);
  else
    return load_fp8_raw(static_cast<const uint8_t*>(row) + k);
}

}  // namespace dsinfer::DSINFER_ISA_NS::tile
