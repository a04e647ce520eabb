// Entry points into the per-ISA top-k building blocks (kernels/topk_select.h) for tests,
// compiled once per ISA (topk_select_driver.isa.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dispatch.h"

namespace dsinfer {
// topk::keep_top: the k largest of c[0, n) into c[0, k), unordered; returns min(k, n).
DSINFER_DECLARE_PER_ISA(size_t, tt_keep_top, (uint64_t*, size_t, size_t));
}  // namespace dsinfer
