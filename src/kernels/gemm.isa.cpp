// GEMM kernels for weights stored [K, N] (MLA's W_UK view), written in the tile layer (compiled
// once per ISA); [N, K] weights take the dot form of gemm_rows.isa.cpp.
//
// Batch invariance: every y[m, n] is computed in one canonical order (per ISA and layout),
// whatever M, the row's index, the thread count, the work split or the leading dimensions, so a
// token's results never depend on what else is in the batch:
//   for each K block b of kKc columns (from k = 0), s_b = a chain of FMAs from 0 over k in order,
//   x[m, k] as f32 times ŵ[n, k] (panel.h's pack_b_f32); with bf16 pairs (vdpbf16ps), the chain
//   steps over (k, k + 1) pairs, both operands bf16 (pack_b_pairs); then y = s_0 + s_1 + ...
// Both algorithms below follow it: vector lanes run along n, never along k, each output's chain
// is one accumulator, and both pack B with the same functions and multiply with the same
// micro-kernels (mma_outer / mma_pairs).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/gemm_scratch.h"
#include "tile/panel.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// Scratch slots (gemm_scratch.h): 0 packed A / small-M x, 1 packed B, 2 small-M partial sums.
constexpr int kKc = 512;  // K block: the unit of the canonical order

// ---- small M (decode): every weight read from memory and converted once -----------------------
// Output columns are taken kGroup at a time (n). Per group and K block, kSub rows of the [K, N]
// storage at a time are packed into an L1 panel [kSub][kGroup] (by panel.h's packers, the same
// ones the GEMM uses) and multiplied into all M rows of x by the GEMM's own micro-kernels, the
// partial sums kept in an L1 buffer [M][kGroup] across the block's panels. So every output
// follows the canonical order, and every weight is converted once per call.
// kGroup: 32 rows measured best on AVX-512 (64 rows side by side stream worse; 16 leave one
// accumulator chain per x row, and vdpbf16ps has a ~10-cycle latency).
constexpr int kGroupVecs = 2;
constexpr int kGroup = kGroupVecs * kLanes;  // 32 weight rows on AVX-512, 16 elsewhere
constexpr int kSub = 4 * kLanes;             // columns per L1 panel
constexpr int kRowsPerPass = 8;              // x rows per micro-kernel call
// Accumulator registers per micro-kernel call (AVX-512 has 32 vector registers, AVX2 16).
constexpr int kAccRegs = kLanes == 16 ? 16 : 8;

// Lane blocks (kLanes weight rows) per pass: packed, then multiplied into all rows of x, so the
// chains of one pass overlap with the packing of the next; with one row of x the whole group.
constexpr int pass_vecs(int64_t M) {
  return M == 1 ? kGroupVecs : M * 2 <= kAccRegs ? 2 : 1;
}
// Vectors per micro-kernel call with RM rows: RM * NV accumulators in registers.
template <int RM>
constexpr int kMmaVecs = RM * 4 <= kAccRegs   ? 4
                         : RM * 2 <= kAccRegs ? 2
                                              : 1;

// acc[RM][NP vectors] (stride kGroup) (+)= x rows (RM of them, stride ldx) . panel.
template <bool kPairs, int RM, int NP>
void panel_rows(float* acc, bool accumulate, int len, const void* xa, int64_t ldx,
                const void* panel) {
  constexpr int NV = std::min(NP, kMmaVecs<RM>);
  for (int v = 0; v < NP; v += NV) {
    if constexpr (kPairs)
      mma_pairs_at<RM, NV>(acc + v * kLanes, kGroup, accumulate, (len + 1) / 2,
                           static_cast<const uint16_t*>(xa), ldx, 2,
                           static_cast<const uint16_t*>(panel) + v * kLanes * 2, kGroup * 2);
    else
      mma_outer_at<RM, NV>(acc + v * kLanes, kGroup, accumulate, len, static_cast<const float*>(xa),
                           ldx, 1, static_cast<const float*>(panel) + v * kLanes, kGroup);
  }
}
template <bool kPairs, int NP>
void panel_rows(int rows, float* acc, bool accumulate, int len, const void* xa, int64_t ldx,
                const void* panel) {
  switch (rows) {
    case 1:
      return panel_rows<kPairs, 1, NP>(acc, accumulate, len, xa, ldx, panel);
    case 2:
      return panel_rows<kPairs, 2, NP>(acc, accumulate, len, xa, ldx, panel);
    case 3:
      return panel_rows<kPairs, 3, NP>(acc, accumulate, len, xa, ldx, panel);
    case 4:
      return panel_rows<kPairs, 4, NP>(acc, accumulate, len, xa, ldx, panel);
    case 5:
      return panel_rows<kPairs, 5, NP>(acc, accumulate, len, xa, ldx, panel);
    case 6:
      return panel_rows<kPairs, 6, NP>(acc, accumulate, len, xa, ldx, panel);
    case 7:
      return panel_rows<kPairs, 7, NP>(acc, accumulate, len, xa, ldx, panel);
    default:
      return panel_rows<kPairs, 8, NP>(acc, accumulate, len, xa, ldx, panel);
  }
}

// One row of f32 x against a [K, N] weight (MLA's W_UK at decode), kKnVecs vectors of columns at
// a time: each weight row's ŵ made in registers (as weight_row_f32 makes it for pack_kn_f32) and
// fed straight into the chains mma_outer would run on the panel -- the same bits, no panel.
// f32 / bf16 / fp8 weights (integer ones: gemv_kn_int), N a multiple of the width, and (fp8)
// every column group inside one 128-column scale block; false otherwise.
constexpr int kKnVecs = 8;
// Software prefetch distance in storage rows, into L2: a group reads 32-128 bytes of each row, rows
// 512 bytes apart (W_UK), a pattern the hardware prefetchers follow late (perf put most samples of
// the one-row kernel on the first load of each row).
constexpr int kKnAhead = 32;

// The storage rows [k0, k1) of columns [n0, n0 + width) of a [K, N] weight on their way into L2:
// the next column group's block, fetched while this one computes. A column group reads a short
// piece of every storage row (32 or 128 bytes of FP8 here, rows 512 bytes apart for MLA's W_UK),
// which the hardware prefetchers follow poorly: the first touch of each row waited on DRAM (perf
// put the samples on the instruction after the weight load). Measured on W_UK's absorption, 128
// heads of one mini layer, 2 threads, Zen 4 class: 8 rows of x 1.16-1.25 -> 0.99-1.09 ms. Not in
// gemv_kn_fused (one row of x): there it changed nothing (0.49-0.59 -> 0.52-0.53 ms).
inline void prefetch_kn_block(const WeightView& w, int64_t k0, int64_t k1, int64_t n0, int width) {
  const int64_t bytes = int64_t(width) * dtype_bits(w.dtype) / 8;
  for (int64_t k = k0; k < k1; ++k) {
    const char* p = w.element_ptr(k, n0);
    for (int64_t b = 0; b < bytes; b += 64) prefetch_l2(p + b);
  }
}

// Integer codes (u4 / u8 / i8, a W4A16 / W8A16 W_UK): ŵ = (stored - offset - z) * scale per
// vector, exactly as weight_row_f32 decodes it (each vector of kLanes columns inside one group),
// into the same chains.
template <DType WT>
void gemv_kn_int(const float* x, const WeightView& w, float* y) {
  constexpr int width = kKnVecs * kLanes;
  const int64_t N = w.rows, K = w.cols;
  parallel_for(N / width, 1, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t n0 = g * width;
      int64_t group_of[kKnVecs];  // each vector's scale group along the storage row
      for (int v = 0; v < kKnVecs; ++v) group_of[v] = (w.col0 + n0 + v * kLanes) / w.group;
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t k1 = std::min(K, k0 + kKc);
        VF acc[kKnVecs];
        for (VF& a : acc) a = zero();
        for (int64_t k = k0; k < k1; ++k) {
          const VF xv = set1(x[k]);
          const char* p = w.element_ptr(k, n0);
#pragma GCC unroll 8
          for (int v = 0; v < kKnVecs; ++v) {
            const VF s = set1(w.qscale_of_group(k, group_of[v]));
            const VF bias = set1(kIntOffset<WT> + float(w.zero_of_group(k, group_of[v])));
            const VF wv = mul(
                sub(load_int_codes<WT>(p + (WT == DType::u4 ? v * kLanes / 2 : v * kLanes)), bias),
                s);
            acc[v] = fma(xv, wv, acc[v]);
          }
        }
        for (int v = 0; v < kKnVecs; ++v) {  // y = s_0, then y = s_b + y
          float* yr = y + n0 + v * kLanes;
          store(yr, k0 > 0 ? add(acc[v], load(yr)) : acc[v]);
        }
      }
    }
  });
}

bool gemv_kn_fused(const float* x, const WeightView& w, float* y) {
  constexpr int width = kKnVecs * kLanes;
  const int64_t N = w.rows, K = w.cols;
  if (w.is_int()) {
    if (N % width != 0 || w.group % kLanes != 0 || w.col0 % kLanes != 0) return false;
    dispatch_int_dtype(w.dtype, [&]<DType WT>() { gemv_kn_int<WT>(x, w, y); });
    return true;
  }
  const bool fp8 = w.dtype == DType::fp8_e4m3;
  if (!(fp8 || w.dtype == DType::bf16 || w.dtype == DType::f32) || N % width != 0) return false;
  if (fp8 && ((w.col0 % kFp8BlockSize) + width > kFp8BlockSize || w.col0 % width != 0))
    return false;
  const int row_bytes = int(width * dtype_bits(w.dtype) / 8);
  parallel_for(N / width, 1, [&](int64_t g0, int64_t g1, int) {
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t n0 = g * width;
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t k1 = std::min(K, k0 + kKc);
        VF acc[kKnVecs];
        for (VF& a : acc) a = zero();
        for (int64_t k = k0; k < k1;) {
          // Rows up to the next 128-row scale block share one scale.
          const int64_t kb =
              fp8 ? std::min(k1, k + (kFp8BlockSize - (w.row0 + k) % kFp8BlockSize)) : k1;
          const float sc = fp8 ? w.scale_at(k, n0) : 1.0f;
          const bool raw = std::fabs(sc) < kFp8RawMaxScale;
          const VF s = set1(raw ? sc * kFp8RawScale : sc);
          for (; k < kb; ++k) {
            const VF xv = set1(x[k]);
            const char* p = w.element_ptr(k, n0);
            {  // the row kKnAhead on (past the block: the next group's), on its way into L2
              const int64_t ka = k + kKnAhead;
              const char* pa = ka < k1      ? w.element_ptr(ka, n0)
                               : g + 1 < g1 ? w.element_ptr(k0 + (ka - k1), n0 + width)
                                            : nullptr;
              if (pa)
                for (int b = 0; b < row_bytes; b += 64) prefetch_l2(pa + b);
            }
#pragma GCC unroll 8
            for (int v = 0; v < kKnVecs; ++v) {
              VF wv;
              if (w.dtype == DType::f32)
                wv = load(reinterpret_cast<const float*>(p) + v * kLanes);
              else if (w.dtype == DType::bf16)
                wv = load_bf16(reinterpret_cast<const uint16_t*>(p) + v * kLanes);
              else if (raw)
                wv = mul(load_fp8_raw(reinterpret_cast<const uint8_t*>(p) + v * kLanes), s);
              else
                wv = mul(load_fp8(reinterpret_cast<const uint8_t*>(p) + v * kLanes), s);
              acc[v] = fma(xv, wv, acc[v]);
            }
          }
        }
        for (int v = 0; v < kKnVecs; ++v) {  // y = s_0, then y = s_b + y
          float* yr = y + n0 + v * kLanes;
          store(yr, k0 > 0 ? add(acc[v], load(yr)) : acc[v]);
        }
      }
    }
  });
  return true;
}

template <bool kPairs>
void gemm_small(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  using Elem = std::conditional_t<kPairs, uint16_t, float>;
  const int64_t M = x.rows, N = w.rows, K = x.cols;
  // x as the micro-kernels read it, shared by all threads: f32 rows; for pairs bf16 rows with a
  // zero after an odd K (the last pair's second half). x itself where it already is that.
  const Elem* xa;
  int64_t ldx;
  if constexpr (kPairs) {
    if (K % 2 == 0) {
      xa = static_cast<const uint16_t*>(x.data), ldx = x.ld;
    } else {
      ldx = K + 1;
      uint16_t* c = gemm_scratch<uint16_t>(0, size_t(M * ldx));
      for (int64_t m = 0; m < M; ++m) {
        std::memcpy(c + m * ldx, static_cast<const uint16_t*>(x.data) + m * x.ld, size_t(K) * 2);
        c[m * ldx + K] = 0;
      }
      xa = c;
    }
  } else if (x.dtype == DType::f32) {
    xa = static_cast<const float*>(x.data), ldx = x.ld;
    if (M == 1 && w.kn && gemv_kn_fused(xa, w, y)) return;
  } else {
    ldx = K;
    float* c = gemm_scratch<float>(0, size_t(M * K));
    for (int64_t m = 0; m < M; ++m) {
      const uint16_t* src = static_cast<const uint16_t*>(x.data) + m * x.ld;
      int64_t k = 0;
      for (; k + kLanes <= K; k += kLanes) store(c + m * K + k, load_bf16(src + k));
      if (k < K) store_n(c + m * K + k, load_bf16_n(src + k, int(K - k)), int(K - k));
    }
    xa = c;
  }

  const int64_t groups = (N + kGroup - 1) / kGroup;
  const int64_t grain = std::clamp<int64_t>(groups / (4 * num_threads()), 1, 16);
  parallel_for(groups, grain, [&](int64_t g0, int64_t g1, int) {
    alignas(64) Elem panel[kSub * kGroup];
    float* acc = gemm_scratch<float>(2, size_t(M * kGroup));  // [M][kGroup]: one K block's sums
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t n0 = g * kGroup;
      const int cols = int(std::min<int64_t>(kGroup, N - n0));
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int kc = int(std::min<int64_t>(kKc, K - k0));
        if (g + 1 < g1)
          prefetch_kn_block(w, k0, k0 + kc, n0 + kGroup,
                            int(std::min<int64_t>(kGroup, N - n0 - kGroup)));
        for (int s = 0; s < kc; s += kSub) {
          const int len = std::min(kSub, kc - s);
          auto pass = [&]<int NV>() {
            for (int v = 0; v < kGroupVecs; v += NV) {
              const int c = std::clamp(cols - v * kLanes, 0, NV * kLanes);
              Elem* pv = panel + v * kLanes * (kPairs ? 2 : 1);
              if constexpr (kPairs)
                pack_b_pairs(pv, kGroup, NV * kLanes, w, n0 + v * kLanes, c, k0 + s, len);
              else
                pack_b_f32(pv, kGroup, NV * kLanes, w, n0 + v * kLanes, c, k0 + s, len);
              for (int64_t m = 0; m < M; m += kRowsPerPass)
                panel_rows<kPairs, NV>(int(std::min<int64_t>(kRowsPerPass, M - m)),
                                       acc + m * kGroup + v * kLanes, s > 0, len,
                                       xa + m * ldx + k0 + s, ldx, pv);
            }
          };
          static_assert(kGroupVecs == 2, "pass widths below are 1 and 2 lane blocks");
          if (pass_vecs(M) == 2)
            pass.template operator()<2>();
          else
            pass.template operator()<1>();
        }
        // y = s_0, then y = s_b + y, as store_accumulators does.
        for (int64_t m = 0; m < M; ++m) {
          const float* a = acc + m * kGroup;
          float* yr = y + m * ldy + n0;
          for (int j = 0; j < cols; j += kLanes) {
            const int n = std::min(kLanes, cols - j);
            VF r = load(a + j);
            if (n == kLanes) {
              if (k0 > 0) r = add(r, load(yr + j));
              store(yr + j, r);
            } else {
              if (k0 > 0) r = add(r, load_n(yr + j, n));
              store_n(yr + j, r, n);
            }
          }
        }
      }
    }
  });
}

// ---- GEMM: packed panels and the register micro-kernel ---------------------------------------
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
  Elem* a_packed = gemm_scratch<Elem>(0, size_t(strips * k_blocks * a_block));
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
    Elem* b_panel = gemm_scratch<Elem>(1, size_t(b_block));  // this thread's own
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * nc, ncols = std::min(nc, N - n0);
      const int64_t panels = (ncols + kPanelNR - 1) / kPanelNR;
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int kc = int(std::min<int64_t>(kKc, K - kb * kKc));
        for (int64_t p = 0; p < panels; ++p) {  // B block: `panels` panels of kc x NR
          const int cols = int(std::min<int64_t>(kPanelNR, ncols - p * kPanelNR));
          Elem* dst = b_panel + p * int64_t(kKc) * kPanelNR;
          if constexpr (kPairs)
            pack_b_pairs(dst, kPanelNR, kPanelNR, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
          else
            pack_b_f32(dst, kPanelNR, kPanelNR, w, n0 + p * kPanelNR, cols, kb * kKc, kc);
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

// [N, K] weights: the dot form (gemm_rows.isa.cpp).
void gemm_rows_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy, bool pairs);

// Integer codes in the pair form (gemm_int_pairs.isa.cpp), and where it applies.
bool int_pairs_apply(const WeightView& w);
void gemm_int_pairs_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy);

void gemm_kernel(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  // bf16 pair panels only where no precision is lost beyond bf16 activations: bf16 weights, fp8
  // weights (fp8 times a ue8m0 scale is exact in bf16) and integer codes (exact; their scales
  // multiply f32 sums); and only where this CPU's native dot is the faster way
  // (core/cpu_features.h).
  const bool native = kNativeBf16Dot && bf16_dot_preferred() && x.dtype == DType::bf16;
  if (native && int_pairs_apply(w)) return gemm_int_pairs_kernel(x, w, y, ldy);
  const bool pairs = native && (w.dtype == DType::bf16 || w.dtype == DType::fp8_e4m3);
  if (!w.kn) return gemm_rows_kernel(x, w, y, ldy, pairs);
  // Which algorithm is a matter of speed only: both give the same bits.
  if (x.rows <= kGemvMaxRows)
    pairs ? gemm_small<true>(x, w, y, ldy) : gemm_small<false>(x, w, y, ldy);
  else
    pairs ? gemm_packed<true>(x, w, y, ldy) : gemm_packed<false>(x, w, y, ldy);
}

}  // namespace dsinfer::DSINFER_ISA_NS
