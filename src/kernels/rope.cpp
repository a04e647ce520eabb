#include "kernels/rope.h"

#include <stdexcept>
#include <string>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, rope_interleaved_kernel,
                        (float*, int64_t, int, int64_t, int, const int32_t*, const float*));
DSINFER_DECLARE_PER_ISA(void, rope_halves_kernel,
                        (float*, int64_t, int, int64_t, int, const int32_t*, const float*));

namespace {
void check(const char* what, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim) {
  if (rope_dim <= 0 || rope_dim % 2 || rope_dim > 1024 || rope_dim > head_stride || n_heads < 0 ||
      n_tokens < 0)
    throw std::invalid_argument(std::string(what) + ": bad shape");
}
}  // namespace

void rope_interleaved(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                      const int32_t* positions, const float* inv_freq) {
  check("rope_interleaved", n_tokens, n_heads, head_stride, rope_dim);
  if (n_tokens > 0 && n_heads > 0) DSINFER_DISPATCH(rope_interleaved_kernel)
  (x, n_tokens, n_heads, head_stride, rope_dim, positions, inv_freq);
}

void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq) {
  check("rope_halves", n_tokens, n_heads, head_stride, rope_dim);
  if (n_tokens > 0 && n_heads > 0) DSINFER_DISPATCH(rope_halves_kernel)
  (x, n_tokens, n_heads, head_stride, rope_dim, positions, inv_freq);
}

}  // namespace dsinfer
