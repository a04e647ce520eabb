// Runtime dispatch to the per-ISA copies of a function compiled from a *.isa.cpp file.
//
//   // gemm.cpp (compiled once):
//   DSINFER_DECLARE_PER_ISA(void, gemm_impl, (const GemmArgs&));
//   void gemm(const GemmArgs& a) { DSINFER_DISPATCH(gemm_impl)(a); }
//
//   // gemm.isa.cpp (compiled per ISA): namespace dsinfer::DSINFER_ISA_NS { void gemm_impl(...) }
#pragma once

#include "core/cpu_features.h"

namespace dsinfer {

template <class F>
F isa_pick(Isa isa, F scalar, F avx2, F avx512, F avx512bf16) {
  switch (isa) {
    case Isa::avx512bf16:
      return avx512bf16;
    case Isa::avx512:
      return avx512;
    case Isa::avx2:
      return avx2;
    case Isa::scalar:
      break;
  }
  return scalar;
}

}  // namespace dsinfer

#define DSINFER_DECLARE_PER_ISA(ret, name, params) \
  namespace isa_scalar {                           \
  ret name params;                                 \
  }                                                \
  namespace isa_avx2 {                             \
  ret name params;                                 \
  }                                                \
  namespace isa_avx512 {                           \
  ret name params;                                 \
  }                                                \
  namespace isa_avx512bf16 {                       \
  ret name params;                                 \
  }

#define DSINFER_DISPATCH(name)                                                     \
  ::dsinfer::isa_pick(::dsinfer::active_isa(), &isa_scalar::name, &isa_avx2::name, \
                      &isa_avx512::name, &isa_avx512bf16::name)
