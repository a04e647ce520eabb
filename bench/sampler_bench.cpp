// `dsinfer bench sampler`: one Sampler::sample() step over DeepSeek-V3.2's 129280-token vocabulary.
#include <cstdint>
#include <string>
#include <vector>

#include "bench_harness.h"
#include "core/thread_pool.h"
#include "engine/sampler.h"

namespace dsinfer::bench {
namespace {

constexpr int kVocab = 129280;

// Logit-like data: a roughly normal bulk (sum of uniforms, sd ~2.5) and a few strong tokens.
std::vector<float> make_logits() {
  std::vector<float> l(kVocab);
  uint64_t s = 0x243f6a8885a308d3ull;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return float(uint32_t(s >> 40)) / float(1u << 24);  // [0, 1)
  };
  for (auto& v : l) v = (next() + next() + next() + next() - 2.0f) * 4.3f;
  for (int i = 0; i < 8; ++i) l[(i * 15485863) % kVocab] = 14.0f - float(i);
  return l;
}

struct Case {
  const char* name;
  SamplingParams p;
};

SuiteRegistrar sampler_suite(
    "sampler", "Sampler::sample() per step on a 129280-token vocabulary",
    [](const Options& opts, Report& report) {
      const std::vector<float> logits = make_logits();
      SamplingParams greedy;
      greedy.temperature = 0.0f;
      SamplingParams top_p;
      top_p.temperature = 0.7f;
      top_p.top_p = 0.95f;
      SamplingParams top_k;
      top_k.temperature = 0.7f;
      top_k.top_k = 40;
      top_k.top_p = 0.95f;
      SamplingParams temp;
      temp.temperature = 1.0f;
      const Case cases[] = {{"greedy", greedy},
                            {"temperature+top_p", top_p},
                            {"top_k+top_p", top_k},
                            {"temperature", temp}};
      for (int t : opts.threads) {
        report.probe(t);
        set_num_threads(t);  // the sampler is single-threaded; the probe still uses `t`
        for (const Case& c : cases) {
          Sampler s(c.p, kVocab);
          for (int i = 0; i < 64; ++i) s.accept(int32_t((i * 7919) % kVocab));
          volatile int32_t sink = 0;
          const double ms = time_median_ms([&] { sink = s.sample(logits.data()); },
                                           opts.quick ? 3 : 20, opts.quick ? 0.05 : 0.3);
          (void)sink;
          Result r;
          r.name = std::string("sample ") + c.name;
          r.params = {{"vocab", kVocab},
                      {"temperature", c.p.temperature},
                      {"top_k", c.p.top_k},
                      {"top_p", c.p.top_p},
                      {"penalty_last_n", c.p.penalty_last_n}};
          r.median_ms = ms;
          r.gflops = 0;
          r.gbs = double(kVocab) * 4 / ms / 1e6;
          r.peak = PeakKind::read;
          report.add(std::move(r), t);
        }
      }
    });

}  // namespace
}  // namespace dsinfer::bench
