// Linear layers: y[M, N] = x[M, K] . W[N, K]^T, with x in f32 or bf16 and W in f32, bf16, f16 or
// fp8 e4m3 with 128 x 128 block scales (dequantized inside the kernel, never materialized). W may
// also be stored [K, N] (WeightView::kn, e.g. MLA's W_UK for q_nope . W_UK) and may be a sub-view
// of a bigger block-scaled weight (one head's rows).
// Accumulation and y are f32. Threaded over the global thread pool.
//
// Batch invariant: every y[m, n] is bitwise the same whatever M, the row's index m, the thread
// count, the work split and the leading dimensions (one canonical summation order per ISA and
// weight layout), so a token's results never depend on what else is batched with it.
//
// [N, K] weights (gemm_rows.isa.cpp): the dot form -- vector lanes along k, each output a vector
// chain over a K block reduced by a fixed tree -- so weight rows stream as stored:
//  - small M (M <= kGemvMaxRows, decode): a few weight rows at a time along all of K, decoded
//    (FP8 to bf16 by integer ops) into L1 pieces or read as they are, into all M rows at once;
//  - GEMM: per thread a K block of Nc weight rows decoded into an L2 panel, x packed once, a
//    4 x 4 (rows of x x rows of W) register block per reduction.
// [K, N] weights (gemm.isa.cpp): lanes along n, weights transposed in registers into panels.
// Within each, the two algorithms are picked by M for speed only: they give the same bits.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/weight_view.h"

namespace dsinfer {

// Up to this many rows of x, gemm streams the weights (the small-M kernel).
inline constexpr int64_t kGemvMaxRows = 8;

struct GemmInput {
  DType dtype = DType::f32;  // f32 or bf16
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;  // M, K
  int64_t ld = 0;              // elements between rows
};

// y[M, ldy] rows get N values each. Throws std::invalid_argument on mismatched shapes/dtypes.
void gemm(const GemmInput& x, const WeightView& w, float* y, int64_t ldy);

// The plain reference: double accumulation, exact dequantization. For tests.
void gemm_reference(const GemmInput& x, const WeightView& w, float* y, int64_t ldy);

}  // namespace dsinfer
