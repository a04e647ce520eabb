// Rotary position embeddings: the frequency tables (plain and YaRN, spec §3.1), the YaRN softmax
// scale, and the two rotation layouts the model uses: interleaved pairs for MLA (§3.1) and
// rotate-halves for the indexer (§3.2).
#pragma once

#include <cstdint>
#include <vector>

namespace dsinfer::ref {

// f_i = theta^(-2i / rope_dim) for i < rope_dim / 2, evaluated in double, rounded to f32.
std::vector<float> rope_inv_freq(int rope_dim, double theta);

// The YaRN table of spec §3.1 with the 671B constants generalized (evaluated in double, rounded
// to f32 once at the end):
//   low  = floor(rope_dim * ln(original_max_pos / (beta_fast * 2 pi)) / (2 ln theta))
//   high = ceil (rope_dim * ln(original_max_pos / (beta_slow * 2 pi)) / (2 ln theta))
//   both clamped to [0, rope_dim - 1]; high += 0.001 when they are equal
//   ramp_i = clamp((i - low) / (high - low), 0, 1)
//   f_i'   = f_i / factor * ramp_i + f_i * (1 - ramp_i)
// so the fast (low-i) frequencies are kept and the slow ones are divided by `factor`.
std::vector<float> yarn_inv_freq(int rope_dim, double theta, double factor, int original_max_pos,
                                 double beta_fast, double beta_slow);

// The YaRN attention logit multiplier m = 0.1 * mscale_all_dim * ln(factor) + 1 (m = 1 when
// factor <= 1, as transformers' yarn_get_mscale does).
double yarn_mscale(double factor, double mscale_all_dim);
// The MLA softmax scale qk_head_dim^-0.5 * m^2 (spec §3.1; qk_head_dim = nope + rope = 192).
double yarn_softmax_scale(int qk_head_dim, double factor, double mscale_all_dim);

// cos/sin of angle_i = pos * inv_freq[i] for i < n_freq. The angle is the f32 product
// float(pos) * inv_freq[i], as the release and transformers form it (an f32 outer product), so
// large positions land on the same angle; cos and sin of that angle are evaluated in double.
// cos_out, sin_out: [n_freq].
void rope_cos_sin(const float* inv_freq, int n_freq, int32_t pos, float* cos_out, float* sin_out);

// Both rotations act in place on `n_tokens * n_heads` vectors: vector (t, h) starts at
// x + (t * n_heads + h) * head_stride, its first `rope_dim` floats are rotated by the angles of
// positions[t] (the other floats are untouched), so callers offset `x` to reach a sub-range
// (e.g. MLA q [T, H, 576]: x = q + 512, head_stride = 576). rope_dim is even; inv_freq has
// rope_dim / 2 entries. Each rotated value is computed in double from f32 cos/sin and rounded.

// MLA layout, pairs (2i, 2i+1): (y_2i, y_2i+1) = (x_2i cos - x_2i+1 sin, x_2i+1 cos + x_2i sin),
// i.e. the complex number x_2i + i x_2i+1 times e^{i pos f_i}.
void rope_interleaved(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                      const int32_t* positions, const float* inv_freq);

// Indexer layout, pairs (i, i + rope_dim/2): (y_i, y_i+half) = (x_i cos - x_i+half sin,
// x_i+half cos + x_i sin). For the indexer this is applied to dims [0, 64) of each 128-vector.
void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq);

}  // namespace dsinfer::ref
