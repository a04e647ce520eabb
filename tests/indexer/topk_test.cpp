// Standalone top-k against the reference: exact indices and scores, ties, -inf, NaN, n_valid.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/reference/topk.h"
#include "kernels/topk.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;

void check(const std::vector<float>& s, int64_t rows, int64_t n, const int64_t* nv, int k) {
  std::vector<int32_t> idx(size_t(rows * k)), idx_ref(idx.size());
  std::vector<float> sc(idx.size()), sc_ref(idx.size());
  topk(s.data(), rows, n, n, nv, k, idx.data(), sc.data());
  ref::topk_indices(s.data(), rows, n, nv, k, idx_ref.data(), sc_ref.data());
  for (size_t i = 0; i < idx.size(); ++i) {
    ASSERT_EQ(idx[i], idx_ref[i]) << "slot " << i << " k " << k << " n " << n;
    ASSERT_EQ(sc[i], sc_ref[i]) << "slot " << i;
  }
}

TEST(Topk, RandomRowsMatchReference) {
  for_each_isa([](Isa) {
    std::mt19937 rng(1);
    for (int64_t n : {1, 100, 5000, 70000}) {
      const int64_t rows = 3;
      std::vector<float> s(size_t(rows * n));
      std::normal_distribution<float> d;
      for (auto& x : s) x = d(rng);
      std::vector<int64_t> nv = {n, n / 2, 0};
      for (int k : {1, 7, 64, 2048}) {
        check(s, rows, n, nullptr, k);
        check(s, rows, n, nv.data(), k);
      }
    }
  });
}

TEST(Topk, TiesInfAndNan) {
  for_each_isa([](Isa) {
    std::mt19937 rng(2);
    const int64_t n = 20000, rows = 4;
    std::vector<float> s(size_t(rows * n));
    for (auto& x : s) x = float(int(rng() % 7) - 3);  // massive ties
    for (int64_t i = 0; i < n; i += 3) s[size_t(n + i)] = -INFINITY;
    for (int64_t i = 0; i < n; i += 5) s[size_t(2 * n + i)] = NAN;
    for (int64_t i = 0; i < n; ++i) s[size_t(3 * n + i)] = (i % 2) ? -0.0f : -INFINITY;
    for (int k : {1, 100, 2048, 4096}) check(s, rows, n, nullptr, k);
  });
}

}  // namespace
}  // namespace dsinfer
