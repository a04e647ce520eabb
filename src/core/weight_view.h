// A linear layer's weight as stored in the checkpoint: f32, bf16, f16, or fp8 e4m3 with
// 128 x 128 block scales (`scale_inv`, as in the HF checkpoints: the real weight is
// w[r][c] * scale_inv[r / 128][c / 128] for storage row r and column c; edge blocks may be
// partial), or integer codes with group scales (compressed-tensors INT4 / INT8,
// docs/checkpoints.md): u4 (two codes per byte, low nibble first) or u8 codes offset by 2^(bits-1),
// or i8 codes, and the real weight is (code - offset - qzero[r][c / group]) * qscale[r][c / group],
// qscale in f32, bf16 or f16, qzero the signed zero points of asymmetric checkpoints (none: 0).
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
  // Integer weights (u4, u8, i8) only: one scale per `group` storage columns of a storage row.
  const void* qscale = nullptr;
  DType qscale_dtype = DType::f32;  // f32, bf16 or f16
  int64_t qscale_ld = 0;            // elements between scale rows
  int64_t group = 0;                // columns per scale (the whole row for channel-wise)
  const int8_t* qzero = nullptr;    // asymmetric only: signed zero points, one per scale
  int64_t qzero_ld = 0;             // elements between zero-point rows

  bool is_int() const { return is_int_dtype(dtype); }
  static constexpr bool is_int_dtype(DType t) {
    return t == DType::u4 || t == DType::u8 || t == DType::i8;
  }
  // Byte address of storage element (r, c) (for u4: of the byte holding it).
  const char* element_ptr(int64_t r, int64_t c) const {
    return static_cast<const char*>(data) + (r * ld + c) * dtype_bits(dtype) / 8;
  }

  // The scale of storage element (r, c) of this view.
  float scale_at(int64_t r, int64_t c) const {
    return scale_inv[((row0 + r) / kFp8BlockSize) * scale_ld + (col0 + c) / kFp8BlockSize];
  }
  // The integer scale of storage element (r, c) of this view, as f32.
  float qscale_at(int64_t r, int64_t c) const { return qscale_of_group(r, (col0 + c) / group); }
  // Scale g of row r (the storage row's columns [g * group, (g + 1) * group)), as f32.
  float qscale_of_group(int64_t r, int64_t g) const {
    const int64_t i = (row0 + r) * qscale_ld + g;
    switch (qscale_dtype) {
      case DType::bf16:
        return bf16_to_f32(static_cast<const bf16*>(qscale)[i]);
      case DType::f16:
        return f16_to_f32(static_cast<const f16*>(qscale)[i]);
      default:
        return static_cast<const float*>(qscale)[i];
    }
  }
  // The zero point of storage element (r, c) (0 for symmetric weights).
  int zero_at(int64_t r, int64_t c) const { return zero_of_group(r, (col0 + c) / group); }
  int zero_of_group(int64_t r, int64_t g) const {
    return qzero ? int(qzero[(row0 + r) * qzero_ld + g]) : 0;
  }
  // The integer code of storage element (r, c) minus its offset: the signed value.
  int int_code_at(int64_t r, int64_t c) const {
    const uint8_t b = static_cast<uint8_t>(*element_ptr(r, c));
    if (dtype == DType::i8) return int(static_cast<int8_t>(b));
    if (dtype == DType::u4) return int((c % 2 ? b >> 4 : b) & 15) - 8;  // data: an even column
    return int(b) - 128;
  }
  // The exact value of storage element (r, c), scales applied (in double: one product, no rounding
  // for any dtype here): the plain decode the references use.
  double value_at(int64_t r, int64_t c) const {
    const int64_t i = r * ld + c;
    switch (dtype) {
      case DType::f32:
        return static_cast<const float*>(data)[i];
      case DType::bf16:
        return bf16_to_f32(static_cast<const bf16*>(data)[i]);
      case DType::f16:
        return f16_to_f32(static_cast<const f16*>(data)[i]);
      case DType::u4:
      case DType::u8:
      case DType::i8:
        return double(int_code_at(r, c) - zero_at(r, c)) * qscale_at(r, c);
      default:
        return double(fp8_e4m3_to_f32(static_cast<const fp8_e4m3*>(data)[i])) * scale_at(r, c);
    }
  }
  // Storage rows [first, first + n) as a view of their own (same scale grid).
  WeightView storage_rows(int64_t first, int64_t n) const {
    WeightView v = *this;
    v.row0 = row0 + first;
    v.data = element_ptr(first, 0);
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
