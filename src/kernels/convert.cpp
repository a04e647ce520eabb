#include "kernels/convert.h"

#include <stdexcept>

#include "core/dispatch.h"

namespace dsinfer {

DSINFER_DECLARE_PER_ISA(void, to_bf16_kernel,
                        (const float*, int64_t, int64_t, int64_t, uint16_t*, int64_t));

void to_bf16(const float* x, int64_t rows, int64_t cols, int64_t ld_x, bf16* out, int64_t ld_out) {
  if (rows < 0 || cols < 0 || ld_x < cols || ld_out < cols)
    throw std::invalid_argument("to_bf16: bad shape");
  if (rows > 0 && cols > 0)
    DSINFER_DISPATCH(to_bf16_kernel)(x, rows, cols, ld_x, reinterpret_cast<uint16_t*>(out), ld_out);
}

}  // namespace dsinfer
