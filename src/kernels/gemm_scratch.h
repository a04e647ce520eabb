// Per-thread GEMM scratch that only grows: decode calls the GEMM many times per token, and
// allocating (and zero-filling) panels each time cost more than the math. Included by the
// per-ISA GEMM sources only (one set of buffers per ISA namespace and element type).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace dsinfer::DSINFER_ISA_NS {

// Slot `slot` (0..3) of this thread's buffers for T, at least `elems` long, 64-byte aligned.
// The contents are whatever the last user left.
template <class T>
T* gemm_scratch(int slot, size_t elems) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf bufs[4];
  Buf& b = bufs[slot];
  const size_t bytes = (elems * sizeof(T) + 63) / 64 * 64;
  if (b.n < bytes) {
    std::free(b.p);
    b.p = std::aligned_alloc(64, bytes);
    if (!b.p) throw std::bad_alloc();
    b.n = bytes;
  }
  return static_cast<T*>(b.p);
}

}  // namespace dsinfer::DSINFER_ISA_NS
