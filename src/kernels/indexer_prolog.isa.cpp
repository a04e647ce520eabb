// Indexer prolog row ops in the tile layer (compiled once per ISA).
#include <cmath>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/indexer_prolog.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

constexpr int kN = 128, kV = kN / kLanes;  // vectors per 128-row

// H_kLanes rows as sign vectors: sign[b][l] = (-1)^popcount(b & l).
struct LaneHadamard {
  alignas(64) float sign[kLanes][kLanes];
  LaneHadamard() {
    for (int b = 0; b < kLanes; ++b)
      for (int l = 0; l < kLanes; ++l) sign[b][l] = __builtin_popcount(b & l) & 1 ? -1.0f : 1.0f;
  }
};

// H_128 = H_(128/kLanes) (x) H_kLanes on index i = a * kLanes + l: butterflies across the kV
// vectors, then within each vector y = sum_b x[b] * sign row b (exact: +-x sums).
inline void hadamard_row(float* x, const LaneHadamard& lh) {
  VF v[kV];
#pragma GCC unroll 16
  for (int a = 0; a < kV; ++a) v[a] = load(x + a * kLanes);
#pragma GCC unroll 16
  for (int h = 1; h < kV; h *= 2)
#pragma GCC unroll 16
    for (int a = 0; a < kV; ++a)
      if ((a & h) == 0) {
        const VF u = v[a], w = v[a + h];
        v[a] = add(u, w);
        v[a + h] = sub(u, w);
      }
  alignas(64) float tmp[kN];
#pragma GCC unroll 16
  for (int a = 0; a < kV; ++a) store(tmp + a * kLanes, v[a]);
  const VF norm = set1(0.08838834764831845f);  // 1 / sqrt(128)
  for (int a = 0; a < kV; ++a) {
    VF y = mul(set1(tmp[a * kLanes]), load(lh.sign[0]));
#pragma GCC unroll 16
    for (int b = 1; b < kLanes; ++b) y = fma(set1(tmp[a * kLanes + b]), load(lh.sign[b]), y);
    store(x + a * kLanes, mul(y, norm));
  }
}

}  // namespace

void hadamard_128_kernel(float* x, int64_t n_rows) {
  static const LaneHadamard lh;
  parallel_for(n_rows, 64, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) hadamard_row(x + r * kN, lh);
  });
}

void quantize_fp8_blocks_kernel(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                                float* scale_out) {
  parallel_for(n_blocks, 64, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* xb = x + b * kN;
      // max |x|; NaN lanes are dropped (max(NaN, m) keeps m with the operand order used here).
      VF m = zero();
      for (int a = 0; a < kV; ++a) m = max(abs(load(xb + a * kLanes)), m);
      const float scale = fp8_block_scale(reduce_max(m), ue8m0_scale);
      scale_out[b] = scale;
      // x / scale encoded (saturating to +-448, NaN kept as the NaN code).
      const VF sv = set1(scale);
      for (int a = 0; a < kV; ++a)
        store_fp8(q_out + b * kN + a * kLanes, div(load(xb + a * kLanes), sv));
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
