// The logit fidelity metrics of `bench accuracy` on hand-computed cases.
#include "fidelity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dsinfer::bench {
namespace {

TEST(Fidelity, IdenticalLogitsAreExact) {
  const std::vector<float> a = {1, 2, 3, -1, 0.5f, 0.25f};
  const Fidelity f = compare_logits(a, a, 3);
  EXPECT_EQ(f.positions, 2);
  EXPECT_EQ(f.median_rel, 0.0);
  EXPECT_EQ(f.argmax_agree, 1.0);
  EXPECT_NEAR(f.mean_kl, 0.0, 1e-15);
}

TEST(Fidelity, HandComputedCase) {
  // Position 0: argmax moves (1 -> 0), max|diff| = 2 of max|base| 4 -> 0.5.
  // Position 1: scaled by 1.1 -> rel 0.1, argmax kept. Position 2: equal -> 0.
  const std::vector<float> base = {1, 4, 0, 2, -1, 0, 0, 0, 1};
  const std::vector<float> got = {3, 2, 0, 2.2f, -1.1f, 0, 0, 0, 1};
  const Fidelity f = compare_logits(got, base, 3);
  EXPECT_EQ(f.positions, 3);
  EXPECT_NEAR(f.median_rel, 0.1, 1e-6);
  EXPECT_NEAR(f.argmax_agree, 2.0 / 3.0, 1e-12);
  // KL(p || q) of position 0, by hand: p = softmax(1, 4, 0), q = softmax(3, 2, 0).
  auto kl = [](std::vector<double> p, std::vector<double> q) {
    double zp = 0, zq = 0, k = 0;
    for (double& v : p) zp += (v = std::exp(v));
    for (double& v : q) zq += (v = std::exp(v));
    for (size_t i = 0; i < p.size(); ++i) k += p[i] / zp * std::log((p[i] / zp) / (q[i] / zq));
    return k;
  };
  const double want = (kl({1, 4, 0}, {3, 2, 0}) + kl({2, -1, 0}, {2.2, -1.1, 0})) / 3;
  EXPECT_NEAR(f.mean_kl, want, 1e-6);
  EXPECT_GT(f.mean_kl, 0.3);  // the argmax flip dominates
}

TEST(Fidelity, RejectsMismatchedRows) {
  EXPECT_THROW(compare_logits({1, 2, 3}, {1, 2}, 2), std::invalid_argument);
  EXPECT_THROW(compare_logits({1, 2, 3}, {1, 2, 3}, 2), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer::bench
