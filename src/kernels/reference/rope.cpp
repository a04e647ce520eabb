#include "kernels/reference/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace dsinfer::ref {
namespace {

void check_rope_dim(int rope_dim) {
  if (rope_dim <= 0 || rope_dim % 2 != 0)
    throw std::invalid_argument("rope_dim must be positive and even");
}

double plain_freq(int i, int rope_dim, double theta) {
  return std::pow(theta, -2.0 * i / double(rope_dim));
}

// The dimension index at which a frequency completes `n_rotations` turns over `max_pos`
// positions (the release's find_correction_dim).
double correction_dim(double n_rotations, int rope_dim, double theta, int max_pos) {
  return rope_dim * std::log(max_pos / (n_rotations * 2 * std::numbers::pi)) /
         (2 * std::log(theta));
}

// Rotates the pair (x[a], x[b]) by the angle whose cosine and sine are given.
void rotate_pair(float* x, int a, int b, float cos_v, float sin_v) {
  double xa = x[a], xb = x[b];
  x[a] = float(xa * cos_v - xb * sin_v);
  x[b] = float(xb * cos_v + xa * sin_v);
}

// Applies rotate_pair to every (first(i), second(i)) pair of every vector.
template <class PairLayout>
void rope_apply(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                const int32_t* positions, const float* inv_freq, PairLayout layout) {
  check_rope_dim(rope_dim);
  int half = rope_dim / 2;
  std::vector<float> cos_v(half), sin_v(half);
  for (int64_t t = 0; t < n_tokens; ++t) {
    rope_cos_sin(inv_freq, half, positions[t], cos_v.data(), sin_v.data());
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_stride;
      for (int i = 0; i < half; ++i) {
        auto [a, b] = layout(i, half);
        rotate_pair(v, a, b, cos_v[i], sin_v[i]);
      }
    }
  }
}

}  // namespace

std::vector<float> rope_inv_freq(int rope_dim, double theta) {
  check_rope_dim(rope_dim);
  std::vector<float> f(rope_dim / 2);
  for (int i = 0; i < rope_dim / 2; ++i) f[i] = float(plain_freq(i, rope_dim, theta));
  return f;
}

std::vector<float> yarn_inv_freq(int rope_dim, double theta, double factor, int original_max_pos,
                                 double beta_fast, double beta_slow) {
  check_rope_dim(rope_dim);
  double low = std::floor(correction_dim(beta_fast, rope_dim, theta, original_max_pos));
  double high = std::ceil(correction_dim(beta_slow, rope_dim, theta, original_max_pos));
  low = std::max(low, 0.0);
  high = std::min(high, double(rope_dim - 1));
  if (low == high) high += 0.001;  // avoid dividing by zero in the ramp
  std::vector<float> f(rope_dim / 2);
  for (int i = 0; i < rope_dim / 2; ++i) {
    double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    double fi = plain_freq(i, rope_dim, theta);
    f[i] = float(fi / factor * ramp + fi * (1 - ramp));
  }
  return f;
}

double yarn_mscale(double factor, double mscale_all_dim) {
  if (factor <= 1) return 1.0;
  return 0.1 * mscale_all_dim * std::log(factor) + 1.0;
}

double yarn_softmax_scale(int qk_head_dim, double factor, double mscale_all_dim) {
  double m = yarn_mscale(factor, mscale_all_dim);
  return m * m / std::sqrt(double(qk_head_dim));
}

void rope_cos_sin(const float* inv_freq, int n_freq, int32_t pos, float* cos_out, float* sin_out) {
  for (int i = 0; i < n_freq; ++i) {
    float angle = float(pos) * inv_freq[i];
    cos_out[i] = float(std::cos(double(angle)));
    sin_out[i] = float(std::sin(double(angle)));
  }
}

void rope_interleaved(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                      const int32_t* positions, const float* inv_freq) {
  rope_apply(x, n_tokens, n_heads, head_stride, rope_dim, positions, inv_freq, [](int i, int) {
    return std::pair{2 * i, 2 * i + 1};
  });
}

void rope_halves(float* x, int64_t n_tokens, int n_heads, int64_t head_stride, int rope_dim,
                 const int32_t* positions, const float* inv_freq) {
  rope_apply(x, n_tokens, n_heads, head_stride, rope_dim, positions, inv_freq, [](int i, int half) {
    return std::pair{i, i + half};
  });
}

}  // namespace dsinfer::ref
