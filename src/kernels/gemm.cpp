#include "kernels/gemm.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, gemm_kernel, (const GemmInput&, const WeightView&, float*, int64_t));

namespace {

double weight_at(const WeightView& w, int64_t n, int64_t k) {
  return w.kn ? w.value_at(k, n) : w.value_at(n, k);  // the storage element
}
double input_at(const GemmInput& x, int64_t m, int64_t k) {
  return x.dtype == DType::f32 ? static_cast<const float*>(x.data)[m * x.ld + k]
                               : bf16_to_f32(static_cast<const bf16*>(x.data)[m * x.ld + k]);
}

void check_args(const GemmInput& x, const WeightView& w, const float* y, int64_t ldy) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("gemm: " + what); };
  if (x.dtype != DType::f32 && x.dtype != DType::bf16)
    fail("input dtype " + std::string(dtype_name(x.dtype)) + " is not f32 or bf16");
  if (w.dtype != DType::f32 && w.dtype != DType::bf16 && w.dtype != DType::f16 &&
      w.dtype != DType::fp8_e4m3 && !w.is_int())
    fail("weight dtype " + std::string(dtype_name(w.dtype)) +
         " is not f32, bf16, f16, fp8_e4m3, u4, u8 or i8");
  if (x.cols != w.cols)
    fail("input has K=" + std::to_string(x.cols) +
         " but the weight has K=" + std::to_string(w.cols));
  if (x.rows < 0 || w.rows < 0 || x.ld < x.cols || w.ld < (w.kn ? w.rows : w.cols) ||
      ldy < w.rows || w.row0 < 0 || w.col0 < 0)
    fail("bad leading dimension, offset or negative size");
  if (w.qzero && !w.is_int())
    fail("zero points on a " + std::string(dtype_name(w.dtype)) + " weight");
  if ((x.rows && !x.data) || (w.rows && !w.data) || (x.rows && w.rows && !y)) fail("null pointer");
  const int64_t storage_cols = w.col0 + (w.kn ? w.rows : w.cols);
  if (w.dtype == DType::fp8_e4m3 &&
      (!w.scale_inv || w.scale_ld < (storage_cols + kFp8BlockSize - 1) / kFp8BlockSize))
    fail("fp8 weight without a scale_inv covering its columns");
  if (w.is_int()) {
    if (!w.qscale || w.group <= 0 || w.qscale_ld < (storage_cols + w.group - 1) / w.group ||
        (w.qscale_dtype != DType::f32 && w.qscale_dtype != DType::bf16 &&
         w.qscale_dtype != DType::f16))
      fail("integer weight without f32/bf16/f16 group scales covering its columns");
    if (w.qzero && w.qzero_ld < (storage_cols + w.group - 1) / w.group)
      fail("integer weight zero points do not cover its columns");
    if (w.dtype == DType::u4 && w.ld % 2 != 0)
      fail("u4 weight rows must start on whole bytes (even leading dimension)");
  }
}

}  // namespace

void gemm(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  check_args(x, w, y, ldy);
  if (x.rows == 0 || w.rows == 0) return;
  DSINFER_DISPATCH(gemm_kernel)(x, w, y, ldy);
}

void gemm_reference(const GemmInput& x, const WeightView& w, float* y, int64_t ldy) {
  check_args(x, w, y, ldy);
  for (int64_t m = 0; m < x.rows; ++m)
    for (int64_t n = 0; n < w.rows; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < x.cols; ++k) acc += input_at(x, m, k) * weight_at(w, n, k);
      y[m * ldy + n] = float(acc);
    }
}

}  // namespace dsinfer
