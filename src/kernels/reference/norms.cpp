#include "kernels/reference/norms.h"

#include <cmath>

namespace dsinfer::ref {

void rms_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, float eps, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    double sum_sq = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += double(xr[i]) * xr[i];
    double inv_rms = 1.0 / std::sqrt(sum_sq / double(dim) + double(eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = float(double(xr[i]) * inv_rms * double(w[i]));
  }
}

void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    double mean = sum / double(dim);
    double sum_sq_dev = 0;
    for (int64_t i = 0; i < dim; ++i) sum_sq_dev += (xr[i] - mean) * (xr[i] - mean);
    double inv_std = 1.0 / std::sqrt(sum_sq_dev / double(dim) + double(eps));
    for (int64_t i = 0; i < dim; ++i)
      yr[i] = float((xr[i] - mean) * inv_std * double(w[i]) + double(b[i]));
  }
}

}  // namespace dsinfer::ref
