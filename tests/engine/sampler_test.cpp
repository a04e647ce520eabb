// Sampler: greedy, determinism, the drawn distribution, the exact top-k / top-p / min-p sets
// (against a full-sort reference), penalties and their window, errors, and speed at 129K.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"

namespace dsinfer {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int kBigVocab = 129280;

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// ---- reference: the definition, with a full stable sort ------------------------------------

std::vector<TokenProb> reference_distribution(const SamplingParams& p, std::vector<float> x,
                                              const std::map<int32_t, int>& counts) {
  for (float& v : x)
    if (std::isnan(v)) v = -kInf;
  for (const auto& [tok, c] : counts) {
    float v = x[tok];
    if (v == -kInf) continue;
    if (p.repetition_penalty != 1.0f)
      v = v > 0 ? v / p.repetition_penalty : v * p.repetition_penalty;
    v -= float(c) * p.frequency_penalty + p.presence_penalty;
    x[tok] = std::isnan(v) ? -kInf : v;
  }
  std::vector<int32_t> order;
  for (int32_t i = 0; i < int32_t(x.size()); ++i)
    if (x[i] > -kInf) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  if (p.temperature == 0.0f) return {{order.at(0), 1.0}};
  if (p.top_k > 0 && size_t(p.top_k) < order.size()) order.resize(p.top_k);
  const float m = x[order[0]];
  std::vector<double> w(order.size());
  double z = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const float d = x[order[i]] - m;
    const float zi = d * (1.0f / p.temperature);
    // Weights below float's normal range (p / p_max < 1.2e-38) count as 0.
    w[i] = m == kInf ? (x[order[i]] == kInf ? 1.0 : 0.0)
                     : (d == 0 ? 1.0 : (zi < -87.33654f ? 0.0 : std::exp(zi)));
    z += w[i];
  }
  size_t keep = order.size();
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      cum += w[i];
      if (cum >= double(p.top_p) * z) {
        keep = i + 1;
        break;
      }
    }
  }
  std::vector<TokenProb> out;
  double s = 0;
  for (size_t i = 0; i < keep; ++i)
    if (w[i] > 0 && w[i] >= p.min_p) {
      out.push_back({order[i], w[i]});
      s += w[i];
    }
  for (auto& t : out) t.prob /= s;
  std::sort(out.begin(), out.end(), [](const TokenProb& a, const TokenProb& b) {
    return a.prob != b.prob ? a.prob > b.prob : a.token < b.token;
  });
  return out;
}

void expect_same_distribution(const std::vector<TokenProb>& got,
                              const std::vector<TokenProb>& want) {
  ASSERT_EQ(got.size(), want.size());
  std::map<int32_t, double> w;
  for (const auto& t : want) w[t.token] = t.prob;
  for (const auto& t : got) {
    auto it = w.find(t.token);
    ASSERT_NE(it, w.end()) << "token " << t.token << " not in the reference set";
    EXPECT_NEAR(t.prob, it->second, 1e-9 + 1e-6 * it->second) << "token " << t.token;
  }
}

std::set<int32_t> support_of(const std::vector<TokenProb>& d) {
  std::set<int32_t> s;
  for (const auto& t : d) s.insert(t.token);
  return s;
}

// Draws n tokens and returns the counts per token.
std::map<int32_t, int> draw(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> c;
  for (int i = 0; i < n; ++i) ++c[s.sample(logits.data())];
  return c;
}

// ---- greedy ----------------------------------------------------------------------------------

TEST(Sampler, GreedyIsArgmaxWithTiesToSmallestId) {
  Sampler s(greedy_params(), 8);
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 3.5f, 3.5f, 0.0f, 3.4f, -kInf};
  EXPECT_EQ(s.sample(l.data()), 3);
  l = {5, 5, 5, 5, 5, 5, 5, 5};
  EXPECT_EQ(s.sample(l.data()), 0);
  l = {kNaN, -kInf, -2.0f, kNaN, -1.0f, -1.0f, -kInf, kNaN};
  EXPECT_EQ(s.sample(l.data()), 4);
  l = {1, kInf, 2, kInf, 3, 4, 5, 6};
  EXPECT_EQ(s.sample(l.data()), 1);
  l = {-0.0f, 0.0f, -1, -1, -1, -1, -1, -1};  // -0 == +0: a tie
  EXPECT_EQ(s.sample(l.data()), 0);
}

TEST(Sampler, GreedyIgnoresSeedAndFilters) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> l(5000);
  for (auto& v : l) v = nd(rng);
  const int32_t want = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  for (uint64_t seed : {0ull, 1ull, 12345ull, ~0ull}) {
    SamplingParams p = greedy_params();
    p.seed = seed;
    p.top_k = 3;
    p.top_p = 0.3f;
    p.min_p = 0.5f;
    Sampler s(p, int(l.size()));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(l.data()), want);
  }
}

// ---- determinism -----------------------------------------------------------------------------

TEST(Sampler, XoshiroMatchesReferenceStream) {
  // splitmix64(0)'s first output is the published 0xe220a8397b1dcdaf; the xoshiro256** stream for
  // seed 42 was computed independently (Python, from the reference C code).
  Xoshiro256 r(42);
  const uint64_t want[5] = {0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull, 0xae17533239e499a1ull,
                            0xecb8ad4703b360a1ull, 0xfde6dc7fe2ec5e64ull};
  for (uint64_t w : want) EXPECT_EQ(r.next(), w);
  Xoshiro256 a(7);
  for (int i = 0; i < 1000; ++i) {
    const double d = a.next_double();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

std::vector<int32_t> run_sequence(uint64_t seed, const std::vector<float>& l, int n) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = seed;
  Sampler s(p, int(l.size()));
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(l.data()));
  return out;
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::vector<float> l(1000);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (auto& v : l) v = ud(rng);
  const auto a = run_sequence(11, l, 200), b = run_sequence(11, l, 200);
  const auto c = run_sequence(12, l, 200);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int same = 0;
  for (int i = 0; i < 200; ++i) same += a[i] == c[i];
  EXPECT_LT(same, 20);  // near-uniform over 1000 tokens: a handful of coincidences at most

  // reset() reseeds: the same sequence again.
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 11;
  Sampler s(p, 1000);
  for (int i = 0; i < 50; ++i) s.sample(l.data());
  s.accept(5);
  s.reset();
  EXPECT_EQ(s.count_in_window(5), 0);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.sample(l.data()), a[i]);
}

// ---- the drawn distribution ------------------------------------------------------------------

double chi_square(const std::map<int32_t, int>& counts, const std::vector<double>& probs, int n) {
  double chi = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double e = probs[i] * n;
    auto it = counts.find(int32_t(i));
    const double o = it == counts.end() ? 0 : it->second;
    chi += (o - e) * (o - e) / e;
  }
  return chi;
}

TEST(Sampler, DrawsMatchSoftmax) {
  const std::vector<float> l = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -3.0f};
  for (float t : {1.0f, 0.5f}) {
    SCOPED_TRACE("temperature " + std::to_string(t));
    SamplingParams p;
    p.temperature = t;
    p.seed = 99;
    Sampler s(p, 8);
    std::vector<double> probs(8);
    double z = 0;
    for (int i = 0; i < 8; ++i) z += probs[i] = std::exp(l[i] / t);
    for (auto& q : probs) q /= z;
    const int n = 100000;
    const auto c = draw(s, l, n);
    // Chi-square with 7 degrees of freedom: P(chi > 42) is about 1e-6.
    EXPECT_LT(chi_square(c, probs, n), 42.0);
    // And the other temperature's softmax is rejected (the test can tell them apart).
    std::vector<double> other(8);
    double zo = 0;
    for (int i = 0; i < 8; ++i) zo += other[i] = std::exp(l[i] / (1.5f - t));
    for (auto& q : other) q /= zo;
    EXPECT_GT(chi_square(c, other, n), 1000.0);
  }
}

TEST(Sampler, LargeVocabTailMass) {
  // 4 strong tokens and a long tail holding a known share of the mass: the drawn tail fraction
  // must match it (a sampler that drops or over-weights the tail fails).
  std::vector<float> l(kBigVocab, -4.0f);
  const int32_t strong[4] = {17, 5000, 77777, 129279};
  for (int i = 0; i < 4; ++i) l[strong[i]] = 6.0f - float(i);
  double z = 0;
  for (float v : l) z += std::exp(double(v));
  double tail = 0;
  for (int i = 0; i < kBigVocab; ++i)
    if (l[i] == -4.0f) tail += std::exp(-4.0) / z;
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 5;
  Sampler s(p, kBigVocab);
  const int n = 20000;
  const auto c = draw(s, l, n);
  int tail_draws = 0;
  for (const auto& [tok, k] : c)
    if (l[tok] == -4.0f) tail_draws += k;
  const double sd = std::sqrt(tail * (1 - tail) / n);
  EXPECT_NEAR(double(tail_draws) / n, tail, 5 * sd);
  EXPECT_NEAR(double(c.at(17)) / n, std::exp(6.0) / z, 5 * std::sqrt(std::exp(6.0) / z / n));
}

// ---- supports of top-k / top-p / min-p -------------------------------------------------------

// 1000 tokens: 12 strong ones at scattered ids (logits 5, 4.8, ...), the rest in [-5, 0].
std::vector<float> peaked_logits() {
  std::vector<float> l(1000);
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> ud(-5.0f, 0.0f);
  for (auto& v : l) v = ud(rng);
  for (int i = 0; i < 12; ++i) l[7 * i * i % 1000 + 3] = 5.0f - 0.2f * float(i);
  return l;
}

void check_support(const SamplingParams& p, const std::vector<float>& l,
                   const std::set<int32_t>& want) {
  Sampler s(p, int(l.size()));
  const auto c = draw(s, l, 20000);
  std::set<int32_t> got;
  for (const auto& [tok, k] : c) got.insert(tok);
  EXPECT_EQ(got, want);
  expect_same_distribution(s.distribution(l.data()), reference_distribution(p, l, {}));
}

TEST(Sampler, TopKSupportIsExactlyTheKBest) {
  const auto l = peaked_logits();
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 5;
  check_support(p, l, {3, 10, 31, 66, 115});  // ids 7*i*i % 1000 + 3, i < 5
}

TEST(Sampler, TopPSupport) {
  const auto l = peaked_logits();
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.6f;
  const auto ref = reference_distribution(p, l, {});
  ASSERT_GE(ref.size(), 3u);
  ASSERT_LE(ref.size(), 12u);
  for (const auto& t : ref) ASSERT_GT(t.prob, 0.01);  // so that 20000 draws hit every member
  check_support(p, l, support_of(ref));
}

TEST(Sampler, MinPSupport) {
  const auto l = peaked_logits();
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.2f;  // keeps logits >= 5 + ln 0.2 = 3.39: the strong tokens 0..8
  std::set<int32_t> want;
  for (int i = 0; i < 9; ++i) want.insert(7 * i * i % 1000 + 3);
  check_support(p, l, want);
  // Temperature widens the gaps: at T = 0.5 only logits >= 5 + 0.5 ln 0.2 = 4.2 (tokens 0..4).
  p.temperature = 0.5f;
  want.clear();
  for (int i = 0; i < 5; ++i) want.insert(7 * i * i % 1000 + 3);
  check_support(p, l, want);
}

TEST(Sampler, TopKThenTopPThenMinP) {
  const auto l = peaked_logits();
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 10;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  const auto ref = reference_distribution(p, l, {});
  ASSERT_GE(ref.size(), 2u);
  ASSERT_LT(ref.size(), 10u);
  check_support(p, l, support_of(ref));
}

TEST(Sampler, TopPBoundaryIncludesTheCrossingToken) {
  // Probabilities 0.5, 0.3, 0.2 (ids 2, 0, 1).
  const std::vector<float> l = {std::log(0.3f), std::log(0.2f), std::log(0.5f), -kInf};
  auto support = [&](float top_p) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = top_p;
    Sampler s(p, 4);
    return support_of(s.distribution(l.data()));
  };
  EXPECT_EQ(support(0.45f), (std::set<int32_t>{2}));
  EXPECT_EQ(support(0.55f), (std::set<int32_t>{0, 2}));  // 0.5 < 0.55: the 0.3 token crosses
  EXPECT_EQ(support(0.75f), (std::set<int32_t>{0, 2}));
  EXPECT_EQ(support(0.85f), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(support(1.0f), (std::set<int32_t>{0, 1, 2}));

  // Exactly on the boundary: four equal tokens, top_p = 0.5 reaches 0.5 with two of them (the
  // smaller ids); a hair more needs a third.
  const std::vector<float> flat = {1, 1, 1, 1};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.5f;
  Sampler s(p, 4);
  auto d = s.distribution(flat.data());
  EXPECT_EQ(support_of(d), (std::set<int32_t>{0, 1}));
  EXPECT_DOUBLE_EQ(d[0].prob, 0.5);
  p.top_p = std::nextafter(0.5f, 1.0f);
  Sampler s2(p, 4);
  EXPECT_EQ(support_of(s2.distribution(flat.data())), (std::set<int32_t>{0, 1, 2}));
}

TEST(Sampler, FlatLargeVocabTopPCutsInIdOrder) {
  std::vector<float> l(kBigVocab, 0.25f);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.5f;
  Sampler s(p, kBigVocab);
  const auto d = s.distribution(l.data());
  ASSERT_EQ(d.size(), size_t(kBigVocab / 2));
  for (int i = 0; i < kBigVocab / 2; ++i) ASSERT_EQ(d[i].token, i);
  for (int i = 0; i < 2000; ++i) ASSERT_LT(s.sample(l.data()), kBigVocab / 2);
  p.top_p = 1.0f;
  p.top_k = 1000;
  Sampler s3(p, kBigVocab);
  const auto d3 = s3.distribution(l.data());
  ASSERT_EQ(d3.size(), 1000u);
  EXPECT_EQ(d3.back().token, 999);
}

// Random logits of several shapes (ties, near-equal values that differ in the last mantissa
// bits, wide range, -inf/NaN holes, +inf) and random filters: the sampler's distribution must be
// the reference's.
TEST(Sampler, DistributionMatchesFullSortReference) {
  // Every ISA backend (the vocabulary passes are compiled per ISA).
  testing::for_each_isa([](Isa) {
    std::mt19937 rng(2024);
    const int vocabs[] = {1, 7, 300, 5000, kBigVocab};
    const float temps[] = {0.0f, 0.2f, 0.7f, 1.0f, 1.6f};
    const int top_ks[] = {0, 0, 1, 3, 40, 2000};
    const float top_ps[] = {1.0f, 1.0f, 0.05f, 0.5f, 0.9f, 0.95f, 0.999f};
    const float min_ps[] = {0.0f, 0.0f, 0.01f, 0.1f, 0.6f};
    int cases = 0;
    for (int vocab : vocabs) {
      const int reps = vocab == kBigVocab ? 8 : 30;
      for (int r = 0; r < reps; ++r) {
        const int shape = r % 6;
        std::vector<float> l(vocab);
        std::uniform_real_distribution<float> ud(-8.0f, 8.0f);
        for (auto& v : l) {
          switch (shape) {
            case 0:
              v = ud(rng);
              break;
            case 1:
              v = std::round(ud(rng)) * 0.5f;
              break;  // many ties
            case 2:   // 1.0 plus up to 3000 ulps: splits only in the low key bits
              v = std::bit_cast<float>(0x3f800000u + uint32_t(rng() % 3000));
              break;
            case 3:
              v = std::ldexp(ud(rng), int(rng() % 20) - 10);
              break;  // wide range
            case 4:
              v = rng() % 3 == 0 ? (rng() % 2 ? -kInf : kNaN) : ud(rng);
              break;
            default:
              v = rng() % 50 == 0 ? kInf : ud(rng);
              break;
          }
        }
        if (shape == 4) l[rng() % vocab] = 1.0f;  // at least one finite
        SamplingParams p;
        p.temperature = temps[rng() % 5];
        p.top_k = top_ks[rng() % 6];
        p.top_p = top_ps[rng() % 7];
        p.min_p = min_ps[rng() % 5];
        p.penalty_last_n = -1;
        std::map<int32_t, int> counts;
        if (r % 3 == 0) {
          p.repetition_penalty = 1.3f;
          p.presence_penalty = 0.4f;
          p.frequency_penalty = 0.2f;
        }
        Sampler s(p, vocab);
        for (int i = 0; i < 20; ++i) {
          const int32_t t = int32_t(rng() % vocab);
          s.accept(t);
          ++counts[t];
        }
        const auto want = reference_distribution(p, l, counts);
        SCOPED_TRACE("vocab " + std::to_string(vocab) + " shape " + std::to_string(shape) + " T " +
                     std::to_string(p.temperature) + " top_k " + std::to_string(p.top_k) +
                     " top_p " + std::to_string(p.top_p) + " min_p " + std::to_string(p.min_p));
        expect_same_distribution(s.distribution(l.data()), want);
        const auto ws = support_of(want);
        for (int i = 0; i < 20; ++i) ASSERT_TRUE(ws.count(s.sample(l.data())));
        ++cases;
      }
    }
    EXPECT_EQ(cases, 4 * 30 + 8);
  });
}

// ---- penalties -------------------------------------------------------------------------------

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p = greedy_params();
  p.repetition_penalty = 2.0f;
  Sampler s(p, 4);
  std::vector<float> l = {1.0f, 0.9f, -3.0f, -3.0f};
  EXPECT_EQ(s.sample(l.data()), 0);
  s.accept(0);  // 1.0 -> 0.5 < 0.9
  EXPECT_EQ(s.sample(l.data()), 1);
  // Negative: -0.5 * 2 = -1.0 < -0.8 (dividing would give -0.25 and keep token 0).
  l = {-0.5f, -0.8f, -3.0f, -3.0f};
  EXPECT_EQ(s.sample(l.data()), 1);
  s.reset();
  EXPECT_EQ(s.sample(l.data()), 0);

  // The exact penalized logits, read back through the T = 1 distribution.
  p.temperature = 1.0f;
  Sampler t(p, 4);
  t.accept(0);
  t.accept(2);
  t.accept(0);  // counted twice, penalized once
  l = {1.0f, 0.9f, -3.0f, 0.0f};
  const auto d = t.distribution(l.data());
  std::map<int32_t, double> pr;
  for (const auto& x : d) pr[x.token] = x.prob;
  EXPECT_NEAR(std::log(pr[0] / pr[3]), 0.5, 1e-6);
  EXPECT_NEAR(std::log(pr[1] / pr[3]), 0.9, 1e-6);
  EXPECT_NEAR(std::log(pr[2] / pr[3]), -6.0, 1e-6);
}

TEST(Sampler, PresencePenaltyOnceFrequencyPenaltyPerOccurrence) {
  const std::vector<float> l = {1.0f, 0.75f, -5.0f};
  {
    SamplingParams p = greedy_params();
    p.presence_penalty = 0.3f;
    Sampler s(p, 3);
    for (int i = 0; i < 3; ++i) s.accept(0);
    EXPECT_EQ(s.sample(l.data()), 1);  // 1.0 - 0.3 = 0.7 < 0.75
    p.presence_penalty = 0.2f;
    Sampler s2(p, 3);
    for (int i = 0; i < 3; ++i) s2.accept(0);
    EXPECT_EQ(s2.sample(l.data()), 0);  // 1.0 - 0.2 = 0.8 (not 1.0 - 3 * 0.2)
  }
  {
    SamplingParams p = greedy_params();
    p.frequency_penalty = 0.1f;
    Sampler s(p, 3);
    s.accept(0);
    s.accept(0);
    EXPECT_EQ(s.sample(l.data()), 0);  // 1.0 - 0.2 = 0.8
    s.accept(0);
    EXPECT_EQ(s.sample(l.data()), 1);  // 1.0 - 0.3 = 0.7
  }
  {
    // Negative penalties raise a token; all three combine: 0.2 / 1.25 + 2 * 0.5 + 0.1 = 1.26.
    SamplingParams p;
    p.temperature = 1.0f;
    p.repetition_penalty = 1.25f;
    p.presence_penalty = -0.1f;
    p.frequency_penalty = -0.5f;
    Sampler s(p, 3);
    s.accept(2);
    s.accept(2);
    const std::vector<float> m = {0.0f, 0.0f, 0.2f};
    const auto d = s.distribution(m.data());
    ASSERT_EQ(d[0].token, 2);
    EXPECT_NEAR(std::log(d[0].prob / d[1].prob), 1.26, 1e-6);
  }
}

TEST(Sampler, PenaltyWindow) {
  const std::vector<float> l = {1.0f, 0.9f, 0.0f, 0.0f, 0.0f, 0.0f};
  SamplingParams p = greedy_params();
  p.repetition_penalty = 4.0f;
  p.penalty_last_n = 2;
  Sampler s(p, 6);
  s.accept(0);
  EXPECT_EQ(s.sample(l.data()), 1);
  s.accept(4);
  EXPECT_EQ(s.sample(l.data()), 1);  // window {0, 4}
  s.accept(5);
  EXPECT_EQ(s.count_in_window(0), 0);
  EXPECT_EQ(s.sample(l.data()), 0);  // window {4, 5}: 0 fell out
  s.accept(0);
  s.accept(0);
  EXPECT_EQ(s.count_in_window(0), 2);
  EXPECT_EQ(s.count_in_window(4), 0);

  p.penalty_last_n = 0;  // off
  Sampler off(p, 6);
  off.accept(0);
  EXPECT_EQ(off.count_in_window(0), 0);
  EXPECT_EQ(off.sample(l.data()), 0);

  p.penalty_last_n = -1;  // everything
  Sampler all(p, 6);
  all.accept(0);
  for (int i = 0; i < 1000; ++i) all.accept(3);
  EXPECT_EQ(all.count_in_window(0), 1);
  EXPECT_EQ(all.sample(l.data()), 1);

  p.penalty_last_n = 64;  // the default window
  Sampler def(p, 6);
  def.accept(0);
  for (int i = 0; i < 63; ++i) def.accept(3);
  EXPECT_EQ(def.sample(l.data()), 1);
  def.accept(3);
  EXPECT_EQ(def.sample(l.data()), 0);
}

// ---- errors ----------------------------------------------------------------------------------

TEST(Sampler, AllMinusInfOrNaNThrows) {
  for (float t : {0.0f, 1.0f}) {
    SamplingParams p;
    p.temperature = t;
    Sampler s(p, 5);
    const std::vector<float> l = {-kInf, kNaN, -kInf, kNaN, -kInf};
    try {
      s.sample(l.data());
      ADD_FAILURE() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("-inf"), std::string::npos) << e.what();
    }
    EXPECT_THROW(s.distribution(l.data()), std::invalid_argument);
    EXPECT_THROW(s.sample(nullptr), std::invalid_argument);
  }
}

TEST(Sampler, MinusInfNeverSampled) {
  std::vector<float> l(100, -kInf);
  l[10] = -50.0f;
  l[90] = 0.0f;
  l[42] = kNaN;
  SamplingParams p;
  p.temperature = 100.0f;  // flattens: token 10 gets a real share
  Sampler s(p, 100);
  const auto c = draw(s, l, 5000);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_GT(c.count(10), 0u);
  EXPECT_GT(c.count(90), 0u);
}

TEST(Sampler, PlusInfIsTheLimitOfTheSoftmax) {
  const std::vector<float> l = {1.0f, kInf, 3.0f, kInf, kNaN};
  SamplingParams p;
  p.temperature = 1.0f;
  Sampler s(p, 5);
  const auto d = s.distribution(l.data());
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].token, 1);
  EXPECT_EQ(d[1].token, 3);
  EXPECT_DOUBLE_EQ(d[0].prob, 0.5);
  p.top_k = 1;
  Sampler k1(p, 5);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(k1.sample(l.data()), 1);
}

void expect_bad_param(const SamplingParams& p, const std::string& name, int vocab = 10) {
  try {
    Sampler s(p, vocab);
    ADD_FAILURE() << "no error for " << name;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Sampler, InvalidParamsNameTheParameter) {
  auto with = [](auto f) {
    SamplingParams p;
    f(p);
    return p;
  };
  expect_bad_param(with([](auto& p) { p.temperature = -0.1f; }), "temperature");
  expect_bad_param(with([](auto& p) { p.temperature = kNaN; }), "temperature");
  expect_bad_param(with([](auto& p) { p.temperature = kInf; }), "temperature");
  expect_bad_param(with([](auto& p) { p.top_k = -1; }), "top_k");
  expect_bad_param(with([](auto& p) { p.top_p = 0.0f; }), "top_p");
  expect_bad_param(with([](auto& p) { p.top_p = 1.01f; }), "top_p");
  expect_bad_param(with([](auto& p) { p.top_p = kNaN; }), "top_p");
  expect_bad_param(with([](auto& p) { p.min_p = 1.0f; }), "min_p");
  expect_bad_param(with([](auto& p) { p.min_p = -0.01f; }), "min_p");
  expect_bad_param(with([](auto& p) { p.repetition_penalty = 0.0f; }), "repetition_penalty");
  expect_bad_param(with([](auto& p) { p.repetition_penalty = kInf; }), "repetition_penalty");
  expect_bad_param(with([](auto& p) { p.presence_penalty = kNaN; }), "presence_penalty");
  expect_bad_param(with([](auto& p) { p.frequency_penalty = -kInf; }), "frequency_penalty");
  expect_bad_param(with([](auto& p) { p.penalty_last_n = -2; }), "penalty_last_n");
  expect_bad_param(SamplingParams{}, "vocab_size", 0);
  // Edge values that are valid.
  EXPECT_NO_THROW(Sampler(with([](auto& p) {
                            p.temperature = 0.0f;
                            p.top_p = 1.0f;
                            p.min_p = 0.0f;
                            p.penalty_last_n = -1;
                            p.presence_penalty = -2.0f;
                          }),
                          1));

  Sampler s(SamplingParams{}, 10);
  for (int32_t bad : {-1, 10}) {
    try {
      s.accept(bad);
      ADD_FAILURE() << "no error for token " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("token"), std::string::npos) << e.what();
    }
  }
}

// ---- speed -----------------------------------------------------------------------------------

TEST(Sampler, LargeVocabIsFast) {
  std::vector<float> l(kBigVocab);
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 2.5f);
  for (auto& v : l) v = nd(rng);
  struct Case {
    float t;
    int k;
    float top_p;
  };
  for (const Case c :
       {Case{0.0f, 0, 1.0f}, Case{0.7f, 0, 0.95f}, Case{1.0f, 40, 0.9f}, Case{1.0f, 0, 1.0f}}) {
    SamplingParams p;
    p.temperature = c.t;
    p.top_k = c.k;
    p.top_p = c.top_p;
    p.repetition_penalty = 1.1f;
    Sampler s(p, kBigVocab);
    for (int i = 0; i < 64; ++i) s.accept(int32_t(rng() % kBigVocab));
    const auto t0 = std::chrono::steady_clock::now();
    const int n = 50;
    for (int i = 0; i < n; ++i) {
      const int32_t tok = s.sample(l.data());
      ASSERT_GE(tok, 0);
      ASSERT_LT(tok, kBigVocab);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
        n;
    // A full sort of 129K pairs alone takes ~10 ms; the sampler should be well under that
    // (generous for sanitizer builds).
    EXPECT_LT(ms, 15.0) << "T " << c.t << " top_k " << c.k << " top_p " << c.top_p;
  }
}

}  // namespace
}  // namespace dsinfer
