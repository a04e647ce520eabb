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

}  // namespace dsinfer
