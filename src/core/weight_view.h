// A linear layer's weight as stored in the checkpoint: f32, bf16, f16, or fp8 e4m3 with
// 128 x 128 block scales (`scale_inv`, as in the HF checkpoints: the real weight is
// w[r][c] * scale_inv[r / 128][c / 128] for storage row r and column c; edge blocks may be
// partial).
//
// Logically it is always W[N, K] for y = x . W^T. Storage is row-major [N, K] (the usual Linear
// layout) or, with `kn`, [K, N] (e.g. MLA's W_UK used as q_nope . W_UK). A view may start inside
// a bigger weight (one head's rows of kv_b_proj): row0/col0 place its first storage element in the
// block-scale grid, and scale_inv points at that grid's first row.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

inline constexpr int64_t kFp8BlockSize = 128;

struct WeightView {
  DType dtype = DType::f32;  // f32, bf16, f16 or fp8_e4m3
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;        // N, K (logical)
  int64_t ld = 0;                    // elements between storage rows
  const float* scale_inv = nullptr;  // fp8 only: the block-scale grid, row-major
  int64_t scale_ld = 0;              // fp8 only: elements between scale rows
  bool kn = false;                   // storage is [K, N] instead of [N, K]
  int64_t row0 = 0, col0 = 0;        // storage offset of data[0] within the scale grid

  // The scale of storage element (r, c) of this view.
  float scale_at(int64_t r, int64_t c) const {
    return scale_inv[((row0 + r) / kFp8BlockSize) * scale_ld + (col0 + c) / kFp8BlockSize];
  }
  // Storage rows [first, first + n) as a view of their own (same scale grid).
  WeightView storage_rows(int64_t first, int64_t n) const {
    WeightView v = *this;
    v.row0 = row0 + first;
    v.data = static_cast<const char*>(data) + first * ld * int64_t(dtype_size(dtype));
    (kn ? v.cols : v.rows) = n;
    return v;
  }
};

// Where the scale block holding position i ends, capped at `end`, along an axis whose position 0
// is `offset` in the scale grid (row0 or col0): loops step through segments of one scale each.
inline int64_t scale_block_end(int64_t i, int64_t end, int64_t offset) {
  return std::min(end, i + (kFp8BlockSize - (offset + i) % kFp8BlockSize));
}

}  // namespace dsinfer
