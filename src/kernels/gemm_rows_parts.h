// The parts both [N, K]-weight GEMMs share (gemm_rows.isa.cpp: float and bf16 weights, FP8, and
// integer codes in the f32 form; gemm_int_pairs.isa.cpp: integer codes in the pair form): the
// chain's two forms and micro-kernel, x as the A operand, x packed for the GEMM, and the
// per-group reduction of the small-M kernels. Included by per-ISA sources only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/gemm_scratch.h"
#include "tile/panel.h"

namespace dsinfer::DSINFER_ISA_NS::gemm_rows_parts {

using namespace tile;

inline constexpr int kKc = 2048;  // K block: the unit of the canonical order

// Scratch slots (gemm_scratch.h): 0 x as f32, 1 weight rows, 2 partial sums, 3 packed x.

// The two forms of the chain: f32 FMAs over kLanes columns, or bf16 pairs over 2 * kLanes.
template <bool kPairs>
struct Form;
template <>
struct Form<false> {
  using E = float;
  using V = VF;
  static constexpr int kChunk = kLanes;
  static V load(const E* p) { return tile::load(p); }
  static V load_n(const E* p, int n) { return tile::load_n(p, n); }
  static VF dot(VF acc, V a, V b) { return fma(a, b, acc); }
};
template <>
struct Form<true> {
  using E = uint16_t;
  using V = VB;
  static constexpr int kChunk = 2 * kLanes;
  static V load(const E* p) { return load_pairs(p); }
  static V load_n(const E* p, int n) { return as_pairs(load_words_n(p, 2 * n)); }
  static VF dot(VF acc, V a, V b) { return dot_pairs(acc, a, b); }
};

// acc[i][j] continues the chain over columns [0, len) of A row i and B row j: chunk c of A row i at
// a + i * a_rs + c * a_cs (likewise B), the last chunk zero-padded (masked loads: nothing past len
// is read; panels padded to whole chunks never take that path).
template <bool kPairs, int MR, int NR>
[[gnu::always_inline]] inline void dot_block(VF (&acc)[MR][NR], int len,
                                             const typename Form<kPairs>::E* a, int64_t a_rs,
                                             int64_t a_cs, const typename Form<kPairs>::E* b,
                                             int64_t b_rs, int64_t b_cs) {
  using F = Form<kPairs>;
  const int chunks = len / F::kChunk;
  for (int c = 0; c < chunks; ++c, a += a_cs, b += b_cs) {
    typename F::V bv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) bv[j] = F::load(b + j * b_rs);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const typename F::V av = F::load(a + i * a_rs);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] = F::dot(acc[i][j], av, bv[j]);
    }
  }
  if (const int n = len - chunks * F::kChunk; n > 0) {
    typename F::V bv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) bv[j] = F::load_n(b + j * b_rs, n);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const typename F::V av = F::load_n(a + i * a_rs, n);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] = F::dot(acc[i][j], av, bv[j]);
    }
  }
}

// x as the chain's A operand: x itself, or a copy (f32 form on bf16 x: widened) shared by all
// threads. Small batches are copied with a row stride off the power-of-two grid: rows of x and W
// 4 or 8 KB apart all land in one L1 set, more of them than it has ways.
inline int64_t unaligned_ld(int64_t K) {
  return (K + 31) / 32 * 32 + 32;
}
template <bool kPairs>
const typename Form<kPairs>::E* a_operand(const GemmInput& x, int64_t& lda) {
  const int64_t M = x.rows, K = x.cols;
  const bool small = M > 1 && M <= kGemvMaxRows;
  if constexpr (kPairs) {
    lda = x.ld;
    const uint16_t* src = static_cast<const uint16_t*>(x.data);
    if (!small || x.ld % 1024 != 0) return src;
    lda = unaligned_ld(K);
    uint16_t* c = gemm_scratch<uint16_t>(0, size_t(M * lda));
    for (int64_t m = 0; m < M; ++m) std::memcpy(c + m * lda, src + m * x.ld, size_t(K) * 2);
    return c;
  } else {
    if (x.dtype == DType::f32 && (!small || x.ld % 1024 != 0)) {
      lda = x.ld;
      return static_cast<const float*>(x.data);
    }
    lda = small ? unaligned_ld(K) : K;
    float* c = gemm_scratch<float>(0, size_t(M * lda));
    for (int64_t m = 0; m < M; ++m) {
      if (x.dtype == DType::f32) {
        std::memcpy(c + m * lda, static_cast<const float*>(x.data) + m * x.ld, size_t(K) * 4);
        continue;
      }
      const uint16_t* src = static_cast<const uint16_t*>(x.data) + m * x.ld;
      int64_t k = 0;
      for (; k + kLanes <= K; k += kLanes) store(c + m * lda + k, load_bf16(src + k));
      if (k < K) store_n(c + m * lda + k, load_bf16_n(src + k, int(K - k)), int(K - k));
    }
    return c;
  }
}

// y[m, n] = s (first K block) or s + y[m, n].
inline void accumulate_out(float* y, float s, bool first) {
  *y = first ? s : s + *y;
}

// The GEMMs' blocking. Register block: kMR rows of x x kNR rows of W = kLanes accumulators, one
// reduce_lanes. x strips (kMR rows) that stay in L2 together, and weight rows per task (a K block
// of them stays in L2): sized for bf16 operands, halved for f32 ones.
inline constexpr int kMR = kLanes == 16 ? 4 : 2, kNR = 4;
static_assert(kMR * kNR == kLanes);
template <class E>
inline constexpr int64_t kStripsPerGroup = 12 * 2 / int64_t(sizeof(E));
template <class E>
inline constexpr int64_t kMaxNc = 64 * 2 / int64_t(sizeof(E));
// Weight rows per GEMM task: about four tasks per thread, whole register blocks, at most kMaxNc.
template <class E>
inline int64_t task_rows(int64_t N) {
  const int threads = num_threads();
  const int64_t nc = (N + 4 * threads - 1) / (4 * threads);
  return std::clamp<int64_t>((nc + kNR - 1) / kNR * kNR, kNR, kMaxNc<E>);
}

// x packed once for the GEMM, shared by every thread: [strip][K block][chunk][MR rows][C], zero
// past M and past each block's columns (so the micro-kernel runs whole chunks on both operands).
template <class E, int MR, int C>
E* pack_x(const E* xa, int64_t lda, int64_t M, int64_t K) {
  const int64_t strips = (M + MR - 1) / MR, k_blocks = (K + kKc - 1) / kKc;
  const int64_t a_block = int64_t(kKc) * MR;
  E* a_packed = gemm_scratch<E>(3, size_t(strips * k_blocks * a_block));
  parallel_for(strips * k_blocks, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t st = blk / k_blocks, k0 = (blk % k_blocks) * kKc;
      const int kc = int(std::min<int64_t>(kKc, K - k0)), chunks = (kc + C - 1) / C;
      E* dst = a_packed + blk * a_block;
      for (int i = 0; i < MR; ++i) {
        const int64_t m = st * MR + i;
        for (int c = 0; c < chunks; ++c) {
          E* d = dst + (c * MR + i) * C;
          const int n = std::min(C, kc - c * C);
          if (m < M) {
            std::memcpy(d, xa + m * lda + k0 + c * C, size_t(n) * sizeof(E));
            std::memset(d + n, 0, size_t(C - n) * sizeof(E));
          } else {
            std::memset(d, 0, size_t(C) * sizeof(E));
          }
        }
      }
    }
  });
  return a_packed;
}

// The small-M kernels' end of a group of kLanes weight rows from n0 (`rows` of them real): the
// chains part[(kb * M + m) * kLanes + r] of every K block reduced (one reduce_lanes per x row and
// block) and summed into y in block order.
inline void reduce_group(const VF* part, int64_t K, int M, int64_t n0, int rows, float* y,
                         int64_t ldy) {
  for (int64_t k0 = 0, kb = 0; k0 < K; k0 += kKc, ++kb)
    for (int m = 0; m < M; ++m) {
      VF v[kLanes];
      for (int i = 0; i < kLanes; ++i) v[i] = part[(kb * M + m) * kLanes + i];
      alignas(64) float s[kLanes];
      store(s, reduce_lanes(v));
      for (int i = 0; i < rows; ++i) accumulate_out(y + m * ldy + n0 + i, s[i], k0 == 0);
    }
}

// f.template operator()<M>() for the small-M kernels' M (1 .. kGemvMaxRows).
template <class F>
inline void with_small_m(int64_t M, F&& f) {
  static_assert(kGemvMaxRows == 8);
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((M == I + 1 ? (f.template operator()<I + 1>(), 0) : 0), ...);
  }
  (std::make_integer_sequence<int, 8>{});
}

// The GEMMs' register block: MR rows of x x NR rows of W = kLanes chains, reduced by one
// reduce_lanes and summed into y's rows m0.. (mr of them real) and columns n0.. (cols real).
template <int MR, int NR>
inline void reduce_block(const VF (&acc)[MR][NR], int mr, int cols, float* y, int64_t ldy,
                         int64_t m0, int64_t n0, bool first) {
  static_assert(MR * NR == kLanes);
  VF v[kLanes];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) v[i * NR + j] = acc[i][j];
  alignas(64) float sums[kLanes];
  store(sums, reduce_lanes(v));
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < cols; ++j)
      accumulate_out(y + (m0 + i) * ldy + n0 + j, sums[i * NR + j], first);
}

}  // namespace dsinfer::DSINFER_ISA_NS::gemm_rows_parts
