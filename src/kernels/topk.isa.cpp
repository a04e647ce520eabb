// Standalone top-k (compiled once per ISA): radix select per row, rows spread over the pool.
#include <vector>

#include "core/thread_pool.h"
#include "kernels/topk.h"
#include "kernels/topk_select.h"

namespace dsinfer::DSINFER_ISA_NS {

void topk_kernel(const float* scores, int64_t n_rows, int64_t n_keys, int64_t ld,
                 const int64_t* n_valid, int k, int32_t* idx_out, float* score_out) {
  parallel_for(n_rows, 1, [&](int64_t r0, int64_t r1, int) {
    std::vector<uint32_t> keys;
    std::vector<uint64_t> sel;
    for (int64_t t = r0; t < r1; ++t) {
      const int64_t n = n_valid ? n_valid[t] : n_keys;
      topk::radix_select(scores + t * ld, n, k, keys, sel);
      topk::emit_sorted(sel.data(), sel.size(), k, idx_out + t * k,
                        score_out ? score_out + t * k : nullptr);
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
