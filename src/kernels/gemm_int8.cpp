#include "kernels/gemm_int8.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"

namespace dsinfer {

// Returns false (computing nothing) for a weight the int8-dot kernel does not take.
DSINFER_DECLARE_PER_ISA(bool, gemm_int8_kernel,
                        (const float*, int64_t, int64_t, const WeightView&, float*, int64_t));

namespace {

void check(const float* x, int64_t M, int64_t ldx, const WeightView& w, const float* y,
           int64_t ldy) {
  if (!w.is_int())
    throw std::invalid_argument("gemm_int8_activations: weight dtype " +
                                std::string(dtype_name(w.dtype)) + " is not u4, u8 or i8");
  if (M < 0 || ldx < w.cols || ldy < w.rows || (M && !x) || (M && w.rows && !y))
    throw std::invalid_argument("gemm_int8_activations: bad shape, leading dimension or pointer");
}

}  // namespace

float quantize_int8_row(const float* x, int64_t n, int8_t* codes) {
  float amax = 0;
  for (int64_t k = 0; k < n; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float scale = amax > 0 ? amax / 127.0f : 1.0f;
  for (int64_t k = 0; k < n; ++k)
    codes[k] = int8_t(std::clamp(std::nearbyint(x[k] / scale), -128.0f, 127.0f));
  return scale;
}

void gemm_int8_activations(const float* x, int64_t M, int64_t ldx, const WeightView& w, float* y,
                           int64_t ldy) {
  check(x, M, ldx, w, y, ldy);
  if (M == 0 || w.rows == 0) return;
  if (DSINFER_DISPATCH(gemm_int8_kernel)(x, M, ldx, w, y, ldy)) return;
  // The same quantization, multiplied in f32 by gemm.
  const int64_t K = w.cols;
  std::vector<float> xq(static_cast<size_t>(M * K));
  parallel_for(M, 16, [&](int64_t m0, int64_t m1, int) {
    std::vector<int8_t> codes(static_cast<size_t>(K));
    for (int64_t m = m0; m < m1; ++m) {
      const float s = quantize_int8_row(x + m * ldx, K, codes.data());
      for (int64_t k = 0; k < K; ++k) xq[size_t(m * K + k)] = float(codes[size_t(k)]) * s;
    }
  });
  gemm(GemmInput{DType::f32, xq.data(), M, K, K}, w, y, ldy);
}

void gemm_int8_activations_reference(const float* x, int64_t M, int64_t ldx, const WeightView& w,
                                     float* y, int64_t ldy) {
  check(x, M, ldx, w, y, ldy);
  const int64_t K = w.cols;
  std::vector<int8_t> codes(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m) {
    const double sx = quantize_int8_row(x + m * ldx, K, codes.data());
    for (int64_t n = 0; n < w.rows; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += double(codes[size_t(k)]) * (w.kn ? w.value_at(k, n) : w.value_at(n, k));
      y[m * ldy + n] = float(sx * acc);
    }
  }
}

}  // namespace dsinfer
