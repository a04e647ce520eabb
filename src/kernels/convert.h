// f32 rows rounded to bf16 (to nearest even, NaN kept NaN: the rounding of core/dtype.h's
// f32_to_bf16), vectorized in the tile layer and threaded over rows: what --precision bf16 does
// to every activation that enters a GEMM.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsinfer {

// out[r * ld_out + j] = bf16(x[r * ld_x + j]) for r < rows, j < cols.
void to_bf16(const float* x, int64_t rows, int64_t cols, int64_t ld_x, bf16* out, int64_t ld_out);

}  // namespace dsinfer
