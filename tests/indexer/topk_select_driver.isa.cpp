// Per-ISA drivers of the top-k building blocks (see topk_select_driver.h).
#include "topk_select_driver.h"
#include "kernels/topk_select.h"

namespace dsinfer::DSINFER_ISA_NS {

size_t tt_keep_top(uint64_t* c, size_t n, size_t k) {
  return topk::keep_top(c, n, k);
}

}  // namespace dsinfer::DSINFER_ISA_NS
