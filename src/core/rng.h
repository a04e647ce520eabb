// Self-contained pseudo-random numbers with identical streams on every platform and standard
// library (std::*_distribution results differ between them): splitmix64 for seeding and hashing,
// xoshiro256** (Blackman & Vigna) for streams. Used by the sampler and gen-model.
#pragma once

#include <array>
#include <cstdint>

namespace dsinfer {

// Advances `state` and returns its next splitmix64 output.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed) {
    uint64_t st = seed;
    for (auto& w : s_) w = splitmix64(st);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double next_double() { return double(next() >> 11) * 0x1.0p-53; }  // uniform in [0, 1)
  // Uniform in (-1, 1), symmetric: 24 random bits centred on the grid's midpoints.
  float symmetric() { return (float(next() >> 40) + 0.5f) * 0x1p-23f - 1.0f; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

}  // namespace dsinfer
