// A request's logits and tokens are bitwise the same whether it runs alone or batched with many
// others (mixed prefill chunks and decodes), with its prefix from the cache or computed, after
// being preempted and recomputed, and at any thread count: on the tiny and mini presets.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
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

std::vector<Request> mixed_requests(int vocab, const std::vector<int>& lengths, int max_tokens,
                                    uint32_t seed) {
  std::vector<Request> reqs;
  const std::vector<int32_t> shared = random_prompt(130, vocab, seed + 99);  // a common prefix
  for (size_t i = 0; i < lengths.size(); ++i) {
    Request r;
    r.prompt = random_prompt(lengths[i], vocab, seed + uint32_t(i));
    if (i % 3 == 1)  // every third one starts with the shared prefix
      r.prompt.insert(r.prompt.begin(), shared.begin(), shared.end());
    r.max_tokens = max_tokens + int(i % 4);
    r.sampling.temperature = i % 2 ? 0.8f : 0.0f;
    r.sampling.top_p = 0.9f;
    r.sampling.repetition_penalty = i % 4 == 3 ? 1.2f : 1.0f;
    r.sampling.seed = 1000 + i;
    r.ignore_eos = i % 5 != 0;
    r.return_logits = true;
    r.logprobs = true;
    r.top_logprobs = 3;
    r.tag = "r" + std::to_string(i);
    reqs.push_back(r);
  }
  return reqs;
}

std::vector<Output> run_alone(const std::vector<Request>& reqs, GenPreset preset, int threads) {
  const int saved = num_threads();
  set_num_threads(threads);
  EngineOptions eo;
  eo.max_running = 1;
  eo.prefix_cache = false;
  auto engine = make_engine(preset, eo);
  std::vector<Output> out;
  for (const Request& r : reqs) out.push_back(collect(engine->submit(r)));
  set_num_threads(saved);
  return out;
}

void check_invariance(GenPreset preset, const std::vector<int>& lengths, int max_tokens,
                      int64_t small_budget, int64_t batch_tokens) {
  const int vocab = int(Model::load(testing::synthetic_model(preset))->config().vocab_size);
  const std::vector<Request> reqs = mixed_requests(vocab, lengths, max_tokens, 7);
  const std::vector<Output> alone = run_alone(reqs, preset, 1);

  const int saved = num_threads();
  {  // Batched: small steps force chunked prefills mixed with decodes.
    set_num_threads(2);
    EngineOptions eo;
    eo.max_running = 16;
    eo.max_batch_tokens = batch_tokens;
    auto engine = make_engine(preset, eo);
    expect_same(alone, run_together(*engine, reqs), "batched");
    // Again on the same engine: now every prompt's full blocks come from the prefix cache.
    const std::vector<Output> again = run_together(*engine, reqs);
    expect_same(alone, again, "cached prefixes");
    int64_t cached = 0;
    for (const Output& o : again) cached += o.finish.usage.cached_tokens;
    EXPECT_GT(cached, 0);
    ASSERT_TRUE(engine->wait_idle(60));
    EXPECT_GT(engine->stats().prefix_hits, 0);
    engine->check_cache_consistency();
  }
  {  // A budget too small for all of them at once: decodes run out of blocks and preempt.
    set_num_threads(3);
    EngineOptions eo;
    eo.max_running = 8;
    eo.max_batch_tokens = batch_tokens;
    ModelOptions mo;
    mo.kv_cache_tokens = small_budget;
    auto engine = make_engine(preset, eo, mo);
    expect_same(alone, run_together(*engine, reqs), "preempted");
    ASSERT_TRUE(engine->wait_idle(60));
    EXPECT_GT(engine->stats().preemptions, 0);
    engine->check_cache_consistency();
  }
  set_num_threads(saved);
}

TEST(EngineInvariance, TinyAloneBatchedCachedPreempted) {
  // Prompts around the block size, past the top-k (16), long and short.
  check_invariance(GenPreset::tiny, {1, 5, 17, 40, 63, 64, 65, 100, 130, 3, 200, 77}, 30, 64 * 10,
                   48);
}

TEST(EngineInvariance, MiniAloneBatchedCachedPreempted) {
  // 62 + 130 and 63 end just before a block boundary: their first decode needs a new block.
  check_invariance(GenPreset::mini, {12, 62, 1, 150, 33, 63, 90, 5}, 6, 64 * 8, 96);
}

}  // namespace
}  // namespace dsinfer
