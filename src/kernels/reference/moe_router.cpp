#include "kernels/reference/moe_router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace dsinfer::ref {
namespace {

void check_routing(const MoeRouting& r) {
  if (r.n_group <= 0 || r.n_experts % r.n_group != 0)
    throw std::invalid_argument("moe_route: n_experts must split into n_group equal groups");
  if (r.topk_group <= 0 || r.topk_group > r.n_group)
    throw std::invalid_argument("moe_route: topk_group must be in [1, n_group]");
  if (r.top_k <= 0 || r.top_k > r.n_experts / r.n_group * r.topk_group)
    throw std::invalid_argument("moe_route: top_k exceeds the experts in the kept groups");
}

// The first n entries of 0..size-1 ordered by value descending, then index ascending.
std::vector<int> best_indices(const std::vector<float>& value, int n) {
  std::vector<int> order(value.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int a, int b) {
    return value[a] != value[b] ? value[a] > value[b] : a < b;
  });
  order.resize(n);
  return order;
}

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const MoeRouting& cfg,
               int32_t* expert_ids, float* weights) {
  check_routing(cfg);
  const int E = cfg.n_experts, group_size = E / cfg.n_group;
  std::vector<float> u(E), b(E), group_score(cfg.n_group), kept_b(E);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int e = 0; e < E; ++e) {
      u[e] = float(1.0 / (1.0 + std::exp(-double(logits[t * E + e]))));
      b[e] = u[e] + (bias ? bias[e] : 0.0f);
    }
    for (int g = 0; g < cfg.n_group; ++g) {
      std::vector<float> members(b.begin() + g * group_size, b.begin() + (g + 1) * group_size);
      std::vector<int> top = best_indices(members, std::min(2, group_size));
      group_score[g] = top.size() == 2 ? members[top[0]] + members[top[1]] : members[top[0]];
    }
    // Experts of dropped groups compete with -inf, so they can never be chosen (top_k is at
    // most the number of kept experts).
    std::fill(kept_b.begin(), kept_b.end(), -INFINITY);
    for (int g : best_indices(group_score, cfg.topk_group))
      std::copy_n(b.begin() + g * group_size, group_size, kept_b.begin() + g * group_size);
    std::vector<int> chosen = best_indices(kept_b, cfg.top_k);

    double u_sum = 0;
    for (int e : chosen) u_sum += u[e];
    const double norm = cfg.norm_topk_prob ? u_sum : 1.0;
    for (int j = 0; j < cfg.top_k; ++j) {
      expert_ids[t * cfg.top_k + j] = chosen[j];
      weights[t * cfg.top_k + j] = float(u[chosen[j]] / norm * cfg.routed_scaling_factor);
    }
  }
}

}  // namespace dsinfer::ref
