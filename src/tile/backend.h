// Selects the SIMD backend for the ISA this translation unit is compiled for. Only *.isa.cpp
// files include it; each is compiled once per ISA with DSINFER_ISA_NS naming that ISA's namespace,
// so the same inline functions never collide across ISAs.
#pragma once

#ifndef DSINFER_ISA_NS
#error "tile/backend.h is only for *.isa.cpp files (compiled once per ISA)"
#endif

#if defined(__AVX512F__)
#include "tile/backend_avx512.h"
#elif defined(__AVX2__)
#include "tile/backend_avx2.h"
#else
#include "tile/backend_scalar.h"
#endif
