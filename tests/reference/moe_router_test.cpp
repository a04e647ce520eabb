#include "kernels/reference/moe_router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "random_fill.h"

namespace dsinfer::ref {
namespace {

float logit(double u) {
  return float(std::log(u / (1 - u)));
}

// 8 experts in 4 groups of 2, keep 2 groups, choose 2 experts.
const MoeRouting kSmall{.n_experts = 8,
                        .n_group = 4,
                        .topk_group = 2,
                        .top_k = 2,
                        .norm_topk_prob = true,
                        .routed_scaling_factor = 2.5f};

struct Route {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Route route(const std::vector<float>& logits, const std::vector<float>* bias, const MoeRouting& r) {
  const int64_t T = int64_t(logits.size()) / r.n_experts;
  Route out{std::vector<int32_t>(T * r.top_k), std::vector<float>(T * r.top_k)};
  ref::moe_route(logits.data(), bias ? bias->data() : nullptr, T, r, out.ids.data(),
                 out.weights.data());
  return out;
}

// Sigmoid scores per group: g0 {0.95, 0.05} sums 1.00, g1 {0.6, 0.6} 1.20, g2 {0.7, 0.55} 1.25,
// g3 {0.1, 0.2} 0.30. Groups 2 and 1 win, so expert 0, the single best, is out.
const std::vector<double> kU = {0.95, 0.05, 0.6, 0.6, 0.7, 0.55, 0.1, 0.2};
std::vector<float> crafted_logits() {
  std::vector<float> l;
  for (double u : kU) l.push_back(logit(u));
  return l;
}

TEST(RefMoeRouter, GroupLimitExcludesTheBestExpertOfALosingGroup) {
  Route r = route(crafted_logits(), nullptr, kSmall);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{4, 2}));  // 2 and 3 tie at 0.6: the smaller id wins
  EXPECT_NEAR(r.weights[0], 0.7 / 1.3 * 2.5, 1e-6);
  EXPECT_NEAR(r.weights[1], 0.6 / 1.3 * 2.5, 1e-6);
  EXPECT_NEAR(r.weights[0] + r.weights[1], 2.5, 1e-6);

  MoeRouting one_group = kSmall;
  one_group.n_group = 1, one_group.topk_group = 1;  // no group limit: expert 0 is back
  EXPECT_EQ(route(crafted_logits(), nullptr, one_group).ids, (std::vector<int32_t>{0, 4}));
}

TEST(RefMoeRouter, BiasSelectsButDoesNotWeigh) {
  // +1 on expert 7 lifts group 3 to 0.1 + 1.2 = 1.3 (best) and expert 7 to b = 1.2.
  std::vector<float> bias(8, 0.0f);
  bias[7] = 1;
  Route r = route(crafted_logits(), &bias, kSmall);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{7, 4}));
  EXPECT_NEAR(r.weights[0], 0.2 / 0.9 * 2.5, 1e-6);
  EXPECT_NEAR(r.weights[1], 0.7 / 0.9 * 2.5, 1e-6);
}

TEST(RefMoeRouter, WithoutNormalizationWeightsAreScaledSigmoids) {
  MoeRouting r = kSmall;
  r.norm_topk_prob = false;
  Route out = route(crafted_logits(), nullptr, r);
  EXPECT_NEAR(out.weights[0], 0.7 * 2.5, 1e-6);
  EXPECT_NEAR(out.weights[1], 0.6 * 2.5, 1e-6);
}

TEST(RefMoeRouter, GroupScoreIsTheSumOfTheTwoLargestNotTheMax) {
  // Groups of 4: g0 {0.9, 0.1, 0.1, 0.1} (max 0.9, top-2 sum 1.0), g1 {0.6, 0.6, 0.0, 0.0}
  // (max 0.6, top-2 sum 1.2). Keeping one group must keep g1.
  MoeRouting r{.n_experts = 8,
               .n_group = 2,
               .topk_group = 1,
               .top_k = 1,
               .norm_topk_prob = true,
               .routed_scaling_factor = 1.0f};
  std::vector<float> l = {logit(0.9), logit(0.1), logit(0.1),  logit(0.1),
                          logit(0.6), logit(0.6), logit(0.01), logit(0.01)};
  Route out = route(l, nullptr, r);
  EXPECT_EQ(out.ids, (std::vector<int32_t>{4}));
  EXPECT_FLOAT_EQ(out.weights[0], 1.0f);
}

TEST(RefMoeRouter, TiedGroupsGoToTheSmallerGroupId) {
  std::vector<float> l(8, 0.0f);  // every u = 0.5: all groups tie, all experts tie
  Route r = route(l, nullptr, kSmall);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1}));
  EXPECT_FLOAT_EQ(r.weights[0], 1.25f);
}

TEST(RefMoeRouter, RandomTokensRouteInsideTheirBestGroups) {
  const MoeRouting r{.n_experts = 64,
                     .n_group = 8,
                     .topk_group = 3,
                     .top_k = 6,
                     .norm_topk_prob = true,
                     .routed_scaling_factor = 2.5f};
  const int T = 20;
  std::vector<float> logits = testing::random_floats(T * 64, 70, -4, 4);
  std::vector<float> bias = testing::random_floats(64, 71, -0.2f, 0.2f);
  Route out = route(logits, &bias, r);
  for (int t = 0; t < T; ++t) {
    std::vector<bool> seen(64, false);
    std::vector<int> groups_used;
    float sum = 0;
    for (int j = 0; j < 6; ++j) {
      int e = out.ids[t * 6 + j];
      ASSERT_GE(e, 0);
      ASSERT_LT(e, 64);
      EXPECT_FALSE(seen[e]);
      seen[e] = true;
      if (std::find(groups_used.begin(), groups_used.end(), e / 8) == groups_used.end())
        groups_used.push_back(e / 8);
      sum += out.weights[t * 6 + j];
      EXPECT_GT(out.weights[t * 6 + j], 0);
    }
    EXPECT_LE(groups_used.size(), 3u);
    EXPECT_NEAR(sum, 2.5, 1e-5);
  }
}

TEST(RefMoeRouter, RejectsImpossibleConfigurations) {
  MoeRouting r = kSmall;
  r.top_k = 5;  // only 2 groups * 2 experts are kept
  std::vector<float> l(8, 0.0f);
  EXPECT_THROW(route(l, nullptr, r), std::invalid_argument);
  r = kSmall;
  r.n_group = 3;  // 8 experts do not split into 3 groups
  EXPECT_THROW(route(l, nullptr, r), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer::ref
