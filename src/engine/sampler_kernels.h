// Vectorized passes over the vocabulary for the Sampler (compiled per ISA, picked at run time).
#pragma once

#include <cstdint>

namespace dsinfer {

// x[i] = in[i] with NaN -> -inf and -0 -> +0.
void sampler_canonicalize(const float* in, float* x, int64_t n);
// max of x[0, n) (no NaN in x); -inf when n == 0 or everything is -inf.
float sampler_max(const float* x, int64_t n);
// w[i] = exp((x[i] - m) * inv_t) (exactly 1 where x[i] == m, 0 below float's normal range and for
// -inf); returns the sum of w in double, accumulated in a fixed order. m must be finite.
double sampler_softmax_weights(const float* x, float* w, int64_t n, float m, float inv_t);

}  // namespace dsinfer
