#include "core/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/log.h"

namespace dsinfer {

namespace {

constexpr std::string_view kNames[kNumIsas] = {"scalar", "avx2", "avx512", "avx512bf16"};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

Isa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::scalar;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return Isa::scalar;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6, zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_state) return Isa::scalar;
  // Leaves past the highest one the CPU implements return another leaf's data: check first.
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::scalar;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_subleaf_7 = a;
  const bool avx2 = b & (1u << 5), bmi1 = b & (1u << 3), bmi2 = b & (1u << 8);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31), vnni = c & (1u << 11);
  if (!(avx2 && fma && f16c && bmi1 && bmi2)) return Isa::scalar;
  if (!(zmm_state && avx512f && avx512dq && avx512bw && avx512vl)) return Isa::avx2;
  bool bf16 = false;
  if (max_subleaf_7 >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    bf16 = a & (1u << 5);
  }
  return (bf16 && vnni) ? Isa::avx512bf16 : Isa::avx512;
}

Isa initial_isa() {
  Isa best = best_supported_isa();
  const char* env = std::getenv("DSINFER_ISA");
  if (!env || !*env) return best;
  Isa wanted;
  if (!isa_from_name(env, &wanted)) {
    log_warn("DSINFER_ISA=%s is not an ISA (scalar, avx2, avx512, avx512bf16); using %s", env,
             std::string(isa_name(best)).c_str());
    return best;
  }
  if (int(wanted) > int(best)) {
    log_warn("DSINFER_ISA=%s is not supported by this CPU; using %s", env,
             std::string(isa_name(best)).c_str());
    return best;
  }
  return wanted;
}

bool is_intel() {
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  return b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu;  // "Genu" "ineI" "ntel"
}

bool initial_bf16_dot() {
  const char* env = std::getenv("DSINFER_BF16_DOT");
  const bool by_vendor = !is_intel();
  if (!env || !*env) return by_vendor;
  const std::string_view v(env);
  if (v == "native") return true;
  if (v == "fma") return false;
  log_warn("DSINFER_BF16_DOT=%s is neither 'native' nor 'fma'; using %s", env,
           by_vendor ? "native" : "fma");
  return by_vendor;
}

std::atomic<bool>& bf16_dot_slot() {
  static std::atomic<bool> slot{initial_bf16_dot()};
  return slot;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{int(initial_isa())};
  return slot;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  return int(isa) >= 0 && int(isa) < kNumIsas ? kNames[int(isa)] : "unknown";
}

bool isa_from_name(std::string_view name, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i)
    if (kNames[i] == name) {
      *out = Isa(i);
      return true;
    }
  return false;
}

Isa best_supported_isa() {
  static const Isa best = detect();
  return best;
}

bool isa_supported(Isa isa) {
  return int(isa) >= 0 && int(isa) <= int(best_supported_isa());
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (int i = 0; i <= int(best_supported_isa()); ++i) out.push_back(Isa(i));
  return out;
}

Isa active_isa() {
  return Isa(active_slot().load(std::memory_order_relaxed));
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument("ISA " + std::string(isa_name(isa)) + " (" +
                                std::to_string(int(isa)) + ") is not supported by this CPU");
  active_slot().store(int(isa), std::memory_order_relaxed);
}

bool bf16_pairs_native() {
  return active_isa() == Isa::avx512bf16 && bf16_dot_preferred();
}

bool bf16_dot_preferred() {
  return bf16_dot_slot().load(std::memory_order_relaxed);
}

void set_bf16_dot_preferred(bool native) {
  bf16_dot_slot().store(native, std::memory_order_relaxed);
}

const char* bf16_dot_name() {
  return bf16_dot_preferred() ? "native" : "fma";
}

}  // namespace dsinfer
