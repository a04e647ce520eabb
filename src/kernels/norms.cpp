#include "kernels/norms.h"

#include <stdexcept>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, rms_norm_kernel,
                        (const float*, int64_t, int64_t, int64_t, const float*, float, float*,
                         int64_t));
DSINFER_DECLARE_PER_ISA(void, layer_norm_kernel,
                        (const float*, int64_t, int64_t, const float*, const float*, float,
                         float*));

void rms_norm(const float* x, int64_t n_rows, int64_t dim, int64_t ld_x, const float* w, float eps,
              float* out, int64_t ld_out) {
  if (n_rows < 0 || dim <= 0 || ld_x < dim || ld_out < dim)
    throw std::invalid_argument("rms_norm: bad shape");
  if (n_rows > 0) DSINFER_DISPATCH(rms_norm_kernel)(x, n_rows, dim, ld_x, w, eps, out, ld_out);
}

void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out) {
  if (n_rows < 0 || dim <= 0) throw std::invalid_argument("layer_norm: bad shape");
  if (n_rows > 0) DSINFER_DISPATCH(layer_norm_kernel)(x, n_rows, dim, w, b, eps, out);
}

}  // namespace dsinfer
