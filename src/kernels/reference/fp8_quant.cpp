#include "kernels/reference/fp8_quant.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"

namespace dsinfer::ref {

float fp8_block_scale(float amax, bool ue8m0_scale) {
  float a = std::max(amax, kFp8AmaxFloor);
  float ratio = a / kFp8E4m3Max;
  return ue8m0_scale ? ue8m0_to_f32(ue8m0_ceil_pow2(ratio)) : ratio;
}

void quantize_fp8_blocks(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                         float* scale_out) {
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * kFp8BlockSize;
    float amax = 0;
    for (int j = 0; j < kFp8BlockSize; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    float scale = fp8_block_scale(amax, ue8m0_scale);
    scale_out[b] = scale;
    for (int j = 0; j < kFp8BlockSize; ++j) {
      // std::clamp passes NaN through (both comparisons are false), so NaN stays NaN.
      float v = std::clamp(xb[j] / scale, -kFp8E4m3Max, kFp8E4m3Max);
      q_out[b * kFp8BlockSize + j] = f32_to_fp8_e4m3(v).bits;
    }
  }
}

void dequantize_fp8_blocks(const uint8_t* q, const float* scale, int64_t n_blocks, float* out) {
  for (int64_t b = 0; b < n_blocks; ++b)
    for (int j = 0; j < kFp8BlockSize; ++j) {
      int64_t k = b * kFp8BlockSize + j;
      out[k] = fp8_e4m3_to_f32(fp8_e4m3{q[k]}) * scale[b];
    }
}

}  // namespace dsinfer::ref
