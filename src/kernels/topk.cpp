#include "kernels/topk.h"

#include <stdexcept>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, topk_kernel,
                        (const float*, int64_t, int64_t, int64_t, const int64_t*, int, int32_t*,
                         float*));

void topk(const float* scores, int64_t n_rows, int64_t n_keys, int64_t ld, const int64_t* n_valid,
          int k, int32_t* idx_out, float* score_out) {
  if (n_rows < 0 || n_keys < 0 || ld < n_keys || k < 0 || k > 65536)
    throw std::invalid_argument("topk: bad shape");
  if (n_keys >= (int64_t(1) << 31)) throw std::invalid_argument("topk: n_keys must fit int32");
  if (n_rows == 0 || k == 0) return;
  if (!idx_out || (n_keys && !scores)) throw std::invalid_argument("topk: null pointer");
  if (n_valid)
    for (int64_t t = 0; t < n_rows; ++t)
      if (n_valid[t] < 0 || n_valid[t] > n_keys)
        throw std::invalid_argument("topk: n_valid out of [0, n_keys]");
  DSINFER_DISPATCH(topk_kernel)(scores, n_rows, n_keys, ld, n_valid, k, idx_out, score_out);
}

}  // namespace dsinfer
