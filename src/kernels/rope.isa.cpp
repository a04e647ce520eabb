// RoPE rotations in the tile layer (compiled once per ISA).
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "tile/tile.h"

namespace dsinfer::DSINFER_ISA_NS {

using namespace tile;

namespace {

// cos/sin of float(pos) * inv_freq[i] for i < half, in double, rounded to f32.
void angles(int32_t pos, const float* inv_freq, int half, float* cs, float* sn) {
  for (int i = 0; i < half; ++i) {
    const float ang = float(pos) * inv_freq[i];
    cs[i] = float(std::cos(double(ang)));
    sn[i] = float(std::sin(double(ang)));
  }
}

}  // namespace

void rope_interleaved_kernel(float* x, int64_t n_tokens, int n_heads, int64_t head_stride,
                             int rope_dim, const int32_t* positions, const float* inv_freq) {
  const int half = rope_dim / 2;
  parallel_for(n_tokens, 8, [&](int64_t t0, int64_t t1, int) {
    // Per pair i the table holds (cos, cos) and (-sin, +sin), so one vector step rotates kLanes/2
    // pairs: y = x * c + swap_pairs(x) * s.
    std::vector<float> c2(size_t(rope_dim) + kLanes), s2(size_t(rope_dim) + kLanes);
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; ++t) {
      angles(positions[t], inv_freq, half, cs.data(), sn.data());
      for (int i = 0; i < half; ++i) {
        c2[size_t(2 * i)] = c2[size_t(2 * i + 1)] = cs[size_t(i)];
        s2[size_t(2 * i)] = -sn[size_t(i)];
        s2[size_t(2 * i + 1)] = sn[size_t(i)];
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_stride;
        int i = 0;
        for (; i + kLanes <= rope_dim; i += kLanes) {
          const VF a = load(v + i);
          store(v + i, fma(swap_pairs(a), load(s2.data() + i), mul(a, load(c2.data() + i))));
        }
        for (; i < rope_dim; i += 2) {
          const float a = v[i], b = v[i + 1];
          const float c = c2[size_t(i)], s = s2[size_t(i + 1)];
          v[i] = std::fma(b, -s, a * c);
          v[i + 1] = std::fma(a, s, b * c);
        }
      }
    }
  });
}

void rope_halves_kernel(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                        const int32_t* positions, const float* inv_freq) {
  const int half = rope_dim / 2;
  parallel_for(n_tokens, 16, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> cs(size_t(half) + kLanes), sn(size_t(half) + kLanes);
    for (int64_t t = t0; t < t1; ++t) {
      angles(positions[t], inv_freq, half, cs.data(), sn.data());
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_stride;
        int i = 0;
        for (; i + kLanes <= half; i += kLanes) {
          const VF a = load(v + i), b = load(v + half + i);
          const VF c = load(cs.data() + i), s = load(sn.data() + i);
          store(v + i, sub(mul(a, c), mul(b, s)));
          store(v + half + i, fma(a, s, mul(b, c)));
        }
        for (; i < half; ++i) {
          const float a = v[i], b = v[half + i];
          v[i] = a * cs[size_t(i)] - b * sn[size_t(i)];
          v[half + i] = b * cs[size_t(i)] + a * sn[size_t(i)];
        }
      }
    }
  });
}

}  // namespace dsinfer::DSINFER_ISA_NS
