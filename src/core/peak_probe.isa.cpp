// The probe's inner loops, compiled once per ISA.
#include <cstddef>
#include <cstdint>

#include "tile/backend.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace simd;

// 12 independent accumulator chains: enough to cover FMA latency x pipes on every target here.
double probe_fma_loop(int64_t iters) {
  VF acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = set1(0.001f * j);
  const VF b = set1(0.999f), c = set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = fma(acc[j], b, c);
  }
  VF s = zero();
  for (int j = 0; j < 12; ++j) s = add(s, acc[j]);
  return reduce_add(s);
}
double probe_fma_flops_per_iter() {
  return 12.0 * kLanes * 2;
}

double probe_bf16_loop(int64_t iters) {
  if constexpr (!kNativeBf16Dot) {
    return probe_fma_loop(iters);
  } else {
    VF acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = set1(0.001f * j);
    uint16_t pa[2] = {0x3f80, 0x3f00}, pb[2] = {0x3c00, 0x3b00};  // 1, 0.5, small values
    const VB a = broadcast_pair(pa), b = broadcast_pair(pb);
    for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
      for (int j = 0; j < 12; ++j) acc[j] = dot_pairs(acc[j], a, b);
    }
    VF s = zero();
    for (int j = 0; j < 12; ++j) s = add(s, acc[j]);
    return reduce_add(s);
  }
}
double probe_bf16_flops_per_iter() {
  return kNativeBf16Dot ? 12.0 * kLanes * 4 : 12.0 * kLanes * 2;
}

// 12 independent chains of int8 dot products (gemm_int8's inner step).
double probe_int8_loop(int64_t iters) {
  VI acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = first_lane(j);
  uint8_t ua[4 * kLanes], sb[4 * kLanes];
  for (int i = 0; i < 4 * kLanes; ++i) ua[i] = uint8_t(i), sb[i] = uint8_t(i % 3);
  const VQ a = load_q(ua), b = load_q(sb);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = dot_u8s8(acc[j], a, b);
  }
  VF s = zero();
  for (int j = 0; j < 12; ++j) s = add(s, to_f32(acc[j]));
  return reduce_add(s);
}
double probe_int8_ops_per_iter() {
  return 12.0 * kLanes * 4 * 2;
}

// Sums n floats (n a multiple of 8 * kLanes) with 8 independent accumulators.
double probe_read_loop(const float* p, int64_t n) {
  VF acc[8];
  for (int j = 0; j < 8; ++j) acc[j] = zero();
  for (int64_t i = 0; i < n; i += 8 * kLanes) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) acc[j] = add(acc[j], load(p + i + j * kLanes));
  }
  VF s = zero();
  for (int j = 0; j < 8; ++j) s = add(s, acc[j]);
  return reduce_add(s);
}

}  // namespace dsinfer::DSINFER_ISA_NS
