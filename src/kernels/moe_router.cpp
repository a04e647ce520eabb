#include "kernels/moe_router.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/thread_pool.h"

namespace dsinfer {
namespace {

void check_routing(const MoeRouting& r) {
  if (r.n_experts <= 0 || r.n_group <= 0 || r.n_experts % r.n_group != 0)
    throw std::invalid_argument("moe_route: n_experts must split into n_group equal groups");
  if (r.topk_group <= 0 || r.topk_group > r.n_group)
    throw std::invalid_argument("moe_route: topk_group must be in [1, n_group]");
  if (r.top_k <= 0 || r.top_k > r.n_experts / r.n_group * r.topk_group)
    throw std::invalid_argument("moe_route: top_k exceeds the experts in the kept groups");
}

// Keeps the best `n` (value descending, then index ascending) of the candidates offered in
// ascending index order: a strictly greater value is needed to pass an earlier one.
struct BestN {
  int n = 0, size = 0;
  float* value;
  int* index;
  void offer(float v, int i) {
    if (size == n && !(v > value[n - 1])) return;
    int j = size < n ? size++ : n - 1;
    while (j > 0 && v > value[j - 1]) {
      value[j] = value[j - 1];
      index[j] = index[j - 1];
      --j;
    }
    value[j] = v;
    index[j] = i;
  }
};

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_tokens, const MoeRouting& cfg,
               int32_t* expert_ids, float* weights) {
  check_routing(cfg);
  const int E = cfg.n_experts, G = cfg.n_group, group_size = E / G, K = cfg.top_k;
  parallel_for(n_tokens, 16, [&](int64_t t0, int64_t t1, int) {
    const size_t ne = static_cast<size_t>(E), ng = static_cast<size_t>(G);
    std::vector<float> u(ne), b(ne), group_score(ng), best_v(ng + size_t(K));
    std::vector<int> best_i(ng + size_t(K));
    std::vector<char> kept(ng);
    for (int64_t t = t0; t < t1; ++t) {
      const float* lt = logits + t * E;
      for (int e = 0; e < E; ++e) {
        u[size_t(e)] = float(1.0 / (1.0 + std::exp(-double(lt[e]))));
        b[size_t(e)] = u[size_t(e)] + (bias ? bias[e] : 0.0f);
      }
      // Group score: the sum of the group's two largest biased scores (the one, for size 1).
      for (int g = 0; g < G; ++g) {
        const float* m = b.data() + g * group_size;
        if (group_size == 1) {
          group_score[size_t(g)] = m[0];
          continue;
        }
        float m1 = m[0] >= m[1] ? m[0] : m[1], m2 = m[0] >= m[1] ? m[1] : m[0];
        for (int j = 2; j < group_size; ++j) {
          if (m[j] > m1) {
            m2 = m1;
            m1 = m[j];
          } else if (m[j] > m2) {
            m2 = m[j];
          }
        }
        group_score[size_t(g)] = m1 + m2;
      }
      BestN groups{cfg.topk_group, 0, best_v.data(), best_i.data()};
      for (int g = 0; g < G; ++g) groups.offer(group_score[size_t(g)], g);
      std::fill(kept.begin(), kept.end(), 0);
      for (int j = 0; j < groups.size; ++j) kept[size_t(best_i[size_t(j)])] = 1;
      // Experts of dropped groups compete with -inf, as the reference has them.
      BestN chosen{K, 0, best_v.data(), best_i.data()};
      for (int e = 0; e < E; ++e)
        chosen.offer(kept[size_t(e / group_size)] ? b[size_t(e)] : -INFINITY, e);
      double u_sum = 0;
      for (int j = 0; j < K; ++j) u_sum += u[size_t(best_i[size_t(j)])];
      const double norm = cfg.norm_topk_prob ? u_sum : 1.0;
      for (int j = 0; j < K; ++j) {
        const int e = best_i[size_t(j)];
        expert_ids[t * K + j] = e;
        weights[t * K + j] = float(u[size_t(e)] / norm * cfg.routed_scaling_factor);
      }
    }
  });
}

}  // namespace dsinfer
