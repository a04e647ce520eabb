// keep_top (the running top-k's compaction and the indexer's final selection) against a full
// sort, on every ISA: lists short (nth_element) and long (the radix select), k from 1 to n,
// score keys spread wide, packed into a few histogram bins, all equal, and counts that make a
// bin hold exactly the number still needed at each radix pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "test_util.h"
#include "topk_select_driver.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;

uint64_t composite(uint32_t key, uint32_t pos) {
  return (uint64_t(key) << 32) | uint64_t(~pos);
}

void check(const std::vector<uint64_t>& c, size_t k) {
  std::vector<uint64_t> want = c;
  std::sort(want.begin(), want.end(), std::greater<uint64_t>());
  want.resize(std::min(k, want.size()));
  std::sort(want.begin(), want.end());
  for_each_isa([&](Isa) {
    std::vector<uint64_t> got = c;
    const size_t n = DSINFER_DISPATCH(tt_keep_top)(got.data(), got.size(), k);
    ASSERT_EQ(n, want.size()) << "n " << c.size() << " k " << k;
    got.resize(n);
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, want) << "n " << c.size() << " k " << k;
  });
}

// n composites of distinct positions whose score keys come from `key`.
template <class F>
std::vector<uint64_t> make(size_t n, F key, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> pos(n);
  for (size_t i = 0; i < n; ++i) pos[i] = uint32_t(i * 3 + 1);
  std::shuffle(pos.begin(), pos.end(), rng);
  std::vector<uint64_t> c(n);
  for (size_t i = 0; i < n; ++i) c[i] = composite(key(rng), pos[i]);
  return c;
}

TEST(TopkSelect, KeepTopMatchesSort) {
  for (size_t n : {1, 7, 300, 511, 512, 513, 3000, 8448}) {
    for (size_t k : {size_t(1), n / 3 + 1, 2 * n / 3 + 1, n - 1, n, n + 5}) {
      if (k == 0) continue;
      SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k));
      check(make(
                n, [](std::mt19937& r) { return uint32_t(r()); }, 1),
            k);
      // Scores of one sign and exponent: the first pass puts them all in a bin or two.
      check(make(
                n, [](std::mt19937& r) { return 0xC0000000u | (r() & 0x003fffffu); }, 2),
            k);
      // A handful of distinct keys: ties at the k-th key, settled by position.
      check(make(
                n, [](std::mt19937& r) { return 0x80000000u + (r() % 5) * 0x00100401u; }, 3),
            k);
      check(make(
                n, [](std::mt19937&) { return 0x9abcdef0u; }, 4),
            k);  // all equal
    }
  }
}

// Keys laid out so that, at each of the three radix passes (11 / 11 / 10 bits), the bin holding
// the k-th key holds exactly as many as are still needed (and one fewer, and one more).
TEST(TopkSelect, KeepTopBinCountsEqualToNeed) {
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = pass == 0 ? 21 : pass == 1 ? 10 : 0;
    for (int delta : {-1, 0, 1}) {
      // 400 keys above, 300 in the bin at the boundary, 400 below, all with the same higher
      // bits as the boundary bin for the passes before this one.
      std::vector<uint64_t> c;
      uint32_t pos = 0;
      const uint32_t base = 0x80000000u | (0x155u << 21) | (0x2aau << 10) | 0x100u;
      const uint32_t bin = 1u << shift;
      for (int i = 0; i < 400; ++i) c.push_back(composite(base + bin, pos++));
      for (int i = 0; i < 300; ++i) c.push_back(composite(base, pos++));
      for (int i = 0; i < 400; ++i) c.push_back(composite(base - bin, pos++));
      std::shuffle(c.begin(), c.end(), std::mt19937(uint32_t(pass * 3 + delta + 10)));
      SCOPED_TRACE("pass " + std::to_string(pass) + " delta " + std::to_string(delta));
      check(c, size_t(700 + delta));
    }
  }
}

}  // namespace
}  // namespace dsinfer
