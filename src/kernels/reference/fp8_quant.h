// Dynamic FP8 (e4m3fn) activation quantization per 128-element block (spec §3.2): the indexer's
// query heads and keys, one block each.
#pragma once

#include <cstdint>

namespace dsinfer::ref {

inline constexpr int kFp8BlockSize = 128;
// Blocks whose max |v| is below this are scaled as if it were this, so an all-zero block gets a
// finite, nonzero scale.
inline constexpr float kFp8AmaxFloor = 1e-4f;

// The scale of one block from its max |v| (spec §3.2), all in f32:
//   a = max(amax, 1e-4); ue8m0: 2^ceil(log2(a / 448)) (a / 448 is the rounded f32 quotient);
//   otherwise a / 448.
float fp8_block_scale(float amax, bool ue8m0_scale);

// x: [n_blocks, 128] row-major. For each block: scale_out[b] = fp8_block_scale(max |x|), and
// q_out[b, j] = e4m3 bits of clamp(x[b, j] / scale, -448, 448) (f32 division, then round to
// nearest even). NaN elements are ignored by the max and encode as the e4m3 NaN code.
// q_out: [n_blocks, 128] e4m3fn bit patterns; scale_out: [n_blocks].
void quantize_fp8_blocks(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                         float* scale_out);

// out[b, j] = e4m3_to_f32(q[b, j]) * scale[b] (one f32 multiply).
// q: [n_blocks, 128]; scale: [n_blocks]; out: [n_blocks, 128].
void dequantize_fp8_blocks(const uint8_t* q, const float* scale, int64_t n_blocks, float* out);

}  // namespace dsinfer::ref
