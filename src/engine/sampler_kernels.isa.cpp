// Per-ISA passes of the Sampler: plain loops (auto-vectorized at -O3 for the ISA) and the tile
// backend's vector exp.
#include <cmath>
#include <cstdint>
#include <limits>

#include "tile/backend.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace simd;

void sampler_canonicalize_impl(const float* in, float* x, int64_t n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const float v = in[i];
    x[i] = v == v ? v + 0.0f : neg_inf;  // + 0.0f turns -0 into +0
  }
}

float sampler_max_impl(const float* x, int64_t n) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  VF m0 = set1(neg_inf), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    m0 = max(m0, load(x + i));
    m1 = max(m1, load(x + i + kLanes));
    m2 = max(m2, load(x + i + 2 * kLanes));
    m3 = max(m3, load(x + i + 3 * kLanes));
  }
  float m = reduce_max(max(max(m0, m1), max(m2, m3)));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

double sampler_softmax_weights_impl(const float* x, float* w, int64_t n, float m, float inv_t) {
  const VF vm = set1(m), vt = set1(inv_t);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const VF d = sub(load(x + i), vm);
    store(w + i, exp(mul(d, vt)));
  }
  for (; i < n; ++i) {
    const float z = (x[i] - m) * inv_t;
    w[i] = z < -87.33654f ? 0.0f : std::exp(z);
  }
  // exp(0) of the vector code is 1 to within an ulp; make the max token's weight exactly 1.
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      if (x[i + j] == m) w[i + j] = 1.0f;
      acc[j] += w[i + j];
    }
  }
  for (; i < n; ++i) {
    if (x[i] == m) w[i] = 1.0f;
    acc[0] += w[i];
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace dsinfer::DSINFER_ISA_NS
