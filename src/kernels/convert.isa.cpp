// f32 -> bf16 rounding (compiled once per ISA).
#include <algorithm>

#include "core/thread_pool.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {
// Rows per task: about 16K values.
int64_t grain(int64_t cols) {
  return std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(cols, 1));
}
}  // namespace

void to_bf16_kernel(const float* x, int64_t rows, int64_t cols, int64_t ld_x, uint16_t* out,
                    int64_t ld_out) {
  parallel_for(rows, grain(cols), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ld_x;
      uint16_t* yr = out + r * ld_out;
      int64_t j = 0;
      for (; j + kLanes <= cols; j += kLanes) store_bf16(yr + j, load(xr + j));
      if (j < cols) store_bf16_n(yr + j, load_n(xr + j, int(cols - j)), int(cols - j));
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
