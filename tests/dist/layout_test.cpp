// The rank layout's maps (src/dist/layout.h) against brute force: the context-parallel split of
// every length up to 300 over up to 8 ranks, contiguous splits, expert ranges, and layout errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "dist/layout.h"

namespace dsinfer::dist {
namespace {

TEST(CpSplit, EveryTokenBelongsToExactlyTheRankOfItsSegment) {
  for (int C = 1; C <= 8; ++C)
    for (int64_t T = 0; T <= 300; ++T) {
      // Brute force: segment s of 2C holds tokens [s*T/(2C) + min(s, T%2C), ...): the first
      // T % 2C segments one longer; rank r owns segments r and 2C-1-r.
      const int64_t S = 2 * C;
      std::vector<int> owner(static_cast<size_t>(T), -1);
      int64_t t = 0;
      for (int64_t s = 0; s < S; ++s) {
        const int64_t len = T / S + (s < T % S ? 1 : 0);
        for (int64_t i = 0; i < len; ++i) owner[size_t(t++)] = int(s < C ? s : S - 1 - s);
      }
      ASSERT_EQ(t, T);
      std::vector<int> seen(static_cast<size_t>(T), 0);
      int64_t min_n = T, max_n = 0;
      double min_work = 1e30, max_work = 0;
      for (int r = 0; r < C; ++r) {
        const std::vector<int64_t> mine = cp_tokens_of(T, C, r);
        ASSERT_TRUE(std::is_sorted(mine.begin(), mine.end())) << "T " << T << " C " << C;
        double work = 0;  // causal attention work: keys per query
        for (int64_t x : mine) {
          ASSERT_EQ(owner[size_t(x)], r) << "T " << T << " C " << C << " token " << x;
          ++seen[size_t(x)];
          work += double(x + 1);
        }
        min_n = std::min<int64_t>(min_n, int64_t(mine.size()));
        max_n = std::max<int64_t>(max_n, int64_t(mine.size()));
        min_work = std::min(min_work, work);
        max_work = std::max(max_work, work);
      }
      for (int64_t x = 0; x < T; ++x) {
        ASSERT_EQ(seen[size_t(x)], 1) << "T " << T << " C " << C << " token " << x;
        ASSERT_EQ(cp_owner(T, C, x), owner[size_t(x)]) << "T " << T << " C " << C;
      }
      EXPECT_LE(max_n - min_n, 2) << "T " << T << " C " << C;
      // Balanced causal work: the pairing of segment r with 2C-1-r evens it out.
      if (T >= 16 * C) {
        EXPECT_LT(max_work / min_work, 1.0 + 8.0 * C / double(T)) << "T " << T << " C " << C;
      }
    }
}

TEST(CpSplit, SegmentBoundsAreContiguousAndCoverTheTokens) {
  for (int C = 1; C <= 8; ++C)
    for (int64_t T = 0; T <= 300; ++T) {
      const std::vector<int64_t> b = cp_segment_bounds(T, C);
      ASSERT_EQ(b.size(), size_t(2 * C + 1));
      EXPECT_EQ(b.front(), 0);
      EXPECT_EQ(b.back(), T);
      for (size_t s = 0; s + 1 < b.size(); ++s) EXPECT_LE(b[s], b[s + 1]);
    }
  EXPECT_THROW(cp_owner(10, 2, 10), std::out_of_range);
}

TEST(SplitRange, PartsAreContiguousBalancedAndCoverEverything) {
  for (int parts = 1; parts <= 9; ++parts)
    for (int64_t n = 0; n <= 100; ++n) {
      int64_t next = 0;
      for (int i = 0; i < parts; ++i) {
        const auto [a, b] = split_range(n, parts, i);
        ASSERT_EQ(a, next);
        ASSERT_GE(b - a, n / parts);
        ASSERT_LE(b - a, n / parts + 1);
        next = b;
      }
      ASSERT_EQ(next, n);
    }
}

TEST(ExpertRange, ContiguousRangesOwnedByTheirRank) {
  for (int ep : {1, 2, 4, 8})
    for (int64_t n : {8, 16, 256}) {
      std::set<int64_t> all;
      for (int r = 0; r < ep; ++r) {
        const auto [a, b] = expert_range(n, ep, r);
        EXPECT_EQ(b - a, n / ep);
        for (int64_t e = a; e < b; ++e) {
          EXPECT_EQ(expert_owner(e, n, ep), r);
          all.insert(e);
        }
      }
      EXPECT_EQ(int64_t(all.size()), n);
    }
}

TEST(CheckLayout, NamesTheFlagThatDoesNotFit) {
  EXPECT_NO_THROW(check_layout({1, 1, 1}, 1, 256));
  EXPECT_NO_THROW(check_layout({4, 2, 1}, 4, 256));
  auto message = [](Layout l, int n, int64_t e) {
    try {
      check_layout(l, n, e);
    } catch (const std::invalid_argument& x) {
      return std::string(x.what());
    }
    return std::string();
  };
  EXPECT_NE(message({3, 1, 1}, 4, 256).find("--ep 3 does not divide the 4 ranks"),
            std::string::npos);
  EXPECT_NE(message({2, 1, 1}, 1, 256).find("--ep 2 does not divide the 1 ranks"),
            std::string::npos);
  EXPECT_NE(message({1, 4, 1}, 6, 256).find("--cp 4 does not divide the 6 ranks"),
            std::string::npos);
  EXPECT_EQ(message({1, 3, 1}, 6, 256), "");
  EXPECT_NE(message({4, 1, 1}, 4, 6).find("does not divide the model's 6 routed experts"),
            std::string::npos);
  EXPECT_NE(message({2, 1, 1}, 2, 0).find("no routed experts"), std::string::npos);
  EXPECT_NE(message({0, 1, 1}, 2, 8).find("--ep 0 must be >= 1"), std::string::npos);
}

}  // namespace
}  // namespace dsinfer::dist
