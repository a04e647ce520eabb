// The indexer prolog's row ops (spec §3.2), threaded over rows, written in the tile layer:
// rotate-halves RoPE on the leading dims, LayerNorm with weight and bias, the normalized
// Hadamard-128 rotation, and FP8 (e4m3) activation quantization per 128-element block.
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

// Rotate-halves RoPE in place on n_tokens * n_heads vectors: vector (t, h) starts at
// x + (t * n_heads + h) * head_stride; its first rope_dim floats are rotated by the angles
// float(positions[t]) * inv_freq[i] (an f32 product; cos/sin evaluated in double, rounded to f32):
// (y_i, y_{i+half}) = (x_i cos - x_{i+half} sin, x_{i+half} cos + x_i sin), i < half = rope_dim/2.
// inv_freq [rope_dim / 2] is the model's (YaRN) table. The indexer uses rope_dim = 64, dims [0,64).
void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq);

// out[r] = (x[r] - mean) / sqrt(var + eps) * w + b (biased variance), f32 two-pass statistics.
// x, out: [n_rows, dim] (out may alias x); w, b: [dim].
void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out);

}  // namespace dsinfer
