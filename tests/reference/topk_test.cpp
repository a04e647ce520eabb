#include "kernels/reference/topk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace dsinfer::ref {
namespace {

const float kNegInf = -INFINITY;

struct TopK {
  std::vector<int32_t> idx;
  std::vector<float> score;
};

TopK run_row(const std::vector<float>& row, int64_t n_valid, int k) {
  TopK r{std::vector<int32_t>(k), std::vector<float>(k)};
  topk_indices(row.data(), 1, int64_t(row.size()), &n_valid, k, r.idx.data(), r.score.data());
  return r;
}

TEST(RefTopK, PicksLargestInDescendingOrder) {
  TopK r = run_row({3, 1, 4, 1, 5, 9, 2, 6}, 8, 3);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{5, 7, 4}));
  EXPECT_EQ(r.score, (std::vector<float>{9, 6, 5}));
}

TEST(RefTopK, ExactTiesGoToTheSmallerIndex) {
  std::vector<float> row = {1, 2, 2, 2, 0, 2};
  EXPECT_EQ(run_row(row, 6, 2).idx, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(run_row(row, 6, 5).idx, (std::vector<int32_t>{1, 2, 3, 5, 0}));
  // +0 and -0 compare equal, so they tie too.
  EXPECT_EQ(run_row({-0.0f, 0.0f}, 2, 1).idx, (std::vector<int32_t>{0}));
}

TEST(RefTopK, KeysPastValidLengthAreIgnoredAndSlotsPaddedWithMinusOne) {
  TopK r = run_row({0.5f, 2, 1, 100, 200}, 3, 5);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{1, 2, 0, -1, -1}));
  EXPECT_EQ(r.score, (std::vector<float>{2, 1, 0.5f, kNegInf, kNegInf}));
  TopK none = run_row({1, 2}, 0, 2);
  EXPECT_EQ(none.idx, (std::vector<int32_t>{-1, -1}));
}

TEST(RefTopK, AllMinusInfinityRowKeepsTheFirstValidKeys) {
  TopK r = run_row({kNegInf, kNegInf, kNegInf, kNegInf}, 3, 4);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{0, 1, 2, -1}));
  EXPECT_EQ(r.score, (std::vector<float>{kNegInf, kNegInf, kNegInf, kNegInf}));
}

TEST(RefTopK, NanRanksAsMinusInfinity) {
  TopK r = run_row({NAN, kNegInf, 1, NAN, -5}, 5, 5);
  EXPECT_EQ(r.idx, (std::vector<int32_t>{2, 4, 0, 1, 3}));
  EXPECT_EQ(r.score, (std::vector<float>{1, -5, kNegInf, kNegInf, kNegInf}));
}

TEST(RefTopK, CausalValidLength) {
  EXPECT_EQ(causal_valid_length(0, 10), 1);
  EXPECT_EQ(causal_valid_length(4, 10), 5);
  EXPECT_EQ(causal_valid_length(9, 10), 10);
  EXPECT_EQ(causal_valid_length(50, 10), 10);  // decode sees the whole cache
}

// Against a full stable sort: a different algorithm with the same total order, on rows with many
// duplicated scores and several valid lengths.
TEST(RefTopK, MatchesStableSortOnRandomRowsWithDuplicates) {
  const int T = 6, N = 300, K = 37;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 20);  // few distinct values: many ties
  std::vector<float> scores(T * N);
  for (float& s : scores) s = float(level(rng)) * 0.25f;
  std::vector<int64_t> n_valid = {0, 1, 20, 36, 37, 300};
  std::vector<int32_t> idx(T * K);
  topk_indices(scores.data(), T, N, n_valid.data(), K, idx.data(), nullptr);
  for (int t = 0; t < T; ++t) {
    std::vector<int32_t> order(n_valid[t]);
    std::iota(order.begin(), order.end(), 0);
    const float* row = &scores[t * N];
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    for (int j = 0; j < K; ++j)
      EXPECT_EQ(idx[t * K + j], j < int(order.size()) ? order[j] : -1) << t << "," << j;
  }
}

}  // namespace
}  // namespace dsinfer::ref
