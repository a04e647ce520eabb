// Non-absorbed MHA flash attention (one head) against its double-precision reference, on every
// ISA this CPU runs: causal and top-k masked, tails in queries, keys and value width.
#include "kernels/mha_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "test_util.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;
using testing::random_floats;

struct Case {
  int64_t T, L;
  int dqk, dv;
  bool masked, shuffled_positions;
};

void run_case(const Case& c, uint32_t seed) {
  SCOPED_TRACE("T=" + std::to_string(c.T) + " L=" + std::to_string(c.L) +
               " dqk=" + std::to_string(c.dqk) + " dv=" + std::to_string(c.dv) +
               (c.masked ? " masked" : "") + (c.shuffled_positions ? " shuffled" : ""));
  const int64_t ldq = c.dqk + 3, ldv = c.dv + 2, ldo = c.dv + 1;
  const int64_t ldmask = (c.L + 63) / 64 + 1;
  std::vector<float> q = random_floats(size_t(c.T * ldq), seed, -2, 2);
  const std::vector<float> k = random_floats(size_t(c.dqk * c.L), seed + 1, -2, 2);
  std::vector<float> kt(size_t(mha_keys_size(c.L, c.dqk)), 0.0f);  // blocked, zero-padded
  for (int64_t s = 0; s < c.L; ++s)
    for (int d = 0; d < c.dqk; ++d) kt[mha_key_index(s, d, c.dqk)] = k[s * c.dqk + d];
  std::vector<float> v = random_floats(size_t(c.L * ldv), seed + 2);
  std::mt19937 rng(seed + 3);
  std::vector<int32_t> pos(size_t(c.T));
  for (int64_t t = 0; t < c.T; ++t)
    pos[t] = c.shuffled_positions ? int32_t(rng() % c.L) : int32_t(c.L - c.T + t);
  std::vector<uint64_t> mask;
  if (c.masked) {
    mask.assign(size_t(c.T * ldmask), 0);
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t s = 0; s < c.L; ++s)
        if (rng() % 3 == 0) mask[t * ldmask + s / 64] |= uint64_t(1) << (s % 64);
    if (c.T > 2) std::fill(mask.begin() + ldmask, mask.begin() + 2 * ldmask, 0);  // row 1: empty
  }
  MhaHeadArgs a;
  a.q = q.data(), a.ldq = ldq, a.n_queries = c.T, a.dqk = c.dqk, a.dv = c.dv;
  a.kt = kt.data(), a.v = v.data(), a.ldv = ldv, a.n_keys = c.L;
  a.positions = pos.data(), a.mask = c.masked ? mask.data() : nullptr, a.ldmask = ldmask;
  a.scale = 2.0f / std::sqrt(float(c.dqk));  // peaky: exercises the running max
  std::vector<float> want(size_t(c.T * ldo), -5.0f);
  a.o = want.data(), a.ldo = ldo;
  mha_attention_head_reference(a);
  for_each_isa([&](Isa) {
    std::vector<float> got(size_t(c.T * ldo), -5.0f);
    a.o = got.data();
    mha_attention_head(a);
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t i = 0; i < ldo; ++i) {
        const size_t k = size_t(t * ldo + i);
        if (i >= c.dv)
          ASSERT_EQ(got[k], -5.0f) << "wrote past dv";
        else
          ASSERT_NEAR(got[k], want[k], 2e-5) << "t=" << t << " c=" << i;
      }
  });
}

TEST(MhaAttention, MatchesTheReferenceCausalAndMasked) {
  const Case cases[] = {{1, 1, 24, 16, false, false},     {5, 9, 24, 16, false, false},
                        {30, 200, 24, 16, true, false},   {70, 70, 192, 128, false, false},
                        {70, 300, 192, 128, true, false}, {25, 130, 192, 20, false, true},
                        {49, 257, 40, 33, true, true},    {100, 1000, 192, 128, true, false}};
  uint32_t seed = 1;
  for (const Case& c : cases) run_case(c, seed += 10);
}

TEST(MhaAttention, EmptyMaskRowGivesZeros) {
  std::vector<float> q(24, 1.0f), kt(size_t(mha_keys_size(4, 24)), 1.0f), v(4 * 16, 3.0f),
      o(16, 7.0f);
  std::vector<int32_t> pos{3};
  std::vector<uint64_t> mask{0};
  MhaHeadArgs a;
  a.q = q.data(), a.ldq = 24, a.n_queries = 1, a.dqk = 24, a.dv = 16;
  a.kt = kt.data(), a.v = v.data(), a.ldv = 16, a.n_keys = 4;
  a.positions = pos.data(), a.mask = mask.data(), a.ldmask = 1, a.o = o.data(), a.ldo = 16;
  for_each_isa([&](Isa) {
    mha_attention_head(a);
    for (float x : o) ASSERT_EQ(x, 0.0f);
  });
}

TEST(MhaAttention, RejectsBadArguments) {
  MhaHeadArgs a;
  a.n_queries = 1, a.dqk = 0, a.dv = 16;
  EXPECT_THROW(mha_attention_head(a), std::invalid_argument);
  a.dqk = 24;  // null pointers
  EXPECT_THROW(mha_attention_head(a), std::invalid_argument);
}

}  // namespace
}  // namespace dsinfer
