// The latent cache row formats (see kv_cache_view.h): plain per-value encode / decode, used when
// rows are written (once per token and layer) and by the MHA prefill's context gather. The
// attention kernels decode inside their own gathers (mla_attention.isa.cpp).
#include "kernels/kv_cache_view.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dsinfer {

namespace {

uint8_t* row_scales(void* row, int64_t C) {
  return static_cast<uint8_t*>(row) + C;
}

}  // namespace

void encode_latent_row(DType dt, const float* x, int64_t C, void* row) {
  switch (dt) {
    case DType::f32:
      std::memcpy(row, x, size_t(C) * 4);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < C; ++i) static_cast<bf16*>(row)[i] = f32_to_bf16(x[i]);
      return;
    case DType::fp8_e4m3:
    case DType::i8: {
      uint8_t* codes = static_cast<uint8_t*>(row);
      uint8_t* scales = row_scales(row, C);
      const float qmax = dt == DType::i8 ? 127.0f : kFp8E4m3Max;
      for (int64_t b = 0; b < latent_scale_count(C); ++b) {
        const int64_t i0 = b * kLatentScaleBlock, i1 = std::min(C, i0 + kLatentScaleBlock);
        float amax = 0.0f;
        for (int64_t i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float scale = std::max(amax, 1e-4f) / qmax;
        std::memcpy(scales + 4 * b, &scale, 4);
        for (int64_t i = i0; i < i1; ++i) {
          const float q = x[i] / scale;
          codes[i] = dt == DType::i8
                         ? uint8_t(int8_t(std::clamp(std::nearbyint(q), -127.0f, 127.0f)))
                         : f32_to_fp8_e4m3(q).bits;
        }
      }
      return;
    }
    default:
      throw std::invalid_argument("latent cache: no row format for dtype " +
                                  std::string(dtype_name(dt)));
  }
}

void decode_latent_row(DType dt, const void* row, int64_t C, float* out) {
  switch (dt) {
    case DType::f32:
      std::memcpy(out, row, size_t(C) * 4);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < C; ++i) out[i] = bf16_to_f32(static_cast<const bf16*>(row)[i]);
      return;
    case DType::fp8_e4m3:
    case DType::i8: {
      const uint8_t* codes = static_cast<const uint8_t*>(row);
      for (int64_t i = 0; i < C; ++i) {
        float scale;
        std::memcpy(&scale, codes + C + 4 * (i / kLatentScaleBlock), 4);
        const float v = dt == DType::i8 ? float(int8_t(codes[i])) : fp8_e4m3_to_f32({codes[i]});
        out[i] = v * scale;
      }
      return;
    }
    default:
      throw std::invalid_argument("latent cache: no row format for dtype " +
                                  std::string(dtype_name(dt)));
  }
}

}  // namespace dsinfer
