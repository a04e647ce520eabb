#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace dsinfer {

void token_logprobs(const float* logits, int vocab, int top_n, GeneratedToken* out) {
  auto value = [&](int i) {
    const float v = logits[i];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, value(i));
  double sum = 0;
  if (std::isfinite(mx))
    for (int i = 0; i < vocab; ++i) sum += std::exp(double(value(i)) - mx);
  const double log_z = std::isfinite(mx) ? double(mx) + std::log(sum) : 0.0;
  auto lp = [&](int i) { return float(double(value(i)) - log_z); };
  out->logprob = lp(out->token);
  out->top.clear();
  if (top_n <= 0) return;
  // The top_n best (logit descending, id ascending) by one pass with a sorted buffer.
  std::vector<int> best;
  auto better = [&](int a, int b) {
    return value(a) > value(b) || (value(a) == value(b) && a < b);
  };
  for (int i = 0; i < vocab; ++i) {
    if (int(best.size()) == top_n && !better(i, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
    if (int(best.size()) > top_n) best.pop_back();
  }
  for (int i : best) out->top.push_back(TokenLogprob{i, lp(i)});
}

}  // namespace dsinfer
