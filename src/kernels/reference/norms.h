// Row normalizations: RMSNorm (spec §3, used for every pre-norm and the q/kv latents) and
// LayerNorm (spec §3.2, the indexer's key norm).
#pragma once

#include <cstdint>

namespace dsinfer::ref {

// out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w, for r < n_rows.
// x, out: [n_rows, dim] row-major (out may alias x); w: [dim].
// The mean of squares and the scaling are computed in double; each output is rounded to f32
// once, so this is the exact-arithmetic result up to one f32 rounding.
void rms_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, float eps, float* out);

// out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b, with the biased variance
// var = mean((x - mean)^2) as torch.nn.LayerNorm uses. Two-pass statistics in double.
// x, out: [n_rows, dim] row-major (out may alias x); w, b: [dim].
void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out);

}  // namespace dsinfer::ref
