#include "kernels/indexer_prolog.h"

#include <stdexcept>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, hadamard_128_kernel, (float*, int64_t));
DSINFER_DECLARE_PER_ISA(void, quantize_fp8_blocks_kernel,
                        (const float*, int64_t, bool, uint8_t*, float*));

void hadamard_128(float* x, int64_t n_rows) {
  if (n_rows < 0) throw std::invalid_argument("hadamard_128: negative rows");
  if (n_rows > 0) DSINFER_DISPATCH(hadamard_128_kernel)(x, n_rows);
}

void quantize_fp8_blocks(const float* x, int64_t n_blocks, bool ue8m0_scale, uint8_t* q_out,
                         float* scale_out) {
  if (n_blocks < 0) throw std::invalid_argument("quantize_fp8_blocks: negative blocks");
  if (n_blocks > 0)
    DSINFER_DISPATCH(quantize_fp8_blocks_kernel)(x, n_blocks, ue8m0_scale, q_out, scale_out);
}

}  // namespace dsinfer
