// Rotary position embeddings on the forward path, threaded over tokens: interleaved pairs for MLA
// (spec §3.1) and rotate-halves for the indexer (§3.2). The frequency tables and the plain
// references are in kernels/reference/rope.h.
#pragma once

#include <cstdint>

namespace dsinfer {

// Both act in place on n_tokens * n_heads vectors: vector (t, h) starts at
// x + (t * n_heads + h) * head_stride and its first rope_dim floats are rotated by the angles
// float(positions[t]) * inv_freq[i] (an f32 product; cos/sin evaluated in double, rounded to f32,
// once per token for all heads). inv_freq [rope_dim / 2] is the model's (YaRN) table.
// Interleaved (MLA): (y_2i, y_2i+1) = (x_2i cos - x_2i+1 sin, x_2i+1 cos + x_2i sin).
void rope_interleaved(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                      const int32_t* positions, const float* inv_freq);
// Rotate-halves (indexer): (y_i, y_{i+half}) = (x_i cos - x_{i+half} sin, x_{i+half} cos +
// x_i sin), i < half = rope_dim / 2. The indexer uses rope_dim = 64, dims [0, 64).
void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq);

}  // namespace dsinfer
