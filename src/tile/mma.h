// Tile matrix multiply-accumulate with f32 accumulation:
//   mma_AB  : C[M, N] += A[M, K] . B[K, N]      (outer products: broadcast A, stream B rows)
//   mma_ABt : C[M, N] += A[M, K] . B[N, K]^T    (inner products along K: both K-contiguous)
// K is A's valid column count; padding in A/B is zero (tile loads guarantee it), so whole
// vectors can be used along K. Register blocking is internal; callers see the math only.
#pragma once

#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS::tile {

// ---- the register micro-kernel -----------------------------------------------------------------
// acc[i][v] += sum_{k < K} a[i * a_row + k * a_k] * b[k * ldb + v * kLanes .. + kLanes): RM rows
// of A broadcast against NV vectors of each B row, RM x NV accumulators in registers. Every
// "broadcast A, stream B" product is this loop: the GEMM panels (A packed k-major), the lightning
// indexer's key x head scores and the attention's key x head scores (A = key rows).
template <int RM, int NV>
inline void clear(VF (&acc)[RM][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = zero();
}
template <int RM, int NV>
inline void mma_outer(VF (&acc)[RM][NV], int K, const float* a, int64_t a_row, int64_t a_k,
                      const float* b, int64_t ldb) {
  for (int k = 0; k < K; ++k) {
    VF bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = load(b + k * ldb + v * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < RM; ++i) {
      const VF av = set1(a[i * a_row + k * a_k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = fma(av, bv[v], acc[i][v]);
    }
  }
}

// The same product on an RM x (NV vectors) block of C in memory (row stride ldc): the block is
// loaded (accumulate) or zeroed, multiplied in registers, and stored back.
template <int RM, int NV>
inline void mma_outer_at(float* c, int64_t ldc, bool accumulate, int K, const float* a,
                         int64_t a_row, int64_t a_k, const float* b, int64_t ldb) {
  VF acc[RM][NV];
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? load(c + i * ldc + v * kLanes) : zero();
  mma_outer(acc, K, a, a_row, a_k, b, ldb);
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) store(c + i * ldc + v * kLanes, acc[i][v]);
}

// The bf16-pair form (vdpbf16ps where it is native): acc[i][v] = dot_pairs(acc[i][v], pair p of A
// row i, pairs p of B) for p < KP in order. A's pair (i, p) is at a + i * a_row + p * a_p, B's
// row p of NV * kLanes pairs at b + p * ldb (all in bf16 elements).
template <int RM, int NV>
inline void mma_pairs(VF (&acc)[RM][NV], int KP, const uint16_t* a, int64_t a_row, int64_t a_p,
                      const uint16_t* b, int64_t ldb) {
  for (int p = 0; p < KP; ++p) {
    VB bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = load_pairs(b + p * ldb + v * 2 * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < RM; ++i) {
      const VB av = broadcast_pair(a + i * a_row + p * a_p);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = dot_pairs(acc[i][v], av, bv[v]);
    }
  }
}
template <int RM, int NV>
inline void mma_pairs_at(float* c, int64_t ldc, bool accumulate, int KP, const uint16_t* a,
                         int64_t a_row, int64_t a_p, const uint16_t* b, int64_t ldb) {
  VF acc[RM][NV];
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? load(c + i * ldc + v * kLanes) : zero();
  mma_pairs(acc, KP, a, a_row, a_p, b, ldb);
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) store(c + i * ldc + v * kLanes, acc[i][v]);
}

namespace detail {

// RM rows of C x all N columns (in NV-vector column blocks) of mma_AB.
template <int RM, int NV, int M, int N, int K>
inline void mma_ab_block(Tile<M, N>& c, const Tile<M, K>& a, const Tile<K, N>& b, int i0, int j0) {
  mma_outer_at<RM, NV>(&c.v[i0][j0 * kLanes], N, true, a.cols, &a.v[i0][0], K, 1,
                       &b.v[0][j0 * kLanes], N);
}

// RM x RN block of mma_ABt: RM rows of A against RN rows of B, vector partial sums along K.
template <int RM, int RN, int M, int N, int K>
inline void mma_abt_block(Tile<M, N>& c, const Tile<M, K>& a, const Tile<N, K>& b, int i0, int j0) {
  VF acc[RM][RN];
  clear(acc);
  const int kv = (a.cols + kLanes - 1) / kLanes;
  for (int k = 0; k < kv; ++k) {
    VF bv[RN];
#pragma GCC unroll 16
    for (int j = 0; j < RN; ++j) bv[j] = b.vec(j0 + j, k);
#pragma GCC unroll 16
    for (int i = 0; i < RM; ++i) {
      const VF av = a.vec(i0 + i, k);
#pragma GCC unroll 16
      for (int j = 0; j < RN; ++j) acc[i][j] = fma(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < RN; ++j) c.v[i0 + i][j0 + j] += reduce_add(acc[i][j]);
}

}  // namespace detail

template <int M, int N, int K>
inline void mma_AB(Tile<M, N>& c, const Tile<M, K>& a, const Tile<K, N>& b) {
  constexpr int NV = Tile<M, N>::kVecs;
  constexpr int kBlockV = NV % 2 == 0 ? 2 : 1;  // column vectors per register block
  constexpr int kBlockR = kLanes == 16 ? 8 : 4;
  for (int j = 0; j < NV; j += kBlockV) {
    int i = 0;
    for (; i + kBlockR <= a.rows; i += kBlockR)
      detail::mma_ab_block<kBlockR, kBlockV>(c, a, b, i, j);
    for (; i < a.rows; ++i) detail::mma_ab_block<1, kBlockV>(c, a, b, i, j);
  }
}

template <int M, int N, int K>
inline void mma_ABt(Tile<M, N>& c, const Tile<M, K>& a, const Tile<N, K>& b) {
  constexpr int RM = 2, RN = 4;
  int i = 0;
  for (; i + RM <= a.rows; i += RM) {
    int j = 0;
    for (; j + RN <= b.rows; j += RN) detail::mma_abt_block<RM, RN>(c, a, b, i, j);
    for (; j < b.rows; ++j) detail::mma_abt_block<RM, 1>(c, a, b, i, j);
  }
  for (; i < a.rows; ++i) {
    int j = 0;
    for (; j + RN <= b.rows; j += RN) detail::mma_abt_block<1, RN>(c, a, b, i, j);
    for (; j < b.rows; ++j) detail::mma_abt_block<1, 1>(c, a, b, i, j);
  }
}

}  // namespace dsinfer::DSINFER_ISA_NS::tile
