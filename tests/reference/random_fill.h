// Seeded random inputs for the reference-operator tests, so every failure is reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dsinfer::ref::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace dsinfer::ref::testing
