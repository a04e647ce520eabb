// W8A8 / W4A8 linear layers: integer weights (WeightView u4 / u8 / i8 with group scales) times
// activations quantized to int8 per row at run time (compressed-tensors input_activations int8,
// strategy token, dynamic; vLLM's scaled_int8_quant):
//   xq[m] = round_half_even(x[m] / sx[m]) clamped to [-128, 127], sx[m] = amax(x[m]) / 127
//   y[m, n] = sx[m] * sum_g sw[n, g] * sum_{k in group g} xq[m, k] * wq[n, k]
// The inner sums are exact int32 dot products (vpdpbusd on AVX512-VNNI; 16-bit widening
// multiply-adds elsewhere), the group sums f32 in one order per (m, n): batch invariant like gemm.
// The activations are quantized while they are packed for the kernel (for INT4 weights into the
// column order of the unpacked nibbles). Weights this path does not take -- the [K, N] layout, a
// view starting inside a group, K not a multiple of the kernel's step (64 INT8 / 128 INT4 columns
// on AVX-512, half that on AVX2 and scalar) or groups not of whole 4 (INT4: 8) columns -- run the
// same math through gemm on the quantized values (f32 products: other roundings).
#pragma once

#include <cstdint>

#include "core/weight_view.h"

namespace dsinfer {

// The int8 activation quantization of one row of n values: codes and the returned scale.
float quantize_int8_row(const float* x, int64_t n, int8_t* codes);

// y[M, ldy] = quantize_int8(x[M, K]) . W^T for an integer weight W[N, K]. Throws
// std::invalid_argument on mismatched shapes or a weight that is not u4 / u8 / i8.
void gemm_int8_activations(const float* x, int64_t M, int64_t ldx, const WeightView& w, float* y,
                           int64_t ldy);

// The plain reference: the same quantization, the products summed in double.
void gemm_int8_activations_reference(const float* x, int64_t M, int64_t ldx, const WeightView& w,
                                     float* y, int64_t ldy);

}  // namespace dsinfer
