#include "kernels/indexer_prolog.h"

#include <stdexcept>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, hadamard_128_kernel, (float*, int64_t));
DSINFER_DECLARE_PER_ISA(void, quantize_fp8_blocks_kernel,
                        (const float*, int64_t, bool, uint8_t*, float*));
DSINFER_DECLARE_PER_ISA(void, rope_halves_kernel,
                        (float*, int64_t, int, int64_t, int, const int32_t*, const float*));
DSINFER_DECLARE_PER_ISA(void, layer_norm_kernel,
                        (const float*, int64_t, int64_t, const float*, const float*, float,
                         float*));

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

void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq) {
  if (rope_dim <= 0 || rope_dim % 2 || rope_dim > 1024 || rope_dim > head_stride || n_heads < 0 ||
      n_tokens < 0)
    throw std::invalid_argument("rope_halves: bad shape");
  if (n_tokens > 0 && n_heads > 0)
    DSINFER_DISPATCH(rope_halves_kernel)
    (x, n_tokens, n_heads, head_stride, rope_dim, positions, inv_freq);
}

void layer_norm(const float* x, int64_t n_rows, int64_t dim, const float* w, const float* b,
                float eps, float* out) {
  if (n_rows < 0 || dim <= 0) throw std::invalid_argument("layer_norm: bad shape");
  if (n_rows > 0) DSINFER_DISPATCH(layer_norm_kernel)(x, n_rows, dim, w, b, eps, out);
}

}  // namespace dsinfer
