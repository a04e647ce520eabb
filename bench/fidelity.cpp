#include "fidelity.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dsinfer::bench {

namespace {

// log softmax of row x[0, n) in double.
std::vector<double> log_softmax(const float* x, int64_t n) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
  return out;
}

}  // namespace

Fidelity compare_logits(const std::vector<float>& got, const std::vector<float>& base,
                        int64_t vocab) {
  if (vocab <= 0 || got.size() != base.size() || base.size() % size_t(vocab) != 0)
    throw std::invalid_argument("compare_logits: " + std::to_string(got.size()) + " vs " +
                                std::to_string(base.size()) + " logits are not matching rows of " +
                                std::to_string(vocab));
  Fidelity f;
  f.positions = int64_t(base.size()) / vocab;
  if (f.positions == 0) return f;
  std::vector<double> rel;
  int64_t agree = 0;
  double kl = 0;
  for (int64_t p = 0; p < f.positions; ++p) {
    const float* g = got.data() + p * vocab;
    const float* b = base.data() + p * vocab;
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      diff = std::max(diff, std::fabs(double(g[i]) - double(b[i])));
      scale = std::max(scale, std::fabs(double(b[i])));
    }
    rel.push_back(scale > 0 ? diff / scale : diff);
    agree += std::max_element(g, g + vocab) - g == std::max_element(b, b + vocab) - b;
    const std::vector<double> lg = log_softmax(g, vocab), lb = log_softmax(b, vocab);
    double k = 0;
    for (int64_t i = 0; i < vocab; ++i)
      k += std::exp(lb[size_t(i)]) * (lb[size_t(i)] - lg[size_t(i)]);
    kl += std::max(0.0, k);  // a rounding-level negative is 0
  }
  std::sort(rel.begin(), rel.end());
  const size_t n = rel.size();
  f.median_rel = n % 2 ? rel[n / 2] : 0.5 * (rel[n / 2 - 1] + rel[n / 2]);
  f.argmax_agree = double(agree) / double(f.positions);
  f.mean_kl = kl / double(f.positions);
  return f;
}

}  // namespace dsinfer::bench
