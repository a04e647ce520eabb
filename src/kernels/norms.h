// Row normalizations in the tile layer, threaded over rows: RMSNorm (spec §3: every pre-norm and
// the q/kv latents) and LayerNorm (spec §3.2: the indexer's key norm). Plain references for tests
// are in kernels/reference/norms.h.
#pragma once

#include <cstdint>

namespace dsinfer {

// out[r, :dim] = x[r, :dim] * rsqrt(mean(x[r, :dim]^2) + eps) * w for r < n_rows, row r of x at
// x + r * ld_x and of out at out + r * ld_out (out may alias x; strides >= dim). The sum of
// squares runs in f32 with kLanes partial sums, one order per ISA whatever the row's place or the
// thread count (results do not depend on the batch).
void rms_norm(const float* x, int64_t n_rows, int64_t dim, int64_t ld_x, const float* w, float eps,
              float* out, int64_t ld_out);

// out[r] = (x[r] - mean) / sqrt(var + eps) * w + b (biased variance), f32 two-pass statistics.
// x, out: [n_rows, dim] (out may alias x); w, b: [dim].
void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out);

}  // namespace dsinfer
