// Speculative decoding with the MTP head: greedy output (tokens and every emitted token's logits)
// is identical with and without it, for K = 1..3, batched with mixed lengths, under preemption;
// with sampling, the emitted tokens follow the target distribution (chi-square).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "engine_test_util.h"

namespace dsinfer {
namespace {

using testing::collect;
using testing::expect_same;
using testing::make_engine;
using testing::Output;
using testing::random_prompt;
using testing::run_together;

std::vector<Request> greedy_requests(int vocab, const std::vector<int>& lengths, int max_tokens) {
  std::vector<Request> reqs;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Request r;
    r.prompt = random_prompt(lengths[i], vocab, 50 + uint32_t(i));
    r.max_tokens = max_tokens + int(i % 5);
    r.sampling.temperature = 0;
    r.sampling.repetition_penalty = i % 3 == 2 ? 1.3f : 1.0f;
    r.ignore_eos = i % 4 != 0;
    r.return_logits = true;
    reqs.push_back(r);
  }
  return reqs;
}

void check_greedy(GenPreset preset, const std::vector<int>& lengths, int max_tokens,
                  int64_t small_budget) {
  const int vocab = int(Model::load(testing::synthetic_model(preset))->config().vocab_size);
  const auto reqs = greedy_requests(vocab, lengths, max_tokens);
  EngineOptions plain;
  plain.max_batch_tokens = 64;
  const auto want = run_together(*make_engine(preset, plain), reqs);
  for (int k = 1; k <= 3; ++k) {
    EngineOptions eo = plain;
    eo.speculative_draft_tokens = k;
    auto engine = make_engine(preset, eo);
    expect_same(want, run_together(*engine, reqs), "K=" + std::to_string(k));
    // Again, prefixes from the cache (their keys cover the token after each block).
    expect_same(want, run_together(*engine, reqs), "cached, K=" + std::to_string(k));
    ASSERT_TRUE(engine->wait_idle(60));
    const EngineStats st = engine->stats();
    EXPECT_GT(st.spec_draft_tokens, 0);
    engine->check_cache_consistency();
  }
  EngineOptions eo = plain;
  eo.speculative_draft_tokens = 2;
  eo.max_running = 8;
  ModelOptions mo;
  mo.kv_cache_tokens = small_budget;
  auto tight = make_engine(preset, eo, mo);
  expect_same(want, run_together(*tight, reqs), "preempted");
  ASSERT_TRUE(tight->wait_idle(60));
  EXPECT_GT(tight->stats().preemptions, 0);
  tight->check_cache_consistency();
}

TEST(Speculative, GreedyIsIdenticalOnTiny) {
  check_greedy(GenPreset::tiny, {1, 7, 20, 63, 64, 100, 150, 5, 33, 130}, 40, 64 * 8);
}

TEST(Speculative, GreedyIsIdenticalOnMini) {
  check_greedy(GenPreset::mini, {9, 62, 1, 120, 30, 63}, 8, 64 * 5);
}

// Many seeded requests: the second token (verified against an MTP draft: accepted, or drawn from
// the residual) against the target distribution computed from its logits, given the first.
TEST(Speculative, SamplingFollowsTheTargetDistribution) {
  EngineOptions eo;
  eo.speculative_draft_tokens = 1;
  auto engine = make_engine(GenPreset::tiny, eo);
  const std::vector<int32_t> prompt = random_prompt(12, 512, 77);
  // top_k keeps the support small enough for a chi-square test.
  const int kDraws = 3000, kTopK = 6;
  std::map<int32_t, int> counts;
  std::vector<float> logits2;
  int32_t first = -1;
  std::vector<RequestHandle> hs;
  for (int i = 0; i < kDraws; ++i) {
    Request r;
    r.prompt = prompt;
    r.max_tokens = 3;  // the second token is verified against a draft (the third is the limit)
    r.ignore_eos = true;
    r.sampling.temperature = 1.5f;
    r.sampling.top_k = kTopK;
    r.sampling.seed = uint64_t(i) * 7919u + 1;
    r.return_logits = true;
    hs.push_back(engine->submit(r));
    if (hs.size() == 64 || i + 1 == kDraws) {
      for (auto& h : hs) {
        const Output o = collect(h);
        ASSERT_EQ(o.tokens.size(), 3u);
        // Condition on the first token (the second's distribution depends on it).
        if (first < 0) first = o.tokens[0].token, logits2 = o.tokens[1].logits;
        if (o.tokens[0].token != first) continue;
        EXPECT_EQ(0, std::memcmp(logits2.data(), o.tokens[1].logits.data(), logits2.size() * 4));
        ++counts[o.tokens[1].token];
      }
      hs.clear();
    }
  }
  ASSERT_TRUE(engine->wait_idle(60));
  EXPECT_GT(engine->stats().spec_draft_tokens, 0);
  // The target: top-6 of logits2 / 1.5, softmax.
  std::vector<int32_t> ids(logits2.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  std::partial_sort(ids.begin(), ids.begin() + kTopK, ids.end(),
                    [&](int32_t a, int32_t b) { return logits2[size_t(a)] > logits2[size_t(b)]; });
  double z = 0;
  std::vector<double> p(kTopK);
  for (int j = 0; j < kTopK; ++j)
    z += (p[size_t(j)] = std::exp(logits2[size_t(ids[size_t(j)])] / 1.5));
  int n = 0;
  for (auto& [tok, c] : counts) n += c;
  ASSERT_GT(n, 300);
  double chi2 = 0;
  int outside = n;
  for (int j = 0; j < kTopK; ++j) {
    const double expect = n * p[size_t(j)] / z;
    const int got = counts.count(ids[size_t(j)]) ? counts[ids[size_t(j)]] : 0;
    outside -= got;
    chi2 += (got - expect) * (got - expect) / expect;
  }
  EXPECT_EQ(outside, 0) << "tokens outside the target's support";
  // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
  EXPECT_LT(chi2, 20.5) << "n = " << n;
}

}  // namespace
}  // namespace dsinfer
