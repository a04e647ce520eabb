// --fp8-activations (the release's activation quantization before each FP8 GEMM) against the
// default weight-only FP8: how far the logits move (printed: docs/checkpoints.md quotes the mini
// figures), within loose bounds, and never at all for BF16 weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "model/model.h"
#include "synthetic_models.h"

namespace dsinfer {
namespace {

struct Agreement {
  double median_rel = 0, argmax = 0, mean_kl = 0;
};

std::vector<float> logits_of(GenPreset preset, GenDtype dtype, bool fp8_act,
                             const std::vector<int32_t>& tokens) {
  ModelOptions mo;
  mo.fp8_activations = fp8_act;
  mo.kv_cache_tokens = 4096;
  auto m = Model::load(testing::preset_dir(preset, dtype), mo);
  const int seq = m->create_sequence();
  BatchEntry e{seq, tokens, true};
  const ForwardOutput out = m->forward({e});
  return std::vector<float>(out.logits.data<float>(),
                            out.logits.data<float>() + out.logits.numel());
}

// Per position: relative L2 error of the logits, argmax agreement, KL(p_ref || p).
Agreement compare(const std::vector<float>& ref, const std::vector<float>& got, int64_t vocab) {
  const size_t n = ref.size() / size_t(vocab);
  std::vector<double> rel;
  double agree = 0, kl = 0;
  for (size_t p = 0; p < n; ++p) {
    const float* a = ref.data() + p * vocab;
    const float* b = got.data() + p * vocab;
    double d2 = 0, r2 = 0, ma = -1e30, mb = -1e30;
    for (int64_t v = 0; v < vocab; ++v) {
      d2 += double(a[v] - b[v]) * (a[v] - b[v]), r2 += double(a[v]) * a[v];
      ma = std::max(ma, double(a[v])), mb = std::max(mb, double(b[v]));
    }
    rel.push_back(std::sqrt(d2 / std::max(r2, 1e-30)));
    agree += std::max_element(a, a + vocab) - a == std::max_element(b, b + vocab) - b;
    double za = 0, zb = 0;
    for (int64_t v = 0; v < vocab; ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double k = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double la = a[v] - ma - std::log(za), lb = b[v] - mb - std::log(zb);
      k += std::exp(la) * (la - lb);
    }
    kl += k;
  }
  std::sort(rel.begin(), rel.end());
  return {rel[rel.size() / 2], agree / double(n), kl / double(n)};
}

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng() % uint32_t(vocab));
  return t;
}

TEST(Fp8Activations, StayCloseToWeightOnlyFp8OnMini) {
  const auto tokens = random_tokens(256, 1024, 8);
  const auto base = logits_of(GenPreset::mini, GenDtype::fp8, false, tokens);
  const auto act = logits_of(GenPreset::mini, GenDtype::fp8, true, tokens);
  const Agreement g = compare(base, act, 1024);
  std::printf(
      "mini, 256 tokens: median relative error %.4f, argmax agreement %.1f%%, mean KL %.2e\n",
      g.median_rel, 100 * g.argmax, g.mean_kl);
  EXPECT_GT(g.median_rel, 0);  // it does change something
  EXPECT_LT(g.median_rel, 0.2);
  EXPECT_GT(g.argmax, 0.7);
}

TEST(Fp8Activations, ChangeNothingOnBf16Weights) {
  const auto tokens = random_tokens(64, 512, 9);
  EXPECT_EQ(logits_of(GenPreset::tiny, GenDtype::bf16, false, tokens),
            logits_of(GenPreset::tiny, GenDtype::bf16, true, tokens));
}

}  // namespace
}  // namespace dsinfer
