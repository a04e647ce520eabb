// Row normalizations in the tile layer (compiled once per ISA).
#include <cmath>

#include "core/thread_pool.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

void rms_norm_kernel(const float* x, int64_t n_rows, int64_t dim, int64_t ld_x, const float* w,
                     float eps, float* out, int64_t ld_out) {
  parallel_for(n_rows, 16, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ld_x;
      float* yr = out + r * ld_out;
      VF q = zero();
      int64_t j = 0;
      for (; j + kLanes <= dim; j += kLanes) {
        const VF v = load(xr + j);
        q = fma(v, v, q);
      }
      if (j < dim) {
        const VF v = load_n(xr + j, int(dim - j));
        q = fma(v, v, q);
      }
      const float inv = 1.0f / std::sqrt(reduce_add(q) / float(dim) + eps);
      const VF iv = set1(inv);
      for (j = 0; j + kLanes <= dim; j += kLanes)
        store(yr + j, mul(mul(load(xr + j), iv), load(w + j)));
      if (j < dim) {
        const int n = int(dim - j);
        store_n(yr + j, mul(mul(load_n(xr + j, n), iv), load_n(w + j, n)), n);
      }
    }
  });
}

void layer_norm_kernel(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                       float eps, float* out) {
  parallel_for(n_rows, 64, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = out + r * dim;
      VF s = zero();
      int64_t j = 0;
      for (; j + kLanes <= dim; j += kLanes) s = add(s, load(xr + j));
      if (j < dim) s = add(s, load_n(xr + j, int(dim - j)));
      const float mean = reduce_add(s) / float(dim);
      const VF mv = set1(mean);
      VF q = zero();
      for (j = 0; j + kLanes <= dim; j += kLanes) {
        const VF d = sub(load(xr + j), mv);
        q = fma(d, d, q);
      }
      float ss = reduce_add(q);
      for (; j < dim; ++j) ss += (xr[j] - mean) * (xr[j] - mean);
      const float rstd = 1.0f / std::sqrt(ss / float(dim) + eps);
      const VF rv = set1(rstd);
      for (j = 0; j + kLanes <= dim; j += kLanes)
        store(yr + j, fma(mul(sub(load(xr + j), mv), rv), load(w + j), load(b + j)));
      if (j < dim) {
        const int n = int(dim - j);
        const VF y = fma(mul(sub(load_n(xr + j, n), mv), rv), load_n(w + j, n), load_n(b + j, n));
        store_n(yr + j, y, n);
      }
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
