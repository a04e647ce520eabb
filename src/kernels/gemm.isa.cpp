// GEMM / GEMV kernels written in the tile layer (compiled once per ISA).
#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "tile/panel.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// ---- GEMV: rows of x against RN weight rows at a time, K streamed once ----------------------
// acc[i][j] holds kLanes partial sums of x[i] . W[n0 + j]; FP8 block scales multiply the
// converted weights (one scale per row per 128 columns), shared by all RM rows of x.
template <DType WT, int RM, int RN>
void gemv_block(const float* x, int64_t ldx, const WeightView& w, int64_t n0, float* y,
                int64_t ldy) {
  const int64_t K = w.cols;
  const size_t esize = dtype_size(WT);
  const char* rows[RN];
#pragma GCC unroll 16
  for (int j = 0; j < RN; ++j) rows[j] = static_cast<const char*>(w.data) + (n0 + j) * w.ld * esize;
  VF acc[RM][RN];
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < RN; ++j) acc[i][j] = zero();

  // K in segments that never cross a block-scale column boundary (the view may start mid-block).
  for (int64_t kb = 0; kb < K;) {
    const int64_t kend = std::min(K, kb + (kFp8BlockSize - (w.col0 + kb) % kFp8BlockSize));
    VF s[RN], s_exact[RN];
#pragma GCC unroll 16
    for (int j = 0; j < RN; ++j) {
      const float sc = WT == DType::fp8_e4m3 ? w.scale_at(n0 + j, kb) : 1.0f;
      s[j] = set1(WT == DType::fp8_e4m3 ? sc * kFp8StreamScale : sc);
      s_exact[j] = set1(sc);
    }
    int64_t k = kb;
    // FP8: when all RN rows share a block scale, scale x (RM products) instead of the weights
    // (2 * RN products): the conversion, not memory, bounds this loop on narrow machines.
    const bool scale_x = WT == DType::fp8_e4m3 &&
                         (w.row0 + n0) / kFp8BlockSize == (w.row0 + n0 + RN - 1) / kFp8BlockSize;
    for (; k + 2 * kLanes <= kend; k += 2 * kLanes) {
      VF x0[RM], x1[RM];
#pragma GCC unroll 16
      for (int i = 0; i < RM; ++i) {
        x0[i] = load(x + i * ldx + k), x1[i] = load(x + i * ldx + k + kLanes);
        if (scale_x) x0[i] = mul(x0[i], s[0]), x1[i] = mul(x1[i], s[0]);
      }
#pragma GCC unroll 16
      for (int j = 0; j < RN; ++j) {
        VF w0, w1;
        load_weights_2v<WT>(rows[j], k, &w0, &w1);
        if (WT == DType::fp8_e4m3 && !scale_x) w0 = mul(w0, s[j]), w1 = mul(w1, s[j]);
#pragma GCC unroll 16
        for (int i = 0; i < RM; ++i) {
          acc[i][j] = fma(x0[i], w0, acc[i][j]);
          acc[i][j] = fma(x1[i], w1, acc[i][j]);
        }
      }
    }
    for (; k < kend; k += kLanes) {  // tail: exact conversion, partial vectors
      const int n = int(std::min<int64_t>(kLanes, kend - k));
#pragma GCC unroll 16
      for (int j = 0; j < RN; ++j) {
        VF wv = load_weights_n<WT>(rows[j], k, n);
        if constexpr (WT == DType::fp8_e4m3) wv = mul(wv, s_exact[j]);
#pragma GCC unroll 16
        for (int i = 0; i < RM; ++i) acc[i][j] = fma(load_n(x + i * ldx + k, n), wv, acc[i][j]);
      }
    }
    kb = kend;
  }
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < RN; ++j) y[i * ldy + n0 + j] = reduce_add(acc[i][j]);
}

template <DType WT, int RM>
void gemv_rows(const float* x, int64_t ldx, const WeightView& w, int64_t n_begin, int64_t n_end,
               float* y, int64_t ldy) {
  constexpr int RN = RM >= 3 ? 2 : RM == 2 ? 4 : 8;
  int64_t n = n_begin;
  for (; n + RN <= n_end; n += RN) gemv_block<WT, RM, RN>(x, ldx, w, n, y, ldy);
  for (; n < n_end; ++n) gemv_block<WT, RM, 1>(x, ldx, w, n, y, ldy);
}

template <DType WT>
void gemv(const float* x, int64_t M, int64_t ldx, const WeightView& w, float* y, int64_t ldy) {
  // Work unit: 32 weight rows, all x rows (the 32 rows stay in L1/L2 across x's row groups).
  const int64_t grain = 32;
  parallel_for(w.rows, grain, [&](int64_t n0, int64_t n1, int) {
    for (int64_t m = 0; m < M;) {
      const int64_t left = M - m;
      const float* xm = x + m * ldx;
      float* ym = y + m * ldy;
      if (left >= 4)
        gemv_rows<WT, 4>(xm, ldx, w, n0, n1, ym, ldy), m += 4;
      else if (left == 3)
        gemv_rows<WT, 3>(xm, ldx, w, n0, n1, ym, ldy), m += 3;
      else if (left == 2)
        gemv_rows<WT, 2>(xm, ldx, w, n0, n1, ym, ldy), m += 2;
      else
        gemv_rows<WT, 1>(xm, ldx, w, n0, n1, ym, ldy), m += 1;
    }
  });
}

// ---- GEMV for [K, N] storage: y[m, :] += x[m, k] * W[k, :], rows of W streamed once -----------
// Work unit: a chunk of 2 * kLanes output columns (inside one 128-column scale block) for all K;
// the RM x 2 accumulators stay in registers.
template <DType WT, int RM>
void gemv_kn_chunk(const float* x, int64_t ldx, const WeightView& w, int64_t n0, float* y,
                   int64_t ldy) {
  const size_t esize = dtype_size(WT);
  VF acc[RM][2];
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i) acc[i][0] = zero(), acc[i][1] = zero();
  const char* base = static_cast<const char*>(w.data) + n0 * esize;
  float sc = 1.0f;
  for (int64_t k = 0; k < w.cols; ++k) {
    if constexpr (WT == DType::fp8_e4m3)
      if ((w.row0 + k) % kFp8BlockSize == 0 || k == 0) sc = w.scale_at(k, n0) * kFp8StreamScale;
    VF w0, w1;
    load_weights_2v<WT>(base + k * w.ld * esize, 0, &w0, &w1);
#pragma GCC unroll 16
    for (int i = 0; i < RM; ++i) {
      const VF xk = set1(WT == DType::fp8_e4m3 ? x[i * ldx + k] * sc : x[i * ldx + k]);
      acc[i][0] = fma(xk, w0, acc[i][0]);
      acc[i][1] = fma(xk, w1, acc[i][1]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i) {
    store(y + i * ldy + n0, acc[i][0]);
    store(y + i * ldy + n0 + kLanes, acc[i][1]);
  }
}

template <DType WT>
void gemv_kn(const float* x, int64_t M, int64_t ldx, const WeightView& w, float* y, int64_t ldy) {
  const int64_t chunks = w.rows / (2 * kLanes);
  parallel_for(chunks, 4, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t m = 0; m < M;) {
        const int64_t left = M - m, n0 = c * 2 * kLanes;
        if (left >= 4)
          gemv_kn_chunk<WT, 4>(x + m * ldx, ldx, w, n0, y + m * ldy, ldy), m += 4;
        else if (left >= 2)
          gemv_kn_chunk<WT, 2>(x + m * ldx, ldx, w, n0, y + m * ldy, ldy), m += 2;
        else
          gemv_kn_chunk<WT, 1>(x + m * ldx, ldx, w, n0, y + m * ldy, ldy), m += 1;
      }
  });
}

// ---- GEMM: packed panels and the register micro-kernel ---------------------------------------
// Per-thread scratch that only grows (slot 0: packed A, 1: packed B): decode calls this many
// times per token, and allocating (and zero-filling) panels each time cost more than the math.
template <class T>
T* scratch(int slot, size_t elems) {
  struct Buf {
    T* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.n < elems) {
    std::free(b.p);
    b.p = static_cast<T*>(std::aligned_alloc(64, (elems * sizeof(T) + 63) / 64 * 64));
    if (!b.p) throw std::bad_alloc();
    b.n = elems;
  }
  return b.p;
}
constexpr int kKc = 512;  // K block
// A strips per L2-resident group: about 96 rows x kc (~100 KB of f32).
constexpr int64_t kStripsPerMc = (48 + kPanelMR - 1) / kPanelMR;

template <bool kPairs>
void gemm_packed(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  using Elem = std::conditional_t<kPairs, uint16_t, float>;
  const int64_t M = x.rows, N = w.rows, K = x.cols;
  const int64_t strips = (M + kPanelMR - 1) / kPanelMR;
  const int64_t k_blocks = (K + kKc - 1) / kKc;
  // A panel element count for one (strip, k block): pairs pad kc up to even.
  const int64_t a_block = int64_t(kKc) * kPanelMR;

  // Pack all of x once, shared by every thread: [strip][k block][kc][MR].
  Elem* a_packed = scratch<Elem>(0, size_t(strips * k_blocks * a_block));
  parallel_for(strips * k_blocks, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b / k_blocks, kb = b % k_blocks;
      const int rows = int(std::min<int64_t>(kPanelMR, M - s * kPanelMR));
      const int kc = int(std::min<int64_t>(kKc, K - kb * kKc));
      Elem* dst = a_packed + b * a_block;
      if constexpr (kPairs) {
        pack_a_pairs(dst, static_cast<const bf16*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                     kb * kKc, kc);
      } else if (x.dtype == DType::bf16) {
        pack_a_f32(dst, static_cast<const bf16*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                   kb * kKc, kc);
      } else {
        pack_a_f32(dst, static_cast<const float*>(x.data) + s * kPanelMR * x.ld, x.ld, rows,
                   kb * kKc, kc);
      }
    }
  });

  // Column blocks of W: enough of them for dynamic balance, each a whole number of NR panels.
  const int threads = num_threads();
  int64_t nc = (N + 4 * threads - 1) / (4 * threads);
  nc = std::clamp<int64_t>((nc + kPanelNR - 1) / kPanelNR * kPanelNR, kPanelNR, 256);
  const int64_t n_tasks = (N + nc - 1) / nc;
  const int64_t b_block = int64_t(kKc) * nc;

  parallel_for(n_tasks, 1, [&](int64_t t0, int64_t t1, int worker) {
    Elem* b_panel = scratch<Elem>(1, size_t(b_block));  // this thread's own
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * nc, ncols = std::min(nc, N - n0);
      const int64_t panels = (ncols + kPanelNR - 1) / kPanelNR;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int kc = int(std::min<int64_t>(kKc, K - kb * kKc));
        for (int64_t p = 0; p < panels; ++p) {  // B block: `panels` panels of kc x NR
          const int cols = int(std::min<int64_t>(kPanelNR, ncols - p * kPanelNR));
          Elem* dst = b_panel + p * int64_t(kKc) * kPanelNR;
          if constexpr (kPairs)
            pack_b_pairs(dst, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
          else
            pack_b_f32(dst, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
        }
        // A strips in groups that stay in L2 (kMc rows); each B panel stays in L1 while the
        // group's strips stream past it.
        for (int64_t s0 = 0; s0 < strips; s0 += kStripsPerMc) {
          const int64_t s1 = std::min(strips, s0 + kStripsPerMc);
          for (int64_t p = 0; p < panels; ++p) {
            const int cols = int(std::min<int64_t>(kPanelNR, ncols - p * kPanelNR));
            const Elem* b = b_panel + p * int64_t(kKc) * kPanelNR;
            for (int64_t s = s0; s < s1; ++s) {
              const int rows = int(std::min<int64_t>(kPanelMR, M - s * kPanelMR));
              const Elem* a = a_packed + (s * k_blocks + kb) * a_block;
              float* c = y + s * kPanelMR * ldy + n0 + p * kPanelNR;
              if constexpr (kPairs)
                mma_panel_pairs(kc, a, b, c, ldy, rows, cols, kb > 0);
              else
                mma_panel_f32(kc, a, b, c, ldy, rows, cols, kb > 0);
            }
          }
        }
      }
    }
  });
}

}  // namespace

void gemm_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  // [K, N] storage: a streaming GEMV when whole chunks of columns tile N and no chunk straddles
  // a scale block (N a multiple of 2 * kLanes, the view starting on a chunk boundary).
  const bool kn_gemv =
      w.kn && x.rows <= kGemvMaxRows && w.rows % (2 * kLanes) == 0 && w.col0 % (2 * kLanes) == 0;
  if (x.rows <= kGemvMaxRows && (!w.kn || kn_gemv)) {
    // x is tiny here: widen it to f32 once so the inner loop only converts weights.
    std::vector<float> xf;
    const float* xp = static_cast<const float*>(x.data);
    int64_t ldx = x.ld;
    if (x.dtype == DType::bf16) {
      xf.resize(x.rows * x.cols);
      for (int64_t m = 0; m < x.rows; ++m) {
        const bf16* src = static_cast<const bf16*>(x.data) + m * x.ld;
        for (int64_t k = 0; k < x.cols; ++k) xf[m * x.cols + k] = bf16_to_f32(src[k]);
      }
      xp = xf.data(), ldx = x.cols;
    }
    if (kn_gemv) {
      switch (w.dtype) {
        case DType::f32:
          return gemv_kn<DType::f32>(xp, x.rows, ldx, w, y, ldy);
        case DType::bf16:
          return gemv_kn<DType::bf16>(xp, x.rows, ldx, w, y, ldy);
        case DType::f16:
          return gemv_kn<DType::f16>(xp, x.rows, ldx, w, y, ldy);
        default:
          return gemv_kn<DType::fp8_e4m3>(xp, x.rows, ldx, w, y, ldy);
      }
    }
    switch (w.dtype) {
      case DType::f32:
        return gemv<DType::f32>(xp, x.rows, ldx, w, y, ldy);
      case DType::bf16:
        return gemv<DType::bf16>(xp, x.rows, ldx, w, y, ldy);
      case DType::f16:
        return gemv<DType::f16>(xp, x.rows, ldx, w, y, ldy);
      default:
        return gemv<DType::fp8_e4m3>(xp, x.rows, ldx, w, y, ldy);
    }
  }
  // bf16 pair panels only where no precision is lost beyond bf16 activations: bf16 weights, and
  // fp8 weights (fp8 times a ue8m0 scale is exact in bf16).
  const bool pairs = kNativeBf16Dot && x.dtype == DType::bf16 &&
                     (w.dtype == DType::bf16 || w.dtype == DType::fp8_e4m3);
  if (pairs)
    gemm_packed<true>(x, w, y, ldy);
  else
    gemm_packed<false>(x, w, y, ldy);
}

}  // namespace dsinfer::DSINFER_ISA_NS
