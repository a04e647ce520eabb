#include "kernels/reference/hadamard.h"

#include <bit>
#include <cmath>

namespace dsinfer::ref {

int hadamard_sign(int i, int j) {
  return (std::popcount(unsigned(i & j)) & 1) ? -1 : 1;
}

void hadamard_128(float* x, int64_t n_rows) {
  const double norm = 1.0 / std::sqrt(double(kHadamardDim));
  for (int64_t r = 0; r < n_rows; ++r) {
    float* v = x + r * kHadamardDim;
    double y[kHadamardDim];
    for (int i = 0; i < kHadamardDim; ++i) {
      double acc = 0;
      for (int j = 0; j < kHadamardDim; ++j) acc += hadamard_sign(i, j) * double(v[j]);
      y[i] = acc * norm;
    }
    for (int i = 0; i < kHadamardDim; ++i) v[i] = float(y[i]);
  }
}

}  // namespace dsinfer::ref
