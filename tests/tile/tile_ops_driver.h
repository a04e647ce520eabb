// Entry points into the tile layer for tests, compiled once per ISA (tile_ops_driver.isa.cpp).
// Every tile here is Tile<kRows, kCols> passed as a dense kRows x kCols f32 array.
#pragma once

#include <cstdint>

#include "core/dispatch.h"
#include "core/dtype.h"

namespace dsinfer::tile_test {
inline constexpr int kRows = 16, kCols = 64;
enum class MapOp { scale, relu, exp, silu };
}  // namespace dsinfer::tile_test

namespace dsinfer {
DSINFER_DECLARE_PER_ISA(void, tt_load_f32, (const float*, int64_t, int, int, float*));
DSINFER_DECLARE_PER_ISA(void, tt_load_bf16, (const bf16*, int64_t, int, int, float*));
DSINFER_DECLARE_PER_ISA(void, tt_load_fp8_scaled,
                        (const fp8_e4m3*, int64_t, const float*, int, int, float*));
// The fast fp8 weight decode (load_fp8_raw): n codes (a multiple of 64) to f32.
DSINFER_DECLARE_PER_ISA(void, tt_load_fp8_raw, (const uint8_t*, int, float*));
DSINFER_DECLARE_PER_ISA(void, tt_load_i8, (const int8_t*, int, int, float*));
DSINFER_DECLARE_PER_ISA(int, tt_lanes, ());
// out[l] = acc[l] + dots of lane l's byte quads: u . s, low_nibbles(u) . s, high_nibbles(u) . s,
// flip_bytes(u) . broadcast_quad(s), then acc[l] * m (load_i, mul_i, set1_i); 5 * lanes outputs
// (the int8 dot ops).
DSINFER_DECLARE_PER_ISA(void, tt_int8_dots,
                        (const uint8_t*, const uint8_t*, const int32_t*, int32_t, int32_t*));
// reduce_lanes of kLanes vectors (in: kLanes * kLanes floats) into kLanes sums.
DSINFER_DECLARE_PER_ISA(void, tt_reduce_lanes, (const float*, float*));
// reduce_lanes_i of kLanes int32 vectors into kLanes sums.
DSINFER_DECLARE_PER_ISA(void, tt_reduce_lanes_i, (const int32_t*, int32_t*));
// fp8_to_bf16_pow2 on 2 * kLanes codes: the bf16 bits, and whether a subnormal code was there.
DSINFER_DECLARE_PER_ISA(uint32_t, tt_fp8_to_bf16_pow2, (const uint8_t*, int, uint16_t*));
// fp8_to_bf16_normal on 2 * kLanes codes; fp8_any_zero_exponent on n codes.
DSINFER_DECLARE_PER_ISA(void, tt_fp8_to_bf16_normal, (const uint8_t*, int, uint16_t*));
DSINFER_DECLARE_PER_ISA(bool, tt_fp8_any_zero_exponent, (const uint8_t*, int));
// column_pairs of kLanes rows (stride ld) of 2 * kLanes floats: pair vector j at out[j * 2 *
// kLanes].
DSINFER_DECLARE_PER_ISA(void, tt_column_pairs, (const float*, int64_t, uint16_t*));
DSINFER_DECLARE_PER_ISA(void, tt_zip_pairs, (const uint16_t*, const uint16_t*, uint16_t*));
// select_bits(bits, a, b) of kLanes floats each.
DSINFER_DECLARE_PER_ISA(void, tt_select_bits, (uint32_t, const float*, const float*, float*));
DSINFER_DECLARE_PER_ISA(void, tt_store_fp8, (const float*, int, uint8_t*));
// load_u4 (kLanes / 2 bytes) or load_u8 (kLanes bytes) as f32.
DSINFER_DECLARE_PER_ISA(void, tt_load_uint, (const uint8_t*, bool, float*));
// CodePairs<dtype> (u4, u8 or i8) with `bias` on one step of codes at p (n < kCols: its first n
// columns), its kVecs pair vectors into out; returns the step's columns (kCols).
DSINFER_DECLARE_PER_ISA(int, tt_code_pairs, (DType, const uint8_t*, int, float, uint16_t*));
// split_columns<dtype> of n bf16 values; returns the padded length written.
DSINFER_DECLARE_PER_ISA(int64_t, tt_split_columns, (DType, const uint16_t*, int64_t, uint16_t*));
// bf16_in_order of two vectors (2 * kLanes words out).
DSINFER_DECLARE_PER_ISA(void, tt_bf16_in_order, (const float*, const float*, uint16_t*));
DSINFER_DECLARE_PER_ISA(int, tt_gather,
                        (const float*, int64_t, const int32_t*, int, int, float*, bool*));
DSINFER_DECLARE_PER_ISA(void, tt_store_bf16, (const float*, int, int, bf16*, int64_t));
DSINFER_DECLARE_PER_ISA(void, tt_map, (tile_test::MapOp, float, const float*, float*));
DSINFER_DECLARE_PER_ISA(void, tt_reduce, (const float*, int, int, float*, float*, float*, float*));
DSINFER_DECLARE_PER_ISA(void, tt_broadcast, (const float*, const float*, const float*, float*));
DSINFER_DECLARE_PER_ISA(void, tt_mma_ab, (const float*, int, int, const float*, float*));
DSINFER_DECLARE_PER_ISA(void, tt_mma_abt, (const float*, int, int, const float*, int, float*));
DSINFER_DECLARE_PER_ISA(void, tt_softmax_blocks, (const float*, int, int, int, float*, float*));
}  // namespace dsinfer
