// Tiles: the unit every kernel in src/kernels works on.
//
// A Tile<R, C> is an f32 block of compile-time maximum shape R x C (so loops over it unroll and
// it can live in registers or L1) with a runtime *valid* extent rows x cols: tails are handled by
// loading fewer rows/columns and zero-filling the rest, never by special-case code in kernels.
// C is a multiple of the vector width so every row is whole vectors.
//
// This header and the tile op headers are ISA-generic: they are written against the simd::
// primitives of tile/backend.h and compiled once per ISA inside DSINFER_ISA_NS.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "tile/backend.h"

namespace dsinfer::DSINFER_ISA_NS::tile {

using namespace simd;

template <int R, int C>
struct Tile {
  static_assert(C % kLanes == 0, "tile columns must be whole vectors");
  static constexpr int kRows = R, kCols = C, kVecs = C / kLanes;
  alignas(64) float v[R][C];
  int rows = R, cols = C;  // valid extent

  float* row(int r) { return v[r]; }
  const float* row(int r) const { return v[r]; }
  VF vec(int r, int j) const { return load(v[r] + j * kLanes); }
  void set_vec(int r, int j, VF x) { store(v[r] + j * kLanes, x); }
};

// Element types a tile can be loaded from / stored to. bf16 and f16 are 16-bit codes.
struct Bf16Src {
  const uint16_t* p;
};

// ---- per-row conversion: n elements (n <= C) of src into an f32 row, zero past n ----------------
template <int C>
inline void convert_row(float* dst, const float* src, int n) {
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) store(dst + j, load(src + j));
  if (j < n) store(dst + j, load_n(src + j, n - j)), j += kLanes;
  for (; j < C; j += kLanes) store(dst + j, zero());
}
template <int C>
inline void convert_row(float* dst, const bf16* src, int n) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) store(dst + j, load_bf16(s + j));
  if (j < n) store(dst + j, load_bf16_n(s + j, n - j)), j += kLanes;
  for (; j < C; j += kLanes) store(dst + j, zero());
}
template <int C>
inline void convert_row(float* dst, const fp8_e4m3* src, int n) {
  const uint8_t* s = reinterpret_cast<const uint8_t*>(src);
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) store(dst + j, load_fp8(s + j));
  if (j < n) store(dst + j, load_fp8_n(s + j, n - j)), j += kLanes;
  for (; j < C; j += kLanes) store(dst + j, zero());
}

// f32 row -> destination dtype, n elements.
inline void store_row(float* dst, const float* src, int n) {
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) store(dst + j, load(src + j));
  if (j < n) store_n(dst + j, load(src + j), n - j);
}
inline void store_row(bf16* dst, const float* src, int n) {
  uint16_t* d = reinterpret_cast<uint16_t*>(dst);
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) store_bf16(d + j, load(src + j));
  if (j < n) store_bf16_n(d + j, load(src + j), n - j);
}

}  // namespace dsinfer::DSINFER_ISA_NS::tile
