// CPU feature detection and the ISA backend in use.
#pragma once

#include <string_view>
#include <vector>

namespace dsinfer {

// Ordered from least to most capable; each level implies the ones below it.
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2, avx512bf16 = 3 };
inline constexpr int kNumIsas = 4;

std::string_view isa_name(Isa isa);
bool isa_from_name(std::string_view name, Isa* out);

// The best backend this CPU (and OS, for the AVX-512 register state) supports.
Isa best_supported_isa();
// Every backend this CPU can run, lowest first.
std::vector<Isa> supported_isas();
bool isa_supported(Isa isa);

// The backend kernels dispatch to: the best supported one, or DSINFER_ISA when that names a
// supported lower one. Changing it (tests do) affects every later kernel call.
Isa active_isa();
void set_active_isa(Isa isa);  // throws std::invalid_argument when unsupported

// Whether kernels with a native bf16 path (the GEMM's vdpbf16ps pair panels) take it on the
// avx512bf16 backend. AMD's cores (Zen 4/5) run vdpbf16ps at twice the f32 FMA rate; Intel's
// (Sapphire Rapids and later) at half -- measured on such a Xeon: 64-68 vs 118-134 GFLOP/s per
// core, bf16 GEMM 2048^3 146 ms with pairs vs 85 ms with f32 FMAs on widened bf16 -- so the default
// is by CPU vendor: native on AMD, f32 FMAs on Intel. DSINFER_BF16_DOT=native|fma overrides; tests
// switch it. The two paths round differently (a pair step adds two products at once), so the
// setting is part of what must agree across the ranks of a distributed job.
bool bf16_dot_preferred();
// The kernels' bf16-pair forms run on vdpbf16ps here: the active ISA has it and it is preferred.
// Callers that lay their data out for those forms (the MHA prefill's keys and values) ask this.
bool bf16_pairs_native();
void set_bf16_dot_preferred(bool native);
// "native" or "fma": what bf16_dot_preferred() says, for logs and `dsinfer info`.
const char* bf16_dot_name();

}  // namespace dsinfer
