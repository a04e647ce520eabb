// Helpers shared by the test suites: seeded random data and the ISA loop.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace dsinfer::testing {

// Runs body() once under every ISA backend this CPU supports, restoring the active one after.
// avx512bf16 runs with the native bf16 dot product on, whatever this CPU's default (on Intel the
// default is f32 FMAs, which the avx512 pass covers), so the vdpbf16ps paths are always tested.
template <class Body>
void for_each_isa(Body body) {
  const Isa saved = active_isa();
  const bool saved_dot = bf16_dot_preferred();
  for (Isa isa : supported_isas()) {
    set_active_isa(isa);
    set_bf16_dot_preferred(isa == Isa::avx512bf16 || saved_dot);
    SCOPED_TRACE("isa " + std::string(isa_name(isa)));
    body(isa);
  }
  set_active_isa(saved);
  set_bf16_dot_preferred(saved_dot);
}

// The bf16-pair attention kernels round every softmax probability P[s] to bf16 (a relative error
// of at most 2^-8, uniform), which moves an output o = sum_s P[s] v[s] by a sum of independent
// errors of standard deviation at most 2^-8 / sqrt(3) * |P| * max |v|. Tests allow six of them:
// kPairRoundingSigmas * |P| (values bounded by 1), |P| from softmax_norm of the row's scores.
inline const double kPairRoundingSigmas = 6.0 * std::ldexp(1.0, -8) / std::sqrt(3.0);
inline double softmax_norm(const std::vector<double>& scores) {
  if (scores.empty()) return 0.0;
  const double mx = *std::max_element(scores.begin(), scores.end());
  double sum = 0, sq = 0;
  for (double x : scores) sum += std::exp(x - mx);
  for (double x : scores) sq += std::pow(std::exp(x - mx) / sum, 2);
  return std::sqrt(sq);
}

// Every a[i] within abs + rel * |b[i]| of b[i].
inline void expect_close(const std::vector<float>& a, const std::vector<float>& b, float rel,
                         float abs) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], b[i], abs + rel * std::fabs(b[i])) << "at " << i;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline std::vector<bf16> to_bf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
  return out;
}

// Random finite fp8 e4m3 codes (never the NaN codes 0x7f / 0xff).
inline std::vector<fp8_e4m3> random_fp8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<fp8_e4m3> v(n);
  for (auto& x : v) {
    uint8_t c;
    do c = uint8_t(rng());
    while ((c & 0x7f) == 0x7f);
    x.bits = c;
  }
  return v;
}

}  // namespace dsinfer::testing
