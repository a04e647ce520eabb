// Helpers for the gen-model tests: generating a model into a temporary directory and reading
// weights back as f32.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "synthetic/gen_model.h"
#include "model/model_test_util.h"

namespace dsinfer::testing {

inline GenModelResult gen_tiny(const std::string& dir, GenDtype dtype = GenDtype::fp8,
                               GenArch arch = GenArch::v32, uint64_t seed = 0) {
  GenModelOptions o;
  o.preset = GenPreset::tiny;
  o.output_dir = dir;
  o.dtype = dtype;
  o.arch = arch;
  o.seed = seed;
  return generate_model(o);
}

// A float tensor (f32, bf16, f16) as f32, in row-major order.
inline std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) switch (t.dtype()) {
      case DType::f32:
        out[size_t(i)] = t.data<float>()[i];
        break;
      case DType::bf16:
        out[size_t(i)] = bf16_to_f32(t.data<bf16>()[i]);
        break;
      case DType::f16:
        out[size_t(i)] = f16_to_f32(t.data<f16>()[i]);
        break;
      default:
        throw std::invalid_argument("to_f32: not a float tensor: " + t.shape_string());
    }
  return out;
}

// A linear weight [out, in] as f32, FP8 weights dequantized with their block scales.
inline std::vector<float> to_f32(const LinearWeight& w) {
  if (!w.is_fp8()) return to_f32(w.w);
  const int64_t rows = w.out_features(), cols = w.in_features();
  std::vector<float> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[size_t(r * cols + c)] =
          fp8_e4m3_to_f32(w.w.data<fp8_e4m3>()[r * cols + c]) *
          w.scale_inv.data<float>()[(r / kFp8BlockSize) * w.scale_inv.size(1) + c / kFp8BlockSize];
  return out;
}

struct Moments {
  double mean = 0, var = 0;
};
inline Moments moments(const std::vector<float>& v) {
  Moments m;
  for (float x : v) m.mean += x;
  m.mean /= double(v.size());
  for (float x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= double(v.size());
  return m;
}

}  // namespace dsinfer::testing
