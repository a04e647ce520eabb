// Non-absorbed MHA flash attention (one head) against its double-precision reference, on every
// ISA this CPU runs: causal and top-k masked, tails in queries, keys and value width. The same in
// the bf16-pair form (keys, values and queries in bf16; P rounded to bf16 inside the kernel,
// allowed for by a tolerance from the softmax row's norm).
#include "kernels/mha_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
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
  auto check = [&](const MhaHeadArgs& args, const std::vector<float>& ref,
                   const std::vector<float>& tol) {
    for_each_isa([&](Isa) {
      std::vector<float> got(size_t(c.T * ldo), -5.0f);
      MhaHeadArgs b = args;
      b.o = got.data();
      mha_attention_head(b);
      for (int64_t t = 0; t < c.T; ++t)
        for (int64_t i = 0; i < ldo; ++i) {
          const size_t k = size_t(t * ldo + i);
          if (i >= c.dv)
            ASSERT_EQ(got[k], -5.0f) << "wrote past dv";
          else
            ASSERT_NEAR(got[k], ref[k], 2e-5 + tol[size_t(t)]) << "t=" << t << " c=" << i;
        }
    });
  };
  check(a, want, std::vector<float>(size_t(c.T), 0.0f));

  // The pair form: bf16 queries, keys and values (the pair layouts, zero padded), the same
  // reference on those values. Rounding P moves o by sum_s dP[s] v[s] (|dP| <= 2^-8 P, |v| <= 1):
  // six standard deviations of that, from each row's |P|.
  std::vector<float> q16 = q;
  for (auto& x : q16) x = bf16_to_f32(f32_to_bf16(x));
  std::vector<uint16_t> kt2(size_t(mha_key_pairs_size(c.L, c.dqk)), 0);
  std::vector<uint16_t> v2(size_t(mha_value_pairs_size(c.L, c.dv)), 0);
  for (int64_t s = 0; s < c.L; ++s) {
    for (int d = 0; d < c.dqk; ++d)
      kt2[size_t(mha_key_pair_index(s, d, c.dqk))] = f32_to_bf16(k[s * c.dqk + d]).bits;
    for (int i = 0; i < c.dv; ++i)
      v2[size_t(mha_value_pair_index(s, i, c.dv))] = f32_to_bf16(v[s * ldv + i]).bits;
  }
  MhaHeadArgs p = a;
  p.q = q16.data(), p.kt = nullptr, p.v = nullptr, p.ldv = 0, p.kt2 = kt2.data(), p.v2 = v2.data();
  std::vector<float> want2(size_t(c.T * ldo), -5.0f);
  p.o = want2.data();
  mha_attention_head_reference(p);
  std::vector<float> tol(size_t(c.T), 0.0f);
  for (int64_t t = 0; t < c.T; ++t) {
    std::vector<double> sc;
    for (int64_t s = 0; s <= std::min<int64_t>(pos[t], c.L - 1); ++s) {
      if (c.masked && !(mask[t * ldmask + s / 64] >> (s % 64) & 1)) continue;
      double x = 0;
      for (int d = 0; d < c.dqk; ++d)
        x += double(q16[t * ldq + d]) *
             bf16_to_f32(bf16{kt2[size_t(mha_key_pair_index(s, d, c.dqk))]});
      sc.push_back(x * a.scale);
    }
    tol[size_t(t)] = float(testing::kPairRoundingSigmas * testing::softmax_norm(sc));
  }
  check(p, want2, tol);
}

// The model's packer writes exactly the pair layouts the kernel reads: every element at its
// index, zero everywhere else up to the last block's end (odd widths, odd key counts).
TEST(MhaAttention, PackPairsFillsBothLayouts) {
  for (auto [n, dk, dpe, dv] : {std::tuple<int64_t, int, int, int>{1, 4, 3, 5},
                                {63, 128, 64, 128},
                                {130, 7, 2, 33},
                                {64, 8, 0, 32},
                                {200, 128, 64, 128},
                                {17, 0, 35, 16}}) {
    SCOPED_TRACE("n " + std::to_string(n) + " dk " + std::to_string(dk) + " dpe " +
                 std::to_string(dpe) + " dv " + std::to_string(dv));
    const int dqk = dk + dpe;
    const int64_t ldk = dk + 3, ldpe = dpe + 1, ldv = dv + 2;
    const auto k = random_floats(size_t(n * ldk), 1), pe = random_floats(size_t(n * ldpe + 1), 2),
               v = random_floats(size_t(n * ldv), 3);
    std::vector<uint16_t> kt2(size_t(mha_key_pairs_size(n, dqk)), 0xffff);
    std::vector<uint16_t> v2(size_t(mha_value_pairs_size(n, dv)), 0xffff);
    std::vector<uint16_t> want_k(kt2.size(), 0), want_v(v2.size(), 0);
    for (int64_t s = 0; s < n; ++s) {
      for (int d = 0; d < dqk; ++d)
        want_k[size_t(mha_key_pair_index(s, d, dqk))] =
            f32_to_bf16(d < dk ? k[s * ldk + d] : pe[s * ldpe + d - dk]).bits;
      for (int c = 0; c < dv; ++c)
        want_v[size_t(mha_value_pair_index(s, c, dv))] = f32_to_bf16(v[s * ldv + c]).bits;
    }
    for_each_isa([&](Isa) {
      std::fill(kt2.begin(), kt2.end(), uint16_t(0xffff));
      std::fill(v2.begin(), v2.end(), uint16_t(0xffff));
      mha_pack_pairs(k.data(), ldk, dk, pe.data(), ldpe, dpe, v.data(), ldv, dv, n, kt2.data(),
                     v2.data());
      ASSERT_EQ(kt2, want_k);
      ASSERT_EQ(v2, want_v);
    });
  }
}

TEST(MhaAttention, MatchesTheReferenceCausalAndMasked) {
  const Case cases[] = {{1, 1, 24, 16, false, false},
                        {5, 9, 24, 16, false, false},
                        {30, 200, 24, 16, true, false},
                        {70, 70, 192, 128, false, false},
                        {70, 300, 192, 128, true, false},
                        {25, 130, 192, 20, false, true},
                        {49, 257, 40, 33, true, true},
                        {100, 1000, 192, 128, true, false},
                        // few queries far from the end: a last block cut inside real keys
                        {3, 300, 40, 33, false, true},
                        {2, 150, 192, 128, true, true}};
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
