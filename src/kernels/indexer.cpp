#include "kernels/indexer.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, indexer_topk_kernel,
                        (const IndexerQueries&, const IndexerKeys&, const int64_t*, int, int32_t*,
                         float*, TopKOrder));

void indexer_topk(const IndexerQueries& q, const IndexerKeys& keys, const int64_t* n_valid, int k,
                  int32_t* idx_out, float* score_out, TopKOrder order) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("indexer_topk: " + what); };
  if (q.dtype != DType::fp8_e4m3 && q.dtype != DType::f32) fail("query dtype not fp8_e4m3/f32");
  if (keys.dtype != q.dtype) fail("query and key dtypes differ");
  if (q.n_heads < 1 || q.n_heads > 64) fail("n_heads must be in [1, 64]");
  if (k < 1 || k > 4096) fail("k must be in [1, 4096]");
  if (q.n_tokens < 0 || keys.n_keys < 0 || keys.n_keys >= (int64_t(1) << 31)) fail("bad sizes");
  if (q.n_tokens == 0) return;
  if (!q.q || !q.w || !idx_out) fail("null query, weight or output");
  const bool paged = keys.k == nullptr;
  if (keys.n_keys > 0) {
    if (paged && (!keys.pages || !keys.block_table)) fail("no keys");
    if (paged && keys.dtype != DType::fp8_e4m3) fail("paged keys must be fp8");
    if (!paged && keys.dtype == DType::fp8_e4m3 && !keys.k_scale) fail("fp8 keys without scales");
  }
  if (n_valid)
    for (int64_t t = 0; t < q.n_tokens; ++t)
      if (n_valid[t] < 0 || n_valid[t] > keys.n_keys) fail("n_valid out of [0, n_keys]");
  DSINFER_DISPATCH(indexer_topk_kernel)(q, keys, n_valid, k, idx_out, score_out, order);
}

}  // namespace dsinfer
