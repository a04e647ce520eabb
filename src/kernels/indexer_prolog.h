// The indexer prolog's row ops (spec §3.2), threaded over rows, written in the tile layer: the
// normalized Hadamard-128 rotation and FP8 (e4m3) activation quantization per 128-element block
// (its LayerNorm and RoPE are in kernels/norms.h and kernels/rope.h).
#pragma once

#include <cstdint>

namespace dsinfer {

// x: [n_rows, 128], in place: x[r] <- H_128 x[r] / sqrt(128) (Sylvester H; fast transform in
// f32, within a few ulp of the exact product).
void hadamard_128(float* x, int64_t n_rows);

// Per 128-element block b of x [n_blocks, 128]: a = max(max|x_b|, 1e-4) (NaN ignored),
// scale = 2^ceil(log2(a / 448)) (ue8m0) or a / 448, q[b, j] = e4m3 code of
// clamp(x / scale, -448, 448) rounded to nearest even (an f32 division, as the spec writes it).
// Bit-exact with the reference. q_out: [n_blocks, 128] codes; scale_out: [n_blocks].
void quantize_fp8_blocks(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                         float* scale_out);

}  // namespace dsinfer
