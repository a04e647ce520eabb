#include "engine/sampler_kernels.h"

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, sampler_canonicalize_impl, (const float*, float*, int64_t));
DSINFER_DECLARE_PER_ISA(float, sampler_max_impl, (const float*, int64_t));
DSINFER_DECLARE_PER_ISA(double, sampler_softmax_weights_impl,
                        (const float*, float*, int64_t, float, float));

void sampler_canonicalize(const float* in, float* x, int64_t n) {
  DSINFER_DISPATCH(sampler_canonicalize_impl)(in, x, n);
}
float sampler_max(const float* x, int64_t n) {
  return DSINFER_DISPATCH(sampler_max_impl)(x, n);
}
double sampler_softmax_weights(const float* x, float* w, int64_t n, float m, float inv_t) {
  return DSINFER_DISPATCH(sampler_softmax_weights_impl)(x, w, n, m, inv_t);
}

}  // namespace dsinfer
