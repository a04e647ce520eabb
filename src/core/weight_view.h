// A linear layer's weight W[N, K] (row-major, K contiguous) as stored in the checkpoint:
// f32, bf16, or fp8 e4m3 with 128 x 128 block scales (`scale_inv`, as in the HF checkpoints:
// the real weight is w[n][k] * scale_inv[n / 128][k / 128]; edge blocks may be partial).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

struct WeightView {
  DType dtype = DType::f32;  // f32, bf16 or fp8_e4m3
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;        // N, K
  int64_t ld = 0;                    // elements between rows (>= cols)
  const float* scale_inv = nullptr;  // fp8 only: [ceil(N/128), scale_ld]
  int64_t scale_ld = 0;              // fp8 only: >= ceil(K/128)
};

inline constexpr int kFp8BlockSize = 128;

}  // namespace dsinfer
